"""Experiment 2 from the authors' stored runs: every stored mean to 1e-9, and their RRF fusion runs."""
import json
from pathlib import Path

import pytest

from artcap_lib import reference
from artcap_lib.retrieval import runs
from artcap_lib.cli import main
from artcap_lib.config import RunPaths

STORED = [(model, query_set, variant) for model in runs.REFERENCE_MODELS for query_set in runs.REFERENCE_QUERY_SETS
          for variant in runs.REFERENCE_VARIANTS]


def stored_paths(model, query_set, variant):
    base = f"results/retrieval_experiment/{runs.REFERENCE_MODELS[model]}/{runs.REFERENCE_QUERY_SETS[query_set]}"
    name = runs.REFERENCE_VARIANTS[variant]
    means = next(f"{base}/{name}_{s}.json" for s in ("means", "mean") if f"{base}/{name}_{s}.json" in reference.SHA256)
    return reference.reference_file(f"{base}/{name}_scores.json"), reference.load_json(means)


@pytest.mark.parametrize("model, query_set, variant", STORED)
def test_cli_evaluate_prints_the_stored_means(reference_dir, capsys, model, query_set, variant):
    run, stored = stored_paths(model, query_set, variant)
    qrels = reference.reference_file("results/retrieval_experiment/qrel.json")
    assert main(["retrieval", "evaluate", "--run", str(run), "--qrels", str(qrels)]) == 0
    printed = dict(line.split() for line in capsys.readouterr().out.splitlines())
    assert set(stored) == {"precision@1", "mrr"}
    for metric, value in stored.items():
        assert abs(float(printed[metric]) - value) <= 1e-9, (metric, printed[metric], value)


def test_reference_experiment2_results_file(reference_dir, tmp_path):
    paths = RunPaths(tmp_path / "run", tmp_path / "figures")
    results = runs.reference_experiment2(paths, bootstrap=50, randomisation=100)
    assert json.loads((paths.retrieval / "reference_results.json").read_text()) == results
    assert set(results["models"]) == {"blip", "longclip"}
    for model, block in results["models"].items():
        assert block["schema"] == runs.SCHEMA and block["source"] == "reference"
        for query_set in ("artpedia", "llama"):
            qs = block["query_sets"][query_set]
            assert qs["n_queries"] == 333
            for variant in runs.REFERENCE_VARIANTS:
                entry = qs["variants"][variant]
                assert entry["stored_max_abs_diff"] <= 1e-9, (model, query_set, variant)
                assert entry["metrics"]["recall@1"] == entry["metrics"]["precision@1"]
            assert Path(paths.retrieval / qs["variants"][runs.FUSED]["run"]).is_file()
        # the authors fused the Artpedia-query runs only: ours must equal theirs score for score
        check = block["query_sets"]["artpedia"]["fusion_check"][runs.FUSED]
        assert check["same_documents"] and check["max_abs_score_diff"] <= 1e-12
        fused = block["query_sets"]["artpedia"]["variants"][runs.FUSED]["metrics"]
        assert fused == pytest.approx(check["stored_metrics"], abs=1e-12)
    # the authors' headline comparison: BLIP on Artpedia queries, human-ft vs LLaVA-ft MRR (their paired t-test)
    row = next(r for r in results["models"]["blip"]["query_sets"]["artpedia"]["significance"]
               if (r["a"], r["b"], r["metric"]) == ("human", "synthetic", "mrr"))
    assert 0.0005 < row["p_ttest"] < 0.0011
