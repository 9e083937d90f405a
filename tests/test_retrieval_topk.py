"""Streamed top-k from embeddings against the dense path: the same ranks, runs, metrics and run files.

Embeddings are multiples of 1/64 with few dimensions, so every dot product is exact in float32 and the dense
matrix and the chunked products hold the very same numbers (continuous inputs differ in the last bit between
a whole and a chunked matmul, which would test BLAS rather than the tie rule)."""
import numpy as np
import pytest
import torch

from artcap_lib.retrieval import metrics, runs, topk


def exact_embeddings(rng, n, dim, levels=50):
    return (rng.integers(-levels, levels + 1, (n, dim)) / 64).astype(np.float32)


def dense(q, x, scale=1.0, bias=0.0):
    return ((torch.from_numpy(q) @ torch.from_numpy(x).T) * scale + bias).numpy()


def relevant_sets(rng, n_queries, n_items, most=3):
    return [set(rng.choice(n_items, size=min(n_items, int(rng.integers(1, most + 1))), replace=False).tolist())
            for _ in range(n_queries)]


def assert_same_as_dense(q, x, relevant, depth, budget, scale=1.0, bias=0.0):
    scores = dense(q, x, scale, bias)
    top = topk.stream_topk(q, x, relevant, depth=depth, budget=budget, scale=scale, bias=bias)
    np.testing.assert_array_equal(top.ranks, metrics.first_relevant_rank(scores, relevant))
    qids, iids = [f"q{i}" for i in range(len(q))], [f"i{j}" for j in range(len(x))]
    got, want = runs.run_from_topk(top, qids, iids), runs.run_from_scores(scores, qids, iids, depth)
    assert [list(r.items()) for r in got.values()] == [list(r.items()) for r in want.values()]   # order too
    assert list(got) == list(want)
    streamed = metrics.summarise_ranks(metrics.metrics_from_ranks(top.ranks, depth=depth))
    assert streamed == metrics.retrieval_metrics(scores, relevant, depth=depth)


@pytest.mark.parametrize("seed", range(6))
def test_random_inputs_equal_dense(seed):
    rng = np.random.default_rng(seed)
    n_q, n_i, dim = int(rng.integers(1, 50)), int(rng.integers(1, 200)), int(rng.integers(2, 12))
    q, x = exact_embeddings(rng, n_q, dim), exact_embeddings(rng, n_i, dim)
    # a budget of a few rows: many chunks, and a last one shorter than the others
    assert_same_as_dense(q, x, relevant_sets(rng, n_q, n_i), depth=int(rng.integers(1, 30)),
                         budget=int(rng.integers(1, 40)) * 10 * n_i)


@pytest.mark.parametrize("depth", [1, 7, 40, None])
def test_tie_heavy_inputs_equal_dense(depth):
    # entries in {-1, 0, 1}/64 and dim 3: a few distinct scores, ties across every cut and at every relevant item
    rng = np.random.default_rng(11)
    q, x = exact_embeddings(rng, 60, 3, levels=1), exact_embeddings(rng, 90, 3, levels=1)
    assert_same_as_dense(q, x, relevant_sets(rng, 60, 90), depth, budget=10 * 90 * 7)


def test_all_equal_scores_rank_by_index():
    q, x = np.zeros((4, 2), np.float32), np.ones((10, 2), np.float32)
    top = topk.stream_topk(q, x, [{9}, {0}, {3, 5}, {7}], depth=3)
    assert top.indices.tolist() == [[0, 1, 2]] * 4
    assert top.ranks.tolist() == [10, 1, 4, 8]


def test_affine_scores_equal_dense():
    # SigLIP's logits: scale * dot + bias; the run stores those values
    rng = np.random.default_rng(3)
    q, x = exact_embeddings(rng, 30, 4), exact_embeddings(rng, 70, 4)
    assert_same_as_dense(q, x, relevant_sets(rng, 30, 70), depth=10, budget=10 * 70 * 4, scale=4.0, bias=-2.5)


def test_without_relevance_no_ranks_and_depth_capped():
    rng = np.random.default_rng(4)
    top = topk.stream_topk(exact_embeddings(rng, 5, 3), exact_embeddings(rng, 4, 3), depth=100)
    assert top.indices.shape == (5, 4) and sorted(top.indices[0].tolist()) == [0, 1, 2, 3]
    assert top.ranks.tolist() == [0] * 5


def test_torch_and_half_inputs():
    rng = np.random.default_rng(5)
    q, x = exact_embeddings(rng, 8, 4), exact_embeddings(rng, 20, 4)
    rel = relevant_sets(rng, 8, 20)
    want = topk.stream_topk(q, x, rel, depth=5)
    got = topk.stream_topk(torch.from_numpy(q).half(), torch.from_numpy(x).half(), rel, depth=5)
    np.testing.assert_array_equal(got.ranks, want.ranks)
    np.testing.assert_array_equal(got.indices, want.indices)


def test_chunk_rows_follow_the_budget():
    assert topk.chunk_rows(100_000, 512 << 20) == (512 << 20) // (10 * 100_000)
    assert topk.chunk_rows(10**9, 1) == 1


@pytest.mark.parametrize("bad, message", [
    (dict(queries=np.full((2, 3), np.nan, np.float32)), "NaN"),
    (dict(items=np.zeros((4, 5), np.float32)), "dim"),
    (dict(queries=np.zeros(3, np.float32)), "2-D"),
    (dict(scale=0.0), "scale"),
    (dict(relevant=[{7}, {0}]), "out of range"),
    (dict(relevant=[{0}]), "2 queries"),
])
def test_errors(bad, message):
    args = dict(queries=np.zeros((2, 3), np.float32), items=np.zeros((4, 3), np.float32), relevant=[{0}, {1}])
    args.update(bad)
    with pytest.raises(metrics.RetrievalInputError, match=message):
        topk.stream_topk(**args)


