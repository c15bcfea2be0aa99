#!/usr/bin/env bash
# CI, packaging (issue 22): the wheel, installed in a fresh venv outside the checkout, runs the demos
# and the notebooks' imports; the same venv without Numba runs the core tests; the documentation
# builds with zero warnings; a JupyterLite site of the notebooks builds. Run from the repository root after `make test` (it reuses .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
step() { echo "== $1 ($(( SECONDS - START )) s since the last step)"; START=$SECONDS; }
START=$SECONDS
WORK=$(mktemp -d /tmp/handprop-ci-XXXXXX)
trap 'rm -rf "$WORK"' EXIT

make wheel > "$WORK/wheel.log" 2>&1 || { tail -60 "$WORK/wheel.log"; exit 1; }
grep -E "^Successfully built|PASSED|FAILED" "$WORK/wheel.log"
WHEEL=$(ls "$ROOT"/dist/handprop-*-py3-none-any.whl)
step "wheel built and checked: $(basename "$WHEEL")"

python3 -m venv "$WORK/venv"
V="$WORK/venv/bin"
"$V/python" -m pip install --quiet "$WHEEL"
step "installed in a fresh venv ($WORK/venv)"

cd "$WORK"   # outside the checkout: nothing can come from src/ or the repository's folders
env -u PYTHONPATH "$V/python" "$ROOT/.ci/wheel_smoke.py" "$ROOT/notebooks" numba
env -u PYTHONPATH "$V/handprop" demo digits --epochs 1 --no-gallery --out digits
env -u PYTHONPATH "$V/handprop" demo --epochs 1 --steps 2 --out vessels
test -s vessels/metrics.json -a -s vessels/model.safetensors
PHOTO=$("$V/python" -c "import handprop.data, pathlib; print(pathlib.Path(handprop.data.__file__).parent / 'fundus_photo.jpg')")
env -u PYTHONPATH "$V/handprop" predict vessels/model.safetensors "$PHOTO" --out predicted
test -s predicted/probabilities.npz
step "smoke test of the installed wheel (import, notebooks' imports, demo digits, demo, predict)"

# Numba removed after installing, as on a platform without it: the numpy engine, said once.
"$V/python" -m pip uninstall --quiet --yes numba llvmlite
"$V/python" -m pip install --quiet "pytest>=7" "hypothesis>=6"
env -u PYTHONPATH "$V/python" -c "import handprop" 2> engine.txt
grep -q "the default engine is 'numpy'" engine.txt && test "$(wc -l < engine.txt)" -eq 1
env -u PYTHONPATH "$V/python" "$ROOT/.ci/wheel_smoke.py" "$ROOT/notebooks" numpy 2>/dev/null
cd "$ROOT"
env -u PYTHONPATH "$V/python" -m pytest -q -p no:cacheprovider \
    tests/test_without_numba.py tests/test_layers_foundation.py tests/test_conv_layers.py tests/test_model.py \
    tests/test_graph.py tests/test_saving.py tests/test_optimizers.py tests/test_losses.py tests/test_engine_numpy.py \
    tests/test_engines.py tests/test_gradcheck.py tests/test_training.py tests/test_doctests.py tests/test_cli.py
step "core tests in the venv without Numba (the installed wheel)"

make docs
test -s docs/_build/html/index.html
step "documentation site (make docs, zero warnings)"

make lite > "$WORK/lite.log" 2>&1 || { tail -60 "$WORK/lite.log"; exit 1; }
test -s docs/_build/lite/index.html && ls docs/_build/lite/pypi/handprop-*-py3-none-any.whl
test "$(ls docs/_build/lite/files/*.ipynb | wc -l)" -ge 7
step "JupyterLite site of the notebooks (make lite; offline build, Pyodide from its CDN in the browser)"
