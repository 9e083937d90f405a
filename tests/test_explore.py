"""The run explorer's data layer (artcap_lib/report/explore.py), the JupyterLab explorer built on it and
`artcap explore`, on a small run of two captioners whose retrieval scores are known (tests/report_rundir.py)."""
import json
import os
import shutil

import pandas as pd
import pytest

from artcap_lib.cli import main as artcap
from artcap_lib.config import RunPaths, load_profile
from artcap_lib.files import read_json
from artcap_lib.report import explore
from report_rundir import SECOND, make_run_dir


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    overrides = make_run_dir(tmp_path_factory.mktemp("explore") / "demo", second=True)
    cfg = load_profile("demo", overrides)
    paths = RunPaths.for_profile(cfg)
    return {"overrides": overrides, "cfg": cfg, "paths": paths, "view": explore.load(cfg, paths)}


def test_ranks_are_the_runs_and_average_to_results_json(run):
    view, paths = run["view"], run["paths"]
    n = len(view.table)
    # report_rundir: human-ft ranks every query's painting first, the baseline last, synthetic every other first
    assert (view.table["rank_blip_human"] == 1).all() and (view.table["rank_blip_baseline"] == n).all()
    assert list(view.table["rank_blip_synthetic"]) == [1.0 if k % 2 == 0 else float(n) for k in range(n)]
    assert (view.table[f"delta_blip_synthetic_{SECOND}"]
            == view.table[f"rank_blip_synthetic_{SECOND}"] - view.table["rank_blip_human"]).all()
    for model in ("blip", "longclip"):
        results = read_json(paths.retrieval_results(model))["query_sets"]["artpedia"]["variants"]
        for variant, entry in results.items():
            assert view.table[view.rank_column(model, variant, "artpedia")].mean() == entry["metrics"]["mean_rank"]
    assert view.variants["blip"] == ["baseline", "human", "synthetic", f"synthetic-{SECOND}"]
    # the query view's lists are the runs' heads, the relevant painting where the rank says
    for (model, variant, qs), tops in view.top.items():
        for q, docs in tops.items():
            assert docs.index(q) + 1 == view.table.loc[q, view.rank_column(model, variant, qs)]


def test_metric_columns_are_each_captioners_per_image_scores(run):
    view, paths = run["view"], run["paths"]
    first = pd.read_parquet(paths.metrics / "per_image.parquet")
    second = pd.read_parquet(paths.captioner_metrics(SECOND, primary=False) / "per_image.parquet")
    assert view.table.loc[first.index, "bleu4"].tolist() == first["bleu4"].tolist()
    assert view.table.loc[second.index, f"coco_cider__{SECOND}"].tolist() == second["coco_cider"].tolist()
    assert view.columns[f"coco_cider__{SECOND}"].backend == "coco" and view.columns["bleu4"].backend == "paper"
    assert view.captions[SECOND] and set(view.human) >= set(view.table.index)


def test_filter_is_an_expression_over_the_columns(run):
    view = run["view"]
    kept = view.filter("delta_blip_synthetic > 2 and bleu4 > 0")
    assert list(kept.index) == list(view.table.index[1::2])
    assert len(view.filter("  ")) == len(view.table)
    with pytest.raises(ValueError, match="no_such_column"):
        view.filter("no_such_column > 1")


def test_thumbnails_are_made_once_into_the_run(run):
    from PIL import Image
    view, paths = run["view"], run["paths"]
    thumbs = explore.thumbnails(view, paths)
    assert set(thumbs) == set(view.images) and all(t.parent == paths.thumbnails for t in thumbs.values())
    for thumb in thumbs.values():
        with Image.open(thumb) as im:
            assert max(im.size) <= explore.THUMB_SIDE and im.format == "JPEG"
    stamps = {i: t.stat().st_mtime_ns for i, t in thumbs.items()}
    explore.thumbnails(view, paths)
    assert {i: t.stat().st_mtime_ns for i, t in thumbs.items()} == stamps       # cached, not remade
    image = next(iter(view.images.values()))
    os.utime(image, (image.stat().st_atime, image.stat().st_mtime + 3600))   # edited after its thumbnail
    explore.thumbnails(view, paths)
    remade = [i for i, t in thumbs.items() if t.stat().st_mtime_ns != stamps[i]]
    assert remade == [next(iter(view.images))]                                 # a newer image is remade


