"""scripts/check_results.py, CI's expected-results check: it must fail on every kind of change and pass within
tolerance; the committed expected files must be well-formed and satisfy their own invariants."""
import copy
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "check_results.py"
spec = importlib.util.spec_from_file_location("check_results", SCRIPT)
check_results = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_results)

RESULTS = {
    "generated_at": "2026-01-01T00:00:00",          # not kept: timestamps never matter
    "experiment1": {"n_pairs": 60, "metrics": [
        {"backend": "paper", "metric": "rouge1_f", "mean": 0.42, "authors": 0.42},
        {"backend": "paper", "metric": "bleu4", "mean": 0.0155, "authors": None},
    ]},
    "experiment2": {"cells": [
        {"model": "blip", "variant": "human", "metric": "mrr", "value": 0.2097, "marks": "†"},
        {"model": "blip", "variant": "baseline", "metric": "mrr", "value": 0.1431, "marks": ""},
    ]},
}
EXPECTED = {
    "files": {"results.json": {
        "records": {"experiment1.metrics": ["backend", "metric"], "experiment2.cells": ["model", "variant", "metric"]},
        "keep": ["experiment1.n_pairs", "experiment1.metrics[*].mean", "experiment1.metrics[*].authors",
                 "experiment2.cells[*].value", "experiment2.cells[*].marks"]}},
    "tolerances": [{"keys": "*n_pairs", "abs": 0, "why": "a count"},
                   {"keys": ["*.mean", "*.value"], "abs": 0.01, "why": "test"}],
    "invariants": [{"keys": "results.json:experiment1.metrics[backend=paper,metric=rouge*].mean",
                    "sibling": "authors", "abs": 1e-12, "min_matches": 1, "why": "parity"}],
}


def write_run(tmp_path, results):
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / "results.json").write_text(json.dumps(results), encoding="utf-8")
    return run


@pytest.fixture
def expected_file(tmp_path):
    """An expected file written by --update from RESULTS, the way a real one is made."""
    path = tmp_path / "expected.json"
    path.write_text(json.dumps(EXPECTED), encoding="utf-8")
    assert check_results.main([str(path), str(write_run(tmp_path, RESULTS)), "--update"]) == 0
    return path


def run_check(tmp_path, expected_file, results, *extra):
    run = write_run(tmp_path, results)
    return check_results.main([str(expected_file), str(run / "results.json"), *extra])


def test_update_writes_the_kept_values_by_record_identity(expected_file):
    values = json.loads(expected_file.read_text())["values"]
    assert values == {
        "results.json:experiment1.n_pairs": 60,
        "results.json:experiment1.metrics[backend=paper,metric=rouge1_f].mean": 0.42,
        "results.json:experiment1.metrics[backend=paper,metric=rouge1_f].authors": 0.42,
        "results.json:experiment1.metrics[backend=paper,metric=bleu4].mean": 0.0155,
        "results.json:experiment1.metrics[backend=paper,metric=bleu4].authors": None,
        "results.json:experiment2.cells[model=blip,variant=human,metric=mrr].value": 0.2097,
        "results.json:experiment2.cells[model=blip,variant=human,metric=mrr].marks": "†",
        "results.json:experiment2.cells[model=blip,variant=baseline,metric=mrr].value": 0.1431,
        "results.json:experiment2.cells[model=blip,variant=baseline,metric=mrr].marks": "",
    }


def test_the_same_run_passes_and_reordered_records_and_timestamps_do_not_matter(tmp_path, expected_file):
    assert run_check(tmp_path, expected_file, RESULTS) == 0
    moved = copy.deepcopy(RESULTS)
    moved["experiment2"]["cells"].reverse()
    moved["generated_at"] = "2027-06-30T12:00:00"
    assert run_check(tmp_path, expected_file, moved) == 0


def test_a_number_within_tolerance_passes(tmp_path, expected_file):
    near = copy.deepcopy(RESULTS)
    near["experiment2"]["cells"][0]["value"] += 0.009           # abs 0.01 allowed
    assert run_check(tmp_path, expected_file, near) == 0
    assert run_check(tmp_path, expected_file, near, "--exact") == 1   # but not on the same machine


def test_a_number_outside_tolerance_fails(tmp_path, expected_file, capsys):
    far = copy.deepcopy(RESULTS)
    far["experiment2"]["cells"][0]["value"] += 0.011
    assert run_check(tmp_path, expected_file, far) == 1
    assert "CHANGED  results.json:experiment2.cells[model=blip,variant=human,metric=mrr].value" in capsys.readouterr().out


