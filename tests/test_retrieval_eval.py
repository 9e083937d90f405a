"""The vectorised metrics against a plain per-query reference implementation (the open_clip habit)."""
import numpy as np
import pytest
import torch

from artcap_lib.retrieval import metrics as re


def reference_metrics(scores, relevant, ks=(1, 5, 10), depth=None):
    """Sort each row (stable: ties keep item order) and look for the first relevant item. Slow and obvious."""
    per = {"precision@1": [], **{f"recall@{k}": [] for k in ks}, "mrr": [], "rank": []}
    for row, rel in zip(np.asarray(scores, dtype=np.float64), relevant):
        order = sorted(range(len(row)), key=lambda j: -row[j])          # Python's sort is stable
        rank = next(pos + 1 for pos, j in enumerate(order) if j in rel)
        inside = depth is None or rank <= depth
        per["precision@1"].append(float(rank == 1 and inside))
        for k in ks:
            per[f"recall@{k}"].append(float(rank <= k and inside))
        per["mrr"].append(1.0 / rank if inside else 0.0)
        per["rank"].append(rank)
    out = {name: float(np.mean(v)) for name, v in per.items() if name != "rank"}
    out["mean_rank"] = float(np.mean(per["rank"]))
    out["median_rank"] = float(np.median(per["rank"]))
    return out


def tied_scores(rng, n_queries, n_items):
    """Scores rounded to one decimal: many ties, so the tie rule is exercised."""
    return np.round(rng.normal(size=(n_queries, n_items)), 1)


@pytest.mark.parametrize("depth", [None, 3])
def test_single_relevant_matches_reference(depth):
    rng = np.random.default_rng(0)
    scores = tied_scores(rng, 40, 30)
    relevant = [{int(rng.integers(30))} for _ in range(40)]
    got = re.retrieval_metrics(scores, relevant, depth=depth)
    want = reference_metrics(scores, relevant, depth=depth)
    assert got.keys() == want.keys()
    for name in want:
        assert got[name] == pytest.approx(want[name], abs=1e-12), name


def test_several_relevant_and_small_chunks_match_reference():
    rng = np.random.default_rng(1)
    scores = tied_scores(rng, 25, 17)
    relevant = [set(rng.choice(17, size=int(rng.integers(1, 5)), replace=False).tolist()) for _ in range(25)]
    want = reference_metrics(scores, relevant, ks=(1, 2, 5))
    ranks = re.first_relevant_rank(scores, relevant, chunk_elements=17 * 3)   # 3 queries per chunk
    got = re.summarise_ranks(re.metrics_from_ranks(ranks, ks=(1, 2, 5)))
    for name in want:
        assert got[name] == pytest.approx(want[name], abs=1e-12), name


def test_ties_break_by_item_order():
    scores = np.array([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]])
    assert re.first_relevant_rank(scores, [{2}, {1, 2}]).tolist() == [3, 2]


def test_torch_input_half_precision():
    rng = np.random.default_rng(2)
    scores = torch.tensor(rng.normal(size=(8, 8)), dtype=torch.float16)
    relevant = [{i} for i in range(8)]
    assert re.retrieval_metrics(scores, relevant) == re.retrieval_metrics(scores.float().numpy(), relevant)


def test_text_image_both_directions():
    # 3 images, 2 captions each; caption t belongs to image t // 2
    image_of_text = [0, 0, 1, 1, 2, 2]
    scores = np.array([[.9, .1, .0],
                       [.1, .9, .0],     # caption 1 prefers the wrong image: rank 2
                       [.0, .9, .1],
                       [.0, .8, .2],
                       [.1, .0, .9],
                       [.2, .3, .1]])    # caption 5 ranks its image last
    out = re.text_image_metrics(scores, image_of_text, ks=(1, 2))
    assert out["text_to_image"]["recall@1"] == pytest.approx(4 / 6)
    assert out["text_to_image"]["recall@2"] == pytest.approx(5 / 6)
    # image 1's best caption scores 0.9 but caption 1 (another image's) also scores 0.9 and is listed first
    assert out["image_to_text"]["recall@1"] == pytest.approx(2 / 3)
    assert out["image_to_text"]["recall@2"] == pytest.approx(1.0)


def test_bad_input_is_a_clear_error():
    with pytest.raises(re.RetrievalInputError, match="NaN"):
        re.retrieval_metrics(np.array([[np.nan, 1.0]]), [{0}])
    with pytest.raises(re.RetrievalInputError, match="query 1 has no relevant"):
        re.retrieval_metrics(np.zeros((2, 2)), [{0}, set()])
    with pytest.raises(re.RetrievalInputError, match="out of range"):
        re.retrieval_metrics(np.zeros((1, 2)), [{2}])
    with pytest.raises(re.RetrievalInputError, match="not among the items"):
        re.relevant_by_id(["a", "z"], ["a", "b"])
