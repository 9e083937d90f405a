"""Our run and matrix metrics, and our paired t-test, against ranx itself (tie-free data: ranx's sort is unstable)."""
import numpy as np
import pytest

ranx = pytest.importorskip("ranx")

from artcap_lib.retrieval import metrics as retrieval_eval
from artcap_lib.retrieval import runs


@pytest.fixture(scope="module")
def systems():
    """Three tie-free score matrices over 40 queries x 30 items, 1-3 relevant items per query."""
    rng = np.random.default_rng(11)
    items = [f"d{j}" for j in range(30)]
    queries = [f"q{i}" for i in range(40)]
    relevant = [set(rng.choice(30, size=int(rng.integers(1, 4)), replace=False).tolist()) for _ in queries]
    qrels = {q: {items[j]: int(rng.integers(1, 3)) for j in rel} for q, rel in zip(queries, relevant)}
    matrices = {}
    for name, strength in (("a", 0.5), ("b", 1.0), ("c", 1.2)):
        boost = np.zeros((40, 30))
        for i, rel in enumerate(relevant):
            boost[i, list(rel)] = strength
        matrices[name] = rng.random((40, 30)) + boost * rng.random((40, 30))
    return queries, items, relevant, qrels, matrices


def test_run_metrics_match_ranx_evaluate(systems):
    queries, items, _, qrels, matrices = systems
    metrics = ["precision@1", "precision@3", "recall@5", "hit_rate@5", "mrr", "mrr@10"]
    for depth in (None, 8):
        run = runs.run_from_scores(matrices["b"], queries, items, depth=depth)
        ours = runs.evaluate_run(run, qrels, metrics)
        theirs = ranx.evaluate(ranx.Qrels(qrels), ranx.Run(run), metrics)
        for name in metrics:
            assert ours[name] == pytest.approx(float(theirs[name]), abs=1e-12), (depth, name)


def test_matrix_recall_is_ranx_hit_rate(systems):
    queries, items, relevant, qrels, matrices = systems
    ours = retrieval_eval.retrieval_metrics(matrices["a"], relevant, ks=(1, 5, 10), depth=20)
    run = runs.run_from_scores(matrices["a"], queries, items, depth=20)
    theirs = ranx.evaluate(ranx.Qrels(qrels), ranx.Run(run), ["hit_rate@1", "hit_rate@5", "hit_rate@10", "mrr"])
    for k in (1, 5, 10):
        assert ours[f"recall@{k}"] == pytest.approx(float(theirs[f"hit_rate@{k}"]), abs=1e-12)
    assert ours["mrr"] == pytest.approx(float(theirs["mrr"]), abs=1e-12)


def test_paired_t_test_matches_ranx_compare(systems):
    queries, items, _, qrels, matrices = systems
    metrics = ["precision@1", "mrr"]
    run_dicts = {name: runs.run_from_scores(m, queries, items) for name, m in matrices.items()}
    per_query = {name: runs.per_query_run_metrics(r, qrels, metrics) for name, r in run_dicts.items()}
    rows = runs.compare(per_query, metrics, randomisation=200)
    ranx_runs = []
    for name, run in run_dicts.items():
        ranx_run = ranx.Run(run)
        ranx_run.name = name
        ranx_runs.append(ranx_run)
    report = ranx.compare(ranx.Qrels(qrels), ranx_runs, metrics=metrics, stat_test="student", max_p=0.05)
    assert len(rows) == 6
    for row in rows:
        theirs = report.comparisons[frozenset((row["a"], row["b"]))][row["metric"]]["p_value"]
        assert row["p_ttest"] == pytest.approx(float(theirs), rel=1e-9)


def test_cli_fuse_is_reciprocal_rank_fusion(tmp_path, systems):
    from artcap_lib.cli import main
    queries, items, _, _, matrices = systems
    for name in ("a", "b"):
        runs.save_run(tmp_path / f"{name}.json", runs.run_from_scores(matrices[name], queries, items, depth=10))
    assert main(["retrieval", "fuse", "--run", str(tmp_path / "a.json"), "--run", str(tmp_path / "b.json"),
                 "--out", str(tmp_path / "fused.json")]) == 0
    fused = runs.load_run(tmp_path / "fused.json")
    ranks = {name: {q: {d: r for r, d in enumerate(runs.load_run(tmp_path / f"{name}.json")[q], 1)} for q in queries}
             for name in ("a", "b")}
    for q in queries:
        want = {d: sum(1 / (60 + ranks[n][q][d]) for n in ranks if d in ranks[n][q])
                for d in set(ranks["a"][q]) | set(ranks["b"][q])}
        assert fused[q] == pytest.approx(want, rel=1e-12)
        assert list(fused[q].values()) == sorted(fused[q].values(), reverse=True)


@pytest.mark.parametrize("reranked", [False, True], ids=["embeddings", "re-ranked top k"])
def test_streamed_runs_of_several_captions_per_painting_match_ranx(tmp_path, monkeypatch, reranked):
    """A collection too large for a matrix (DENSE_LIMIT 0), several captions per painting (query `<id>#k`, qrels:
    its painting): what write_variant computes from the streamed ranks is what ranx reads from the run it wrote,
    for embedding scores and for a re-ranking of their top k (BLIP's ITM)."""
    import torch

    from artcap_lib.retrieval import topk
    monkeypatch.setattr(topk, "DENSE_LIMIT", 0)
    rng = np.random.default_rng(12)
    paintings = [f"p{j}" for j in range(30)]
    image = torch.nn.functional.normalize(torch.from_numpy(rng.normal(size=(30, 8)).astype(np.float32)), dim=1)
    owner = [j for j in range(30) for _ in range(1 + j % 3)]          # 1-3 captions each
    queries = [f"p{j}#{k + 1}" for j in range(30) for k in range(1 + j % 3)]
    text = image[owner] + torch.from_numpy(rng.normal(scale=0.4, size=(len(owner), 8)).astype(np.float32))
    scores = topk.EmbeddingScores(text, image, lambda: None)
    if reranked:
        first = scores.topk(None, 6)
        scores = topk.RerankedScores(scores, first.indices, rng.random(first.indices.shape).astype(np.float32))
    qrels = {q: {paintings[j]: 1} for q, j in zip(queries, owner)}
    ours = runs.write_variant(tmp_path, "human", "human", scores, queries, paintings, qrels, depth=12)
    run = runs.load_run(tmp_path / "human" / "run_human.json")
    assert len(run) == len(queries) == 60 and all(len(docs) == 12 for docs in run.values())
    theirs = ranx.evaluate(ranx.Qrels(qrels), ranx.Run(run), ["precision@1", "hit_rate@5", "hit_rate@10", "mrr"])
    assert ours["precision@1"] == pytest.approx(float(theirs["precision@1"]), abs=1e-12)
    for k in (5, 10):
        assert ours[f"recall@{k}"] == pytest.approx(float(theirs[f"hit_rate@{k}"]), abs=1e-12)
    assert ours["mrr"] == pytest.approx(float(theirs["mrr"]), abs=1e-12)        # mrr@12: the run's depth
    assert 0 < ours["precision@1"] < 1 and ours["median_rank"] >= 1
