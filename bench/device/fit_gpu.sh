#!/usr/bin/env bash
# On a lent GPU machine, carrying .whl: fit's estimate against measured GPU memory for the no-GQA
# shape (bench/gpu_fit_check.py --shapes 7b-mha-like: half the layers offloaded with a q8_0 cache and
# flash attention, and its two controls). Its 13 GiB F16 source is written while llama-cpp-python
# builds; no run starts after about 8 minutes into the call. Results: $OUT/gpu_fit_check.json and
# $OUT/fit_gpu.txt.
#   bash bench/device/fit_gpu.sh [SHAPES]   # default 7b-mha-like; any of bench/gpu_fit_check.py's
# FIT_ARGS adds arguments (FIT_ARGS=--dry-run tries the flow on a CPU; see build.sh for PYTHON, SITE).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp/fit_gpu_out}
mkdir -p "$out"
shapes=${1:-7b-mha-like}
work=/tmp/gpu_fit_check
# The sources need only gguf and numpy: write them (from the carried gguf wheel) during the build.
if [ ! -f "${SITE:-/tmp/site}/llama_cpp/__init__.py" ]; then
    mkdir -p /tmp/prep && "${PYTHON:-python3}" -m pip install -q --no-index --no-deps --target /tmp/prep .whl/gguf-*.whl
    PYTHONPATH=/tmp/prep "${PYTHON:-python3}" bench/gpu_fit_check.py --prepare --shapes "$shapes" --work "$work" \
        >"$out/prepare.txt" 2>&1 &
    prep=$!
fi
source bench/device/build.sh
[ -n "${prep:-}" ] && { wait "$prep" || { cat "$out/prepare.txt"; exit 1; }; }
left=$((500 - SECONDS))
echo "fit check with ${left} s to start runs in"
"$py" bench/gpu_fit_check.py --shapes "$shapes" --work "$work" --out "$out" --deadline "$left" ${FIT_ARGS:-} \
    2>&1 | tee "$out/fit_gpu.txt"
