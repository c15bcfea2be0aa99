"""The U-Net workloads of issue 13: handprop (numba engine) vs PyTorch, side by side.

    PYTHONPATH=src python benchmarks/bench_unet.py [--rounds 5] [--steps 5] [--threads 2]
                                                   [--workloads train4 train_whole infer4 infer_whole]
                                                   [--blas default haswell] [--json out.json]

The network (issue 13): blocks of two (3 x 3 "same" conv + ReLU) with 16, 32 and 64 channels,
2 x 2 max-pooling down, nearest 2x upsampling and concatenation with the skip on the way up, a
1 x 1 conv to one logit; binary cross-entropy with logits per pixel, Adam (lr 1e-3); random input
and 0/1 targets, float32. Workloads:

=============  ==================================================================
``train4``     one training step (forward, loss, backward, Adam) on 4 x 1 x 256 x 256
``train_whole`` one training step on one whole 1 x 576 x 560 image
``infer4``     inference (``training=False``) on 4 x 1 x 256 x 256
``infer_whole`` inference on one whole retina-sized 1 x 576 x 560 image
=============  ==================================================================

**Method.** Every (framework, workload) runs in its own fresh process with ``--threads`` threads
(``NUMBA_NUM_THREADS``, ``OMP/OPENBLAS/MKL_NUM_THREADS``, ``torch.set_num_threads``), after
warm-up (handprop: ``numba_cpu.warmup()``, then 2 steps); it reports the median of ``--steps``
steps. Frameworks alternate within each round, rounds repeat, and the table shows the median
over rounds and the ratio of medians, with the load average before and after each round.

**BLAS.** ``--blas default`` runs the handprop processes with ``OPENBLAS_CORETYPE`` and
``OPENBLAS_L2_SIZE`` removed from their environment (what users' machines have: OpenBLAS picks
its kernels for the CPU, SkylakeX on AVX-512); ``--blas haswell`` sets ``OPENBLAS_CORETYPE=Haswell``
(and ``OPENBLAS_L2_SIZE``, to the inherited value or 2 MiB) as the environment of the development
machines does. PyTorch uses its own MKL/oneDNN and is unaffected, but runs in every configuration
so that every ratio comes from interleaved runs. Each process reports the BLAS library, version
and kernel type it actually loaded (threadpoolctl).
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

WORKLOADS = {  # name: (N, H, W, training)
    "train4": (4, 256, 256, True),
    "train_whole": (1, 576, 560, True),
    "infer4": (4, 256, 256, False),
    "infer_whole": (1, 576, 560, False),
}
BLAS = {"default": None, "haswell": "Haswell"}


def blas_report():
    """``"openblas 0.3.31 SkylakeX x2; ..."``: what threadpoolctl sees loaded, for the record."""
    import numpy  # noqa: F401  (its BLAS first)
    from threadpoolctl import threadpool_info

    def owner(path):
        return next((name for name in ("numpy", "scipy", "torch") if name in path), os.path.basename(path))

    libs = sorted(threadpool_info(), key=lambda d: owner(d["filepath"]) != "numpy")
    return "; ".join(f"{owner(d['filepath'])}: {d.get('internal_api')} {d.get('version')} {d.get('architecture')} "
                     f"x{d['num_threads']}" for d in libs if d.get("user_api") == "blas")  # fmt: skip


def handprop_unet(N, H, W, seed=0):
    """The U-Net in handprop's graph API -> (model, x, t)."""
    import handprop as hp

    L = hp.layers

    def block(t, k):
        t = L.ReLU()(L.Conv2D(k, 3, padding="same")(t))
        return L.ReLU()(L.Conv2D(k, 3, padding="same")(t))

    inp = hp.Input((1, None, None))
    e1 = block(inp, 16)
    e2 = block(L.MaxPool2D(2)(e1), 32)
    bottom = block(L.MaxPool2D(2)(e2), 64)
    d2 = block(L.Concatenate()([L.UpSampling2D(2)(bottom), e2]), 32)
    d1 = block(L.Concatenate()([L.UpSampling2D(2)(d2), e1]), 16)
    model = hp.Model(inp, L.Conv2D(1, 1)(d1), seed=seed)
    model.compile(loss=hp.losses.BinaryCrossEntropy(from_logits=True), optimizer=hp.optimizers.Adam(lr=1e-3))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, 1, H, W), dtype=np.float32)
    t = (rng.random((N, 1, H, W)) > 0.5).astype(np.float32)
    return model, x, t


