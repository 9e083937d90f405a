"""Notebook hygiene (scripts/nbclean.py, installed by scripts/install_nbclean.sh from scripts/setup.sh): exploring
in JupyterLab leaves `git status` clean, no commit or diff carries outputs from any editor, real edits still show."""
import asyncio
import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
spec = importlib.util.spec_from_file_location("nbclean", ROOT / "scripts" / "nbclean.py")
nbclean = importlib.util.module_from_spec(spec)
spec.loader.exec_module(nbclean)


def git(repo, *args, check=True):
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, check=False)
    if check and done.returncode:
        raise AssertionError(f"git {' '.join(args)}: {done.stderr}")
    return done.stdout


@pytest.fixture
def clone(tmp_path):
    """A git checkout holding the project's notebooks, scripts/nbclean.py and .gitattributes, with its (out of tree)
    .venv's Jupyter config, both installed by scripts/install_nbclean.sh as scripts/setup.sh does."""
    repo = tmp_path / "repo"
    (tmp_path / "venv").mkdir()
    (repo / "scripts").mkdir(parents=True)
    (repo / "notebooks").mkdir()
    for name in ("nbclean.py", "install_nbclean.sh"):
        shutil.copy(ROOT / "scripts" / name, repo / "scripts" / name)
    for name in (".gitattributes", ".gitignore"):       # .gitignore: Lab's .ipynb_checkpoints/
        shutil.copy(ROOT / name, repo / name)
    for path in NOTEBOOKS:
        shutil.copy(path, repo / "notebooks" / path.name)
    git(repo, "init", "-q")
    subprocess.run(["bash", str(repo / "scripts" / "install_nbclean.sh"), str(repo)], check=True,
                   env={**os.environ, "VENV": str(tmp_path / "venv")})
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "notebooks")
    assert git(repo, "status", "--porcelain") == ""
    return repo


def lab(repo):
    """JupyterLab's server-side contents manager (the class `jupyter lab` uses) rooted at the checkout, configured
    from the .venv's Jupyter config the installer wrote: what Lab's autosave calls."""
    from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
    from traitlets.config.loader import PyFileConfigLoader
    config = PyFileConfigLoader("jupyter_server_config.py", path=str(repo.parent / "venv" / "etc" / "jupyter")).load_config()
    return AsyncLargeFileManager(config=config, root_dir=str(repo))


def lab_save(repo, relpath, nb):
    manager = lab(repo)
    asyncio.run(manager.save({"type": "notebook", "format": "json", "content": nb}, relpath))


def add_outputs(nb):
    """What running a notebook puts in it: outputs of every kind, counts, timings, collapsed outputs, the kernel's
    language_info, widget state."""
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.7", "mimetype": "text/x-python"}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    for n, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        cell.execution_count = n + 1
        cell.metadata["execution"] = {"iopub.execute_input": "2026-01-01T00:00:00Z"}
        cell.metadata["scrolled"] = True
        cell.metadata["jupyter"] = {"outputs_hidden": False}
        cell.outputs = [
            nbformat.v4.new_output("stream", name="stdout", text="hello\n"),
            nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}),
            nbformat.v4.new_output("execute_result", data={"text/plain": "42"}, execution_count=n + 1),
            nbformat.v4.new_output("error", ename="ValueError", evalue="x", traceback=["ValueError: x"]),
        ]
    return nb


def explore_elsewhere(path: Path) -> None:
    """A notebook run and saved by an editor other than the .venv's Lab (written by nbformat.write)."""
    nbformat.write(add_outputs(nbformat.read(path, as_version=4)), path)


def test_the_committed_notebooks_are_what_the_filter_stores():
    """A fresh checkout is clean: every notebook is a fixed point of the filter (no outputs, nbformat's layout).
    If this fails, run `bash scripts/install_nbclean.sh` and `git add` the notebook: the filter rewrites it."""
    assert NOTEBOOKS
    for path in NOTEBOOKS:
        text = path.read_text(encoding="utf-8")
        assert nbclean.clean_text(text) == text, f"{path.name} is not stored as the filter stores it"


def test_exploring_in_lab_leaves_git_status_clean(clone):
    for path in NOTEBOOKS:
        relpath = f"notebooks/{path.name}"
        lab_save(clone, relpath, add_outputs(nbformat.read(clone / relpath, as_version=4)))
        committed = git(clone, "show", f"HEAD:{relpath}")
        assert (clone / relpath).read_text(encoding="utf-8") == committed, f"Lab wrote {path.name} with outputs"
    assert git(clone, "status", "--porcelain") == ""


