"""The run explorer's data: one function reads a run directory into plain tables, which both the JupyterLab
explorer (`explore_widgets`) and the static page (`explore_html`) show, so the two show the same numbers.

    from artcap_lib.report import explore, explore_html, explore_widgets
    view = explore.load(cfg, paths)
    explore_widgets.explorer(view, paths)                 # in a notebook (notebook 06 ends with it)
    explore_html.write_page(view, paths, Path("run.html"))  # one self-contained file (`artcap explore`)

What is read (only the run's files, and the authors' stored runs where the reference profile points at them):
data/artworks.json (titles, splits, human captions, images), captions/<captioner>.jsonl, each captioner's
per_image.parquet, and for every retrieval model its results.json with the runs and score matrices it names.

The painting table has one row per test painting (every painting the runs query) and per painting with caption
metrics, and columns whose names are identifiers, so a filter is a small expression over them
(`delta_blip_synthetic > 10 and bleu4 < 0.1`):
    title, split
    <metric>                       a per-image metric of the first captioner (bleu4, coco_cider, bertscore_f, ...)
    <metric>__<captioner>          the same of every further captioner
    rank_<model>_<variant>[_<qs>]  the rank of the painting for its own query (the first query set has no suffix);
                                   missing where the painting is below a stored run's depth
    delta_<model>_<variant>[_<qs>] rank under a synthetic variant - rank under human (> 0: the synthetic
                                   fine-tune ranks the painting lower)
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

THUMB_SIDE = 160          # thumbnails fit this square: enough to recognise a painting, ~5 kB as JPEG
THUMB_QUALITY = 80
TOP_K = 10                # the query view's depth (the runs keep 100)
PAGE_NAME = "explore.html"   # the static page's name in figures/<profile>/ (notebook 06, `artcap explore`)


def ident(text: str) -> str:
    """A column-name-safe form of a model, variant, captioner or query-set name (letters, digits, _)."""
    return re.sub(r"[^0-9A-Za-z_]", "_", text)


@dataclass
class Column:
    kind: str                 # info | metric | rank | delta
    label: str                # what a header says
    captioner: str = ""       # metric
    backend: str = ""         # metric: paper | coco
    model: str = ""           # rank, delta
    variant: str = ""
    query_set: str = ""


@dataclass
class RunView:
    """Everything the explorer shows, read once from a run directory."""
    profile: str
    run_dir: Path
    captioners: list[str]
    models: list[str]
    query_sets: list[str]
    variants: dict[str, list[str]]                     # model -> its variants, results.json's order
    table: pd.DataFrame                                # index: painting id; columns as the module docstring says
    columns: dict[str, Column]                         # every column of table
    human: dict[str, str]                              # id -> the human caption (visual sentences joined)
    captions: dict[str, dict[str, str]]                # captioner -> id -> caption
    queries: dict[str, dict[str, str]]                 # query set -> query id -> text
    relevant: dict[str, dict[str, list[str]]]          # query set -> query id -> the relevant paintings
    top: dict[tuple[str, str, str], dict[str, list[str]]]   # (model, variant, query set) -> query id -> top-k ids
    images: dict[str, Path]                            # id -> its image file (absent: no image in this run)
    notes: list[str] = field(default_factory=list)     # what this run lacks, said once to the user
    # (model, variant, query set) -> query id -> rank of its relevant painting. The table's rank columns are per
    # painting: the same where a painting is one query (Artpedia), the mean over its captions where it has several
    query_ranks: dict[tuple[str, str, str], dict[str, float]] = field(default_factory=dict)

    def queries_of(self, query_set: str, art_id: str) -> list[str]:
        """The query ids whose relevant painting is art_id (its own caption(s))."""
        return [q for q, docs in self.relevant.get(query_set, {}).items() if art_id in docs]

    def rank_column(self, model: str, variant: str, query_set: str) -> str:
        suffix = "" if query_set == self.query_sets[0] else f"_{ident(query_set)}"
        return f"rank_{ident(model)}_{ident(variant)}{suffix}"

    def metric_columns(self) -> list[str]:
        return [c for c, col in self.columns.items() if col.kind == "metric"]

    def filter(self, expression: str) -> pd.DataFrame:
        """The table's rows where a boolean expression over its columns holds ('' = every row); a bad
        expression is a ValueError naming it."""
        if not expression.strip():
            return self.table
        try:
            kept = self.table.query(expression, engine="python")
        except Exception as err:         # pandas raises SyntaxError, NameError, KeyError, TypeError ... alike
            raise ValueError(f"filter {expression!r}: {err}") from None
        return kept


def load(cfg, paths, top_k: int = TOP_K) -> RunView:
    """Read a run directory (cfg, paths as `notebook.setup` returns them) into a RunView. Only step 01's
    artworks.json is required: what else a run lacks is left out and said in `notes`, so every profile and every
    partial run can be explored."""
    from artcap_lib.captioning.store import read_captions
    from artcap_lib.config import captioners as run_captioners
    from artcap_lib.data.artpedia import human_captions, image_path, load_artworks, ordered_ids
    from artcap_lib.textmetrics.step import output_dir

    notes: list[str] = []
    if not paths.artworks.is_file():
        raise FileNotFoundError(f"{paths.artworks} not found: run step 01 (data prep) first")
    artworks = load_artworks(paths.artworks, require_urls=False)
    names = [s.name for s in run_captioners(cfg)]

    captions, per_image = {}, {}
    for name in names:
        file = paths.caption_file(name)
        if file.is_file():
            captions[name] = read_captions(file)
        else:
            notes.append(f"no captions of {name} ({file.name}: step 02 has not run)")
        scores = paths.metrics_per_image(output_dir(cfg, paths, name))
        if scores.is_file():
            per_image[name] = pd.read_parquet(scores)
    if not per_image:
        notes.append("no per-image caption metrics (step 03 has not run)")

    retrieval = _retrieval(cfg, paths, top_k, notes)
    test_ids = [i for i, a in artworks.items() if a.get("split") == "test"]
    scored = {str(i) for frame in per_image.values() for i in frame.index}
    # the runs' queries are of test paintings too: the reference profile's artworks.json holds only the train split
    queried = {d for block in retrieval["relevant"].values() for docs in block.values() for d in docs}
    ids = ordered_ids(set(test_ids) | (scored & set(artworks)) | queried)
    unknown = [i for i in ids if i not in artworks]
    if unknown:
        notes.append(f"{len(unknown)} queried test painting(s) are not in {paths.artworks.name} (e.g. {unknown[0]}): "
                     "shown without title, human caption or image")

    table = pd.DataFrame({"title": [artworks.get(i, {}).get("title", "") for i in ids],
                          "split": [artworks.get(i, {}).get("split", "test") for i in ids]},
                         index=pd.Index(ids, name="id"))
    columns = {"title": Column("info", "title"), "split": Column("info", "split")}
    for n, name in enumerate(names):
        frame = per_image.get(name)
        if frame is None:
            continue
        frame = frame.set_axis(frame.index.astype(str))
        for metric in frame.columns:
            if not pd.api.types.is_numeric_dtype(frame[metric]) or frame[metric].isna().all():
                continue                 # e.g. coco_spice where SPICE was skipped
            column = metric if n == 0 else f"{metric}__{ident(name)}"
            table[column] = frame[metric].reindex(ids).to_numpy(dtype=float)
            columns[column] = Column("metric", metric if n == 0 else f"{metric} ({name})", captioner=name,
                                     backend="coco" if metric.startswith("coco_") else "paper")
    query_sets = retrieval["query_sets"]
    human = {i: " | ".join(human_captions(a)) for i, a in artworks.items() if a.get("visual_sentences")}
    view = RunView(cfg.profile, paths.root, names, retrieval["models"], query_sets, retrieval["variants"], table,
                   columns, human, captions, _queries(query_sets, retrieval["relevant"], artworks),
                   retrieval["relevant"], retrieval["top"], {}, notes, retrieval["ranks"])
    for (model, variant, query_set), ranks in retrieval["ranks"].items():
        column = view.rank_column(model, variant, query_set)
        table[column] = _painting_ranks(ranks, retrieval["relevant"][query_set]).reindex(ids).to_numpy()
        columns[column] = Column("rank", f"rank {model} {variant}" + _set_suffix(query_set, query_sets),
                                 model=model, variant=variant, query_set=query_set)
    for model in view.models:
        for query_set in query_sets:
            human_rank = view.rank_column(model, "human", query_set)
            for variant in view.variants[model]:
                synthetic = view.rank_column(model, variant, query_set)
                if variant.startswith("synthetic") and human_rank in table and synthetic in table:
                    column = "delta" + synthetic[len("rank"):]
                    table[column] = table[synthetic] - table[human_rank]
                    columns[column] = Column("delta", f"{variant} - human rank {model}"
                                             + _set_suffix(query_set, query_sets),
                                             model=model, variant=variant, query_set=query_set)

    for i in (i for i in ids if i in artworks):
        image = image_path(paths.artworks, artworks[i])
        if image is not None and image.is_file():
            view.images[i] = image
    if not view.images:
        notes.append("this run has no images (the reference profile imports the authors' captions and runs, not "
                     "the paintings): everything else is shown")
    return view


def _painting_ranks(ranks: dict[str, float], relevant: dict[str, list[str]]) -> pd.Series:
    """Per painting: its query's rank, or the mean over its queries where it has several (a query below the run's
    depth, NaN, makes the mean NaN: "below depth" for one of them)."""
    queries = pd.Series(ranks, dtype=float)
    painting = pd.Series({q: relevant[q][0] for q in queries.index if relevant.get(q)}).reindex(queries.index)
    # grouped in C (a Python function per group took ~5 s per model x variant at 100k paintings)
    means = queries.groupby(painting).mean()
    means[queries.isna().groupby(painting).any()] = float("nan")
    return means


def _set_suffix(query_set: str, query_sets: list[str]) -> str:
    """A label names the query set where it is not the first (the one the un-suffixed columns are of)."""
    return "" if query_set == query_sets[0] else f" ({query_set})"


def _retrieval(cfg, paths, top_k: int, notes: list[str]) -> dict[str, Any]:
    """Every model's variants, each painting's rank for its own query and each query's top k, per query set."""
    from artcap_lib import reference
    from artcap_lib.files import read_json
    from artcap_lib.retrieval import runs

    if cfg.retrieval.source == "reference":
        models = read_json(paths.reference_results)["models"] if paths.reference_results.is_file() else {}
    else:
        models = {m: read_json(paths.retrieval_results(m)) for m in cfg.retrieval.models
                  if paths.retrieval_results(m).is_file()}
    if not models:
        notes.append("no retrieval results (steps 04/05 have not run)")
    out = {"models": list(models), "variants": {}, "query_sets": [], "relevant": {}, "top": {}, "ranks": {}}
    for model, results in models.items():
        stored = results.get("source") == "reference"
        for query_set, block in results["query_sets"].items():
            if query_set not in out["query_sets"]:
                out["query_sets"].append(query_set)
            if stored:
                qrels = reference.load_json(f"{runs._RUNS}/qrel.json") \
                    if reference.is_available(f"{runs._RUNS}/qrel.json") else None
            else:
                qrels = runs.load_qrels(paths.score_dir(model) / f"qrels_{query_set}.json")
            for variant, entry in block["variants"].items():
                # a large collection's heads come from its ranks npz (the run file would take ~30 s to parse)
                top = None if stored else runs.streamed_top(paths.score_dir(model) / variant, query_set, top_k)
                run = None if top is not None else _load_run(paths, model, variant, entry["run"], stored)
                if (top is None and run is None) or qrels is None:
                    notes.append(f"{model} {variant} ({query_set}): the run {entry['run']} is not available "
                                 "(the authors' artefacts are needed)")
                    continue
                out["variants"].setdefault(model, [])
                if variant not in out["variants"][model]:
                    out["variants"][model].append(variant)
                ordered = top if top is not None else {
                    q: [d for d, _ in sorted(docs.items(), key=lambda kv: -kv[1])] for q, docs in run.items()}
                relevant = {q: [d for d, rel in docs.items() if rel >= 1] for q, docs in qrels.items() if q in ordered}
                out["relevant"].setdefault(query_set, {}).update(relevant)
                out["top"][(model, variant, query_set)] = {q: docs[:top_k] for q, docs in ordered.items()}
                full = None if stored else runs.full_ranks(paths.score_dir(model) / variant, query_set, qrels)
                out["ranks"][(model, variant, query_set)] = (
                    {q: float(r) for q, r in zip(*full)} if full is not None else _run_ranks(ordered, relevant))
    return out


