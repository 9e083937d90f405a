"""Notebook 06's library (report, figures) on small run directories built with the documented schemas."""
import pandas as pd
import pytest

from artcap_lib.report import readme, run_figures, step, tables
from artcap_lib.report.inputs import RunInputs
from artcap_lib.config import ProfileError
from artcap_lib.files import read_json
from artcap_lib.notebook import setup
from report_rundir import METRIC_MEANS, SECOND, SECOND_SHIFT, make_run_dir


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    overrides = make_run_dir(tmp_path_factory.mktemp("report"))
    cfg, paths = setup("demo", overrides)
    return cfg, paths, step.run(cfg, paths)


def test_tables_figures_results_and_readme_are_written(full_run):
    cfg, paths, built = full_run
    assert built.inputs.missing == []
    for name in ("table1_experiment1", "table2_experiment2"):
        md, tex = (paths.tables / f"{name}.md").read_text(), (paths.tables / f"{name}.tex").read_text()
        assert md.count("\n|") >= 4
        assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex and "\\begin{table}" in tex
    one_captioner = set(run_figures.FIGURES) - {"fig_captioners"}       # the comparison needs two captioners
    for name in one_captioner:
        for fmt in ("png", "pdf"):
            assert (paths.figures / f"{name}.{fmt}").stat().st_size > 1000, (name, fmt)
    results = read_json(paths.root / "results.json")
    assert results["profile"] == "demo" and results["missing"] == []
    assert set(results["figures"]) == one_captioner
    assert [c["name"] for c in results["captioners"]] == ["pocket-llava"]
    assert results["captioners"][0]["variant"] == "synthetic"
    assert [(m["name"], m["has_results"]) for m in results["retrieval_models"]] == [("blip", True),
                                                                                   ("longclip", True)]
    page = (paths.figures / "README.md").read_text()
    assert "profile `demo`" in page and "## Table 2" in page and "fig_retrieval.png" in page
    assert "Not produced" not in page


def test_results_json_holds_every_table_number(full_run):
    cfg, paths, built = full_run
    results = read_json(paths.root / "results.json")
    exp1 = {r["metric"]: r for r in results["experiment1"]["metrics"]}
    summary = read_json(paths.metrics / "summary.json")
    assert set(exp1) == set(summary["metrics"])
    for metric, mean in METRIC_MEANS.items():
        assert exp1[metric]["mean"] == pytest.approx(mean)
        assert exp1[metric]["control"] == pytest.approx(mean / 2)
    cells = {(c["model"], c["variant"], c["metric"]): c for c in results["experiment2"]["cells"]}
    for model in ("blip", "longclip"):
        stored = read_json(paths.retrieval_results(model))["query_sets"]["artpedia"]["variants"]
        for variant in ("baseline", "human", "synthetic"):
            for metric in tables.TABLE2_METRICS:
                assert cells[(model, variant, metric)]["value"] == stored[variant]["metrics"][metric]
    # the fixture's scores: human-ft finds every image first, the baseline last, synthetic half of them first
    assert cells[("blip", "human", "precision@1")]["value"] == 1.0
    assert cells[("blip", "baseline", "precision@1")]["value"] == 0.0
    assert cells[("blip", "synthetic", "precision@1")]["value"] == 0.5


def test_table_cells_show_the_numbers_with_ci_and_marks(full_run):
    cfg, paths, built = full_run
    t1 = built.table1.set_index("metric")
    assert t1.loc["BERTScore F1", "synthetic vs human, mean [95% CI]"] == "0.812 [0.750, 0.875]"
    assert t1.loc["CIDEr-D", "shuffled pairs, mean"] == "0.250"
    assert "authors' mean" not in t1.columns            # the demo has no authors' values
    t2 = built.table2
    human = t2[t2[("variant", "")] == "human-ft"].iloc[0]
    assert human[("Artpedia queries", "P@1")] == "1.000\u2020"          # 6 of 6 vs 0 of 6: p < 0.05
    baseline = t2[t2[("variant", "")] == "baseline"].iloc[0]
    assert baseline[("Artpedia queries", "MRR")].startswith("0.")
    assert "\u2020" not in baseline[("Artpedia queries", "MRR")]
    assert list(t2[("model", "")]) == ["BLIP", "", "", "Long-CLIP", "", ""]
    tex = (paths.tables / "table2_experiment2.tex").read_text()
    assert "1.000$^{\\dagger}$" in tex


def _results(variants, significance=(), stored=None):
    """A results.json (runs' schema) with one query set."""
    entries = {v: {"metrics": dict(m), "ci95": {k: [x - 0.1, x + 0.1] for k, x in m.items()}, "n_queries": 10}
               for v, m in variants.items()}
    for v, values in (stored or {}).items():
        entries[v]["stored"] = values
    return {"schema": "artcap.retrieval.results/1", "model": "blip", "source": "reference" if stored else "artcap",
            "metrics": ["precision@1", "mrr"], "settings": {"depth": 100},
            "query_sets": {"artpedia": {"n_queries": 10, "variants": entries, "significance": list(significance)}}}