def test_a_changed_count_or_string_fails(tmp_path, expected_file, capsys):
    changed = copy.deepcopy(RESULTS)
    changed["experiment1"]["n_pairs"] = 61                        # counts are exact
    assert run_check(tmp_path, expected_file, changed) == 1
    changed = copy.deepcopy(RESULTS)
    changed["experiment2"]["cells"][1]["marks"] = "†"             # a significance mark that appears
    assert run_check(tmp_path, expected_file, changed) == 1
    changed = copy.deepcopy(RESULTS)
    changed["experiment1"]["metrics"][1]["authors"] = 0.0155      # null -> number is a change
    assert run_check(tmp_path, expected_file, changed) == 1
    out = capsys.readouterr().out
    assert "n_pairs: 61 vs expected 60" in out and "marks: '†' vs expected ''" in out


def test_a_missing_key_fails(tmp_path, expected_file, capsys):
    missing = copy.deepcopy(RESULTS)
    del missing["experiment2"]["cells"][1]                          # a dropped cell
    assert run_check(tmp_path, expected_file, missing) == 1
    assert "MISSING  results.json:experiment2.cells[model=blip,variant=baseline,metric=mrr].value" in capsys.readouterr().out
    renamed = copy.deepcopy(RESULTS)
    renamed["experiment1"]["metrics"][0]["metric"] = "rouge1_f1"   # a renamed metric: missing + new
    assert run_check(tmp_path, expected_file, renamed) == 1
    out = capsys.readouterr().out
    assert "MISSING  results.json:experiment1.metrics[backend=paper,metric=rouge1_f].mean" in out
    assert "NEW      results.json:experiment1.metrics[backend=paper,metric=rouge1_f1].mean" in out


def test_a_missing_file_fails(tmp_path, expected_file, capsys):
    run = tmp_path / "empty"
    run.mkdir()
    assert check_results.main([str(expected_file), str(run)]) == 1
    assert "cannot read" in capsys.readouterr().out


def test_a_broken_invariant_fails_and_blocks_update(tmp_path, expected_file, capsys):
    broken = copy.deepcopy(RESULTS)
    broken["experiment1"]["metrics"][0]["authors"] = 0.43          # parity lost, our value unchanged
    assert run_check(tmp_path, expected_file, broken) == 1
    assert "INVARIANT" in capsys.readouterr().out
    before = expected_file.read_text()
    assert check_results.main([str(expected_file), str(write_run(tmp_path, broken)), "--update"]) == 1
    assert expected_file.read_text() == before


def test_an_invariant_that_matches_nothing_fails():
    inv = [{"keys": "results.json:experiment2.cells[*,metric=precision@1].value", "sibling": "authors",
            "min_matches": 12, "why": "parity"}]
    assert check_results.check_invariants(inv, {}) != []


def test_patterns_are_literal_but_for_the_star():
    pattern = check_results.compile_pattern("a.cells[*,metric=mrr].value")
    assert pattern.match("a.cells[model=blip,metric=mrr].value")
    assert not pattern.match("a.cells[model=blip,metric=mrr].values")
    assert not check_results.compile_pattern("a.b").match("aXb")


def test_duplicate_records_are_refused():
    with pytest.raises(ValueError, match="two records"):
        check_results.flatten({"cells": [{"m": "a", "v": 1}, {"m": "a", "v": 2}]}, {"cells": ["m"]})


def test_the_command_line_exit_codes(tmp_path, expected_file):
    run = write_run(tmp_path, RESULTS)
    ok = subprocess.run([sys.executable, str(SCRIPT), str(expected_file), str(run)], capture_output=True, text=True)
    assert ok.returncode == 0 and "check_results: ok" in ok.stdout
    bad = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "nope.json"), str(run)], capture_output=True)
    assert bad.returncode == 2


@pytest.mark.parametrize("name", ["demo_results.json", "reference_results.json"])
def test_the_committed_expected_files_are_well_formed(name):
    expected = json.loads((ROOT / "tests" / "expected" / name).read_text(encoding="utf-8"))
    assert expected["values"], "an expected file without values checks nothing"
    assert all(rule.get("why") for rule in expected["tolerances"]), "every tolerance says why"
    assert all(inv.get("why") for inv in expected["invariants"])
    assert check_results.check_invariants(expected["invariants"], expected["values"]) == []
    # Nothing machine- or time-specific is kept: such a value would fail on every other machine.
    for key in expected["values"]:
        assert not any(word in key for word in ("generated_at", "run_dir", "figures_dir", "wall_s", "seconds",
                                                "git.", "device.", "hash", "platform"))
