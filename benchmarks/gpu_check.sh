#!/usr/bin/env bash
# GPU check for the cupy engine, on a machine with a CUDA GPU and the project's dependencies
# (numpy, numba, cupy-cuda12x; torch with CUDA optional). Under five minutes:
#   1. make handprop importable (editable install without deps, else PYTHONPATH=src),
#   2. run the GPU tests on real CuPy (`-m gpu`: every cupy kernel vs the reference engine, float64
#      gradient checks through the layers, whole models; HANDPROP_FAKE_CUPY=0 keeps the NumPy
#      stand-in tests/fake_cupy out, so a missing GPU is a skip, not a pass on the CPU),
#   3. benchmark S3 with N=64: cupy engine vs numba engine (vs torch CUDA when available).
#
#   bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}

if ! $PY -m pip install --no-deps --no-build-isolation -q -e . >/dev/null 2>&1; then
    echo "(editable install failed; using PYTHONPATH=src)"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

$PY - <<'PY'
import handprop.backend as b
cp = b.cupy_module()
if cp is None:
    raise SystemExit("CuPy with a usable CUDA GPU not found: pip install cupy-cuda12x")
props = cp.cuda.runtime.getDeviceProperties(0)
print("CuPy", cp.__version__, "on", props["name"].decode(), f"({props['totalGlobalMem'] / 2**30:.0f} GiB)")
PY

echo "== GPU tests"
HANDPROP_FAKE_CUPY=0 timeout 200 $PY -m pytest -q -m gpu tests/ -p no:cacheprovider

echo "== GPU benchmark"
timeout 150 $PY benchmarks/bench_gpu.py --reps 20
