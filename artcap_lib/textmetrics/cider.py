"""pycocoevalcap's CIDEr-D (`Cider().compute_score(gts, res)[1]`), the same floats, computed over arrays.

Its `CiderScorer` walks Python dicts of n-gram tuples per text and calls numpy on one scalar at a time (~2 ms a
pair, the coco backend's largest Python cost at 100k pairs). Here every n-gram of every text gets an integer id at
once (order n's ids from order n-1's id and the next word), and the per-text sums run through `np.bincount`, which
adds in array order: the entries are laid out in the order the library's dicts are filled (per text: unigrams by
first occurrence, then bigrams, ...), so each sum adds the same numbers in the same order and rounds the same way.
The norms add the library's squares, `pow(v, 2)` (libm's pow: one ulp off `v * v` for ~1 value in 1,000), not
`v * v`: see `_weights`.
The per-pair tail (length penalty, mean over the four orders) is the library's own expression on each pair.
One reference per key (Experiment 1's case); anything else (or references without a word) goes to
pycocoevalcap itself.
"""
from __future__ import annotations

import numpy as np

ORDERS = 4
SIGMA = 6.0
DENSE_KEYS = 1 << 24   # `_weights`: (tf, df) keys below this go through dense tables, others through np.unique


def cider_d_scores(gts: dict[str, list[str]], res: dict[str, list[str]]) -> np.ndarray:
    """CIDEr-D per key, in gts' key order, equal to pycocoevalcap's (document frequencies from these references)."""
    keys = list(gts)
    if any(len(gts[k]) != 1 or len(res[k]) != 1 for k in keys) or not any(gts[k][0].split() for k in keys):
        from pycocoevalcap.cider.cider import Cider
        return np.asarray(Cider().compute_score(gts, res)[1], dtype=np.float64)
    n = len(keys)
    texts = [gts[k][0] for k in keys] + [res[k][0] for k in keys]   # text t < n: reference
    words_per_text = np.array([len(t.split()) for t in texts], dtype=np.int64)
    ref_len = np.log(float(n))
    norm = np.zeros((2 * n, ORDERS))
    val = np.zeros((n, ORDERS))
    # one n-gram order at a time (the orders never mix: own ids, norms and similarities), so memory holds one
    for k, (text, gid, tf) in enumerate(_ngram_entries(texts, words_per_text)):
        width = int(gid.max()) + 1 if len(gid) else 1
        is_ref = text < n
        vec, squares = _weights(tf, np.bincount(gid[is_ref], minlength=width), gid, ref_len)
        norm[:, k] = np.sqrt(np.bincount(text, weights=squares, minlength=2 * n))
        # the reference's weight of each candidate n-gram (0 where the reference lacks it: adds exactly 0)
        ref_keys = text[is_ref] * width + gid[is_ref]
        hyp = ~is_ref
        hyp_keys = (text[hyp] - n) * width + gid[hyp]
        ref_vec = np.zeros(len(hyp_keys))
        if len(ref_keys):                       # else no reference has an n-gram this long
            sorter = np.argsort(ref_keys, kind="stable")
            at = sorter[np.minimum(np.searchsorted(ref_keys, hyp_keys, sorter=sorter), len(sorter) - 1)]
            ref_vec = np.where(ref_keys[at] == hyp_keys, vec[is_ref][at], 0.0)
        hyp_vec = vec[hyp]
        val[:, k] = np.bincount(text[hyp] - n, weights=np.minimum(hyp_vec, ref_vec) * ref_vec, minlength=n)
    norm_ref, norm_hyp = norm[:n], norm[n:]
    nonzero = (norm_hyp != 0) & (norm_ref != 0)
    val = np.where(nonzero, val / np.where(nonzero, norm_hyp * norm_ref, 1.0), val)
    # the library's `length` counts bigrams (its `n == 1` is the 0-based order): words - 1
    lengths = np.maximum(words_per_text - 1, 0)
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


def _weights(tf: np.ndarray, df: np.ndarray, gid: np.ndarray, ref_len: np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Each entry's weight, the library's `float(term_freq)*(self.ref_len - np.log(max(1.0, df)))`, and its square
    as the library takes it for the norms, `pow(v, 2)` (df: document frequency per n-gram id).

    That square is not `v * v`: on the library's numpy float64 `pow` is libm's `pow(v, 2.0)` (numpy's scalar power
    has no fast path for 2), which is not correctly rounded everywhere and for about 1 value in 1,000 lands one
    ulp away from `v * v` (what array `v * v`, `v ** 2` and `np.square` give); at 100k pairs that moved some norms,
    hence CIDEr values, by an ulp. A weight depends on (tf, df) alone, so there are few distinct ones: each is
    computed and squared the library's way once, then spread to the entries by its (tf, df) key."""
    present = np.zeros(int(df.max()) + 1 if len(df) else 1, dtype=bool)
    present[df] = True
    values = np.flatnonzero(present)                      # the distinct document frequencies
    rank = np.zeros(len(present), dtype=np.int64)
    rank[values] = np.arange(len(values))
    idf = ref_len - np.log(np.maximum(1.0, values.astype(np.float64)))
    df_rank = rank[df][gid]
    if (int(tf.max(initial=0)) + 1) * len(values) > DENSE_KEYS:   # a word said very often: no dense table
        vec = tf.astype(np.float64) * idf[df_rank]
        _, first, inverse = np.unique(tf * len(values) + df_rank, return_index=True, return_inverse=True)
        return vec, np.array([pow(w, 2) for w in vec[first]])[inverse.reshape(-1)]
    key = tf * len(values) + df_rank
    seen = np.zeros(int(key.max(initial=0)) + 1, dtype=bool)
    seen[key] = True
    where = np.flatnonzero(seen)
    weight = np.zeros(len(seen))
    weight[where] = (where // len(values)).astype(np.float64) * idf[where % len(values)]
    square = np.zeros(len(seen))
    square[where] = [pow(w, 2) for w in weight[where]]    # w: a numpy float64, as in the library
    return weight[key], square[key]


def _ngram_entries(texts: list[str], lengths: np.ndarray):
    """Per order 1..4: (text, n-gram id, count) per distinct n-gram of each text, each text's n-grams in order of
    first occurrence (the library's dict order within an order; texts lie one after the other)."""
    vocabulary: dict[str, int] = {}
    # word ids straight from the strings (no list of split words for every text held at once)
    words = np.fromiter((vocabulary.setdefault(w, len(vocabulary)) for t in texts for w in t.split()), dtype=np.int64,
                        count=int(lengths.sum()))
    owner = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
    position = np.arange(len(words), dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    room = lengths[owner] - position            # words from each position to its text's end
    ids = words       # order 1: the word itself
    for k in range(ORDERS):
        if k:
            # n-gram (i .. i+k) = (n-1)-gram at i, then word i+k; it exists where i+k is inside the text
            nxt = np.zeros_like(ids)
            nxt[:-k] = words[k:]
            combined = np.where(room > k, ids * (len(vocabulary) + 1) + nxt, -1)
            ids = np.unique(combined, return_inverse=True)[1].reshape(-1)
            del combined, nxt
        where = np.flatnonzero(room > k)
        key = owner[where] * (int(ids.max()) + 1) + ids[where]
        _, first, count = np.unique(key, return_index=True, return_counts=True)
        del key
        layout = np.argsort(first)              # by flat position: text by text, first occurrence first
        first, count = where[first[layout]], count[layout]
        yield owner[first], ids[first], count
