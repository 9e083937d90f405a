"""How much to trust a mean caption score: bootstrap confidence intervals, a shuffled-caption control, lengths.

- `bootstrap_ci`: percentile bootstrap of the mean over images (the unit the authors averaged over), one shared
  set of resampled image indices for every metric so intervals of different metrics are comparable.
- `derangement`: the control pairs each reference with another image's candidate (never its own). Scores of
  such unrelated pairs show what the metrics give for "any caption of a painting in this collection": a
  BERTScore of 0.75 means little until one knows unrelated captions score 0.70.
- `length_stats`: words per caption (whitespace split); BLEU's brevity penalty and ROUGE's P/R balance both
  follow length, and LLaVA's captions are longer than Artpedia's visual sentences.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np


def bootstrap_means(values: np.ndarray, resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """(resamples, n_metrics) means of `values` (n_images, n_metrics) over images drawn with replacement."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(values), size=(resamples, len(values)))   # same draws for every metric
    return np.stack([np.nanmean(values[rows], axis=0) for rows in index])


def bootstrap_ci(values: np.ndarray, resamples: int = 1000, seed: int = 0, level: float = 0.95) -> np.ndarray:
    """(n_metrics, 2) percentile-bootstrap interval of the mean; a 1-D input gives shape (2,)."""
    means = bootstrap_means(values, resamples, seed)
    tail = (1.0 - level) / 2 * 100
    ci = np.percentile(means, [tail, 100 - tail], axis=0).T
    return ci[0] if np.asarray(values).ndim == 1 else ci


def derangement(n: int, seed: int = 0) -> np.ndarray:
    """A random permutation with no fixed point (Sattolo's algorithm: one random n-cycle), for n >= 2."""
    if n < 2:
        raise ValueError(f"a shuffled control needs at least 2 pairs, got {n}")
    rng = np.random.default_rng(seed)
    perm = np.arange(n)
    for i in range(n - 1, 0, -1):
        j = rng.integers(0, i)          # j < i, never i itself: this is what forbids fixed points
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def length_stats(texts: Iterable[str]) -> dict[str, float]:
    """Words per text: mean, std, min, 5th percentile, median, 95th percentile, max."""
    words = np.array([len(t.split()) for t in texts], dtype=np.float64)
    if words.size == 0:
        raise ValueError("no texts")
    return {"mean": float(words.mean()), "std": float(words.std()), "min": float(words.min()),
            "p5": float(np.percentile(words, 5)), "median": float(np.median(words)),
            "p95": float(np.percentile(words, 95)), "max": float(words.max())}
