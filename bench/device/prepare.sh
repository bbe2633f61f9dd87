#!/usr/bin/env bash
# Fills .whl/ (git-ignored) for a run on a lent GPU machine, which has no network: llama-cpp-python's
# source cut to fit what one call carries (64 MiB; the whole sdist is about 76 MB), and the wheels
# that machine lacks (gguf and the small pure-Python packages quanttui's core needs; textual and its
# parsers for bench/ab.py's A/B screen figure). Versions are this virtualenv's. Run it here, where
# PyPI answers; then run bench/device/fit_gpu.sh and ab_gpu.sh there, carrying .whl (README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
py=${PYTHON:-.venv/bin/python}
[ -x "$py" ] || py=python3
version_of() { "$py" -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null || echo "${2:-}"; }
version=$(version_of llama_cpp_python 0.3.36)
rm -rf .whl
mkdir -p .whl/src
"$py" -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$version" -d .whl/src
wheels=()
for p in gguf platformdirs diskcache send2trash textual rich markdown-it-py mdit-py-plugins linkify-it-py \
    mdurl typing-extensions; do
    v=$(version_of "$p")
    wheels+=("$p${v:+==$v}")
done
"$py" -m pip download -q --no-deps --only-binary :all: "${wheels[@]}" -d .whl
tar -xzf ".whl/src/llama_cpp_python-$version.tar.gz" -C .whl/src
src=".whl/src/llama_cpp_python-$version"
vendor="$src/vendor/llama.cpp"
# What a CUDA build of the library never compiles: model conversion scripts, docs, the web UI,
# benchmarks and the other GPU backends.
rm -rf "$vendor"/{models,docs,tools/ui,benches,media,gguf-py,examples/*/assets}
rm -rf "$vendor"/ggml/src/ggml-{vulkan,opencl,sycl,cann,musa,kompute,webgpu,zdnn,hexagon}
tar -czf ".whl/llama_cpp_python-$version.tar.gz" -C .whl/src "llama_cpp_python-$version"
rm -rf .whl/src
du -sh .whl
ls .whl
