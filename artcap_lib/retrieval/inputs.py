"""Experiment 2's inputs, the same for every retrieval model (notebooks 04 and 05).

The split ids (in `artpedia.ordered_ids` order, which is also the order of every score matrix and run), the
images, the caption sources a model is fine-tuned on (human = the visual sentences joined; synthetic = the first
captioner's JSONL; synthetic-<name> = each further captioner's, `config.variant_captioners`), the test query sets (artpedia = the human captions; llama = the authors' Llama-3.2 queries,
where the reference artefacts cover the test split, i.e. the paper profile), and the demo's pre-training pool.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Sequence

from artcap_lib.data.artpedia import Catalogue, ordered_ids, read_catalogue
from artcap_lib.retrieval.protocol import TrainingData


def image_files(catalogue: Catalogue, ids: Sequence[str]) -> dict[str, Path]:
    """{id: image} for ids; an entry without a usable image is an error naming it."""
    files = {}
    for art_id in ids:
        path = catalogue.images[art_id]
        if path is None or not path.is_file():
            raise FileNotFoundError(f"{catalogue.path}: entry {art_id}: field file_path "
                                    f"{'is missing' if path is None else f'points to a missing file {path}'}"
                                    " (run step 01 to fetch the images)")
        files[art_id] = path
    return files


def first_human_captions(captions: dict[str, list[str]], ids: Sequence[str]) -> dict[str, str]:
    """{id: its human caption} (the first, where a collection gives several)."""
    return {i: captions[i][0] for i in ids}


def several_captions(captions: dict[str, list[str]], ids: Sequence[str]) -> dict[str, list[str]]:
    """{id: every human caption} of the ids that have more than one (empty for Artpedia)."""
    return {i: captions[i] for i in ids if len(captions[i]) > 1}


def human_queries(captions: dict[str, list[str]], test_ids: Sequence[str]
                  ) -> tuple[dict[str, str], dict[str, str]]:
    """({query id: text}, {query id: its painting}) from {id: its human captions}: one query per caption. Where
    every test painting has one caption (Artpedia) the query id is the painting's id; where any has several, query
    ids are `<id>#<k>`, k = 1..n in the collection's caption order, so each caption is a query with its painting
    the one relevant item."""
    if not several_captions(captions, test_ids):
        return first_human_captions(captions, test_ids), {i: i for i in test_ids}
    texts, painting = {}, {}
    for i in test_ids:
        for k, text in enumerate(captions[i], 1):
            texts[f"{i}#{k}"], painting[f"{i}#{k}"] = text, i
    return texts, painting


def synthetic_captions(caption_file: str | Path, ids: Sequence[str]) -> dict[str, str]:
    """The captioner's caption of each id (caption_store JSONL); every id must have one."""
    from artcap_lib.captioning.store import read_captions
    caption_file = Path(caption_file)
    if not caption_file.is_file():
        raise FileNotFoundError(f"{caption_file}: no synthetic captions; run notebook 02 (captioning) first")
    captions = read_captions(caption_file)
    missing = [i for i in ids if i not in captions]
    if missing:
        raise ValueError(f"{caption_file}: {len(missing)} image(s) have no caption, e.g. {missing[:5]}; "
                         "finish captioning (notebook 02) first")
    return {i: captions[i] for i in ids}


HUMAN_QUERY_SETS = ("artpedia", "human")     # the collection's own human captions: the paper's name, any collection's


def query_sets(names: Sequence[str], captions: dict[str, list[str]], test_ids: Sequence[str]
               ) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    """({query set: {query id: query}}, {query set: {query id: its painting}}) for the configured names; "llama"
    only where the authors' queries cover every test id (the paper profile), otherwise left out (the summary's
    `missing_query_sets`). "human" is the collection's human captions, every one of them (`human_queries`);
    "artpedia" is the same set under the paper's name for it (Artpedia's captions)."""
    out, paintings = {}, {}
    for name in names:
        if name in HUMAN_QUERY_SETS:
            out[name], paintings[name] = human_queries(captions, test_ids)
            continue
        elif name == "llama":
            from artcap_lib import reference
            if not reference.is_available("captions/generated_queries.json"):
                continue
            queries = reference.llama_queries()
            if set(test_ids) <= set(queries):
                out[name], paintings[name] = {i: queries[i] for i in test_ids}, {i: i for i in test_ids}
        else:
            raise ValueError(f"retrieval.query_sets: unknown query set {name!r} (known: human, artpedia, llama)")
    return out, paintings


