#!/usr/bin/env bash
# Moves the lock: resolves pyproject.toml's dependencies (with the dev extra) afresh and writes
#   requirements.lock   every direct and transitive dependency at one exact version, with hashes, for Linux and
#                       Python 3.11-3.13 (uv's universal resolution: a package whose version must differ by Python
#                       version gets one line per version, with markers); scripts/setup.sh installs it
#   environment.yml     conda's pip section, the same pins without hashes (pip cannot mix hashed and unhashed
#                       requirements in one call, and conda installs the project editable beside them)
# torch is resolved at constraints.txt's version but left out of the lock, with the CUDA runtime wheels it pulls on
# Linux: setup installs the pinned torch first (the CPU wheel here, a CUDA build on a GPU machine, README) and the
# lock's packages around it. Needs network (PyPI). Run it after editing the dependencies, then commit both files;
# tests/test_lock.py fails while pyproject.toml and the lock disagree.
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION=0.13.9                 # the resolver is pinned too: another uv may resolve the same inputs differently
UV=${UV:-.venv/bin/uv}
if ! "$UV" --version 2>/dev/null | grep -q "^uv $UV_VERSION"; then
  .venv/bin/pip install -q --disable-pip-version-check "uv==$UV_VERSION"
  UV=.venv/bin/uv
fi
compile() {
  "$UV" pip compile pyproject.toml --extra dev --universal --python-version 3.11 -c constraints.txt \
    --no-emit-package torch "$@"
}
# torch's Linux CUDA runtime (nvidia-*, cuda-*, triton) is whatever the installed torch build needs, never locked
mapfile -t cuda < <(compile --no-header --no-annotate -q | sed -n 's/^\(nvidia-[^=]*\|cuda-[^=]*\|triton\)==.*/\1/p')
skip=()
for name in "${cuda[@]}"; do skip+=(--no-emit-package "$name"); done
deps_hash=$(.venv/bin/python -m artcap_lib.lockfile --pyproject-hash)
{
  echo "# requirements.lock: written by scripts/lock.sh (uv $UV_VERSION, universal, Python >= 3.11, Linux); do not edit."
  echo "# pyproject-dependencies-sha256: $deps_hash"
  echo "# torch is not here: constraints.txt pins it and scripts/setup.sh installs it first."
  compile "${skip[@]}" --generate-hashes --no-header -q
} > requirements.lock.tmp
mv requirements.lock.tmp requirements.lock
.venv/bin/python -m artcap_lib.lockfile --write-environment environment.yml
echo "lock: requirements.lock and environment.yml written ($(grep -c '==' requirements.lock) pins)"