def _test(a, b, metric, p_t, p_r=0.5):
    return {"a": a, "b": b, "metric": metric, "mean_a": 0, "mean_b": 0, "p_ttest": p_t, "p_randomisation": p_r}


def test_significance_marks_follow_the_chosen_test_and_alpha():
    metrics = {"precision@1": 0.5, "mrr": 0.6}
    results = _results({"baseline": metrics, "human": metrics, "synthetic": metrics},
                       [_test("baseline", "human", "mrr", 0.01), _test("baseline", "synthetic", "mrr", 0.2),
                        _test("human", "synthetic", "mrr", 0.04, p_r=0.3)])
    inputs = RunInputs(experiment2={"blip": results})
    marks = {(r["variant"], r["metric"]): r["marks"] for r in tables.table2_records(inputs, metrics=("mrr",))}
    assert marks == {("baseline", "mrr"): "", ("human", "mrr"): "\u2020", ("synthetic", "mrr"): "\u2021"}
    marks = {(r["variant"], r["metric"]): r["marks"]
             for r in tables.table2_records(inputs, test="randomisation", metrics=("mrr",))}
    assert marks[("human", "mrr")] == "" and marks[("synthetic", "mrr")] == ""
    marks = {(r["variant"], r["metric"]): r["marks"]
             for r in tables.table2_records(inputs, alpha=0.03, metrics=("mrr",))}
    assert marks[("human", "mrr")] == "\u2020" and marks[("synthetic", "mrr")] == ""


def test_reference_cells_show_ours_beside_the_authors_stored_value():
    ours = {"precision@1": 0.5795795795795796, "recall@5": 0.8228, "mrr": 0.6853913308017379}
    results = _results({"human": ours}, stored={"human": {"precision@1": 0.5795795795795796,
                                                          "mrr": 0.6853913308017379}})
    inputs = RunInputs(experiment2={"blip": results})
    records = tables.table2_records(inputs)
    table = tables.table2(records, decimals=4)
    row = table.iloc[0]
    assert row[("Artpedia queries", "P@1")] == "0.5796 (0.5796)"
    assert row[("Artpedia queries", "R@5")] == "0.8228"            # the authors stored no R@5
    assert ("Artpedia queries", "R@10") not in table.columns       # not in these results at all
    parity = tables.table2_parity(inputs)
    assert set(parity["metric"]) == {"precision@1", "mrr"} and parity["max abs diff"].max() == 0.0


def test_table1_shows_the_authors_mean_when_the_summary_has_parity():
    summary = {"metrics": {"rouge1_f": {"backend": "paper", "mean": 0.19, "ci95": [0.18, 0.2],
                                        "control_mean": 0.12, "corpus": None},
                           "coco_cider": {"backend": "coco", "mean": 0.05, "ci95": [0.04, 0.06],
                                          "control_mean": 0.01, "corpus": None}},
               "parity": {"source": "metrics/LlamaCaptioner.tsv", "n_rows": 2173,
                          "metrics": {"rouge1_f": {"theirs_mean": 0.1899, "max_abs_diff": 0.0}}}}
    table = tables.table1(tables.table1_records(summary), decimals=4).set_index("metric")
    assert table.loc["ROUGE-1 F1", "authors' mean"] == "0.1899"
    assert table.loc["CIDEr-D", "authors' mean"] == "–"
    assert "corpus-level" not in table.columns
    assert "ROUGE P/R labels corrected" in tables.table1_notes(summary)


def test_missing_steps_are_reported_not_raised(tmp_path):
    overrides = make_run_dir(tmp_path, steps=())
    cfg, paths = setup("demo", overrides)
    built = step.run(cfg, paths)
    assert built.table1 is None and built.table2 is None and built.figures == {}
    text = "\n".join(built.inputs.missing)
    for needed in ("step 03", "step 04", "step 05", "step 02", "training curves", "gallery"):
        assert needed in text, needed
    assert not paths.tables.exists() or not any(paths.tables.iterdir())
    results = read_json(paths.root / "results.json")
    assert results["experiment1"] is None and results["experiment2"] is None
    assert "## Not produced in this run" in (paths.figures / "README.md").read_text()


def test_a_bad_significance_test_name_is_an_error_when_the_profile_loads(tmp_path):
    with pytest.raises(ProfileError, match="report.significance_test: 'wilcoxon' is not one of ttest, randomisation"):
        setup("demo", {"run_dir": str(tmp_path / "run"), "report.significance_test": "wilcoxon"})


def test_markdown_flattens_two_header_levels():
    frame = pd.DataFrame([["BLIP", "0.5"]], columns=pd.MultiIndex.from_tuples([("model", ""), ("Artpedia", "P@1")]))
    text = tables.markdown(frame)
    assert "Artpedia · P@1" in text and "| model" in text


