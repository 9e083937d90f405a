"""Runs and qrels: IO, evaluation (file-order ties), the Experiment 2 layout, and the CLI's errors."""
import json
import re

import numpy as np
import pytest

from artcap_lib.retrieval import metrics as retrieval_eval
from artcap_lib.retrieval import runs
from artcap_lib.cli import main


def tied_matrix(seed, n_queries=30, n_items=20):
    return np.round(np.random.default_rng(seed).normal(size=(n_queries, n_items)), 1).astype(np.float32)


@pytest.mark.parametrize("depth", [None, 4])
def test_run_from_scores_evaluates_like_the_matrix(tmp_path, depth):
    scores = tied_matrix(0, n_queries=20)
    ids = [f"i{n}" for n in range(20)]
    path = tmp_path / "run.json"
    runs.save_run(path, runs.run_from_scores(scores, ids, ids, depth=depth))
    run = runs.load_run(path)
    assert len(run) == 20 and all(len(docs) == (depth or 20) for docs in run.values())
    got = runs.evaluate_run(run, runs.identity_qrels(ids), runs.METRICS)
    want = retrieval_eval.retrieval_metrics(scores, [{i} for i in range(20)], depth=depth)
    for name in runs.METRICS:
        assert got[name] == pytest.approx(want[name], abs=1e-12), name
    with pytest.raises(runs.RunError, match="query_ids contain duplicates"):
        runs.run_from_scores(scores[:2], ["q", "q"], ids)


def test_file_order_decides_ties():
    qrels = {"q": {"b": 1}}
    assert runs.evaluate_run({"q": {"a": 0.5, "b": 0.5}}, qrels, ["mrr"]) == {"mrr": 0.5}
    assert runs.evaluate_run({"q": {"b": 0.5, "a": 0.5}}, qrels, ["mrr"]) == {"mrr": 1.0}
    # scores decide where they differ, whatever the listing order
    assert runs.evaluate_run({"q": {"a": 0.1, "b": 0.9}}, qrels, ["mrr"]) == {"mrr": 1.0}


def test_multi_relevant_metric_definitions():
    run = {"q": {"a": 4.0, "x": 3.0, "b": 2.0, "y": 1.0}}
    qrels = {"q": {"a": 1, "b": 2, "c": 1, "z": 0}}
    got = runs.evaluate_run(run, qrels, ["precision@2", "recall@3", "hit_rate@1", "mrr", "mrr@1", "recall@10"])
    assert got == pytest.approx({"precision@2": 0.5, "recall@3": 2 / 3, "hit_rate@1": 1.0, "mrr": 1.0,
                                 "mrr@1": 1.0, "recall@10": 2 / 3})


@pytest.mark.parametrize("run, qrels, message", [
    ({"q1": {"d": 1.0}}, {"q1": {"d": 1}, "q2": {"d": 1}}, "qrels queries missing from the run"),
    ({"q1": {"d": 1.0}, "q3": {"d": 1.0}}, {"q1": {"d": 1}}, "run queries absent from the qrels"),
    ({"q1": {"d": "high"}}, {"q1": {"d": 1}}, "query 'q1', document 'd': score 'high' is not a finite number"),
    ({"q1": {"d": float("nan")}}, {"q1": {"d": 1}}, "not a finite number"),
    ({"q1": [1, 2]}, {"q1": {"d": 1}}, "query 'q1': expected an object"),
    ({"q1": {"d": 1.0}}, {"q1": {"d": 0.5}}, "relevance 0.5 is not an integer"),
    ({"q1": {"d": 1.0}}, {"q1": {"d": 0}}, "no relevant document"),
])
def test_malformed_runs_and_qrels(tmp_path, run, qrels, message):
    (tmp_path / "run.json").write_text(json.dumps(run))
    (tmp_path / "qrels.json").write_text(json.dumps(qrels))
    with pytest.raises(runs.RunError, match=message):
        runs.evaluate_run(runs.load_run(tmp_path / "run.json"), runs.load_qrels(tmp_path / "qrels.json"))


def test_unknown_metric_and_bad_json(tmp_path):
    with pytest.raises(runs.RunError, match="unknown metric 'recall'"):
        runs.parse_metric("recall")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(runs.RunError, match="broken.json: not valid JSON"):
        runs.load_run(tmp_path / "broken.json")


def test_write_variant_and_summarise_model(tmp_path):
    model_dir = tmp_path / "retrieval" / "pocket"
    ids = [str(n) for n in range(24)]
    rng = np.random.default_rng(1)
    signal = {"baseline": 0.5, "human": 2.0, "synthetic": 1.5}
    for variant, strength in signal.items():
        scores = rng.normal(size=(24, 24)) + strength * np.eye(24)
        got = runs.write_variant(model_dir, variant, "artpedia", scores, ids, ids, None, depth=10)
        assert got == retrieval_eval.retrieval_metrics(scores, [{i} for i in range(24)], depth=10)
        assert (model_dir / variant / "run_artpedia.json").is_file()
    with np.load(model_dir / "human" / "scores_artpedia.npz") as data:
        assert data["scores"].shape == (24, 24) and list(data["query_ids"]) == ids
    results = runs.summarise_model(model_dir, bootstrap=100, randomisation=200)
    assert json.loads((model_dir / "results.json").read_text()) == results
    block = results["query_sets"]["artpedia"]
    assert list(block["variants"]) == ["baseline", "human", "synthetic"]
    human = block["variants"]["human"]
    assert human["run"] == "human/run_artpedia.json" and human["n_queries"] == 24
    assert set(human["metrics"]) == set(runs.METRICS) | {"mean_rank", "median_rank"}
    for metric, (low, high) in human["ci95"].items():
        assert low <= human["metrics"][metric] <= high
    pairs = {(row["a"], row["b"]) for row in block["significance"]}
    assert pairs == {("baseline", "human"), ("baseline", "synthetic"), ("human", "synthetic")}
    with pytest.raises(runs.RunError, match="other judgements"):
        runs.write_variant(model_dir, "human", "artpedia", np.eye(24), ids, ids, {i: {"0": 1} for i in ids})


