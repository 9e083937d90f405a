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