def torch_unet(N, H, W, threads, seed=0):
    """The same U-Net in PyTorch -> (step, infer)."""
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(seed)

    def block(c, k):
        return nn.Sequential(nn.Conv2d(c, k, 3, padding=1), nn.ReLU(), nn.Conv2d(k, k, 3, padding=1), nn.ReLU())

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.e1, self.e2, self.b = block(1, 16), block(16, 32), block(32, 64)
            self.d2, self.d1 = block(96, 32), block(48, 16)
            self.out = nn.Conv2d(16, 1, 1)
            self.pool, self.up = nn.MaxPool2d(2), nn.Upsample(scale_factor=2, mode="nearest")

        def forward(self, x):
            e1 = self.e1(x)
            e2 = self.e2(self.pool(e1))
            b = self.b(self.pool(e2))
            d2 = self.d2(torch.cat([self.up(b), e2], 1))
            d1 = self.d1(torch.cat([self.up(d2), e1], 1))
            return self.out(d1)

    model = UNet()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, 1, H, W, generator=g)
    t = (torch.rand(N, 1, H, W, generator=g) > 0.5).float()

    def step():
        opt.zero_grad()
        loss = loss_fn(model(x), t)
        loss.backward()
        opt.step()
        return loss.item()

    def infer():
        with torch.no_grad():
            return model(x)

    return step, infer


def worker(framework, workload, steps, threads):
    N, H, W, training = WORKLOADS[workload]
    if framework == "torch":
        step, infer = torch_unet(N, H, W, threads)
        run = step if training else infer
    else:
        import handprop as hp
        from handprop.kernels import numba_cpu

        hp.set_engine("numba")
        numba_cpu.warmup((np.float32,))
        model, x, t = handprop_unet(N, H, W)
        run = (lambda: model.train_step(x, t)) if training else (lambda: model.forward(x, training=False))
    for _ in range(2):
        run()
    times, cpu = [], []
    for _ in range(steps):
        t0, c0 = time.perf_counter(), time.process_time()
        run()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    print(json.dumps({"median": float(np.median(times)), "min": float(np.min(times)),
                      "cpu": float(np.median(cpu)), "blas": blas_report()}))  # fmt: skip


def child_env(threads, blas):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.join(ROOT, "src") + os.pathsep + env.get("PYTHONPATH", "")
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    if BLAS[blas] is None:
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
    else:
        env["OPENBLAS_CORETYPE"] = BLAS[blas]
        env.setdefault("OPENBLAS_L2_SIZE", str(2 * 2**20))
    return env


