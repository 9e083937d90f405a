"""Exact top-k and first-relevant ranks streamed from embeddings, without a (queries x items) score matrix.

A dual encoder scores by a product of embeddings, so a 100k x 100k collection needs 37 GiB as a dense matrix
but only 2 x 100 MB as embeddings. `stream_topk` scores a chunk of queries at a time (the chunk sized from a
memory budget) and keeps, per query, the top-`depth` items and the rank of its first relevant item over the
FULL ranking (mean and median rank need it beyond depth). The results equal the dense path's exactly:
`metrics.first_relevant_rank` and `runs.run_from_scores` of the same scores, with the same tie rule (among
equal scores the lower item index ranks first).

Why not simply torch.topk: it does not order tied items by index and may pick any of them at the cut. We ask
for depth + 1 values: when the extra value is below the depth-th one, the top-depth *set* is exact and only its
order is fixed (stable sort by index, then by score). Rows with a tie across the cut (rare outside synthetic
ties) are redone on their own row. A relevant item in the exact top-depth has its rank read off; the others
are counted: items scoring higher, plus equal items listed before it.

`EmbeddingScores` is how a dual encoder hands its scores to Experiment 2's runner: the embeddings, plus the model's
own matrix function for collections small enough to keep a matrix (`DENSE_LIMIT`), whose files stay as they were.
`RerankedScores` is a cross-encoder's re-ranking of such scores' top k (BLIP's ITM), for large collections.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from artcap_lib.retrieval import metrics
from artcap_lib.retrieval.metrics import RetrievalInputError, _padded_relevant

DEFAULT_BUDGET = 512 << 20       # bytes of chunk temporaries (scores + masks); the embeddings come on top


@dataclass
class TopK:
    """Per query: `indices` (n, depth) item indices best first (ties: lower index first), `scores` (n, depth)
    their float32 scores, `ranks` (n,) 1-based rank of the first relevant item over all items (0 if not asked)."""
    indices: np.ndarray
    scores: np.ndarray
    ranks: np.ndarray


def chunk_rows(n_items: int, budget: int = DEFAULT_BUDGET) -> int:
    """Query rows per chunk: a float32 score row plus a bool mask row (4 + 1 bytes per item), twice over for
    torch's temporaries, within `budget`."""
    return max(1, budget // (10 * max(n_items, 1)))


def _as_features(x, name: str) -> torch.Tensor:
    t = torch.as_tensor(x).detach().to("cpu", torch.float32)
    if t.ndim != 2:
        raise RetrievalInputError(f"{name} must be a 2-D (n, dim) matrix, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise RetrievalInputError(f"{name} contain NaN or infinite values")
    return t.contiguous()


def stream_topk(queries, items, relevant: Sequence[Iterable[int]] | None = None, depth: int | None = 100,
                scale: float = 1.0, bias: float = 0.0, budget: int = DEFAULT_BUDGET) -> TopK:
    """Top-`depth` items and first-relevant ranks of scores = scale * queries @ items.T + bias (scale > 0; the
    affine part serves SigLIP's sigmoid logits, whose order it keeps but whose values the run stores).

    queries (n_q, d), items (n_i, d): numpy or torch, computed in float32 on the CPU; cosine scores = normalise
    both first. relevant: n_q sets of item indices (None: no ranks). depth None = every item (small only)."""
    q, x = _as_features(queries, "query embeddings"), _as_features(items, "item embeddings")
    if q.shape[1] != x.shape[1]:
        raise RetrievalInputError(f"query embeddings have dim {q.shape[1]}, item embeddings {x.shape[1]}")
    if not scale > 0:
        raise RetrievalInputError(f"scale must be positive (it must keep the order), got {scale}")
    n_q, n_i = q.shape[0], x.shape[0]
    k = n_i if depth is None else min(depth, n_i)
    rel = _padded_relevant(relevant, n_q, n_i) if relevant is not None else None
    indices = np.empty((n_q, k), dtype=np.int64)
    values = np.empty((n_q, k), dtype=np.float32)
    ranks = np.zeros(n_q, dtype=np.int64)
    xt = x.T.contiguous()
    rows = chunk_rows(n_i, budget)
    for start in range(0, n_q, rows):
        s = q[start:start + rows] @ xt                               # (c, n_i)
        if scale != 1.0 or bias != 0.0:
            s.mul_(scale).add_(bias)    # in place, as the dense path computes it: same float32 values
        top_i, top_v = _exact_topk(s, k)
        indices[start:start + len(s)] = top_i.numpy()
        values[start:start + len(s)] = top_v.numpy()
        if rel is not None:
            ranks[start:start + len(s)] = _ranks(s, torch.from_numpy(rel[start:start + rows]), top_i, k)
    return TopK(indices, values, ranks)


def _exact_topk(s: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(indices, values) of each row's top k, best first, ties in index order (a stable descending sort)."""
    n_i = s.shape[1]
    extra = min(k + 1, n_i)
    v, i = torch.topk(s, extra, dim=1, sorted=True)
    # the set is exact where nothing outside it ties with its last value
    unsure = (v[:, k] == v[:, k - 1]) if extra > k else torch.zeros(len(s), dtype=torch.bool)
    v, i = v[:, :k], i[:, :k]
    for r in torch.nonzero(unsure).flatten().tolist():
        cut = v[r, k - 1]
        above = torch.nonzero(s[r] > cut).flatten()
        tied = torch.nonzero(s[r] == cut).flatten()[:k - len(above)]   # nonzero lists indices ascending
        i[r] = torch.cat([above, tied])
        v[r] = s[r, i[r]]
    # order: by index, then a stable sort by descending score keeps index order among equal scores
    i, _ = torch.sort(i, dim=1)
    v = torch.gather(s, 1, i)
    v, order = torch.sort(v, dim=1, descending=True, stable=True)
    return torch.gather(i, 1, order), v


def _ranks(s: torch.Tensor, rel: torch.Tensor, top_i: torch.Tensor, k: int) -> np.ndarray:
    """1-based rank of each row's first relevant item (rel: (c, m) indices padded with -1), the rule of
    metrics.first_relevant_rank: 1 + #items scoring higher + #equal items listed before it."""
    valid = rel >= 0
    rel_scores = torch.where(valid, torch.gather(s, 1, rel.clamp(min=0)), torch.tensor(-torch.inf))
    best = rel_scores.max(dim=1, keepdim=True).values
    n_i = s.shape[1]
    best_idx = torch.where(valid & (rel_scores == best), rel, n_i).min(dim=1, keepdim=True).values
    # a best relevant item inside the exact top k: its position there is its rank
    hit = top_i == best_idx
    found = hit.any(dim=1)
    ranks = torch.where(found, hit.to(torch.int64).argmax(dim=1) + 1, 0)
    rest = torch.nonzero(~found).flatten()
    if len(rest):
        # counted with numpy: its count_nonzero of a comparison is ~8x faster than torch's (s > b).sum(1) here,
        # and these passes over the rows beyond depth are what the streamed path adds to matmul + topk
        sub, b = s.numpy()[rest.numpy()], best[rest].numpy()
        higher = np.count_nonzero(sub > b, axis=1)
        equal = np.count_nonzero(sub == b, axis=1)
        ranks[rest] = torch.from_numpy(higher + 1)
        # only where another item ties with the relevant score does the index order matter
        for j in np.flatnonzero(equal > 1).tolist():
            r, bi = int(rest[j]), int(best_idx[rest[j], 0])
            ranks[r] = int(higher[j]) + int(np.count_nonzero(sub[j, :bi] == b[j, 0])) + 1
    return ranks.numpy()


DENSE_LIMIT = 50_000_000        # score entries (200 MB float32) up to which a full matrix is computed and stored


@dataclass
class EmbeddingScores:
    """A dual encoder's (n_queries, n_items) scores kept as what they are made of: scale * queries @ items.T
    + bias (cosine: both normalised already). `dense` is the model's own matrix function, so where a matrix is
    small enough (`is_large` false) every consumer gets the very numbers it got before; numpy reads it as that
    matrix (`__array__`). Large ones are only ever streamed (`stream_topk`)."""
    queries: torch.Tensor
    items: torch.Tensor
    dense: Callable[[], Any]
    scale: float = 1.0
    bias: float = 0.0
    _matrix: Any = field(default=None, repr=False)

    @property
    def shape(self) -> tuple[int, int]:
        return self.queries.shape[0], self.items.shape[0]

    @property
    def is_large(self) -> bool:
        return self.shape[0] * self.shape[1] > DENSE_LIMIT

    @property
    def T(self) -> "EmbeddingScores":            # image-to-text: the images query the texts
        return EmbeddingScores(self.items, self.queries, lambda: np.asarray(self).T, self.scale, self.bias)

    def __array__(self, dtype=None, copy=None):
        if self.is_large:
            n_q, n_i = self.shape
            raise MemoryError(f"a {n_q} x {n_i} score matrix would take {n_q * n_i * 4 / 2**30:.1f} GiB: stream it "
                              "(EmbeddingScores.topk) instead")
        if self._matrix is None:         # made once: the runs, the metrics and image-to-text read the same one
            self._matrix = np.asarray(self.dense())
        matrix = self._matrix if dtype is None else self._matrix.astype(dtype)
        return matrix.copy() if copy and matrix is self._matrix else matrix    # np.array(): a copy, not the cache

    def topk(self, relevant=None, depth: int | None = 100, budget: int = DEFAULT_BUDGET) -> TopK:
        return stream_topk(self.queries, self.items, relevant, depth, self.scale, self.bias, budget)


@dataclass
class RerankedScores:
    """A re-ranking of each query's top `k` items of a first stage (BLIP's ITM over its ITC top k_test), kept as
    what it is made of where a matrix is too large: the first stage's `EmbeddingScores`, its top-k `indices` per
    query (its order, ties by index) and their re-ranked `scores`. The ranking is the dense re-ranking's rule: the k
    re-ranked items first (ties: lower index first), then every other item in the first stage's order, its score
    shifted under the lowest re-ranked one, so a relevant item beyond k keeps its first-stage rank."""
    first: EmbeddingScores
    indices: np.ndarray          # (n_queries, k)
    scores: np.ndarray           # (n_queries, k)

    @property
    def shape(self) -> tuple[int, int]:
        return self.first.shape

    @property
    def is_large(self) -> bool:
        return self.first.is_large

    def topk(self, relevant=None, depth: int | None = 100, budget: int = DEFAULT_BUDGET) -> TopK:
        n_items, k = self.shape[1], self.indices.shape[1]
        d = n_items if depth is None else min(depth, n_items)
        # the first stage again: every query's first-relevant rank over all items, and its order beyond k
        first = self.first.topk(relevant, max(d, k), budget)
        if not np.array_equal(first.indices[:, :k], self.indices):
            raise RetrievalInputError("the re-ranked candidates are not the first stage's top k")
        order = np.lexsort((self.indices, -self.scores), axis=1)
        head = np.take_along_axis(self.indices, order, 1)
        floor = self.scores.min(axis=1, keepdims=True) - 2.0           # cosine spans [-1, 1]: below every head
        indices = np.concatenate([head, first.indices[:, k:]], axis=1)[:, :d]
        scores = np.concatenate([np.take_along_axis(self.scores, order, 1), first.scores[:, k:] + floor],
                                axis=1)[:, :d].astype(np.float32)
        ranks = first.ranks
        if relevant is not None:
            rel = _padded_relevant(relevant, len(head), n_items)
            hit = (head[:, :, None] == rel[:, None, :]).any(axis=2)         # padding (-1) never matches
            found = hit.any(axis=1)
            ranks = np.where(found, hit.argmax(axis=1) + 1, first.ranks)
        return TopK(indices, scores, ranks)


def is_streamed(scores) -> bool:
    """Scores kept as what they are made of and too large for a matrix: ranked only by streaming (`.topk`)."""
    return isinstance(scores, (EmbeddingScores, RerankedScores)) and scores.is_large


def retrieval_metrics(scores, relevant: Sequence[Iterable[int]], ks: Sequence[int] = metrics.DEFAULT_KS,
                      depth: int | None = None) -> dict[str, float]:
    """metrics.retrieval_metrics of a score matrix or of EmbeddingScores (streamed when large)."""
    if is_streamed(scores):
        ranks = scores.topk(relevant, depth=max(ks)).ranks        # ranks count every item, whatever the depth
        return metrics.summarise_ranks(metrics.metrics_from_ranks(ranks, ks, depth))
    return metrics.retrieval_metrics(scores, relevant, ks, depth)
