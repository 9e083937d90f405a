"""Paired tests and bootstrap intervals against exact or textbook values."""
import itertools

import numpy as np
import pytest
from scipy import stats

from artcap_lib import stats as significance


def exact_sign_flip_p(a, b):
    """All 2^n sign patterns of the paired differences: the exact two-sided randomisation p-value."""
    diff = np.asarray(a, float) - np.asarray(b, float)
    observed = abs(diff.mean())
    means = [abs(np.mean(diff * np.array(signs))) for signs in itertools.product((-1, 1), repeat=diff.size)]
    return float(np.mean(np.array(means) >= observed - 1e-12))


def test_randomisation_matches_exact_enumeration():
    rng = np.random.default_rng(3)
    a = rng.random(12)
    b = a - rng.normal(0.15, 0.3, size=12)
    exact = exact_sign_flip_p(a, b)
    assert significance.randomisation_test(a, b, n_resamples=20_000, seed=1) == pytest.approx(exact, abs=0.015)


def test_randomisation_identical_systems_and_reproducible():
    a = np.array([1.0, 0.0, 1.0, 0.5])
    assert significance.randomisation_test(a, a, 500) == 1.0
    b = np.array([0.0, 0.0, 1.0, 0.25])
    assert significance.randomisation_test(a, b, 999, seed=7) == significance.randomisation_test(a, b, 999, seed=7)


def test_paired_t_test_is_scipy_ttest_rel_and_defined_when_equal():
    rng = np.random.default_rng(4)
    a, b = rng.random(50), rng.random(50)
    assert significance.paired_t_test(a, b) == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert significance.paired_t_test(a, a) == 1.0
    with pytest.raises(ValueError, match="same length"):
        significance.paired_t_test(a, b[:10])


def test_bootstrap_ci_near_normal_interval():
    rng = np.random.default_rng(5)
    values = (rng.random(2000) < 0.6).astype(float)
    low, high = significance.bootstrap_ci(values, resamples=2000, seed=0)
    half = 1.96 * values.std() / np.sqrt(values.size)
    assert low < values.mean() < high
    assert low == pytest.approx(values.mean() - half, abs=0.004)
    assert high == pytest.approx(values.mean() + half, abs=0.004)
    assert tuple(significance.bootstrap_ci(np.ones(5), 100)) == (1.0, 1.0)


def test_shared_draws_give_the_single_calls_numbers():
    # bootstrap_cis and randomisation_tests draw once for many columns/pairs: the numbers must not move
    rng = np.random.default_rng(7)
    columns = [rng.random(300), (rng.random(300) < 0.3).astype(float), rng.normal(size=300)]
    assert [ci.tolist() for ci in significance.bootstrap_cis(columns, 600, seed=3)] == \
        [significance.bootstrap_ci(c, 600, seed=3).tolist() for c in columns]
    pairs = [(columns[0], columns[1]), (columns[1], columns[2]), (columns[2], columns[2] + 1e-3)]
    assert significance.randomisation_tests(pairs, 700, seed=5) == [significance.randomisation_test(a, b, 700, 5) for a, b in pairs]
    # pairs of different lengths fall back to one draw each
    mixed = [(columns[0], columns[1]), (columns[0][:50], columns[2][:50])]
    assert significance.randomisation_tests(mixed, 300, seed=1) == [significance.randomisation_test(a, b, 300, 1) for a, b in mixed]
    assert significance.bootstrap_cis([], 10) == [] and significance.randomisation_tests([], 10) == []


def test_bootstrap_batches_are_one_stream(monkeypatch):
    """Large inputs are resampled a few rows at a time (bounded memory): the same means as all rows at once."""
    values = np.random.default_rng(3).random((101, 3))           # odd n: the 32-bit halves must line up
    whole = significance.bootstrap_means(values, resamples=40, seed=2)
    monkeypatch.setattr(significance, "BATCH_VALUES", 101 * 3 * 3)  # 3 rows allowed -> 2 (even) per batch
    np.testing.assert_array_equal(significance.bootstrap_means(values, resamples=40, seed=2), whole)
    rng = np.random.default_rng(2)
    np.testing.assert_array_equal(whole, values[rng.integers(0, 101, size=(40, 101))].mean(axis=1))
