"""The papermill runner, on notebook 01 of the demo profile (small sizes, a temporary run directory)."""
import json

import nbformat
import pytest

from artcap_lib.artpedia import load_artworks
from artcap_lib.cli import main
from artcap_lib.paths import NOTEBOOKS_DIR
from artcap_lib.runner import list_notebooks, select_notebooks

SMALL = ["--set", "data.demo_train=16", "--set", "data.demo_val=4", "--set", "data.demo_test=6",
         "--set", "data.demo_pretrain=8", "--set", "data.demo_image_size=32"]


def test_select_notebooks_by_number():
    names = [NOTEBOOKS_DIR / f"0{i}_x.ipynb" for i in range(1, 7)]
    assert [p.name[:2] for p in select_notebooks(names, only=["3", "05"])] == ["03", "05"]
    assert [p.name[:2] for p in select_notebooks(names, start="02", stop="04")] == ["02", "03", "04"]
    with pytest.raises(ValueError, match="no notebook numbered 09"):
        select_notebooks(names, only=["09"])


def test_reproduce_runs_notebook_01_and_writes_a_manifest(tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = main(["reproduce", "--profile", "demo", "--only", "01", "--no-progress",
                 "--set", f"run_dir={run_dir}", *SMALL])
    assert code == 0, capsys.readouterr().err
    executed = nbformat.read(run_dir / "01_data_prep.ipynb", as_version=4)
    assert any(c.get("outputs") for c in executed.cells if c.cell_type == "code")
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "data.demo_train" in injected[0].source
    artworks = load_artworks(run_dir / "data" / "artworks.json")
    assert len(artworks) == 26
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["profile"] == "demo" and manifest["parameters"]["data"]["demo_train"] == 16
    assert manifest["notebooks"]["01_data_prep"]["wall_s"] > 0
    assert manifest["seeds"] == {"seed": 0} and "torch" in manifest["packages"]
    assert "cpu_count" in manifest["device"] and "commit" in manifest["git"]
    assert set(manifest["input_hashes"]) == {"demo.yaml", "data/artworks.json", "data/splits.json"}


def test_a_failing_notebook_stops_the_run_naming_notebook_cell_and_error(tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = main(["reproduce", "--profile", "demo", "--no-progress", "--set", f"run_dir={run_dir}",
                 "--set", "data.source=nowhere"])
    assert code == 1
    err = capsys.readouterr().err
    assert "01_data_prep.ipynb failed in cell" in err
    assert "ValueError: data.source must be demo, artpedia or reference, not 'nowhere'" in err
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["failed"]["notebook"] == "01_data_prep.ipynb"
    assert not any(name > "01" for name in manifest["notebooks"])      # nothing after the failure ran


def test_a_bad_profile_fails_before_any_notebook(tmp_path, capsys):
    assert main(["reproduce", "--set", "captioning.batch_size=big", "--set", f"run_dir={tmp_path}"]) == 2
    assert "batch_size must be int" in capsys.readouterr().err
    assert not (tmp_path / "manifest.json").exists()


def test_notebooks_are_committed_without_outputs_and_take_profile_parameters():
    notebooks = list_notebooks()
    assert notebooks and notebooks[0].name == "01_data_prep.ipynb"
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), f"{path.name} has outputs"
        params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
        assert len(params) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
        names = {line.split("=")[0].strip() for line in params[0].source.splitlines() if "=" in line}
        assert names == {"profile", "overrides"}, f"{path.name}: parameters are {names}"
        assert nb.metadata.kernelspec.name == "artcap"
