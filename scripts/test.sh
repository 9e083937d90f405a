#!/usr/bin/env bash
# The test command: creates/updates .venv, then runs the whole test suite offline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# The authors' published artefacts: a local mirror when one is beside the checkout (never committed here).
if [ -z "${ARTCAP_REFERENCE_DIR:-}" ] && [ -d ../shared/reference/artwork-caption-gen ]; then
  export ARTCAP_REFERENCE_DIR=$(cd ../shared/reference/artwork-caption-gen && pwd)
fi
exec .venv/bin/python -m pytest "$@"