def test_lab_keeps_the_outputs_of_any_other_notebook(clone, tmp_path):
    nb = add_outputs(nbformat.read(clone / "notebooks" / NOTEBOOKS[0].name, as_version=4))
    for relpath in ("notebooks/scratch.ipynb", "elsewhere/01_copy.ipynb"):
        (clone / relpath).parent.mkdir(exist_ok=True)
        lab_save(clone, relpath, nb)
        saved = json.loads((clone / relpath).read_text(encoding="utf-8"))
        assert any(c.get("outputs") for c in saved["cells"] if c["cell_type"] == "code"), relpath


def test_a_kernel_run_saved_by_lab_leaves_git_status_clean(clone):
    """The same with what a kernel really writes (nbclient, as Lab's Run All) on a small numbered notebook."""
    from nbclient import NotebookClient
    relpath = "notebooks/99_probe.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('hi')\n40 + 2"),
                                         nbformat.v4.new_markdown_cell("notes")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, clone / relpath)
    git(clone, "add", relpath)
    git(clone, "commit", "-q", "-m", "probe")
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    assert nb.cells[0].outputs and nb.metadata.get("language_info")
    lab_save(clone, relpath, nb)
    assert git(clone, "status", "--porcelain") == ""


def test_outputs_from_another_editor_reach_no_diff_and_no_commit(clone):
    for path in NOTEBOOKS:
        explore_elsewhere(clone / "notebooks" / path.name)
    assert git(clone, "diff") == ""
    # git reports a file whose size changed as modified without running the filter; `git add` refreshes it and
    # stages nothing, since the cleaned file is the committed one.
    git(clone, "add", "notebooks")
    assert git(clone, "status", "--porcelain") == "" and git(clone, "diff", "--cached") == ""
    nb = json.loads((clone / "notebooks" / NOTEBOOKS[0].name).read_text(encoding="utf-8"))
    assert any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")   # the working file keeps them


def test_a_commit_never_carries_outputs_but_real_edits_show(clone):
    path = clone / "notebooks" / NOTEBOOKS[0].name
    nb = add_outputs(nbformat.read(path, as_version=4))
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    first_code.source += "\n# an edit"
    first_code.metadata.setdefault("tags", []).append("explored")
    nbformat.write(nb, path)
    assert git(clone, "status", "--porcelain").split() == ["M", f"notebooks/{path.name}"]
    assert "# an edit" in git(clone, "diff") and "outputs_hidden" not in git(clone, "diff")
    git(clone, "add", str(path))
    stored = json.loads(git(clone, "show", f":notebooks/{path.name}"))
    code = [c for c in stored["cells"] if c["cell_type"] == "code"]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    assert "# an edit" in "".join(code[0]["source"]) and "explored" in code[0]["metadata"]["tags"]
    assert "language_info" not in stored["metadata"] and "artcap" in stored["metadata"]   # artcap.needs kept


def test_the_filter_passes_what_it_does_not_understand_through():
    conflict = '<<<<<<< HEAD\n{"cells": []}\n=======\n{}\n>>>>>>> other\n'
    assert nbclean.clean_text(conflict) == conflict
    assert nbclean.clean_text('{"nbformat": 3, "worksheets": []}') == '{"nbformat": 3, "worksheets": []}'
    assert nbclean.clean_text("") == ""


def test_each_notebook_calls_its_stages_one_entry_point():
    """The notebook <-> module map is uniform: notebook NN runs its stage with `<stage module>.run(cfg, paths...)`."""
    import re
    import nbformat
    from artcap_lib.runner import list_notebooks
    stage = {"01": "data.step", "02": "captioning.step", "03": "textmetrics.step", "04": "retrieval.experiment",
             "05": "retrieval.experiment", "06": "report.step"}
    for path in list_notebooks():
        source = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        module = stage[path.name[:2]]
        package, name = module.rsplit(".", 1)
        alias = re.search(rf"from artcap_lib\.{package} import [^\n]*\b{name}\b(?: as (\w+))?", source)
        assert alias, (path.name, module)
        name = alias.group(1) or name
        assert re.search(rf"\b{name}\.run\(cfg, paths\b", source), (path.name, name)
