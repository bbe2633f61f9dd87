#!/usr/bin/env bash
# On a lent GPU machine, carrying .whl (prepare.sh): A/B on the GPU with bench/ab.py --gpu (all layers
# offloaded): A/B wall against the slower model alone (goal <= 1.15x) and tokens/s against raw
# llama-cpp-python (goal >= 95%). Builds first unless a warm machine has the build (build.sh).
#   bash bench/device/ab_gpu.sh build        # the build alone (one call)
#   bash bench/device/ab_gpu.sh 7b [REPEAT]  # the bench; 7b writes an 11 GiB random F16 first
# quanttui.core (llama_cpp first) is imported before ab.py runs: this CUDA build crashed when numpy came first.
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/device/build.sh
[ "${1:-build}" = build ] && exit 0
"$py" -c 'import sys, runpy; import quanttui.core; sys.argv = ["bench/ab.py", *sys.argv[1:]]; runpy.run_path("bench/ab.py", run_name="__main__")' \
    --gpu --shape "$1" --repeat "${2:-3}" 2>&1 | tee "${OUT:-.}/ab_gpu_$1.txt"
