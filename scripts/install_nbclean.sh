#!/usr/bin/env bash
# Notebook hygiene (scripts/nbclean.py): JupyterLab saves this checkout's numbered notebooks without outputs, and
# git stores and compares every notebook without them. Usage: install_nbclean.sh [REPO] (default: this checkout).
# Both live outside the committed files (.venv's Jupyter config, .git/config: git takes no filter from a clone),
# which is why scripts/setup.sh runs this. VENV overrides where the Jupyter config goes (default REPO/.venv).
set -euo pipefail
repo=$(cd "${1:-$(dirname "$0")/..}" && pwd)
venv=${VENV:-$repo/.venv}
PYTHON=${PYTHON:-python3}

# 1. JupyterLab's pre-save hook, in the .venv's own Jupyter config (`.venv/bin/jupyter lab` reads it; a Jupyter
#    outside the .venv does not, and the git filter below still keeps its outputs out of diffs and commits).
if [ -d "$venv" ]; then
  mkdir -p "$venv/etc/jupyter"
  cat > "$venv/etc/jupyter/jupyter_server_config.py" <<PY
# Written by scripts/install_nbclean.sh: JupyterLab saves $repo/notebooks/NN_*.ipynb without outputs.
import importlib.util, os
_path = "$repo/scripts/nbclean.py"
if os.path.isfile(_path):   # a moved checkout: no hook rather than a server that does not start
    _spec = importlib.util.spec_from_file_location("artcap_nbclean", _path)
    _nbclean = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_nbclean)
    c.ContentsManager.pre_save_hook = _nbclean.lab_pre_save_hook
PY
fi

# 2. The git clean filter named in .gitattributes.
if git -C "$repo" rev-parse --git-dir >/dev/null 2>&1; then
  # git runs a filter from the top of the work tree, so the relative path holds from any subdirectory.
  git -C "$repo" config filter.nbclean.clean "$PYTHON scripts/nbclean.py"
else
  echo "setup: note: $repo is not a git checkout; no git filter for the notebooks" >&2
fi
