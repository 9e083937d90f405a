"""Retrieval runs and qrels in ranx's JSON format, their evaluation, and Experiment 2's results files.

A run is `{query_id: {doc_id: score}}` and qrels are `{query_id: {doc_id: relevance}}`, exactly what ranx
(`Run.from_file`, `Qrels.from_file`, `Run.save`) and trec_eval converters read and write, so our runs can be
compared with the authors' and fed to any IR tool. A run lists each query's documents best first.

Evaluating a run ranks each query's documents by score, ties kept in the order the file lists them (a stable
sort). That is how the authors' stored means come out to the last digit; ranx's own (unstable) sort reorders
some tied documents and moves two of their MRRs by ~5e-6. Runs we write list tied documents in item order,
the tie rule of `retrieval_eval`, so a run and its score matrix give the same numbers.

Metric names follow ranx: precision@k, recall@k (share of the relevant documents in the top k), hit_rate@k,
mrr, mrr@k. With one relevant document per query (Experiment 2) recall@k, hit_rate@k and `retrieval_eval`'s
recall@K coincide. Documents below the run's depth count as not retrieved.

Experiment 2 layout (one per score kind of a registered model: retrieval/<model>/ holds the main kind,
retrieval/<model>/<kind>/ each further one; `RunPaths.score_dir`):
    retrieval/<model>/qrels_<query_set>.json
    retrieval/<model>/<variant>/scores_<query_set>.npz     arrays scores (n_queries, n_items), query_ids, item_ids
    retrieval/<model>/<variant>/ranks_<query_set>.npz      instead, above topk.DENSE_LIMIT score entries: ranks
                                                           (n_queries,), top_indices, top_scores (n_queries, depth)
    retrieval/<model>/<variant>/run_<query_set>.json       the top-`depth` run
    retrieval/<model>/results.json                         written by `summarise_model`
    retrieval/reference_results.json                       written by `reference_experiment2` (reference profile)

Results schema, one for our models and the authors' runs. `retrieval/<model>/results.json` is one model's object;
`retrieval/reference_results.json` is {"schema": "artcap.retrieval.reference/1", "source": {"repository",
"commit"}, "models": {"blip": <model object>, "longclip": <model object>}}. A model object:
    {"schema": "artcap.retrieval.results/1",
     "model": "blip" | "longclip",
     "source": "artcap" | "reference",            reference = the authors' stored runs (jcgohr/artwork-caption-gen)
     "direction": "text_to_image",
     "metrics": ["precision@1", "recall@1", "recall@5", "recall@10", "mrr"],   the order tables use
     "settings": {"depth", "bootstrap", "randomisation", "ci_level", "seed", "ties"},
     "query_sets": {
       "<query_set>": {                             artpedia | llama
         "n_queries": int,
         "variants": {
           "<variant>": {                           baseline | human | synthetic | rrf_human_synthetic
             "metrics": {metric: float, ...},       the means; plus mean_rank/median_rank when scores exist
             "ci95": {metric: [low, high], ...},    percentile bootstrap over queries
             "n_queries": int,
             "run": str,                            ours: "<variant>/run_<query_set>.json" (relative to results.json);
                                                    reference: the authors' file; fused: relative to retrieval/
             "fused_from": [variants], "fusion": "rrf, min-max norm (ranx)"     fused variants only
             "stored": {metric: float}, "stored_max_abs_diff": float            reference only: the authors'
           }},                                                                   *_means.json and our distance
         "fusion_check": {variant: {"stored": file, "max_abs_score_diff": float, "same_documents": bool,
                                    "stored_metrics": {...}}},      reference only, where the authors stored a fusion
         "significance": [{"a", "b", "metric", "mean_a", "mean_b", "p_ttest", "p_randomisation"}, ...]
                          every pair of variants (reference: the three base pairs, then human and synthetic vs
                          the fusion) x precision@1, recall@5, recall@10, mrr; two-sided p-values
       }}}
"""
from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from artcap_lib.retrieval import metrics as retrieval_eval
from artcap_lib import stats as significance
from artcap_lib.files import read_json, write_json

Run = dict[str, dict[str, float]]
Qrels = dict[str, dict[str, int]]