def test_cli_evaluate_and_errors(tmp_path, capsys):
    ids = ["a", "b", "c"]
    runs.save_run(tmp_path / "run.json", runs.run_from_scores(np.array([[3., 2, 1], [3, 2, 1], [1, 2, 3]]), ids, ids))
    runs.save_qrels(tmp_path / "qrels.json", runs.identity_qrels(ids))
    args = ["retrieval", "evaluate", "--run", str(tmp_path / "run.json"), "--qrels", str(tmp_path / "qrels.json")]
    assert main(args + ["--json", "--metrics", "precision@1,mrr"]) == 0
    assert json.loads(capsys.readouterr().out) == pytest.approx({"precision@1": 2 / 3, "mrr": 5 / 6})
    (tmp_path / "qrels.json").write_text(json.dumps({"a": {"a": 1}}))
    assert main(args) == 2
    assert "run queries absent from the qrels" in capsys.readouterr().err


def test_cli_compare_and_fuse_arguments(tmp_path, capsys):
    ids = [str(n) for n in range(12)]
    rng = np.random.default_rng(2)
    for name, strength in (("weak", 0.2), ("strong", 3.0)):
        runs.save_run(tmp_path / f"{name}.json", runs.run_from_scores(rng.random((12, 12)) + strength * np.eye(12),
                                                                      ids, ids))
    runs.save_qrels(tmp_path / "qrels.json", runs.identity_qrels(ids))
    assert main(["retrieval", "compare", "--qrels", str(tmp_path / "qrels.json"), "--json", "--randomisation", "500",
                 "--bootstrap", "200", "--metrics", "mrr", "--run", f"weak={tmp_path / 'weak.json'}",
                 "--run", f"strong={tmp_path / 'strong.json'}"]) == 0
    out = json.loads(capsys.readouterr().out)
    (row,) = out["significance"]
    assert (row["a"], row["b"], row["metric"], row["mean_b"]) == ("weak", "strong", "mrr", 1.0)
    assert row["p_randomisation"] < 0.05 and set(out["ci95"]) == {"weak", "strong"}
    assert main(["retrieval", "compare", "--qrels", str(tmp_path / "qrels.json"), "--run", "x"]) == 2
    assert "expected NAME=RUN.json" in capsys.readouterr().err
    assert main(["retrieval", "fuse", "--run", str(tmp_path / "weak.json"), "--out", str(tmp_path / "f.json")]) == 2


def test_imports_without_ranx_or_scipy():
    """GPU machines lack ranx: runs, retrieval_eval and significance import and compute metrics without it."""
    import subprocess
    import sys
    code = ("import sys; sys.modules['ranx'] = None; sys.modules['scipy'] = None; sys.modules['numba'] = None\n"
            "import numpy as np\n"
            "from artcap_lib import stats as significance\n"
            "from artcap_lib.retrieval import runs\n"
            "run = runs.run_from_scores(np.eye(3), list('abc'), list('abc'))\n"
            "assert runs.evaluate_run(run, runs.identity_qrels('abc'))['mrr'] == 1.0\n"
            "assert significance.randomisation_test(np.ones(3), np.zeros(3), 10) < 1\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def _write(path, obj):
    path.write_text(json.dumps(obj))
    return str(path)


def test_bad_run_files_and_arguments_are_one_line_errors(tmp_path, capsys):
    """Each of these was a traceback: precision@0 (ZeroDivisionError), a non-UTF-8 run, compare over one query
    (the paired tests' ValueError), fuse over runs of different queries (ranx: "Runs 0 and 0 ...")."""
    from artcap_lib.cli import main
    a = _write(tmp_path / "a.json", {"q1": {"d1": 1.0, "d2": 0.5}, "q2": {"d1": 0.2, "d2": 0.9}})
    b = _write(tmp_path / "b.json", {"q1": {"d1": 1.0}})
    qrels = _write(tmp_path / "qrels.json", {"q1": {"d1": 1}, "q2": {"d2": 1}})
    one = _write(tmp_path / "one.json", {"q1": {"d1": 1}})
    (tmp_path / "bad.json").write_bytes(b'\xff\xfe{"q1": {}}')
    cases = [
        (["evaluate", "--run", a, "--qrels", qrels, "--metrics", "precision@0"], "k must be at least 1"),
        (["evaluate", "--run", str(tmp_path / "bad.json"), "--qrels", qrels], r"bad.json: not UTF-8 \(byte 0"),
        (["compare", "--qrels", one, "--run", f"x={b}", "--run", f"y={b}"], "need at least 2 queries"),
        (["fuse", "--run", a, "--run", b, "--out", str(tmp_path / "f.json")],
         r"a.json and .*b.json rank different queries: 1 only in the first \(e.g. \['q2'\]\)"),
    ]
    for args, message in cases:
        assert main(["retrieval", *args]) != 0, args
        err = capsys.readouterr().err
        assert re.search(message, err), (args, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
