"""Statistics shared by Experiments 1 and 2: bootstrap intervals, paired significance tests, controls, lengths.

- `bootstrap_means` / `bootstrap_ci`: percentile bootstrap of the mean over the units the paper averages over
  (images in Experiment 1, queries in Experiment 2). Several metrics (columns) share one set of resampled rows, so
  the intervals of different metrics are comparable.
- `paired_t_test`: Student's paired two-sided t-test, ranx's default in `ranx.compare` and what the authors ran
  (scipy's `ttest_rel`, which ranx calls too).
- `randomisation_test`: the paired (sign-flip) randomisation test of the mean difference, two-sided; it makes no
  normality assumption, which matters for 0/1 values such as precision@1 (Smucker et al., CIKM 2007).
- `derangement`: the shuffled control of Experiment 1 pairs each reference with another image's candidate (never its
  own). Scores of such unrelated pairs show what a metric gives for "any caption of a painting in this collection":
  a BERTScore of 0.75 means little until one knows unrelated captions score 0.70.
- `length_stats`: words per caption (whitespace split); BLEU's brevity penalty and ROUGE's P/R balance both follow
  length, and LLaVA's captions are longer than Artpedia's visual sentences.
All randomness comes from numpy Generators seeded by the caller, so results are reproducible.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

BATCH = 256          # bootstrap / randomisation resamples drawn at once: memory is BATCH x n
BATCH_VALUES = 2**24  # at most this many values gathered per bootstrap batch (128 MiB of float64)


def bootstrap_means(values, resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """(resamples, n_metrics) means of `values` (n_units, n_metrics) over units drawn with replacement."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or len(values) == 0:
        raise ValueError(f"bootstrap needs a non-empty 1-D or 2-D array, got shape {values.shape}")
    rng = np.random.default_rng(seed)
    # drawn a batch of rows of indices at a time: the same stream as one (resamples, n) draw, in bounded memory.
    # A batch gathers rows x n x n_metrics values, so at 100k units it holds fewer rows (256 would be 3.7 GB). An
    # even number of rows: numpy draws these indices from 64-bit words in 32-bit halves and drops a call's odd half,
    # so only batches of an even count of indices continue the one-draw stream (the same intervals at any size)
    rows = max(2, min(BATCH, BATCH_VALUES // (len(values) * values.shape[1])) // 2 * 2)
    return np.concatenate([np.nanmean(values[rng.integers(0, len(values), size=(min(rows, resamples - s), len(values)))],
                                      axis=1) for s in range(0, resamples, rows)])


def bootstrap_ci(values, resamples: int = 1000, seed: int = 0, level: float = 0.95) -> np.ndarray:
    """(n_metrics, 2) percentile-bootstrap interval of the mean; a 1-D input gives shape (2,)."""
    means = bootstrap_means(values, resamples, seed)
    tail = (1.0 - level) / 2 * 100
    ci = np.percentile(means, [tail, 100 - tail], axis=0).T
    return ci[0] if np.asarray(values).ndim == 1 else ci



def bootstrap_cis(columns, resamples: int = 1000, seed: int = 0, level: float = 0.95) -> list[np.ndarray]:
    """[bootstrap_ci(c, resamples, seed, level) for c in columns], the same numbers, with the resampled rows
    drawn once for all columns (each call would draw the same ones: same seed, same length). At 100k queries
    the draws are most of the work: 10^8 indices per column."""
    columns = [np.asarray(c, dtype=np.float64)[:, None] for c in columns]
    if len({len(c) for c in columns}) > 1 or any(c.ndim != 2 or len(c) == 0 for c in columns):
        return [bootstrap_ci(c[:, 0], resamples, seed, level) for c in columns]
    if not columns:
        return []
    n = len(columns[0])
    rng = np.random.default_rng(seed)
    means: list[list[np.ndarray]] = [[] for _ in columns]
    for s in range(0, resamples, BATCH):
        rows = rng.integers(0, n, size=(min(BATCH, resamples - s), n))
        for out, c in zip(means, columns):
            out.append(np.nanmean(c[rows], axis=1))     # bootstrap_means' very expression: the same bits
    tail = (1.0 - level) / 2 * 100
    return [np.percentile(np.concatenate(m), [tail, 100 - tail], axis=0).T[0] for m in means]

def _paired(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size < 2:
        raise ValueError(f"paired tests need two 1-D arrays of the same length >= 2, got {a.shape} and {b.shape}")
    return a, b


def paired_t_test(a, b) -> float:
    """Two-sided p-value of Student's paired t-test; 1.0 when the two systems agree on every query
    (the statistic is undefined there and scipy returns NaN)."""
    from scipy import stats    # lazy: scipy is only needed where tests are run

    a, b = _paired(a, b)
    if np.all(a == b):
        return 1.0
    return float(stats.ttest_rel(a, b).pvalue)


def randomisation_test(a, b, n_resamples: int = 10_000, seed: int = 0) -> float:
    """Two-sided p-value of the paired randomisation test: under H0 each query's difference is as likely to
    have the other sign. p = (1 + #resamples with |mean| >= observed) / (1 + n_resamples)."""
    a, b = _paired(a, b)
    diff = a - b
    observed = abs(diff.mean())
    rng = np.random.default_rng(seed)
    at_least = 0
    for start in range(0, n_resamples, BATCH):
        signs = rng.choice((-1.0, 1.0), size=(min(BATCH, n_resamples - start), diff.size))
        # a tiny slack so that resamples equal to the observed value in exact arithmetic count as such
        at_least += int(np.sum(np.abs(signs @ diff) / diff.size >= observed - 1e-12))
    return (1 + at_least) / (1 + n_resamples)



def randomisation_tests(pairs, n_resamples: int = 10_000, seed: int = 0) -> list[float]:
    """[randomisation_test(a, b, n_resamples, seed) for a, b in pairs], the same p-values, with the signs drawn
    once for all pairs of one length (each call would draw the very same signs). Experiment 2 runs 4 metrics x
    every pair of variants: at 100k queries that is 10^9 sign draws per test otherwise."""
    diffs = [np.subtract(*_paired(a, b)) for a, b in pairs]
    if len({d.size for d in diffs}) > 1:
        return [randomisation_test(a, b, n_resamples, seed) for a, b in pairs]
    if not diffs:
        return []
    observed = [abs(d.mean()) for d in diffs]
    rng = np.random.default_rng(seed)
    at_least = [0] * len(diffs)
    for start in range(0, n_resamples, BATCH):
        signs = rng.choice((-1.0, 1.0), size=(min(BATCH, n_resamples - start), diffs[0].size))
        for t, (diff, obs) in enumerate(zip(diffs, observed)):
            at_least[t] += int(np.sum(np.abs(signs @ diff) / diff.size >= obs - 1e-12))
    return [(1 + a) / (1 + n_resamples) for a in at_least]

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
