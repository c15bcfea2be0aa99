"""A fresh process with an empty Numba cache: the first step compiles the numba kernels it uses in
the calling thread (no other engine stands in, so the numbers never depend on timing), says so in
one line on stderr, and a second process that finds them in the disk cache prints nothing.
(The speed of this is benchmarks/bench_cold_start.py's business.)"""

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

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 8, 20, 20)).astype(np.float32)
    layer = hp.layers.Conv2D(16, 3, padding="same")           # a Winograd geometry on the numba engine
    layer.build((8, 20, 20), rng=np.random.default_rng(1))
    y = layer.forward(x)
    dx = layer.backward(np.cos(y))
    print(json.dumps({"y": y.ravel()[:50].tolist(), "dW": layer.grads["W"].ravel()[:50].tolist(),
                      "threads": sorted(t.name for t in threading.enumerate()), "engine": hp.get_engine()}))
""")


def test_first_step_compiles_in_the_calling_thread_and_says_so_once(tmp_path):
    cache = tmp_path / "numba-cache"
    cache.mkdir()
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    runs = [subprocess.run([sys.executable, "-W", "error", "-c", CHILD], capture_output=True, text=True, env=env,
                           timeout=300) for _ in range(2)]  # fmt: skip
    for run in runs:
        assert run.returncode == 0, run.stderr[-3000:]
    cold, warm = (json.loads(run.stdout.strip().splitlines()[-1]) for run in runs)
    # the empty cache: one line while Numba compiles, nothing else (no warning, no traceback)
    assert runs[0].stderr.startswith("handprop: compiling the numba kernels for float32")
    assert len(runs[0].stderr.splitlines()) == 1
    assert runs[1].stderr == ""  # loaded from the disk cache: nothing to say
    assert cold["engine"] == warm["engine"] == "numba"
    assert cold["threads"] == ["MainThread"] or all("compile" not in name for name in cold["threads"])
    assert cold["y"] == warm["y"] and cold["dW"] == warm["dW"]  # compiled or cached: the same numbers