def test_streamed_run_file_is_save_run_byte_for_byte(tmp_path):
    rng = np.random.default_rng(6)
    q, x = exact_embeddings(rng, 12, 3, levels=2), exact_embeddings(rng, 25, 3, levels=2)
    qids, iids = [f"caption é{i}" for i in range(12)], [f'image "{j}"' for j in range(25)]
    top = topk.stream_topk(q, x, depth=6)
    runs.save_run(tmp_path / "dense.json", runs.run_from_scores(dense(q, x), qids, iids, 6))
    runs.write_topk_run(tmp_path / "streamed.json", top, qids, iids)
    assert (tmp_path / "streamed.json").read_bytes() == (tmp_path / "dense.json").read_bytes()
    assert runs.load_run(tmp_path / "streamed.json") == runs.run_from_topk(top, qids, iids)


def test_streamed_run_file_refuses_duplicates_and_infinities(tmp_path):
    top = topk.TopK(np.array([[0, 1]]), np.array([[1.0, 0.5]], np.float32), np.array([1]))
    with pytest.raises(runs.RunError, match="item_ids contain duplicates"):
        runs.write_topk_run(tmp_path / "r.json", top, ["q"], ["a", "a"])
    top.scores[0, 0] = np.inf
    with pytest.raises(runs.RunError, match="finite"):
        runs.write_topk_run(tmp_path / "r.json", top, ["q"], ["a", "b"])
    assert not (tmp_path / "r.json").exists()


def test_large_collections_are_written_from_embeddings_as_the_matrix_would_be(tmp_path, monkeypatch):
    # the runner's path: a dual encoder's scores as EmbeddingScores; above DENSE_LIMIT they are streamed
    from artcap_lib.retrieval.dualenc import scoring
    rng = np.random.default_rng(8)
    text, image = torch.from_numpy(exact_embeddings(rng, 40, 3, 2)), torch.from_numpy(exact_embeddings(rng, 40, 3, 2))
    ids = [f"a{i}" for i in range(40)]
    small = scoring.embedding_scores(text, image, "dot")
    want = runs.write_variant(tmp_path / "dense", "human", "artpedia", small, ids, ids, depth=5)
    matrix = np.asarray(small)
    monkeypatch.setattr(topk, "DENSE_LIMIT", 0)
    large = scoring.embedding_scores(text, image, "dot")
    with pytest.raises(MemoryError, match="stream it"):
        np.asarray(large)
    got = runs.write_variant(tmp_path / "streamed", "human", "artpedia", large, ids, ids, depth=5)
    assert got == want
    for name in ("human/run_artpedia.json", "qrels_artpedia.json"):
        assert (tmp_path / "streamed" / name).read_bytes() == (tmp_path / "dense" / name).read_bytes()
    assert (tmp_path / "dense/human/scores_artpedia.npz").is_file()
    assert not (tmp_path / "streamed/human/scores_artpedia.npz").exists()
    qrels = runs.identity_qrels(ids)
    dense_ranks, streamed_ranks = (runs.full_ranks(tmp_path / d / "human", "artpedia", qrels)
                                   for d in ("dense", "streamed"))
    assert dense_ranks[0] == streamed_ranks[0] and dense_ranks[1].tolist() == streamed_ranks[1].tolist()
    summaries = [runs.summarise_model(tmp_path / d, bootstrap=50, randomisation=50, depth=5, model="m")
                 for d in ("dense", "streamed")]
    assert summaries[0] == summaries[1] and "mean_rank" in summaries[1]["query_sets"]["artpedia"]["variants"]["human"]["metrics"]
    # image-to-text of the runner: the transposed scores, streamed too
    own = [{i} for i in range(40)]
    assert topk.retrieval_metrics(large.T, own) == metrics.retrieval_metrics(matrix.T, own)


def test_sigmoid_embedding_scores_match_the_matrix():
    from artcap_lib.retrieval.dualenc import scoring
    rng = np.random.default_rng(9)
    text, image = torch.from_numpy(exact_embeddings(rng, 6, 4)), torch.from_numpy(exact_embeddings(rng, 9, 4))
    es = scoring.embedding_scores(text, image, "sigmoid", logit_scale=2.0, logit_bias=-10.0)
    matrix = scoring.score_matrix(text, image, "sigmoid", 2.0, -10.0).numpy()
    np.testing.assert_array_equal(np.asarray(es), matrix)
    top = es.topk(depth=9)
    np.testing.assert_allclose(top.scores, -np.sort(-matrix, axis=1), rtol=1e-6)


def test_scale_benchmark_phases_agree_with_the_dense_path():
    # `artcap bench retrieval --dim`: what it reports, not how fast (speed is the benchmark's business)
    from artcap_lib.bench.retrieval import benchmark_scale, embeddings
    out = benchmark_scale(60, 80, 8, depth=10, seed=1, threads=1)
    assert {"plain", "streamed", "evaluate"} <= set(out) and out["ratio"] > 0
    assert all(out[p]["peak_rss_mib"] > 0 for p in ("plain", "streamed", "evaluate"))
    q, x, planted = embeddings(60, 80, 8, seed=1)
    assert torch.allclose(q.norm(dim=1), torch.ones(60)) and planted.tolist() == [i % 80 for i in range(60)]
    want = metrics.retrieval_metrics((q @ x.T).numpy(), [{int(p)} for p in planted], depth=10)
    assert out["streamed"]["metrics"] == pytest.approx(want, abs=1e-12)