def test_widgets_explorer_opens_a_painting_and_its_query(run):
    from artcap_lib.report.explore_widgets import Explorer
    view = run["view"]
    ui = Explorer(view, run["paths"])
    assert [v for _, v in ui.rows.options] == list(view.table.index)
    ui.filter.value = "delta_blip_synthetic > 2"
    assert [v for _, v in ui.rows.options] == list(view.filter("delta_blip_synthetic > 2").index)
    ui.filter.value = "delta_blip_synthetic >"
    assert "delta_blip_synthetic &gt;" in ui.status.value                     # the error is shown, rows kept
    ui.sort.value, ui.descending.value = "coco_cider", True
    painting = ui.rows.options[0][1]
    assert painting == view.filter("delta_blip_synthetic > 2")["coco_cider"].idxmax()
    ui.rows.value = painting
    assert ui.tabs.selected_index == 1 and view.human[painting] in ui.painting.value.replace("&#x27;", "'")
    assert "<td>blip</td><td>synthetic</td><td>6</td>" in ui.painting.value
    ui.to_query.click()
    assert ui.tabs.selected_index == 2 and ui.query_id.value == painting
    assert ui.query.value.count("class='column'") == 8 and "hit relevant" in ui.query.value
    assert "rank_blip_human" in ui.header.value and "rouge1_p " not in ui.header.value
    ui.shown_columns.value = ("rouge1_p",)                      # the rows show the columns picked
    assert "rouge1_p" in ui.header.value and "rank_blip_human" not in ui.header.value
    assert ui.rows.options[0][0].rstrip().endswith(f"{view.table.loc[ui.rows.options[0][1], 'rouge1_p']:.3f}")


def test_a_run_without_images_or_retrieval_is_explored_with_notes(tmp_path):
    overrides = make_run_dir(tmp_path / "demo", steps=("data", "captions"))
    cfg = load_profile("demo", overrides)
    paths = RunPaths.for_profile(cfg)
    shutil.rmtree(paths.images)
    view = explore.load(cfg, paths)
    assert any("no images" in n for n in view.notes) and any("no retrieval results" in n for n in view.notes)
    assert list(view.table.index) == sorted(view.table.index) and not view.models and view.captions
    out = tmp_path / "page.html"
    assert artcap(["explore", "--profile", "demo", "--set", f"run_dir={paths.root}", "--out", str(out)]) == 0
    data = json.loads(out.read_text().split('id="run-data">', 1)[1].split("</script>", 1)[0])
    assert data["thumbs"] == {} and not data["has_images"] and data["notes"] == view.notes


def test_cli_refuses_a_folder_that_holds_no_run(tmp_path, capsys):
    out = tmp_path / "page.html"
    assert artcap(["explore", "--profile", "demo", "--set", f"run_dir={tmp_path / 'nothing'}",
                   "--out", str(out)]) == 2
    assert "no run in" in capsys.readouterr().err and not out.exists()


def test_queried_paintings_missing_from_artworks_are_rows_without_text(tmp_path):
    # the reference profile's artworks.json holds the train split only; its runs query the test split
    from artcap_lib.files import write_json
    overrides = make_run_dir(tmp_path / "demo", steps=("data", "retrieval"))
    cfg = load_profile("demo", overrides)
    paths = RunPaths.for_profile(cfg)
    artworks = read_json(paths.artworks)
    test_ids = [i for i, a in artworks.items() if a["split"] == "test"]
    write_json(paths.artworks, {i: a for i, a in artworks.items() if a["split"] != "test"})
    view = explore.load(cfg, paths)
    assert sorted(view.table.index) == sorted(test_ids) and (view.table["split"] == "test").all()
    assert (view.table["rank_blip_human"] == 1).all()
    assert any(f"{len(test_ids)} queried test painting(s) are not in" in n for n in view.notes)
    assert view.queries["artpedia"][test_ids[0]].startswith(f"query {test_ids[0]} (")


