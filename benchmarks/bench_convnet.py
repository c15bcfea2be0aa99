"""Training throughput of the tutorial ConvNet: handprop (numba / numpy engines) vs PyTorch.

    PYTHONPATH=src python benchmarks/bench_convnet.py [--batch 32] [--steps 40] [--rounds 3] [--threads 2]

The network of the tutorial's patch classifier, on (3, 29, 29) patches::

    Conv2D 20 5x5 valid -> PReLU -> MaxPool 2 -> Conv2D 50 3x3 valid -> PReLU -> MaxPool 2
    -> Flatten -> Dense 2000 -> PReLU -> Dense 135 -> softmax cross-entropy

One training step = forward, loss, backward, SGD update (lr 0.01), float32. Each framework runs
in its own process with ``--threads`` threads; rounds alternate between them and the median of
the per-round samples/s is reported (each round: 5 warm-up steps, then ``--steps`` timed steps).
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
    step = torch_step(batch, threads) if framework == "torch" else handprop_step(framework, batch)
    for _ in range(5):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    print(json.dumps({"samples_per_s": batch * steps / (time.perf_counter() - t0)}))


def env_for(threads):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.join(ROOT, "src") + os.pathsep + env.get("PYTHONPATH", "")
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    return env


def bench(frameworks, batch, steps, rounds, threads, log=print):
    runs = {f: [] for f in frameworks}
    for r in range(rounds):
        for f in frameworks:
            log(f"  round {r + 1}/{rounds}: {f} ...")
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", f, "--batch", str(batch),
                   "--steps", str(steps), "--threads", str(threads)]  # fmt: skip
            proc = subprocess.run(cmd, env=env_for(threads), capture_output=True, text=True, timeout=900)
            if proc.returncode != 0:
                raise RuntimeError(f"{f} failed:\n{proc.stderr[-3000:]}")
            runs[f].append(json.loads(proc.stdout.strip().splitlines()[-1])["samples_per_s"])
    return {f: float(np.median(v)) for f, v in runs.items()}


def table(result):
    lines = ["| framework | samples/s | vs torch |", "|---|---|---|"]
    for f, v in result.items():
        ratio = f"{v / result['torch']:.2f}x" if "torch" in result else "-"
        lines.append(f"| {'handprop (' + f + ' engine)' if f != 'torch' else 'PyTorch'} | {v:.0f} | {ratio} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frameworks", nargs="*", default=None, help="subset of: numba numpy torch")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        return worker(a.worker, a.batch, a.steps, a.threads)
    import importlib.util

    frameworks = a.frameworks or [f for f in ("numba", "numpy", "torch")
                                  if f == "numpy" or importlib.util.find_spec(f)]  # fmt: skip
    result = bench(frameworks, a.batch, a.steps, a.rounds, a.threads)
    print(f"\ntutorial ConvNet training, batch {a.batch}, float32, {a.threads} threads:\n" + table(result))
    return result


if __name__ == "__main__":
    main()
