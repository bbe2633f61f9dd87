#!/usr/bin/env bash
# On a lent GPU machine, carrying .whl (bench/device/prepare.sh): build llama-cpp-python with CUDA
# (about 5-6 minutes on 16 cores), then measure A/B on the GPU with bench/ab.py. The build lands in
# /tmp/site, which a warm machine keeps, so a second call within its idle time skips it.
#   bash bench/device/ab_gpu.sh build        # the build alone (one call)
#   bash bench/device/ab_gpu.sh 3b [REPEAT]  # the bench (a 7b shape writes a 13 GiB file first)
set -euo pipefail
cd "$(dirname "$0")/../.."
site=/tmp/site
if [ ! -f "$site/llama_cpp/__init__.py" ]; then
    export CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCH:-90} -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF"
    export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-16}
    python3 -m pip install -q --no-index --no-deps --no-build-isolation --target "$site" .whl/*.tar.gz .whl/*.whl
fi
python3 -m pip install -q --no-index --no-deps --no-build-isolation --target "$site" --upgrade .
[ "${1:-build}" = build ] && exit 0
nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv
PYTHONPATH="$site" python3 bench/ab.py --gpu --shape "$1" --repeat "${2:-3}" | tee "${OUT:-.}/ab_gpu_$1.txt"
