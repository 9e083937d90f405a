#!/usr/bin/env bash
# Creates/updates .venv at the repository root with everything artcap needs, offline-capable afterwards.
# torch goes in first and pinned: an unpinned torch (or torchvision/timm/open-clip) pulls several GB of CUDA wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_VERSION=$(sed -n 's/^torch==//p' constraints.txt)

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
if ! .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  echo "setup: installing torch==$TORCH_VERSION"
  .venv/bin/pip install -q --disable-pip-version-check "torch==$TORCH_VERSION"
fi
if [ -n "${ARTCAP_UNLOCKED:-}" ]; then
  # the newest releases pyproject.toml allows: how to try next year's packages (the manifest then shows the drift)
  echo "setup: installing artcap and the newest allowed dependencies (ARTCAP_UNLOCKED set: not the lock)"
  .venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
else
  # requirements.lock: every dependency at the version the project was tested with, hash-checked (scripts/lock.sh
  # moves it); torch is not in it (installed above), so a locked package that wanted another torch fails here
  # instead of pulling a CUDA build
  echo "setup: installing the locked dependencies (requirements.lock) and artcap"
  .venv/bin/pip install -q --disable-pip-version-check --require-hashes -r requirements.lock
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -e .
fi

# Java runs pycocoevalcap's PTB tokenizer, METEOR 1.5 and SPICE.
if ! command -v java >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing a Java runtime (apt)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends default-jre-headless >/dev/null
  else
    echo "setup: WARNING no java on PATH and no root to install it: the 'coco' metrics backend will not run" >&2
  fi
fi

# Debian's headless Chromium + its chromedriver, for the JupyterLab browser test (tests/test_report_jupyterlab.py;
# skipped with the reason where they are absent). Never a downloaded browser. Optional: a failure only warns.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing chromium and chromium-driver (apt) for the JupyterLab browser test"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        chromium chromium-driver >/dev/null; } || echo "setup: WARNING chromium install failed: the browser test will be skipped" >&2
  else
    echo "setup: note: no /usr/bin/chromium + /usr/bin/chromedriver and no root: the browser test will be skipped" >&2
  fi
fi

# WordNet for NLTK's METEOR, from Debian's packages, into .venv/nltk_data (a path NLTK searches by default).
bash scripts/install_wordnet.sh .venv/nltk_data
# A named kernel for JupyterLab and papermill that is this .venv's Python.
.venv/bin/python -m ipykernel install --sys-prefix --name artcap --display-name "artcap (.venv)" >/dev/null
# Notebook hygiene: Lab saves the numbered notebooks without outputs, git stores every notebook without them.
PYTHON="$PYTHON" bash scripts/install_nbclean.sh
echo "setup: done (.venv ready)"
