"""pycocoevalcap's CIDEr-D (`Cider().compute_score(gts, res)[1]`), the same floats, computed over arrays.

Its `CiderScorer` walks Python dicts of n-gram tuples per text and calls numpy on one scalar at a time (~2 ms a
pair, the coco backend's largest Python cost at 100k pairs). Here every n-gram of every text gets an integer id at
once (order n's ids from order n-1's id and the next word), and the per-text sums run through `np.bincount`, which
adds in array order: the entries are laid out in the order the library's dicts are filled (per text: unigrams by
first occurrence, then bigrams, ...), so each sum adds the same numbers in the same order and rounds the same way.
The per-pair tail (length penalty, mean over the four orders) is the library's own expression on each pair.
One reference per key (Experiment 1's case); anything else (or references without a word) goes to
pycocoevalcap itself.
"""
from __future__ import annotations

import numpy as np

ORDERS = 4
SIGMA = 6.0


def cider_d_scores(gts: dict[str, list[str]], res: dict[str, list[str]]) -> np.ndarray:
    """CIDEr-D per key, in gts' key order, equal to pycocoevalcap's (document frequencies from these references)."""
    keys = list(gts)
    if any(len(gts[k]) != 1 or len(res[k]) != 1 for k in keys) or not any(gts[k][0].split() for k in keys):
        from pycocoevalcap.cider.cider import Cider
        return np.asarray(Cider().compute_score(gts, res)[1], dtype=np.float64)
    n = len(keys)
    texts = [gts[k][0].split() for k in keys] + [res[k][0].split() for k in keys]   # text t < n: reference
    entries = _ngram_entries(texts)
    text, order, gid, tf = entries
    df = np.bincount(gid[text < n], minlength=int(gid.max()) + 1 if len(gid) else 0).astype(np.float64)
    ref_len = np.log(float(n))
    vec = tf.astype(np.float64) * (ref_len - np.log(np.maximum(1.0, df[gid])))
    group = text * ORDERS + order                                   # (text, order): one norm, one similarity
    norm = np.sqrt(np.bincount(group, weights=vec * vec, minlength=2 * n * ORDERS)).reshape(2 * n, ORDERS)
    # the reference's weight of each candidate n-gram (0 where the reference lacks it: adds exactly 0)
    is_ref = text < n
    ref_keys = text[is_ref] * (int(gid.max()) + 1) + gid[is_ref]
    hyp = ~is_ref
    hyp_keys = (text[hyp] - n) * (int(gid.max()) + 1) + gid[hyp]
    sorter = np.argsort(ref_keys, kind="stable")
    at = np.searchsorted(ref_keys, hyp_keys, sorter=sorter)
    at = sorter[np.minimum(at, len(sorter) - 1)]
    ref_vec = np.where(ref_keys[at] == hyp_keys, vec[is_ref][at], 0.0)
    hyp_vec = vec[hyp]
    val = np.bincount(group[hyp] - n * ORDERS, weights=np.minimum(hyp_vec, ref_vec) * ref_vec,
                      minlength=n * ORDERS).reshape(n, ORDERS)
    norm_ref, norm_hyp = norm[:n], norm[n:]
    nonzero = (norm_hyp != 0) & (norm_ref != 0)
    val = np.where(nonzero, val / np.where(nonzero, norm_hyp * norm_ref, 1.0), val)
    # the library's `length` counts bigrams (its `n == 1` is the 0-based order): words - 1
    lengths = np.array([max(len(t) - 1, 0) for t in texts])
    penalty: dict[float, float] = {}
    scores = np.empty(n, dtype=np.float64)
    for p in range(n):
        delta = float(lengths[n + p] - lengths[p])
        if delta not in penalty:
            penalty[delta] = np.e ** (-(delta ** 2) / (2 * SIGMA ** 2))
        score = np.array([0.0 for _ in range(ORDERS)])
        score += val[p] * penalty[delta]
        score_avg = np.mean(score)
        score_avg /= 1
        score_avg *= 10.0
        scores[p] = score_avg
    return scores


def _ngram_entries(texts: list[list[str]]):
    """(text, order 0-3, n-gram id, count) per distinct n-gram of each text, in the library's dict order."""
    vocabulary: dict[str, int] = {}
    words = np.fromiter((vocabulary.setdefault(w, len(vocabulary)) for t in texts for w in t), dtype=np.int64)
    lengths = np.array([len(t) for t in texts], dtype=np.int64)
    owner = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
    start = np.repeat(np.cumsum(lengths) - lengths, lengths)
    position = np.arange(len(words), dtype=np.int64) - start
    ids = words.copy()       # order 1: the word itself
    offset, parts = 0, []
    valid = np.ones(len(words), dtype=bool)
    for k in range(ORDERS):
        if k:
            # n-gram (i .. i+k) = (n-1)-gram at i, then word i+k; it exists where i+k is inside the text
            valid = position + k < lengths[owner]
            nxt = np.zeros_like(ids)
            nxt[:-k] = words[k:]
            combined = np.where(valid, ids * (len(vocabulary) + 1) + nxt, -1)
            _, ids = np.unique(combined, return_inverse=True)
            ids = ids.reshape(-1)
        where = np.flatnonzero(valid)
        key = owner[where] * (int(ids.max()) + 1 if len(ids) else 1) + ids[where]
        _, first, count = np.unique(key, return_index=True, return_counts=True)
        first = where[first]                                   # flat position of each n-gram's first occurrence
        parts.append((owner[first], np.full(len(first), k), ids[first] + offset, count, first))
        offset += int(ids.max()) + 1 if len(ids) else 0
    text, order, gid, tf, first = (np.concatenate(p) for p in zip(*parts))
    layout = np.lexsort((first, order, text))                 # per text: order by order, first occurrence first
    return text[layout], order[layout], gid[layout], tf[layout]
