"""Cold start: the first Conv2D forward + backward in a fresh process, with an empty Numba cache.

    PYTHONPATH=src python benchmarks/bench_cold_start.py [--rounds 3] [--json out.json]

Each round starts two fresh processes (``python -W error``) that share one new, empty
``NUMBA_CACHE_DIR``:

1. **cold**: ``import handprop``, then one ``Conv2D(16, 3, padding="same")`` forward + backward on
   a (2, 8, 32, 32) float32 batch on the numba engine (the default), timed: the kernels it needs
   compile in the calling thread, and the process prints one line saying so on stderr (recorded);
2. **warm**: the same in a second process, which finds the kernels in the cache.

Reported: import time and the first forward + backward (wall and CPU). Issue 20: a fresh
install's first step may take a few seconds, a cached one <= 0.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

CHILD = r"""
import json, time
t0, c0 = time.perf_counter(), time.process_time()
import numpy as np
import handprop as hp
t1, c1 = time.perf_counter(), time.process_time()
layer = hp.layers.Conv2D(16, 3, padding="same")
x = np.random.default_rng(0).standard_normal((2, 8, 32, 32)).astype(np.float32)
y = layer.forward(x)
layer.backward(np.ones_like(y))
t2, c2 = time.perf_counter(), time.process_time()
print(json.dumps({"import_s": t1 - t0, "first_step_s": t2 - t1, "first_step_cpu_s": c2 - c1}))
"""


def one(cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    env["PYTHONPATH"] = os.path.join(ROOT, "src") + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-W", "error", "-c", CHILD], env=env, capture_output=True, text=True,
                          timeout=900)
    other = [line for line in proc.stderr.splitlines() if not line.startswith("handprop: compiling")]
    if proc.returncode != 0 or other:
        raise RuntimeError(f"cold-start child failed or printed to stderr:\n{proc.stderr[-3000:]}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "note": proc.stderr.strip()}


def bench(rounds, log=print):
    out = {"cold": [], "warm": [], "loads": []}
    for r in range(rounds):
        cache = tempfile.mkdtemp(prefix="handprop-numba-cache-")
        try:
            before = os.getloadavg()[0]
            out["cold"].append(one(cache))
            out["warm"].append(one(cache))
            out["loads"].append((before, os.getloadavg()[0]))
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        c, w = out["cold"][-1], out["warm"][-1]
        log(f"  round {r + 1}/{rounds}: cold first step {c['first_step_s']:.2f} s, "
            f"warm {w['first_step_s']:.2f} s; import {c['import_s']:.2f} s; "
            f"load {out['loads'][-1][0]:.1f}->{out['loads'][-1][1]:.1f}")
    return out


def summarize(out):
    med = lambda runs, key: float(np.median([r[key] for r in runs]))
    return {"cold_first_step_s": med(out["cold"], "first_step_s"), "cold_first_step_cpu_s": med(out["cold"],
            "first_step_cpu_s"), "cold_first_step_max_s": max(r["first_step_s"] for r in out["cold"]),
            "warm_first_step_s": med(out["warm"], "first_step_s"), "import_s": med(out["cold"], "import_s"),
            "warm_note": out["warm"][0]["note"],
            "load": [min(min(p) for p in out["loads"]), max(max(p) for p in out["loads"])],
            "note": out["cold"][0]["note"]}  # fmt: skip


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    s = summarize(bench(a.rounds))
    print(json.dumps(s, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(s, f, indent=1)
    return s


if __name__ == "__main__":
    main()
