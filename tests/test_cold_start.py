"""A fresh process with an empty Numba cache: the first steps run at once on the numpy engine while
the numba kernels compile in a background thread (handprop/kernels/numba_cpu/_lazy.py), and the
process can exit at any time. (The speed of this is benchmarks/bench_cold_start.py's business.)"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("numba")

CHILD = textwrap.dedent("""
    import json, threading
    import numpy as np
    import handprop as hp
    from handprop.kernels import numba_cpu

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 8, 20, 20)).astype(np.float32)
    layer = hp.layers.Conv2D(16, 3, padding="same")           # a Winograd geometry on the numba engine
    y = layer.forward(x)
    dx = layer.backward(np.cos(y))
    status = numba_cpu.status()                                # right after the first step
    with hp.engine("numpy"):
        y_np = layer.forward(x)
        dx_np = layer.backward(np.cos(y_np))
    threads = {t.name: t.daemon for t in threading.enumerate() if t.name.startswith("handprop-numba-compile")}
    print(json.dumps({"same_as_numpy": bool(np.array_equal(y, y_np) and np.array_equal(dx, dx_np)),
                      "status": status, "note": numba_cpu.compiling(), "threads": threads,
                      "engine": hp.get_engine()}))
""")


def test_first_steps_run_on_numpy_while_numba_compiles_and_exit_is_clean(tmp_path):
    cache = tmp_path / "numba-cache"
    cache.mkdir()
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    run = subprocess.run([sys.executable, "-W", "error", "-c", CHILD], capture_output=True, text=True, env=env,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stderr == ""  # no warning, no traceback from the compiling thread at exit
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["engine"] == "numba"
    # the first step did not wait for Numba: it ran the numpy engine's kernels (the very same bits) ...
    assert "convolution" not in out["status"]["float32"]["ready"]
    assert out["same_as_numpy"]
    # ... while a daemon thread compiles (it never keeps the process alive), and compiling() says so
    assert out["threads"] and all(out["threads"].values())
    assert "compiling the numba engine's kernels" in out["note"] and "float32" in out["note"]
