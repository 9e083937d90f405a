"""Retrieval metrics over a score matrix: Recall@K, precision@1, MRR, mean and median rank.

    scores    (n_queries, n_items)  higher = more similar; numpy or torch (any device), NaN is an error
    relevant  list of n_queries sets of item indices (a query may have several relevant items)

Every metric is a function of one number per query, the rank (1-based) of the query's *first* relevant item:
    recall@K     1 if that rank <= K            (the CLIP/BLIP "hit" convention: for image-to-text an image is
                                                 found if ANY of its captions is in the top K. It equals ranx's
                                                 hit_rate@K, and ranx's recall@K when each query has one
                                                 relevant item, as in the paper's text-to-image setting)
    precision@1  1 if that rank == 1            (= recall@1)
    mrr          1 / rank, 0 beyond `depth`     (ranx scores a top-`depth` run: items not in it count 0)
    mean_rank, median_rank over the full ranking (never cut at depth)
With `depth`, a relevant item ranked beyond it counts as not retrieved for recall@K as well, so a metric of
the matrix equals the metric of the run `runs.run_from_scores(..., depth)` writes.

Ties. Scores tie in practice (fp16 features, duplicated images), and the order of tied items moves MRR in
the 6th decimal of the authors' stored means. We break ties deterministically by item index: among equal
scores the item listed first ranks first (a stable descending sort). `runs.run_from_scores` writes runs in
that same order, and `runs` evaluates a stored run in the order its file lists the documents, which is how
the authors' numbers came out (ranx's own sort is not stable and reorders some ties).

The rank is computed without sorting: the first relevant item is the relevant one with the highest score
(lowest index among equals), and its rank is 1 + #items scoring higher + #equal items listed before it.
Queries are processed in chunks so that a 25k x 5k matrix needs only a few hundred MB beyond itself.
No ranx here: training code imports this module on machines with only numpy/torch.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

DEFAULT_KS = (1, 5, 10)
CHUNK_ELEMENTS = 1 << 24     # score comparisons held at once (~16M: a few 100 MB of temporaries)


class RetrievalInputError(ValueError):
    """Scores or relevance sets that do not fit together."""


def as_score_matrix(scores) -> np.ndarray:
    """A 2-D float numpy view of `scores` (torch tensors are moved to the CPU; half precision is widened)."""
    if hasattr(scores, "detach"):                      # torch.Tensor, without importing torch here
        scores = scores.detach().float().cpu().numpy()
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise RetrievalInputError(f"scores must be a 2-D (n_queries, n_items) matrix, got shape {scores.shape}")
    if not np.issubdtype(scores.dtype, np.floating):
        scores = scores.astype(np.float64)
    elif scores.dtype == np.float16:
        scores = scores.astype(np.float32)
    if np.isnan(scores).any():
        row = int(np.argwhere(np.isnan(scores))[0, 0])
        raise RetrievalInputError(f"scores contain NaN (first in query row {row})")
    return scores


def _padded_relevant(relevant: Sequence[Iterable[int]], n_queries: int, n_items: int) -> np.ndarray:
    """(n_queries, max_relevant) item indices, padded with -1."""
    if len(relevant) != n_queries:
        raise RetrievalInputError(f"relevant has {len(relevant)} entries for {n_queries} queries")
    sets = [sorted({int(i) for i in rel}) for rel in relevant]
    width = max((len(s) for s in sets), default=0)
    out = np.full((n_queries, max(width, 1)), -1, dtype=np.int64)
    for q, items in enumerate(sets):
        if not items:
            raise RetrievalInputError(f"query {q} has no relevant item")
        if items[0] < 0 or items[-1] >= n_items:
            raise RetrievalInputError(f"query {q}: relevant item index out of range 0..{n_items - 1}: {items}")
        out[q, :len(items)] = items
    return out


def first_relevant_rank(scores, relevant: Sequence[Iterable[int]],
                        chunk_elements: int = CHUNK_ELEMENTS) -> np.ndarray:
    """(n_queries,) int64: 1-based rank of each query's best-ranked relevant item (ties: lower index first)."""
    scores = as_score_matrix(scores)
    n_queries, n_items = scores.shape
    rel = _padded_relevant(relevant, n_queries, n_items)
    columns = np.arange(n_items)
    chunk = max(1, chunk_elements // max(n_items, 1))
    ranks = np.empty(n_queries, dtype=np.int64)
    for start in range(0, n_queries, chunk):
        s = scores[start:start + chunk]                               # (c, n_items)
        idx = rel[start:start + chunk]                                # (c, m)
        valid = idx >= 0
        rel_scores = np.where(valid, np.take_along_axis(s, np.where(valid, idx, 0), axis=1), -np.inf)
        best = rel_scores.max(axis=1, keepdims=True)                  # (c, 1) the winning relevant score
        # lowest index among the relevant items that reach it (a valid one always does)
        best_idx = np.where(valid & (rel_scores == best), idx, n_items).min(axis=1, keepdims=True)
        ahead = (s > best).sum(axis=1) + ((s == best) & (columns < best_idx)).sum(axis=1)
        ranks[start:start + chunk] = ahead + 1
    return ranks


def metrics_from_ranks(ranks: np.ndarray, ks: Sequence[int] = DEFAULT_KS, depth: int | None = None
                       ) -> dict[str, np.ndarray]:
    """Per-query metric values from first-relevant ranks (see the module docstring)."""
    ranks = np.asarray(ranks)
    retrieved = ranks <= depth if depth is not None else np.ones(ranks.shape, dtype=bool)
    out = {"precision@1": ((ranks == 1) & retrieved).astype(np.float64)}
    for k in sorted(set(ks)):
        out[f"recall@{k}"] = ((ranks <= k) & retrieved).astype(np.float64)
    out["mrr"] = np.where(retrieved, 1.0 / ranks, 0.0)
    out["rank"] = ranks
    return out


def per_query_metrics(scores, relevant: Sequence[Iterable[int]], ks: Sequence[int] = DEFAULT_KS,
                      depth: int | None = None) -> dict[str, np.ndarray]:
    """{"precision@1", "recall@K"..., "mrr" (reciprocal rank), "rank"} -> (n_queries,) arrays."""
    return metrics_from_ranks(first_relevant_rank(scores, relevant), ks, depth)


def summarise_ranks(per_query: dict[str, np.ndarray]) -> dict[str, float]:
    """Means of the per-query values, plus mean and median rank."""
    out = {name: float(values.mean()) for name, values in per_query.items() if name != "rank"}
    out["mean_rank"] = float(per_query["rank"].mean())
    out["median_rank"] = float(np.median(per_query["rank"]))
    return out


def retrieval_metrics(scores, relevant: Sequence[Iterable[int]], ks: Sequence[int] = DEFAULT_KS,
                      depth: int | None = None) -> dict[str, float]:
    """{"precision@1", "recall@1", "recall@5", "recall@10", "mrr", "mean_rank", "median_rank"} (ks set the recalls)."""
    return summarise_ranks(per_query_metrics(scores, relevant, ks, depth))


def relevant_by_id(query_targets: Sequence[str | Iterable[str]], item_ids: Sequence[str]) -> list[set[int]]:
    """Relevant index sets from ids: query_targets[q] is the id (or ids) of the items relevant to query q."""
    position = {str(item): i for i, item in enumerate(item_ids)}
    if len(position) != len(item_ids):
        raise RetrievalInputError("item_ids contain duplicates")
    out = []
    for q, target in enumerate(query_targets):
        targets = [target] if isinstance(target, (str, int, np.integer)) else list(target)
        missing = [t for t in targets if str(t) not in position]
        if missing:
            raise RetrievalInputError(f"query {q}: relevant id(s) {missing} are not among the items")
        out.append({position[str(t)] for t in targets})
    return out


def text_image_metrics(scores, image_of_text: Sequence[int], ks: Sequence[int] = DEFAULT_KS,
                       depth: int | None = None) -> dict[str, dict[str, float]]:
    """Both directions from one (n_texts, n_images) matrix, several captions per image allowed.

    image_of_text[t] is the image index of caption t. Text-to-image: the caption's image is relevant.
    Image-to-text: all of the image's captions are relevant and the first found counts (CLIP/BLIP)."""
    scores = as_score_matrix(scores)
    image_of_text = np.asarray(image_of_text, dtype=np.int64)
    if image_of_text.shape != (scores.shape[0],):
        raise RetrievalInputError(f"image_of_text has shape {image_of_text.shape}, expected ({scores.shape[0]},)")
    captions: list[set[int]] = [set() for _ in range(scores.shape[1])]
    for t, image in enumerate(image_of_text):
        if not 0 <= image < scores.shape[1]:
            raise RetrievalInputError(f"caption {t}: image index {image} out of range 0..{scores.shape[1] - 1}")
        captions[image].add(t)
    return {"text_to_image": retrieval_metrics(scores, [{int(i)} for i in image_of_text], ks, depth),
            "image_to_text": retrieval_metrics(scores.T, captions, ks, depth)}