def test_paper_profile_cells_take_the_authors_runs_evaluated_like_ours():
    ours = _results({"human": {"precision@1": 0.6, "recall@5": 0.8}})
    theirs = _results({"human": {"precision@1": 0.5795795795795796, "recall@5": 0.8228228228228228}})
    inputs = RunInputs(experiment2={"blip": ours}, authors2={"blip": theirs})
    row = tables.table2(tables.table2_records(inputs)).iloc[0]
    assert row[("Artpedia queries", "P@1")] == "0.600 (0.580)"
    assert row[("Artpedia queries", "R@5")] == "0.800 (0.823)"
    assert "evaluated the same way" in tables.table2_notes(inputs, "ttest", 0.05)


def test_readme_reports_parity_with_the_authors():
    summary = {"metrics": {"rouge1_f": {"backend": "paper", "mean": 0.19, "ci95": [0.18, 0.2], "control_mean": 0.1}},
               "parity": {"metrics": {"rouge1_f": {"theirs_mean": 0.19, "max_abs_diff": 2e-7,
                                                   "fraction_exact": 1.0}}}}
    results = {"profile": "reference", "generated_at": "now", "run_dir": "/run", "git": {}, "device": {},
               "notebooks": {}, "figures": {}, "missing": [], "experiment2": None,
               "experiment1": {"n_pairs": 2173, "split": "train", "captioner": "llava",
                               "metrics": tables.table1_records(summary)}}
    text = readme.readme(results, None, None)
    assert "## Parity with the authors' values" in text and "- ROUGE-1 F1: 2e-07, 100.0% exact" in text
    assert "Experiment 1 (2173 train pairs, llava vs human)" in text


def test_readme_says_whether_the_packages_were_the_locked_ones_and_where_the_recipe_departs():
    results = {"profile": "paper", "generated_at": "now", "run_dir": "/run", "git": {}, "device": {},
               "notebooks": {}, "figures": {}, "missing": [], "experiment2": None, "experiment1": None,
               "lock": {"matches": False, "checked": 178,
                        "differing": {"transformers": {"locked": "5.25.0", "installed": "5.30.1"}}},
               "departures_from_sources": {"captioning.batch_size": {"value": 32, "source_value": 1, "source": "x"}}}
    text = readme.readme(results, None, None)
    assert "- packages: 1 differ from requirements.lock: transformers 5.30.1 (locked 5.25.0)" in text
    assert "`captioning.batch_size` = 32 (source: 1)" in text
    results["lock"] = {"matches": True, "checked": 178, "differing": {}}
    assert "- packages: as locked (requirements.lock, 178 packages)" in readme.readme(results, None, None)


@pytest.fixture(scope="module")
def two_captioners(tmp_path_factory):
    overrides = make_run_dir(tmp_path_factory.mktemp("report2"), second=True)
    cfg, paths = setup("demo", overrides)
    return cfg, paths, step.run(cfg, paths)


def test_two_captioners_are_compared_in_a_table_a_figure_and_results_json(two_captioners):
    cfg, paths, built = two_captioners
    assert built.inputs.missing == []
    assert set(built.results["figures"]) == set(run_figures.FIGURES)
    assert (paths.tables / "captioner_comparison.md").is_file() and (paths.tables / "captioner_comparison.tex").is_file()
    first, second = built.results["captioners"]
    assert (first["name"], first["variant"]) == ("pocket-llava", "synthetic")
    assert (second["name"], second["variant"], second["prompt"]) == (SECOND, f"synthetic-{SECOND}", "Describe")
    # Experiment 1: the second captioner's means are the first's + SECOND_SHIFT; the paired test sees the shift
    for metric, mean in METRIC_MEANS.items():
        assert first["experiment1"]["metrics"][metric]["mean"] == pytest.approx(mean)
        assert second["experiment1"]["metrics"][metric]["mean"] == pytest.approx(mean + SECOND_SHIFT)
        assert first["experiment1"]["metrics"][metric]["p_vs_first"] is None
        assert second["experiment1"]["metrics"][metric]["p_vs_first"] < 1e-6
    # Experiment 2: synthetic P@1 0.5, the second captioner's 4 of 6 = 0.667, human-ft 1.0 beside each
    for model in ("blip", "longclip"):
        a, b = first["experiment2"][model]["artpedia"]["precision@1"], second["experiment2"][model]["artpedia"]["precision@1"]
        assert (a["value"], a["human"]) == (0.5, 1.0)
        assert b["value"] == pytest.approx(4 / 6) and b["human"] == 1.0
        stored = read_json(paths.retrieval_results(model))["query_sets"]["artpedia"]["significance"]
        p = next(t["p_ttest"] for t in stored if {t["a"], t["b"]} == {"human", f"synthetic-{SECOND}"}
                 and t["metric"] == "precision@1")
        assert b["p_vs_human"] == p and b["significant"] == (p < cfg.report.alpha)
    shown = built.captioners.set_index(("captioner", ""))
    assert shown.loc[SECOND, ("BLIP · Artpedia queries", "P@1")].startswith("0.667")
    assert shown.loc["human (Experiment 2: human-ft)", ("BLIP · Artpedia queries", "P@1")].startswith("1.000")
    assert "## Captioners compared" in (paths.figures / "README.md").read_text()
    # the further captioner's variant is in Table 2 too, labelled by its captioner
    assert f"{SECOND}-ft" in set(built.table2[("variant", "")])