def run_one(framework, workload, steps, threads, blas, src=None):
    """One fresh process; ``src``: run handprop from that checkout's ``src`` instead (a baseline)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", framework, "--workload", workload,
           "--steps", str(steps), "--threads", str(threads)]  # fmt: skip
    env = child_env(threads, blas)
    if src:
        env["PYTHONPATH"] = src + os.pathsep + os.environ.get("PYTHONPATH", "")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"{framework} {workload} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench(workloads, blas_configs, rounds, steps, threads, log=print, baseline_src=None):
    """-> {blas: {workload: {"handprop": [...], "torch": [...], "loads": [...]}}}: per-round results
    (and "baseline": handprop from ``baseline_src``, when given)."""
    names = ("handprop", "torch") + (("baseline",) if baseline_src else ())
    out = {b: {w: {**{f: [] for f in names}, "loads": []} for w in workloads} for b in blas_configs}
    for r in range(rounds):
        for b in blas_configs:
            for w in workloads:
                before = os.getloadavg()[0]
                for f in (names if r % 2 == 0 else names[::-1]):
                    src = baseline_src if f == "baseline" else None
                    out[b][w][f].append(run_one("handprop" if src else f, w, steps, threads, b, src))
                after = os.getloadavg()[0]
                out[b][w]["loads"].append((before, after))
                hp_ms, t_ms = out[b][w]["handprop"][-1]["median"] * 1e3, out[b][w]["torch"][-1]["median"] * 1e3
                log(f"  round {r + 1}/{rounds} {b:8s} {w:12s} handprop {hp_ms:7.0f} ms  torch {t_ms:7.0f} ms  "
                    f"ratio {hp_ms / t_ms:.2f}  load {before:.1f}->{after:.1f}")
    return out


def summarize(result, clock="median"):
    """{blas: {workload: {"handprop_ms", "torch_ms", "ratio", "ratio_per_round", "load", "blas"}}};
    ``clock="cpu"``: CPU times (the work done, whatever the machine's load) instead of wall times."""
    summary = {}
    for b, per in result.items():
        summary[b] = {}
        for w, r in per.items():
            hp_t = [x[clock] for x in r["handprop"]]
            t_t = [x[clock] for x in r["torch"]]
            if r.get("baseline"):
                base_t = [x[clock] for x in r["baseline"]]
                summary[b].setdefault("baseline", {})[w] = {
                    "baseline_ms": 1e3 * float(np.median(base_t)),
                    "handprop_over_baseline": float(np.median(hp_t) / np.median(base_t)),
                    "per_round": [h / x for h, x in zip(hp_t, base_t)]}  # fmt: skip
            summary[b][w] = {
                "handprop_ms": 1e3 * float(np.median(hp_t)), "torch_ms": 1e3 * float(np.median(t_t)),
                "ratio": float(np.median(hp_t) / np.median(t_t)),
                "ratio_per_round": [h / t for h, t in zip(hp_t, t_t)],
                "load": [min(min(p) for p in r["loads"]), max(max(p) for p in r["loads"])],
                "blas": r["handprop"][0]["blas"],
            }  # fmt: skip
    return summary


def table(summary):
    lines = ["| BLAS (handprop) | workload | handprop ms | torch ms | handprop / torch (rounds) | load |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for b, per in summary.items():
        for w, s in per.items():
            if w == "baseline":
                continue
            rounds = ", ".join(f"{x:.2f}" for x in s["ratio_per_round"])
            lines.append(f"| {b}: {s['blas']} | {w} | {s['handprop_ms']:.0f} | {s['torch_ms']:.0f} | "
                         f"**{s['ratio']:.2f}** ({rounds}) | {s['load'][0]:.1f}-{s['load'][1]:.1f} |")
    for b, per in summary.items():
        for w, s in per.get("baseline", {}).items():
            rounds = ", ".join(f"{x:.2f}" for x in s["per_round"])
            lines.append(f"| {b}: baseline | {w} | {per[w]['handprop_ms']:.0f} | baseline {s['baseline_ms']:.0f} | "
                         f"handprop / baseline **{s['handprop_over_baseline']:.2f}** ({rounds}) | |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workloads", nargs="*", default=list(WORKLOADS), choices=list(WORKLOADS))
    ap.add_argument("--blas", nargs="*", default=list(BLAS), choices=list(BLAS))
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--baseline-src", help="another checkout's src/: its numba engine as an extra column")
    ap.add_argument("--clock", default="median", choices=["median", "cpu"],
                    help="compare wall times (median, default) or CPU times (cpu: the work, whatever the load)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--workload", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        return worker(a.worker, a.workload, a.steps, a.threads)
    result = summarize(bench(a.workloads, a.blas, a.rounds, a.steps, a.threads, baseline_src=a.baseline_src), a.clock)
    clock = "wall" if a.clock == "median" else "CPU"
    print(f"\nU-Net, float32, {a.threads} threads, {a.rounds} rounds, {clock} time:\n" + table(result))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
