#!/usr/bin/env bash
# One prepared GPU check: set up with the gpu extra, run the GPU tests, then every benchmarks/gpu_*.py script
# (gpu_distributed_forecast.py: the forecast stage as Ray Data actors holding the model on the GPU).
# Usage on a machine with a CUDA GPU:  bash benchmarks/gpu_check.sh
# Each script prints its figures and ends with one JSON line; results are collected in $OUT (or ./bench-out).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-bench-out}"; mkdir -p "$out"
bash scripts/setup.sh --dev
.venv/bin/python -m pip install --quiet "cupy-cuda12x>=14" || { echo "gpu_check: cupy install failed"; exit 1; }
.venv/bin/python -c "import cupy; print('gpu_check: device', cupy.cuda.runtime.getDeviceProperties(0)['name'])" \
    || { echo "gpu_check: no usable CUDA device"; exit 1; }
export RAY_AUTH_MODE=disabled
rc=0
.venv/bin/python -m pytest -q -m gpu tests 2>&1 | tee "$out/gpu_tests.txt" || rc=1
for script in benchmarks/gpu_*.py; do
    [[ -e "$script" ]] || continue
    name=$(basename "$script" .py)
    echo "== $name"
    timeout 300 .venv/bin/python "$script" 2>&1 | tee "$out/$name.txt" || rc=1
done
exit $rc