SCHEMA = "artcap.retrieval.results/1"
SOURCE = "artcap"          # results of our own models; the authors' stored runs are "reference"
METRICS = ("precision@1", "recall@1", "recall@5", "recall@10", "mrr")
TEST_METRICS = ("precision@1", "recall@5", "recall@10", "mrr")       # paired tests are run on these
VARIANTS = ("baseline", "human", "synthetic")
FUSED = "rrf_human_synthetic"
TIES = "stable: tied documents keep the order the run lists them (score matrices: item order)"
_METRIC = re.compile(r"^(precision|recall|hit_rate|mrr)(?:@(\d+))?$")


class RunError(ValueError):
    """A run or qrels that is malformed or does not fit its partner."""


# ---------------------------------------------------------------------------------------------- reading, writing
def validate_run(run: Any, where: str = "run") -> Run:
    """The run with str ids and float scores, in its original order; errors name the query and document."""
    if not isinstance(run, Mapping) or not run:
        raise RunError(f"{where}: a run must be a non-empty JSON object {{query_id: {{doc_id: score}}}}")
    out: Run = {}
    for qid, docs in run.items():
        if not isinstance(docs, Mapping):
            raise RunError(f"{where}: query {qid!r}: expected an object {{doc_id: score}}, got {type(docs).__name__}")
        # what json.load gives (str ids, float scores) is checked at C speed: a 100k x 100 run in seconds, not a minute
        if all(type(d) is str for d in docs) and all(type(v) is float for v in docs.values()) \
                and all(map(math.isfinite, docs.values())):
            out[str(qid)] = dict(docs)
            continue
        row = {}
        for doc, score in docs.items():
            if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
                raise RunError(f"{where}: query {qid!r}, document {doc!r}: score {score!r} is not a finite number")
            row[str(doc)] = float(score)
        out[str(qid)] = row
    return out


def validate_qrels(qrels: Any, where: str = "qrels") -> Qrels:
    if not isinstance(qrels, Mapping) or not qrels:
        raise RunError(f"{where}: qrels must be a non-empty JSON object {{query_id: {{doc_id: relevance}}}}")
    out: Qrels = {}
    for qid, docs in qrels.items():
        if not isinstance(docs, Mapping) or not docs:
            raise RunError(f"{where}: query {qid!r}: expected a non-empty object {{doc_id: relevance}}")
        row = {}
        for doc, rel in docs.items():
            if isinstance(rel, bool) or not isinstance(rel, int):
                raise RunError(f"{where}: query {qid!r}, document {doc!r}: relevance {rel!r} is not an integer")
            row[str(doc)] = rel
        if max(row.values()) < 1:
            raise RunError(f"{where}: query {qid!r} has no relevant document (relevance >= 1)")
        out[str(qid)] = row
    return out


