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

from artcap_lib.data.artpedia import SPLITS, by_split, human_captions, image_path, load_artworks, ordered_ids
from artcap_lib.retrieval.protocol import TrainingData


def image_files(artworks_json: str | Path, artworks: dict[str, dict], ids: Sequence[str]) -> dict[str, Path]:
    """{id: image} for ids; an entry without a usable image is an error naming it."""
    files = {}
    for art_id in ids:
        path = image_path(artworks_json, artworks[art_id])
        if path is None or not path.is_file():
            raise FileNotFoundError(f"{artworks_json}: entry {art_id}: field file_path "
                                    f"{'is missing' if path is None else f'points to a missing file {path}'}"
                                    " (run step 01 to fetch the images)")
        files[art_id] = path
    return files


def first_human_captions(artworks: dict[str, dict], ids: Sequence[str]) -> dict[str, str]:
    """{id: its human caption} (the first, where a collection gives several)."""
    return {i: human_captions(artworks[i])[0] for i in ids}


def several_captions(artworks: dict[str, dict], ids: Sequence[str]) -> dict[str, list[str]]:
    """{id: every human caption} of the ids that have more than one (empty for Artpedia)."""
    return {i: texts for i in ids if len(texts := human_captions(artworks[i])) > 1}


def human_queries(artworks: dict[str, dict], test_ids: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
    """({query id: text}, {query id: its painting}): one query per human caption. Where every test painting has one
    caption (Artpedia) the query id is the painting's id; where any has several, query ids are `<id>#<k>`, k = 1..n
    in the collection's caption order, so each caption is a query with its painting the one relevant item."""
    several = several_captions(artworks, test_ids)
    if not several:
        return first_human_captions(artworks, test_ids), {i: i for i in test_ids}
    texts, painting = {}, {}
    for i in test_ids:
        for k, text in enumerate(human_captions(artworks[i]), 1):
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


def query_sets(names: Sequence[str], artworks: dict[str, dict], test_ids: Sequence[str]
               ) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    """({query set: {query id: query}}, {query set: {query id: its painting}}) for the configured names; "llama"
    only where the authors' queries cover every test id (the paper profile), otherwise left out (the summary's
    `missing_query_sets`). "artpedia" is the collection's human captions, every one of them (`human_queries`)."""
    out, paintings = {}, {}
    for name in names:
        if name == "artpedia":
            out[name], paintings[name] = human_queries(artworks, test_ids)
            continue
        elif name == "llama":
            from artcap_lib import reference
            if not reference.is_available("captions/generated_queries.json"):
                continue
            queries = reference.llama_queries()
            if set(test_ids) <= set(queries):
                out[name], paintings[name] = {i: queries[i] for i in test_ids}, {i: i for i in test_ids}
        else:
            raise ValueError(f"retrieval.query_sets: unknown query set {name!r} (known: artpedia, llama)")
    return out, paintings


@dataclass
class Inputs:
    """One run's Experiment-2 inputs, resolved from the run directory once (`load_inputs`) and handed down: the
    split ids, queries, caption files, images and the pre-training pool. What a step may not need is read when
    first asked for, then kept: a captioner's captions, the images (the reference profile has none), the pool."""
    artworks_json: Path
    artworks: dict[str, dict]
    ids: dict[str, list[str]]                   # split -> ids, ordered_ids order
    queries: dict[str, dict[str, str]]          # query set -> {query id: query}
    query_paintings: dict[str, dict[str, str]]  # query set -> {query id: the test id it is of}
    missing_query_sets: list[str]
    captioners: dict[str, str]                  # synthetic variant -> captioner name (first: "synthetic")
    caption_files: dict[str, Path]              # captioner name -> its captions/<name>.jsonl
    pool_json: Path                             # the demo's pre-training pool (data/pretrain_pool.json)

    @cached_property
    def human(self) -> dict[str, str]:
        return first_human_captions(self.artworks, self.ids["train"] + self.ids["val"] + self.ids["test"])

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
        return image_files(self.artworks_json, self.artworks, [i for ids in self.ids.values() for i in ids])

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
        choices = several_captions(self.artworks, train) if variant == "human" else {}
        return TrainingData(train, val, self.captions(variant), self.images(train + val), choices)

    @cached_property
    def pretraining_pool(self) -> TrainingData:
        """The demo's pre-training pool (disjoint from the splits) with its human captions; every id is in
        train_ids: each pocket model holds out its own validation share."""
        pool = load_artworks(self.pool_json, require_urls=False)
        if not pool:
            raise ValueError(f"{self.pool_json}: the pre-training pool is empty (data.demo_pretrain = 0?)")
        ids = ordered_ids(pool)
        return TrainingData(ids, [], first_human_captions(pool, ids), image_files(self.pool_json, pool, ids))


def load_inputs(cfg, paths) -> Inputs:
    from artcap_lib.config import variant_captioners
    artworks = load_artworks(paths.artworks, require_urls=False)
    ids = {split: ordered_ids(by_split(artworks, split)) for split in SPLITS}
    queries, paintings = query_sets(cfg.retrieval.query_sets, artworks, ids["test"])
    variants = variant_captioners(cfg)
    return Inputs(paths.artworks, artworks, ids, queries, paintings, sorted(set(cfg.retrieval.query_sets) - set(queries)),
                  variants, {name: paths.caption_file(name) for name in variants.values()}, paths.pretrain_pool)
