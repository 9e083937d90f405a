#!/usr/bin/env bash
# The test command: creates/updates .venv, then runs the whole test suite offline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# The authors' published artefacts for the parity tests: a local mirror when one is beside the checkout (never
# committed here), else fetched once into the cache (SHA-256-checked; offline, it says so and the run ends with
# the list of skipped parity tests). ARTCAP_NO_FETCH=1: never go online.
if [ -z "${ARTCAP_REFERENCE_DIR:-}" ] && [ -d ../shared/reference/artwork-caption-gen ]; then
  export ARTCAP_REFERENCE_DIR=$(cd ../shared/reference/artwork-caption-gen && pwd)
fi
if [ -z "${ARTCAP_REFERENCE_DIR:-}" ] && [ -z "${ARTCAP_NO_FETCH:-}" ]; then
  .venv/bin/python scripts/fetch_reference.py || true
fi
exec .venv/bin/python -m pytest "$@"
