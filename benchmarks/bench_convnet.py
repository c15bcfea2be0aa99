"""Training throughput of the tutorial ConvNet: handprop (numba / numpy engines) vs PyTorch.

    PYTHONPATH=src python benchmarks/bench_convnet.py [--batch 32] [--steps 40] [--rounds 3] [--threads 2]
                                                      [--baseline-src ../base/src] [--blas default haswell]

The network of the tutorial's patch classifier, on (3, 29, 29) patches::

    Conv2D 20 5x5 valid -> PReLU -> MaxPool 2 -> Conv2D 50 3x3 valid -> PReLU -> MaxPool 2
    -> Flatten -> Dense 2000 -> PReLU -> Dense 135 -> softmax cross-entropy

One training step = forward, loss, backward, SGD update (lr 0.01), float32. Each framework runs
in its own process with ``--threads`` threads; rounds alternate between them and the median of
the per-round samples/s is reported (each round: 5 warm-up steps, then ``--steps`` timed steps).

``--baseline-src DIR`` adds a row "numba-baseline": the numba engine of another checkout's
``src`` (e.g. the engine before a change), run by the same worker code in alternating processes.
``--blas`` runs handprop's processes with OpenBLAS's own kernel choice (``default``: the
``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE`` variables removed) and/or ``haswell`` (set), as
``bench_unet.py`` explains; the BLAS library each process loaded is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CLASSES = 135


def handprop_step(engine, batch, seed=0):
    import handprop as hp

    hp.set_engine(engine)
    L = hp.layers
    model = hp.Sequential(
        [
            L.Conv2D(20, 5),
            L.PReLU(),
            L.MaxPool2D(2),
            L.Conv2D(50, 3),
            L.PReLU(),
            L.MaxPool2D(2),
            L.Flatten(),
            L.Dense(2000),
            L.PReLU(),
            L.Dense(CLASSES),
        ],  # fmt: skip
        seed=seed,
        input_shape=(3, 29, 29),
    )
    model.compile(loss=hp.losses.SoftmaxCrossEntropy(), optimizer=hp.optimizers.SGD(lr=0.01))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, 3, 29, 29), dtype=np.float32)
    y = rng.integers(0, CLASSES, batch)
    return lambda: model.train_step(x, y)


def torch_step(batch, threads, seed=0):
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 20, 5), nn.PReLU(20), nn.MaxPool2d(2),
        nn.Conv2d(20, 50, 3), nn.PReLU(50), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(1250, 2000), nn.PReLU(2000), nn.Linear(2000, CLASSES),
    )  # fmt: skip
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.randn(batch, 3, 29, 29)
    y = torch.randint(0, CLASSES, (batch,))

    def step():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def worker(framework, batch, steps, threads):
    if framework == "torch":
        step = torch_step(batch, threads)
    else:
        if framework.startswith("numba"):
            from handprop.kernels import numba_cpu

            numba_cpu.warmup((np.float32,))
        step = handprop_step(framework.split("-")[0], batch)
    for _ in range(5):
        step()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    from bench_unet import blas_report

    print(json.dumps({"samples_per_s": batch * steps / wall, "samples_per_cpu_s": batch * steps / cpu,
                      "blas": blas_report()}))  # fmt: skip


def env_for(threads, src=None, blas="default"):
    from bench_unet import child_env

    env = child_env(threads, blas)
    env["PYTHONPATH"] = (src or os.path.join(ROOT, "src")) + os.pathsep + HERE + os.pathsep + os.environ.get(
        "PYTHONPATH", "")
    return env


def bench(frameworks, batch, steps, rounds, threads, log=print, baseline_src=None, blas="default"):
    """-> {framework: median samples/s}; ``"numba-baseline"`` runs from ``baseline_src``."""
    runs = {f: [] for f in frameworks}
    for r in range(rounds):
        order = frameworks if r % 2 == 0 else frameworks[::-1]
        for f in order:
            log(f"  round {r + 1}/{rounds}: {f} ({blas} BLAS) ...")
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", f, "--batch", str(batch),
                   "--steps", str(steps), "--threads", str(threads)]  # fmt: skip
            src = baseline_src if f == "numba-baseline" else None
            proc = subprocess.run(cmd, env=env_for(threads, src, blas), capture_output=True, text=True, timeout=900)
            if proc.returncode != 0:
                raise RuntimeError(f"{f} failed:\n{proc.stderr[-3000:]}")
            runs[f].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    per_round = {f: [r["samples_per_s"] for r in v] for f, v in runs.items()}
    return {f: float(np.median(v)) for f, v in per_round.items()}, runs


def table(result):
    lines = ["| framework | samples/s | vs torch |", "|---|---|---|"]
    for f, v in result.items():
        ratio = f"{v / result['torch']:.2f}x" if "torch" in result else "-"
        engine = f.replace("-baseline", " engine, baseline") if "baseline" in f else f"{f} engine"
        name = "PyTorch" if f == "torch" else f"handprop ({engine})"
        lines.append(f"| {name} | {v:.0f} | {ratio} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frameworks", nargs="*", default=None, help="subset of: numba numpy torch")
    ap.add_argument("--baseline-src", help="another checkout's src/: adds the row numba-baseline")
    ap.add_argument("--blas", default="default", choices=["default", "haswell"])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        return worker(a.worker, a.batch, a.steps, a.threads)
    import importlib.util

    frameworks = a.frameworks or [f for f in ("numba", "numpy", "torch")
                                  if f == "numpy" or importlib.util.find_spec(f)]  # fmt: skip
    if a.baseline_src:
        frameworks = [*frameworks, "numba-baseline"]
    result, runs = bench(frameworks, a.batch, a.steps, a.rounds, a.threads, baseline_src=a.baseline_src, blas=a.blas)
    print(f"\ntutorial ConvNet training, batch {a.batch}, float32, {a.threads} threads, {a.blas} BLAS:\n"
          + table(result))
    print("per round, samples/s:", {f: [round(v["samples_per_s"]) for v in r] for f, r in runs.items()})
    print("per round, samples per CPU second:",
          {f: [round(v["samples_per_cpu_s"]) for v in r] for f, r in runs.items()})
    return result


if __name__ == "__main__":
    main()
