"""Paired significance tests and bootstrap confidence intervals over per-query metric values.

Both systems are scored on the same queries, so every test is paired on the query:
- `paired_t_test`: Student's paired two-sided t-test, ranx's default in `ranx.compare` and what the authors ran
  (scipy's `ttest_rel`, which ranx calls too).
- `randomisation_test`: the paired (sign-flip) randomisation test of the mean difference, two-sided; it makes no
  normality assumption, which matters for 0/1 values such as precision@1 (Smucker et al., CIKM 2007).
- `bootstrap_ci`: percentile interval of the mean over queries resampled with replacement.
All randomness comes from numpy Generators seeded by the caller, so results are reproducible.
"""
from __future__ import annotations

import numpy as np

BATCH = 256          # resamples drawn at once: memory is BATCH x n_queries


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


def bootstrap_ci(values, n_resamples: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-query values."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"bootstrap_ci needs a non-empty 1-D array, got shape {values.shape}")
    rng = np.random.default_rng(seed)
    means = np.concatenate([values[rng.integers(0, values.size, size=(min(BATCH, n_resamples - s), values.size))]
                            .mean(axis=1) for s in range(0, n_resamples, BATCH)])
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)
