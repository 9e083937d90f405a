"""textmetrics.cider against pycocoevalcap's Cider, bit for bit, where the library's squares are not `v * v`.

The library adds `pow(v, 2)` of each tf-idf weight into its norms; on its numpy float64 that is libm's pow, which for
about 1 value in 1,000 is one ulp away from the correctly rounded `v * v`. With 9 pairs, a word in 2 references
and said 3 times in a text weighs 3 * (log 9 - log 2), one of those values, and that ulp reaches the score."""
import math

import numpy as np
import pytest

# 9 pairs: "f" is in references 3 and 8 (df 2) and said 3 times by candidate 2
GTS = {"0": ["e"], "1": ["b"], "2": ["d"], "3": ["f"], "4": ["e d"], "5": ["e d"], "6": ["e"], "7": ["a"], "8": ["f"]}
RES = {"0": ["a"], "1": ["c"], "2": ["e f d f f"], "3": ["c"], "4": ["a"], "5": ["e"], "6": ["f"], "7": ["f"],
       "8": ["d"]}


def test_the_case_has_a_weight_whose_pow_square_is_not_its_product():
    weight = float(3) * (np.log(float(9)) - np.log(max(1.0, 2.0)))   # the library's expression, numpy float64
    assert pow(weight, 2) == math.pow(float(weight), 2.0)             # numpy's scalar power is libm's pow
    assert pow(weight, 2) != weight * weight                          # ... and here not the rounded product


@pytest.mark.parametrize("dense", [True, False], ids=["dense-keys", "unique-keys"])
def test_cider_equals_the_library_where_pow_and_product_differ(dense, monkeypatch):
    from pycocoevalcap.cider.cider import Cider
    from artcap_lib.textmetrics import cider
    if not dense:
        monkeypatch.setattr(cider, "DENSE_KEYS", 0)
    np.testing.assert_array_equal(cider.cider_d_scores(GTS, RES), Cider().compute_score(GTS, RES)[1])


@pytest.mark.parametrize("dense", [True, False], ids=["dense-keys", "unique-keys"])
def test_cider_equals_the_library_on_random_small_corpora(dense, monkeypatch):
    from pycocoevalcap.cider.cider import Cider
    from artcap_lib.textmetrics import cider
    if not dense:
        monkeypatch.setattr(cider, "DENSE_KEYS", 0)
    rng = np.random.default_rng(12)   # with `v * v` squares, two of the 9-pair corpus' scores were an ulp off
    vocab = np.array(list("abcdefgh"))
    for n in (9, 10, 46, 55, 120):   # corpus sizes with (tf, df) weights whose pow(v, 2) != v * v
        gts = {f"{i:03d}": [" ".join(rng.choice(vocab, rng.integers(1, 9)))] for i in range(n)}
        res = {f"{i:03d}": [" ".join(rng.choice(vocab, rng.integers(1, 9)))] for i in range(n)}
        np.testing.assert_array_equal(cider.cider_d_scores(gts, res), Cider().compute_score(gts, res)[1], str(n))
