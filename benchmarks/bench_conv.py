"""Convolution forward + backward, every engine side by side with PyTorch, and peak memory.

    PYTHONPATH=src python benchmarks/bench_conv.py [--rounds 3] [--reps 10] [--threads 2] [--avx512]
                                                   [--blas default|haswell] [--skip-memory] [--json out.json]

**Speed.** The five shapes of issue 5 (S1-S5). One step = forward, then the three gradients
(input, weight, bias), float32. Each engine runs in its own fresh process (so one engine's
threads, caches and allocations never disturb another's), and the engines take turns: round 1
runs numpy, numba, ..., torch, round 2 again, and so on, so a slow minute on a shared machine
hits every engine alike. A process warms up (Numba compile, caches) before it times, then
reports the median of ``--reps`` steps per shape; the table shows the median over rounds::

    GFLOP/s = 3 * 2 N K C R S Ho Wo / time      (forward, dx and dW are one GEMM-sized job each)
    ratio   = time / PyTorch's time              (below 1: faster than PyTorch)

Every engine gets ``--threads`` threads (NUMBA_NUM_THREADS, OMP/OpenBLAS/MKL variables,
``torch.set_num_threads``); ``--blas`` picks OpenBLAS's kernels for handprop's engines as
``bench_unet.py`` explains (``default``: OpenBLAS's own choice; ``haswell``: OPENBLAS_CORETYPE=Haswell).
Engines alternate their order from round to round. ``--clock cpu`` compares CPU times instead of
wall times: with ``--threads 1`` on a loaded machine, that measures the work each engine does.
``--avx512`` adds a "numba-avx512" row: the numba engine compiled with LLVM's 512-bit vector
preference switched on (see ``benchmarks/README.md``).

**Memory.** One (1, 32, 584, 565) float32 image (a DRIVE retina), 32 filters 3 x 3 "same":
forward + backward in a fresh process per engine. Reported *above* the inputs (x, W, b, dy,
allocated first) and the results (y, dx, dW, db):

* ``tracemalloc``: peak of the memory NumPy allocates through Python. It does **not** see arrays
  that compiled Numba code allocates, nor PyTorch's allocator.
* peak RSS: the process's resident-set high-water mark (``VmHWM``, reset through
  ``/proc/self/clear_refs`` just before the step), minus the resident size before it, minus the
  results. It sees every allocation that was touched, whoever made it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from handprop.kernels.geometry import ConvGeometry

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MB = 2**20

SHAPES = {  # name: (N, C, H=W, K, kernel, stride, padding, dilation, what)
    "S1": (128, 3, 29, 20, 5, 1, 0, 1, "tutorial ConvNet layer 1"),
    "S2": (128, 20, 12, 50, 3, 1, 0, 1, "tutorial ConvNet layer 2"),
    "S3": (8, 32, 64, 32, 3, 1, 1, 1, "U-Net-like"),
    "S4": (8, 32, 64, 32, 3, 1, 4, 4, "dilated"),
    "S5": (256, 1, 11, 16, 3, 1, 0, 1, "small patch"),
}
MEMORY_SHAPE = (1, 32, 584, 565, 32)  # N, C, H, W, K (3 x 3, padding 1)


def flops(name):
    N, C, H, K, R, s, p, d, _ = SHAPES[name]
    Ho = (H + 2 * p - d * (R - 1) - 1) // s + 1
    return 3 * 2 * N * K * C * R * R * Ho * Ho


# ----------------------------------------------------------------------------- one engine's step
def make_step(engine, N, C, H, W, K, R, s, p, d, seed=0):
    """Return ``(step, results)``: ``step()`` runs forward + backward once and returns its outputs."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W), dtype=np.float32)
    Wt = (rng.standard_normal((K, C, R, R), dtype=np.float32) * 0.1).astype(np.float32)
    b = np.zeros(K, np.float32)
    Ho, Wo = (H + 2 * p - d * (R - 1) - 1) // s + 1, (W + 2 * p - d * (R - 1) - 1) // s + 1
    dy = rng.standard_normal((N, K, Ho, Wo), dtype=np.float32)
    g = ((s, s), (p, p), (d, d))
    geometry = ConvGeometry(*g)
    if engine == "torch":
        import torch

        tx = torch.from_numpy(x).requires_grad_(True)
        tW = torch.from_numpy(Wt).requires_grad_(True)
        tb = torch.from_numpy(b).requires_grad_(True)
        tdy = torch.from_numpy(dy)

        def step():
            tx.grad = tW.grad = tb.grad = None
            y = torch.nn.functional.conv2d(tx, tW, tb, s, p, d)
            y.backward(tdy)
            return y, tx.grad, tW.grad, tb.grad

        return step

    if engine == "cupy":
        import cupy as cp

        from handprop.kernels import cupy_gpu as k

        x, Wt, b, dy = (cp.asarray(a) for a in (x, Wt, b, dy))

        def step():
            y, cache = k.conv2d_forward(x, Wt, b, geometry, True)
            out = (y, *k.conv2d_backward(dy, cache))
            cp.cuda.Device().synchronize()
            return out

        return step

    from handprop.kernels import engine_module

    k = engine_module("numba" if engine.startswith("numba") else engine)

    def step():  # what a training step does: forward (keeping its cache), then all three gradients
        y, cache = k.conv2d_forward(x, Wt, b, geometry, True)
        return (y, *k.conv2d_backward(dy, cache))

    return step


