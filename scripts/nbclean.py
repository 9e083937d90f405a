#!/usr/bin/env python3
"""Notebook hygiene: the project's notebooks are saved and stored without outputs or volatile metadata.

JupyterLab autosaves outputs, execution counts, timings and the kernel's language_info into the notebook file.
Two uses of one cleaning function, both installed by scripts/install_nbclean.sh (which scripts/setup.sh runs):

- `lab_pre_save_hook`, JupyterLab's pre-save hook (in the .venv's Jupyter config): Lab writes this checkout's
  numbered notebooks (notebooks/NN_*.ipynb) without outputs, so exploring leaves them byte-identical to the
  committed files and `git status` clean. Outputs stay on screen for the session; executed copies with outputs
  are the run directory's (or File > Save Notebook As elsewhere).
- a git clean filter (named in .gitattributes) for every other way a notebook gets outputs (another editor,
  `jupyter nbconvert --inplace`): `git diff` and commits see only real edits. git alone cannot make `git status`
  clean there: it reports a file whose size changed as modified without running the filter, until `git add`
  (which stages nothing) refreshes it; hence the hook for Lab.

    python3 scripts/nbclean.py < notebook.ipynb > cleaned.ipynb     # what git runs on `git add` / `git diff`

Standard library only, so any python3 runs it (git runs it outside the .venv). Anything that is not an
nbformat-4 notebook (a merge conflict's markers, a truncated file) is passed through unchanged: a filter must
never lose a byte of a file it does not understand.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

CELL_METADATA_KEPT = {"tags"}   # the project's policy, the same as the notebooks' jupytext filter "tags,-all"
NOTEBOOK_METADATA_DROPPED = {   # written by Lab, papermill or editors on save; none is part of a notebook's meaning
    "language_info", "widgets", "signature", "papermill", "vscode", "execution", "toc", "varInspector",
}


def clean(nb: dict) -> dict:
    nb["metadata"] = {k: v for k, v in nb.get("metadata", {}).items() if k not in NOTEBOOK_METADATA_DROPPED}
    for cell in nb.get("cells", []):
        cell["metadata"] = {k: v for k, v in cell.get("metadata", {}).items() if k in CELL_METADATA_KEPT}
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    return nb


def dumps(nb: dict) -> str:
    """nbformat's own serialisation (nbformat.writes), so that a notebook Lab saves and its cleaned copy differ
    only in what was cleaned."""
    return json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def clean_text(text: str) -> str:
    try:
        nb = json.loads(text)
    except ValueError:
        return text
    if not isinstance(nb, dict) or nb.get("nbformat") != 4 or not isinstance(nb.get("cells"), list):
        return text
    return dumps(clean(nb))


NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NUMBERED = re.compile(r"[0-9][0-9]_.*\.ipynb")


def lab_pre_save_hook(model, path, contents_manager, **kwargs):
    """jupyter_server's ContentsManager.pre_save_hook: cleans a numbered notebook of this checkout before Lab
    writes it. Any other notebook (a scratch one, the executed copies in a run directory, another checkout's)
    is saved as it is."""
    if model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
        return
    os_path = Path(contents_manager.root_dir, path.lstrip("/")).resolve()
    if os_path.parent == NOTEBOOKS_DIR and NUMBERED.fullmatch(os_path.name):
        clean(model["content"])


def main() -> int:
    data = sys.stdin.buffer.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        sys.stdout.buffer.write(data)
        return 0
    sys.stdout.buffer.write(clean_text(text).encode("utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