def _load_run(paths, model: str, variant: str, where: str, stored: bool) -> dict | None:
    """A results.json entry's run: relative to the model's folder (ours), the authors' file or, for a fusion of
    their runs, relative to retrieval/ (the reference profile)."""
    from artcap_lib import reference
    from artcap_lib.retrieval import runs
    if not stored:
        return runs.load_run(paths.score_dir(model) / where)
    if (paths.retrieval / where).is_file():
        return runs.load_run(paths.retrieval / where)
    return runs.validate_run(reference.load_json(where), where) if reference.is_available(where) else None


def _run_ranks(ordered: dict[str, list[str]], relevant: dict[str, list[str]]) -> dict[str, float]:
    """Rank of each query's first relevant painting within a stored run (NaN: below the run's depth); the
    sort above is stable, the tie rule of `runs`."""
    ranks = {}
    for q, docs in ordered.items():
        positions = [docs.index(d) + 1 for d in relevant.get(q, []) if d in docs]
        ranks[q] = float(min(positions)) if positions else float("nan")
    return ranks


def _queries(query_sets: list[str], relevant: dict, artworks: dict) -> dict[str, dict[str, str]]:
    """The text of every query: artpedia's are the human captions, llama's the authors' Llama-3.2 queries
    (`retrieval.inputs.query_sets`); a query whose text the run lacks is named by its id."""
    from artcap_lib import reference
    from artcap_lib.data.artpedia import human_caption, human_captions
    from artcap_lib.retrieval.inputs import human_queries
    llama = (reference.llama_queries() if "llama" in query_sets
             and reference.is_available("captions/generated_queries.json") else {})
    human = {i: human_caption(a) for i, a in artworks.items() if a.get("visual_sentences")}
    test = {i: human_captions(a) for i, a in artworks.items() if a.get("split") == "test"}
    human.update(human_queries(test, list(test))[0])
    texts = {"artpedia": human, "human": human, "llama": llama}
    return {qs: {q: texts.get(qs, {}).get(q, f"query {q} (its text is not in this run)")
                 for q in relevant.get(qs, {})} for qs in query_sets}


def thumbnails(view: RunView, paths, ids=None) -> dict[str, Path]:
    """JPEG thumbnails (THUMB_SIDE) of the paintings' images, made once into `paths.thumbnails` and remade only when
    the image is newer: the explorer and the page then never decode a full painting twice."""
    from PIL import Image
    out_dir = paths.thumbnails
    out_dir.mkdir(parents=True, exist_ok=True)
    made = {}
    for art_id in (view.images if ids is None else [i for i in ids if i in view.images]):
        image = view.images[art_id]
        thumb = out_dir / f"{ident(art_id)}.jpg"
        if not thumb.is_file() or thumb.stat().st_mtime < image.stat().st_mtime:
            with Image.open(image) as im:
                im = im.convert("RGB")
                im.thumbnail((THUMB_SIDE, THUMB_SIDE))
                tmp = thumb.with_suffix(".tmp.jpg")
                im.save(tmp, "JPEG", quality=THUMB_QUALITY)
                tmp.replace(thumb)
        made[art_id] = thumb
    return made
