#!/usr/bin/env bash
# Sourced by fit_gpu.sh and ab_gpu.sh on a lent GPU machine, carrying .whl (prepare.sh): builds
# llama-cpp-python with CUDA for Hopper (about 5-6 minutes on 16 cores) into /tmp/site with the
# carried wheels, then installs quanttui there. A warm machine keeps /tmp/site, so a second call
# within its idle time skips the build. Exports PYTHONPATH and PYTHONUNBUFFERED. PYTHON and SITE
# override the interpreter and the folder (to try the scripts' flow on a machine that has a build).
py=${PYTHON:-python3}
site=${SITE:-/tmp/site}
if [ ! -f "$site/llama_cpp/__init__.py" ]; then
    ls .whl/llama_cpp_python-*.tar.gz >/dev/null || { echo "no .whl: run bench/device/prepare.sh here, carry .whl"; exit 2; }
    export CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCH:-90} -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF"
    export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
    echo "building llama-cpp-python with CUDA ($CMAKE_ARGS)"
    "$py" -m pip install -q --no-index --no-deps --no-build-isolation --target "$site" .whl/*.tar.gz .whl/*.whl
    echo "built in ${SECONDS} s"
fi
"$py" -m pip install -q --no-index --no-deps --no-build-isolation --target "$site" --upgrade .
export PYTHONPATH="$site" PYTHONUNBUFFERED=1
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv,noheader
else
    echo "no nvidia-smi: no NVIDIA GPU here"
fi