def test_a_large_runs_page_holds_each_columns_extremes_and_a_seeded_sample(run, monkeypatch):
    from artcap_lib.report import explore_html
    view = run["view"]
    assert explore_html.page_paintings(view) == list(view.table.index)          # under the limit: every painting
    monkeypatch.setattr(explore_html, "EXTREMES", 1)
    kept = explore_html.page_paintings(view, limit=3)
    for name, column in view.columns.items():
        if column.kind in ("metric", "delta") and view.table[name].notna().any():
            values = view.table[name]
            assert values.idxmax() in kept and values.idxmin() in kept
    assert kept == [i for i in view.table.index if i in kept]                    # the table's order
    assert kept == explore_html.page_paintings(view, limit=3)                    # seeded: the same page twice
    monkeypatch.setattr(explore_html, "EXTREMES", 0)
    sample = explore_html.page_paintings(view, limit=3)
    assert len(sample) == 3
    data = explore_html.page_data(view, explore.thumbnails(view, run["paths"], sample), sample)
    assert data["ids"] == sample and data["partial"] and set(data["thumbs"]) == set(sample)
    assert set(data["human"]) == set(sample)
    assert {q for block in data["relevant"].values() for q in block} == set(sample)    # their own queries alone
    for key, tops in data["top"].items():
        assert set(tops) == set(sample)
        outside = {d for docs in tops.values() for d in docs} - set(sample)
        assert {d: view.table.loc[d, "title"] for d in outside}.items() <= data["titles"].items()
    assert any(n.startswith("This page holds 3 of the run's 6 paintings") for n in data["notes"])


def test_a_large_runs_heads_come_from_its_ranks_file_as_its_run_file_has_them(tmp_path, monkeypatch):
    """A streamed variant (ranks_<set>.npz beside its run): the explorer reads each query's head from the npz,
    and gets what parsing the run file gives."""
    from artcap_lib.bench import report_scale
    from artcap_lib.retrieval import runs
    report_scale.build(tmp_path, 300, seed=1, images=False)
    cfg, paths = report_scale.profile(tmp_path)
    for model in report_scale.MODELS:
        runs.summarise_model(paths.score_dir(model), bootstrap=20, randomisation=20, model=model)
    assert (paths.score_dir("blip") / "human" / "ranks_human.npz").is_file()
    fast = explore.load(cfg, paths)
    monkeypatch.setattr(runs, "streamed_top", lambda *args: None)
    slow = explore.load(cfg, paths)
    assert len(fast.top) == 6 and fast.top == slow.top
    assert fast.relevant == slow.relevant and fast.query_ranks == slow.query_ranks
    pd.testing.assert_frame_equal(fast.table, slow.table)


def test_report_benchmark_runs_every_phase_on_its_synthetic_run(tmp_path):
    # `artcap bench report`: what it writes and reports, not how fast
    from artcap_lib.bench import report_scale
    out = report_scale.benchmark(tmp_path, 120)
    assert all(out[p]["seconds"] > 0 and out[p]["peak_rss_mib"] > 0 for p in report_scale.PHASES)
    cfg, paths = report_scale.profile(tmp_path)
    results = read_json(paths.root / "results.json")
    assert results["experiment2"] and (paths.figures / "fig_retrieval.png").is_file()
    assert out["explore"]["rows"] == 120 and (paths.figures / explore.PAGE_NAME).is_file()
    from artcap_lib.retrieval import runs
    qrels = runs.identity_qrels(str(i) for i in range(1, 121))
    for variant in report_scale.VARIANTS:                   # every query ranked over all 120 paintings
        ids, ranks = runs.full_ranks(paths.score_dir("blip") / variant, "human", qrels)
        assert len(ids) == 120 and ranks.min() >= 1 and ranks.max() <= 120