def worker_speed(engine, reps, threads):
    """Time every shape; print one JSON line {shape: median seconds, "blas": ...}."""
    if engine == "torch":
        import torch

        torch.set_num_threads(threads)
    elif engine.startswith("numba"):
        from handprop.kernels import numba_cpu

        numba_cpu.warmup((np.float32,))
    out = {}
    for name, (N, C, H, K, R, s, p, d, _) in SHAPES.items():
        step = make_step(engine, N, C, H, H, K, R, s, p, d)
        for _ in range(3):  # warm-up: compile, caches, allocator
            step()
        times, cpu = [], []
        for _ in range(reps):
            t0, c0 = time.perf_counter(), time.process_time()
            step()
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        out[name] = float(np.median(cpu if os.environ.get("HANDPROP_BENCH_CLOCK") == "cpu" else times))
    from bench_unet import blas_report

    out["blas"] = blas_report()
    print(json.dumps(out))


def _rss_bytes(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def worker_memory(engine, threads):
    """Peak memory of one retina-sized step; print one JSON line."""
    import gc
    import tracemalloc

    if engine == "torch":
        import torch

        torch.set_num_threads(threads)
    elif engine.startswith("numba"):
        from handprop.kernels import numba_cpu

        numba_cpu.warmup((np.float32,))
    N, C, H, W, K = MEMORY_SHAPE
    small = make_step(engine, 1, C, 20, 19, K, 3, 1, 1, 1)
    small()  # compile / warm up on a small image, so that the big step measures only itself
    step = make_step(engine, N, C, H, W, K, 3, 1, 1, 1)  # allocates the inputs
    del small
    gc.collect()
    tracemalloc.start()
    clear = "/proc/self/clear_refs"
    try:
        with open(clear, "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        rss_reset = True
    except OSError:
        rss_reset = False
    rss0 = _rss_bytes("VmRSS")
    t0 = time.perf_counter()
    results = step()
    seconds = time.perf_counter() - t0
    peak_rss = _rss_bytes("VmHWM")
    _, peak_traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    result_bytes = sum(int(np.prod(r.shape)) * r.element_size() if hasattr(r, "element_size") else r.nbytes
                       for r in results)  # fmt: skip
    print(json.dumps({
        "tracemalloc_extra_MB": (peak_traced - (0 if engine == "torch" else result_bytes)) / MB,
        "rss_extra_MB": (peak_rss - rss0 - result_bytes) / MB if rss_reset else None,
        "results_MB": result_bytes / MB,
        "seconds": seconds,
    }))  # fmt: skip


# ----------------------------------------------------------------------------- the driver
def available_engines(avx512=False):
    import importlib.util

    engines = ["numpy"]
    if importlib.util.find_spec("numba"):
        engines.append("numba")
        if avx512 and _avx512_env() is not None:
            engines.append("numba-avx512")
    sys.path.insert(0, os.path.join(ROOT, "src"))
    from handprop.backend import gpu_available

    if gpu_available():
        engines.append("cupy")
    if importlib.util.find_spec("torch"):
        engines.append("torch")
    return engines


def _avx512_env():
    """NUMBA_CPU_NAME/FEATURES that let LLVM use 512-bit vectors, or None without AVX-512."""
    import llvmlite.binding as ll

    features = ll.get_host_cpu_features()
    if not features.get("avx512f", False):
        return None
    return {
        "NUMBA_CPU_NAME": ll.get_host_cpu_name(),
        "NUMBA_CPU_FEATURES": features.flatten() + ",-prefer-256-bit",
        "NUMBA_CACHE_DIR": os.path.join(tempfile.gettempdir(), "handprop-numba-avx512-cache"),
    }


def engine_env(engine, threads, blas="default"):
    from bench_unet import child_env

    env = child_env(threads, blas)
    env["PYTHONPATH"] = os.path.join(ROOT, "src") + os.pathsep + HERE + os.pathsep + os.environ.get("PYTHONPATH", "")
    if engine == "numba-avx512":
        env.update(_avx512_env())
    return env


def run_worker(mode, engine, threads, extra=(), timeout=900, blas="default"):
    """Run ``bench_conv.py --worker-<mode> ENGINE`` in a fresh process; return its JSON line."""
    cmd = [sys.executable, os.path.abspath(__file__), f"--worker-{mode}", engine, "--threads", str(threads), *extra]
    proc = subprocess.run(cmd, env=engine_env(engine, threads, blas), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{engine} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_speed(engines, rounds, reps, threads, log=print, blas="default"):
    """-> {engine: {shape: median over rounds of the per-process medians (s), "blas": str}}."""
    per_round = {e: [] for e in engines}
    for r in range(rounds):
        for e in (engines if r % 2 == 0 else engines[::-1]):
            log(f"  round {r + 1}/{rounds}: {e} ({blas} BLAS) ...")
            per_round[e].append(run_worker("speed", e, threads, ["--reps", str(reps)], blas=blas))
    return {e: {**{s: float(np.median([rd[s] for rd in rds])) for s in SHAPES}, "blas": rds[0].get("blas", "")}
            for e, rds in per_round.items()}  # fmt: skip


def bench_memory(engines, threads, log=print):
    out = {}
    for e in engines:
        if e == "numba-avx512":
            continue
        log(f"  memory: {e} ...")
        out[e] = run_worker("memory", e, threads)
    return out


def speed_table(speed):
    """Markdown: ms, GFLOP/s and ratio to PyTorch per shape and engine, geometric means."""
    engines = list(speed)
    lines = ["| shape | " + " | ".join(f"{e} ms (GFLOP/s)" for e in engines) + " | "
             + " | ".join(f"{e} / torch" for e in engines if e != "torch") + " |"]  # fmt: skip
    lines.append("|" + "---|" * (1 + len(engines) + len([e for e in engines if e != "torch"])))
    ratios = {e: [] for e in engines if e != "torch"}
    for s in SHAPES:
        cells = [f"{1e3 * speed[e][s]:.2f} ({flops(s) / speed[e][s] / 1e9:.0f})" for e in engines]
        rcells = []
        for e in ratios:
            if "torch" in speed:
                ratio = speed[e][s] / speed["torch"][s]
                ratios[e].append(ratio)
                rcells.append(f"{ratio:.2f}")
            else:
                rcells.append("-")
        N, C, H, K, R, st, p, d, what = SHAPES[s]
        label = f"{s} {what} ({N},{C},{H},{H}) K={K} {R}x{R} s{st}/p{p}/d{d}"
        lines.append(f"| {label} | " + " | ".join(cells + rcells) + " |")
    if "torch" in speed:
        geo = [f"**{np.exp(np.mean(np.log(v))):.2f}**" for v in ratios.values()]
        lines.append("| geometric mean of ratios | " + " | ".join([""] * len(engines) + geo) + " |")
    return "\n".join(lines), {e: float(np.exp(np.mean(np.log(v)))) for e, v in ratios.items() if v}


def memory_table(memory):
    lines = ["| engine | tracemalloc extra (MB) | peak-RSS extra (MB) | step (s) |", "|---|---|---|---|"]
    for e, m in memory.items():
        rss = "n/a" if m["rss_extra_MB"] is None else f"{m['rss_extra_MB']:.1f}"
        lines.append(f"| {e} | {m['tracemalloc_extra_MB']:.1f} | {rss} | {m['seconds']:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--engines", nargs="*", help="subset of: numpy numba numba-avx512 cupy torch")
    ap.add_argument("--avx512", action="store_true", help="add the numba-avx512 variant")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--blas", default="default", choices=["default", "haswell"])
    ap.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                    help="wall time (default) or CPU time (the work, whatever the load; use with --threads 1)")
    ap.add_argument("--json", help="write the raw results here")
    ap.add_argument("--worker-speed", metavar="ENGINE", help=argparse.SUPPRESS)
    ap.add_argument("--worker-memory", metavar="ENGINE", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker_speed:
        return worker_speed(a.worker_speed, a.reps, a.threads)
    if a.worker_memory:
        return worker_memory(a.worker_memory, a.threads)

    engines = a.engines or available_engines(a.avx512)
    print(f"engines: {', '.join(engines)}; {a.threads} threads; {a.rounds} rounds x {a.reps} steps")
    os.environ["HANDPROP_BENCH_CLOCK"] = a.clock  # read by the workers
    speed = bench_speed(engines, a.rounds, a.reps, a.threads, blas=a.blas)
    table, geomeans = speed_table(speed)
    print("\nforward + backward (dx, dW, db), float32, median ms (GFLOP/s):\n" + table)
    results = {"speed_s": speed, "geomean_ratio_vs_torch": geomeans}
    if not a.skip_memory:
        memory = bench_memory(engines, a.threads)
        results["memory"] = memory
        print(f"\npeak memory of one {MEMORY_SHAPE[:4]} 3x3 'same' conv step, above inputs and results:\n"
              + memory_table(memory))  # fmt: skip
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main()
