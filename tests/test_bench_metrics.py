"""`artcap bench metrics --synthetic N`: the synthetic pairs, and ours against the plain library calls (same scores)."""
import shutil

import numpy as np
import pytest

from artcap_lib.bench.synthetic_captions import BigramChain


def test_bigram_chain_draws_new_texts_from_the_corpus_words_and_lengths():
    corpus = ["A red boat sails on the sea.", "The old man sits by the river, reading.", "Two women dance."]
    chain = BigramChain(corpus)
    texts = chain.sample(500, np.random.default_rng(0))
    assert texts == chain.sample(500, np.random.default_rng(0))                  # reproducible
    words = {w for t in corpus for w in t.split()}
    assert all(set(t.split()) <= words for t in texts)
    assert {len(t.split()) for t in texts} == {len(t.split()) for t in corpus}   # the corpus' lengths
    follows = {(a, b) for t in corpus for a, b in zip(t.split(), t.split()[1:])}
    assert all((a, b) in follows or a.endswith(".") for t in texts for a, b in zip(t.split(), t.split()[1:]))
    assert len(set(texts)) > 3                                                    # not the corpus replayed


def test_synthetic_benchmark_scores_equal_the_plain_libraries():
    from artcap_lib import reference
    mirror = reference.mirror_dir()
    if mirror is None or not mirror.is_dir() or shutil.which("java") is None:
        pytest.skip("needs ARTCAP_REFERENCE_DIR (the authors' captions) and Java")
    from artcap_lib.bench.metrics_scale import bench_synthetic
    result = bench_synthetic(40, seed=1)
    assert result["identical"], {k: v for k, v in result["scores"].items() if v["n_different"]}
    assert len(result["scores"]) == 18 and result["ours"]["cpu_s"] > 0 and result["plain"]["cpu_s"] > 0
    assert result["cpu_ratio"] == pytest.approx(result["ours"]["cpu_s"] / result["plain"]["cpu_s"], abs=1e-3)