@dataclass
class Inputs:
    """One run's Experiment-2 inputs, resolved from the run directory once (`load_inputs`) and handed down: the
    split ids, queries, caption files, images and the pre-training pool. What a step may not need is read when
    first asked for, then kept: a captioner's captions, the images (the reference profile has none), the pool."""
    catalogue: Catalogue                        # the run's artworks.json, read once
    query_set_names: list[str]                  # retrieval.query_sets
    captioners: dict[str, str]                  # synthetic variant -> captioner name (first: "synthetic")
    caption_files: dict[str, Path]              # captioner name -> its captions/<name>.jsonl
    pool_json: Path                             # the demo's pre-training pool (data/pretrain_pool.json)

    @cached_property
    def _query_sets(self) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
        return query_sets(self.query_set_names, self.catalogue.captions, self.ids["test"])

    @property
    def queries(self) -> dict[str, dict[str, str]]:
        """query set -> {query id: query}"""
        return self._query_sets[0]

    @property
    def query_paintings(self) -> dict[str, dict[str, str]]:
        """query set -> {query id: the test id it is of}"""
        return self._query_sets[1]

    @property
    def missing_query_sets(self) -> list[str]:
        return sorted(set(self.query_set_names) - set(self.queries))

    @property
    def ids(self) -> dict[str, list[str]]:
        """split -> ids, in `ordered_ids` order"""
        return self.catalogue.ids

    @cached_property
    def human(self) -> dict[str, str]:
        return first_human_captions(self.catalogue.captions, self.ids["train"] + self.ids["val"] + self.ids["test"])

    @cached_property
    def _synthetic(self) -> dict[str, dict[str, str]]:
        return {}

    def synthetic(self, captioner: str) -> dict[str, str]:
        """A captioner's train and val captions (every id must have one)."""
        if captioner not in self._synthetic:
            self._synthetic[captioner] = synthetic_captions(self.caption_files[captioner],
                                                            self.ids["train"] + self.ids["val"])
        return self._synthetic[captioner]

    @cached_property
    def image_files(self) -> dict[str, Path]:
        """{id: image} of every split's artworks, checked once (a missing image is an error naming it)."""
        return image_files(self.catalogue, [i for ids in self.ids.values() for i in ids])

    def images(self, ids: Sequence[str]) -> dict[str, Path]:
        return {i: self.image_files[i] for i in ids}

    def captions(self, variant: str) -> dict[str, str]:
        """The captions a variant is fine-tuned on."""
        if variant == "human":
            return self.human
        if variant in self.captioners:
            return self.synthetic(self.captioners[variant])
        raise ValueError(f"no captions for variant {variant!r}: fine-tuned variants are human and "
                         f"{', '.join(self.captioners)}")

    def training_data(self, variant: str) -> TrainingData:
        """A variant's pairs. Human captions: where an image has several, a fine-tune draws one of them each time
        it reads the image (`choices`); validation uses the first."""
        train, val = self.ids["train"], self.ids["val"]
        choices = several_captions(self.catalogue.captions, train) if variant == "human" else {}
        return TrainingData(train, val, self.captions(variant), self.images(train + val), choices)

    @cached_property
    def pretraining_pool(self) -> TrainingData:
        """The demo's pre-training pool (disjoint from the splits) with its human captions; every id is in
        train_ids: each pocket model holds out its own validation share."""
        pool = read_catalogue(self.pool_json, require_urls=False)
        if not pool.artworks:
            raise ValueError(f"{self.pool_json}: the pre-training pool is empty (data.demo_pretrain = 0?)")
        ids = ordered_ids(pool.artworks)       # every id, whatever its split
        return TrainingData(ids, [], first_human_captions(pool.captions, ids), image_files(pool, ids))


def load_inputs(cfg, paths) -> Inputs:
    from artcap_lib.config import variant_captioners
    variants = variant_captioners(cfg)
    return Inputs(read_catalogue(paths.artworks, require_urls=False), list(cfg.retrieval.query_sets), variants,
                  {name: paths.caption_file(name) for name in variants.values()}, paths.pretrain_pool)