def _read(path: str | Path) -> Any:
    try:
        return read_json(path)
    except json.JSONDecodeError as exc:
        raise RunError(f"{path}: not valid JSON: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise RunError(f"{path}: not UTF-8 (byte {exc.start}: {exc.object[exc.start:exc.start + 1]!r})") from None
    except FileNotFoundError as exc:
        raise RunError(f"{path}: no such file") from exc


def load_run(path: str | Path) -> Run:
    return validate_run(_read(path), str(path))


def load_qrels(path: str | Path) -> Qrels:
    return validate_qrels(_read(path), str(path))


def save_run(path: str | Path, run: Mapping) -> None:
    write_json(path, validate_run(run, str(path)))


def save_qrels(path: str | Path, qrels: Mapping) -> None:
    write_json(path, validate_qrels(qrels, str(path)))


def identity_qrels(ids: Iterable) -> Qrels:
    """Each query relevant only to the item of the same id (Experiment 2: a caption finds its own image)."""
    return {str(i): {str(i): 1} for i in ids}


def run_from_scores(scores, query_ids: Sequence, item_ids: Sequence, depth: int | None = 100) -> Run:
    """The top-`depth` items per query row, best first, tied items in item order (retrieval_eval's rule)."""
    scores = retrieval_eval.as_score_matrix(scores)
    if scores.shape != (len(query_ids), len(item_ids)):
        raise RunError(f"scores {scores.shape} do not match {len(query_ids)} query ids x {len(item_ids)} item ids")
    for name, ids in (("query_ids", query_ids), ("item_ids", item_ids)):
        if len({str(i) for i in ids}) != len(ids):
            raise RunError(f"{name} contain duplicates: a run holds one entry per id")
    keep = scores.shape[1] if depth is None else min(depth, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :keep]
    items = [str(i) for i in item_ids]
    return {str(q): {items[j]: float(scores[r, j]) for j in order[r]} for r, q in enumerate(query_ids)}



def run_from_topk(top, query_ids: Sequence, item_ids: Sequence) -> Run:
    """The run of a `topk.TopK` (what run_from_scores gives for the same scores and depth)."""
    items = [str(i) for i in item_ids]
    return {str(q): {items[j]: s for j, s in zip(idx, val)}
            for q, idx, val in zip(query_ids, top.indices.tolist(), top.scores.astype(np.float64).tolist())}


_entry = "{}: {!r}".format       # one document of a run file: its JSON id, then the float as json writes it


def write_topk_run(path: str | Path, top, query_ids: Sequence, item_ids: Sequence) -> None:
    """save_run(path, run_from_topk(...)), byte for byte, written query by query: at 100k queries x 100 the
    dict-of-dicts and its JSON text would hold ~3 GB at once."""
    path = Path(path)
    if len(query_ids) != len(top.indices) or not len(query_ids):
        raise RunError(f"{path}: {len(query_ids)} query ids for {len(top.indices)} ranked queries")
    for name, ids in (("query_ids", query_ids), ("item_ids", item_ids)):
        if len({str(i) for i in ids}) != len(ids):
            raise RunError(f"{name} contain duplicates: a run holds one entry per id")
    if not np.isfinite(top.scores).all():
        raise RunError(f"{path}: scores overflowed to infinity: a run holds finite scores")
    items = [json.dumps(str(i), ensure_ascii=False) for i in item_ids]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    # the layout of files.write_json (json.dumps, indent 2): floats are written by repr, as json does
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write("{\n")
        for start in range(0, len(query_ids), 4096):        # Python lists of 4096 queries at a time, not 10^7 items
            rows = zip(query_ids[start:start + 4096], top.indices[start:start + 4096].tolist(),
                       top.scores[start:start + 4096].astype(np.float64).tolist())
            for n, (q, idx, val) in enumerate(rows, start):
                docs = ",\n    ".join(map(_entry, map(items.__getitem__, idx), val))
                fh.write(("" if not n else ",\n") + f"  {json.dumps(str(q), ensure_ascii=False)}: {{\n    {docs}\n  }}")
        fh.write("\n}\n")
    tmp.replace(path)


# ---------------------------------------------------------------------------------------------- evaluation
def parse_metric(name: str) -> tuple[str, int | None]:
    match = _METRIC.match(name.strip())
    if not match or (match[1] != "mrr" and match[2] is None):
        raise RunError(f"unknown metric {name!r}: use precision@k, recall@k, hit_rate@k, mrr or mrr@k")
    if match[2] is not None and int(match[2]) < 1:
        raise RunError(f"metric {name!r}: k must be at least 1 (the top-k ranks it looks at)")
    return match[1], int(match[2]) if match[2] else None


def per_query_run_metrics(run: Run, qrels: Qrels, metrics: Sequence[str] = METRICS,
                          where: str = "run") -> dict[str, np.ndarray]:
    """{metric: (n_queries,) values} in qrels query order. The run and qrels must cover the same queries."""
    parsed = {name: parse_metric(name) for name in metrics}
    missing, extra = sorted(set(qrels) - set(run)), sorted(set(run) - set(qrels))
    if missing:
        raise RunError(f"{where}: {len(missing)} qrels queries missing from the run, e.g. {missing[:3]}")
    if extra:
        raise RunError(f"{where}: {len(extra)} run queries absent from the qrels, e.g. {extra[:3]}")
    out = {name: np.zeros(len(qrels)) for name in metrics}
    for q, (qid, judged) in enumerate(qrels.items()):
        relevant = {doc for doc, rel in judged.items() if rel >= 1}
        ranked = sorted(run[qid].items(), key=lambda item: -item[1])      # stable: file order among ties
        positions = np.array([pos for pos, (doc, _) in enumerate(ranked, 1) if doc in relevant])
        for name, (kind, k) in parsed.items():
            found = positions[positions <= k] if k is not None else positions
            if kind == "precision":
                out[name][q] = found.size / k
            elif kind == "recall":
                out[name][q] = found.size / len(relevant)
            elif kind == "hit_rate":
                out[name][q] = float(found.size > 0)
            else:
                out[name][q] = 1.0 / found[0] if found.size else 0.0
    return out


def evaluate_run(run: Run, qrels: Qrels, metrics: Sequence[str] = METRICS, where: str = "run") -> dict[str, float]:
    """Mean of each metric over the queries (ranx.evaluate's numbers, with file-order ties)."""
    return {name: float(v.mean()) for name, v in per_query_run_metrics(run, qrels, metrics, where).items()}


def fuse_runs(runs: Sequence[Run], method: str = "rrf", norm: str = "min-max",
              names: Sequence[str] | None = None) -> Run:
    """ranx.fuse (the authors: RRF over min-max normalised runs), returned as a plain run best first. The runs
    must rank the same queries (names: how errors call them, e.g. their files)."""
    from ranx import Run as RanxRun, fuse     # lazy: ranx compiles numba code on first use

    names = list(names) if names is not None else [f"run {i + 1}" for i in range(len(runs))]
    for name, run in zip(names[1:], runs[1:]):
        if set(run) != set(runs[0]):         # ranx would only assert, naming both runs "0"
            only_first, only_this = sorted(set(runs[0]) - set(run)), sorted(set(run) - set(runs[0]))
            raise RunError(f"{names[0]} and {name} rank different queries: {len(only_first)} only in the first "
                           f"(e.g. {only_first[:3]}), {len(only_this)} only in the second (e.g. {only_this[:3]})")

    fused = fuse(runs=[RanxRun(validate_run(r)) for r in runs], norm=norm, method=method)
    return {q: dict(sorted(docs.items(), key=lambda item: -item[1])) for q, docs in fused.to_dict().items()}


def compare(per_query: Mapping[str, Mapping[str, np.ndarray]], metrics: Sequence[str] = TEST_METRICS,
            pairs: Iterable[tuple[str, str]] | None = None, randomisation: int = 10_000,
            seed: int = 0) -> list[dict[str, Any]]:
    """Paired tests between systems: per_query[system][metric] are aligned per-query values."""
    sizes = {len(values) for system in per_query.values() for values in system.values()}
    if sizes and min(sizes) < 2:
        raise RunError(f"paired tests need at least 2 queries; these runs have {min(sizes)}")
    tests = [(a, b, metric) for a, b in (pairs if pairs is not None else itertools.combinations(per_query, 2))
             for metric in metrics]
    values = [(per_query[a][m], per_query[b][m]) for a, b, m in tests]
    # every test draws the same signs (one seed): drawn once for all of them, the p-values unchanged
    p_random = significance.randomisation_tests(values, randomisation, seed)
    return [{"a": a, "b": b, "metric": m, "mean_a": float(x.mean()), "mean_b": float(y.mean()),
             "p_ttest": significance.paired_t_test(x, y), "p_randomisation": p}
            for (a, b, m), (x, y), p in zip(tests, values, p_random)]


def evaluate_query_set(runs: Mapping[str, Run], qrels: Qrels, bootstrap: int = 1000, randomisation: int = 10_000,
                       seed: int = 0, pairs: Iterable[tuple[str, str]] | None = None) -> dict[str, Any]:
    """Metrics, bootstrap CIs and paired tests of several systems over one query set (the schema's query set)."""
    per_query = {name: per_query_run_metrics(run, qrels, METRICS, where=name) for name, run in runs.items()}
    return evaluate_per_query(per_query, len(qrels), bootstrap, randomisation, seed, pairs)


def evaluate_per_query(per_query: Mapping[str, Mapping[str, np.ndarray]], n_queries: int, bootstrap: int = 1000,
                       randomisation: int = 10_000, seed: int = 0,
                       pairs: Iterable[tuple[str, str]] | None = None) -> dict[str, Any]:
    """evaluate_query_set from per-query metric values (a caller may drop each run once it is evaluated)."""
    variants = {}
    for name, values in per_query.items():
        cis = significance.bootstrap_cis(list(values.values()), bootstrap, seed)    # one draw for all metrics
        variants[name] = {"metrics": {m: float(v.mean()) for m, v in values.items()},
                          "ci95": {m: ci.tolist() for m, ci in zip(values, cis)}, "n_queries": n_queries}
    return {"n_queries": n_queries, "variants": variants,
            "significance": compare(per_query, TEST_METRICS, pairs, randomisation, seed)}


def _settings(depth, bootstrap, randomisation, seed) -> dict[str, Any]:
    return {"depth": depth, "bootstrap": bootstrap, "randomisation": randomisation, "ci_level": 0.95,
            "seed": seed, "ties": TIES}


# ---------------------------------------------------------------------------------------------- Experiment 2 files
def write_variant(model_dir: str | Path, variant: str, query_set: str, scores, query_ids: Sequence,
                  item_ids: Sequence, qrels: Mapping | None = None, depth: int | None = 100) -> dict[str, float]:
    """Write one variant's scores (npz), run and the model's qrels; return retrieval_metrics of the scores.

    scores: a matrix, `topk.EmbeddingScores` or `topk.RerankedScores`; large ones (`is_large`) are streamed, never
    made a matrix: their npz (ranks_<query_set>.npz) holds each query's rank and top `depth` instead of the scores.
    A `topk.TopK` already streamed (its ranks counted against these qrels) is written the same way.
    qrels None = identity_qrels(query_ids) (each caption's own image). A qrels file already there must agree."""
    from artcap_lib.retrieval import topk
    model_dir = Path(model_dir)
    ranked = scores if isinstance(scores, topk.TopK) else None
    streamed = ranked is not None or topk.is_streamed(scores)
    if not streamed:
        scores = retrieval_eval.as_score_matrix(scores)
    shape = (len(ranked.ranks), len(item_ids)) if ranked is not None else tuple(scores.shape)
    if shape != (len(query_ids), len(item_ids)):
        raise RunError(f"scores {shape} do not match {len(query_ids)} query ids x {len(item_ids)} item ids")
    qrels = validate_qrels(identity_qrels(query_ids) if qrels is None else qrels, f"qrels of {variant}/{query_set}")
    qrels_path = model_dir / f"qrels_{query_set}.json"
    if qrels_path.is_file() and load_qrels(qrels_path) != qrels:
        raise RunError(f"{qrels_path} exists with other judgements than {variant}'s: one query set, one qrels")
    run = None if streamed else run_from_scores(scores, query_ids, item_ids, depth)
    item_index = {str(i): n for n, i in enumerate(item_ids)}
    missing = sorted({d for docs in qrels.values() for d in docs} - set(item_index))
    if missing:
        raise RunError(f"{variant}/{query_set}: qrels name items that were not scored, e.g. {missing[:3]}")
    relevant = [{item_index[d] for d, rel in qrels[str(q)].items() if rel >= 1} for q in query_ids]
    out = model_dir / variant
    out.mkdir(parents=True, exist_ok=True)
    ids = dict(query_ids=np.array([str(q) for q in query_ids]), item_ids=np.array([str(i) for i in item_ids]))
    if streamed:
        top = ranked if ranked is not None else scores.topk(relevant, depth)
        _savez(out, f"ranks_{query_set}.npz", ranks=top.ranks, top_indices=top.indices.astype(np.int32),
               top_scores=top.scores, **ids)
        write_topk_run(run_path(model_dir, variant, query_set), top, query_ids, item_ids)
        result = retrieval_eval.summarise_ranks(retrieval_eval.metrics_from_ranks(top.ranks, depth=depth))
    else:
        _savez(out, f"scores_{query_set}.npz", scores=scores, **ids)
        save_run(run_path(model_dir, variant, query_set), run)
        result = retrieval_eval.retrieval_metrics(scores, relevant, depth=depth)
    save_qrels(qrels_path, qrels)
    return result


def _savez(folder: Path, name: str, **arrays) -> None:
    # written beside, then renamed; the other form of a query set's npz (scores vs ranks) would be stale: removed
    tmp = folder / f".{name.removesuffix('.npz')}.tmp.npz"
    np.savez_compressed(tmp, **arrays)
    tmp.replace(folder / name)
    other = "ranks_" if name.startswith("scores_") else "scores_"
    (folder / (other + name.split("_", 1)[1])).unlink(missing_ok=True)


def full_ranks(variant_dir: str | Path, query_set: str, qrels: Qrels) -> tuple[list[str], np.ndarray] | None:
    """(query ids, rank of each query's first relevant item over every item), from the variant's npz: the score
    matrix (small collections) or the ranks stored with the top k (large ones); None if neither is there."""
    variant_dir = Path(variant_dir)
    ranks_npz, scores_npz = variant_dir / f"ranks_{query_set}.npz", variant_dir / f"scores_{query_set}.npz"
    if ranks_npz.is_file():
        with np.load(ranks_npz) as data:
            return [str(q) for q in data["query_ids"]], data["ranks"]
    if not scores_npz.is_file():
        return None
    with np.load(scores_npz) as data:
        scores, query_ids, item_ids = data["scores"], data["query_ids"], data["item_ids"]
    targets = [[d for d, rel in qrels[str(q)].items() if rel >= 1] for q in query_ids]
    ranks = retrieval_eval.first_relevant_rank(scores, retrieval_eval.relevant_by_id(targets, list(item_ids)))
    return [str(q) for q in query_ids], ranks


def streamed_top(variant_dir: str | Path, query_set: str, k: int) -> dict[str, list[str]] | None:
    """{query id: its top k item ids, best first} from a large collection's ranks_<query_set>.npz (the run's own
    order: the run file was written from these indices), None where the variant stored a score matrix instead.
    At 100k queries this reads 40 MB of indices, not the 322 MB run file."""
    ranks_npz = Path(variant_dir) / f"ranks_{query_set}.npz"
    if not ranks_npz.is_file():
        return None
    with np.load(ranks_npz) as data:
        query_ids, item_ids, top = data["query_ids"].tolist(), data["item_ids"].tolist(), data["top_indices"][:, :k]
    return {q: [item_ids[j] for j in row] for q, row in zip(query_ids, top.tolist())}


def run_path(model_dir: str | Path, variant: str, query_set: str) -> Path:
    """<model_dir>/<variant>/run_<query_set>.json, the layout of the module docstring."""
    return Path(model_dir) / variant / f"run_{query_set}.json"


def summarise_model(model_dir: str | Path, bootstrap: int = 1000, randomisation: int = 10_000,
                    seed: int = 0, depth: int | None = 100, model: str | None = None) -> dict[str, Any]:
    """Evaluate every <variant>/run_<query_set>.json under model_dir and write model_dir/results.json.

    model names the results (default: the folder's name); depth is recorded, the runs were cut when written."""
    model_dir = Path(model_dir)
    query_sets = sorted(p.stem.removeprefix("qrels_") for p in model_dir.glob("qrels_*.json"))
    if not query_sets:
        raise RunError(f"{model_dir}: no qrels_<query_set>.json: write variants with runs.write_variant first")
    results = {"schema": SCHEMA, "model": model or model_dir.name, "source": SOURCE, "direction": "text_to_image",
               "metrics": list(METRICS), "settings": _settings(depth, bootstrap, randomisation, seed),
               "query_sets": {}}
    for query_set in query_sets:
        qrels = load_qrels(model_dir / f"qrels_{query_set}.json")
        variants = [v for v in VARIANTS if (model_dir / v / f"run_{query_set}.json").is_file()]
        variants += sorted(p.parent.name for p in model_dir.glob(f"*/run_{query_set}.json")
                           if p.parent.name not in VARIANTS)
        # one run in memory at a time: at 100k queries x 100 a loaded run is ~2 GB of Python objects
        per_query = {v: per_query_run_metrics(load_run(model_dir / v / f"run_{query_set}.json"), qrels, METRICS, v)
                     for v in variants}
        block = evaluate_per_query(per_query, len(qrels), bootstrap, randomisation, seed)
        for v, entry in block["variants"].items():
            entry["run"] = f"{v}/run_{query_set}.json"
            found = full_ranks(model_dir / v, query_set, qrels)
            if found is not None:
                entry["metrics"].update(_rank_summary(found[1]))
        results["query_sets"][query_set] = block
    write_json(model_dir / "results.json", results)
    return results


def _rank_summary(ranks: np.ndarray) -> dict[str, float]:
    """Mean and median rank of the first relevant item over the full ranking."""
    return {"mean_rank": float(ranks.mean()), "median_rank": float(np.median(ranks))}


# ---------------------------------------------------------------------------------------------- reference profile
REFERENCE_MODELS = {"blip": "blip_results", "longclip": "longclip_results"}
REFERENCE_QUERY_SETS = {"artpedia": "Artpedia_queries", "llama": "Llama_queries"}
REFERENCE_VARIANTS = {"baseline": "baseline", "human": "true", "synthetic": "llava"}
_REFERENCE_FUSED = {"blip": "llava_true_blip_fused.json", "longclip": "llava_true_clip_fused.json"}
_RUNS = "results/retrieval_experiment"


def reference_experiment2(paths, bootstrap: int = 1000, randomisation: int = 10_000, seed: int = 0) -> dict[str, Any]:
    """Experiment 2 from the authors' stored top-100 runs: their means reproduced (with the distance to each
    stored value), R@K, bootstrap CIs, paired tests, and RRF(human, synthetic) checked against their fused runs.
    Writes retrieval/reference_results.json (and the fused runs under retrieval/reference/) and returns it."""
    from artcap_lib import reference

    qrels = validate_qrels(reference.load_json(f"{_RUNS}/qrel.json"), f"{_RUNS}/qrel.json")
    models = {}
    for model, model_folder in REFERENCE_MODELS.items():
        out = {"schema": SCHEMA, "model": model, "source": "reference", "direction": "text_to_image",
               "metrics": list(METRICS), "settings": _settings(100, bootstrap, randomisation, seed),
               "query_sets": {}}
        for query_set, folder in REFERENCE_QUERY_SETS.items():
            base = f"{_RUNS}/{model_folder}/{folder}"
            runs = {v: validate_run(reference.load_json(f"{base}/{name}_scores.json"), f"{base}/{name}_scores.json")
                    for v, name in REFERENCE_VARIANTS.items()}
            runs[FUSED] = fuse_runs([runs["synthetic"], runs["human"]])
            fused_path = paths.reference_fused_run(model, FUSED, query_set)
            save_run(fused_path, runs[FUSED])
            pairs = list(itertools.combinations(VARIANTS, 2)) + [("human", FUSED), ("synthetic", FUSED)]
            block = evaluate_query_set(runs, qrels, bootstrap, randomisation, seed, pairs)
            for v, name in REFERENCE_VARIANTS.items():
                entry = block["variants"][v]
                entry["run"] = f"{base}/{name}_scores.json"
                stored = _stored_means(reference, base, name)
                entry["stored"] = stored
                entry["stored_max_abs_diff"] = max(abs(entry["metrics"][m] - value) for m, value in stored.items())
            fused_entry = block["variants"][FUSED]
            fused_entry.update(run=str(fused_path.relative_to(paths.retrieval)), fused_from=["synthetic", "human"],
                               fusion="rrf, min-max norm (ranx)")
            stored_fused = f"{base}/{_REFERENCE_FUSED[model]}"
            if stored_fused in reference.SHA256:
                block["fusion_check"] = {FUSED: _fusion_check(runs[FUSED], reference.load_json(stored_fused),
                                                              stored_fused, qrels)}
            out["query_sets"][query_set] = block
        models[model] = out
    results = {"schema": "artcap.retrieval.reference/1",
               "source": {"repository": "jcgohr/artwork-caption-gen", "commit": reference.COMMIT},
               "models": models}
    write_json(paths.reference_results, results)
    return results


def _stored_means(reference, base: str, name: str) -> dict[str, float]:
    # the authors named the Artpedia files *_means.json and some Llama ones *_mean.json
    for suffix in ("means", "mean"):
        rel = f"{base}/{name}_{suffix}.json"
        if rel in reference.SHA256:
            return {k: float(v) for k, v in reference.load_json(rel).items()}
    raise RunError(f"no stored means for {base}/{name}")


def _fusion_check(ours: Run, stored: Mapping, where: str, qrels: Qrels) -> dict[str, Any]:
    stored = validate_run(stored, where)
    same_docs = set(ours) == set(stored) and all(set(ours[q]) == set(stored[q]) for q in stored)
    diff = max((abs(ours[q].get(d, math.inf) - s) for q in stored for d, s in stored[q].items()), default=0.0)
    return {"stored": where, "same_documents": same_docs, "max_abs_score_diff": diff,
            "stored_metrics": evaluate_run(stored, qrels, METRICS, where)}
