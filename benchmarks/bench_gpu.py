"""GPU check: S3 with a batch of 64 (64, 32, 64, 64), 32 filters 3 x 3 "same", forward + backward.

    PYTHONPATH=src python benchmarks/bench_gpu.py [--reps 20]

cupy engine (GPU) vs numba engine (CPU, all cores) vs PyTorch on CUDA when it is installed with
CUDA support; float32, median ms of ``--reps`` steps after warm-up, plus the largest difference
from the numba engine's results (the engines must agree). Prints a short table.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from handprop.kernels.geometry import ConvGeometry

SHAPE = (64, 32, 64, 64, 32, 3, 1, 1, 1)  # N, C, H, W, K, R, stride, padding, dilation


def timed(step, reps, sync=lambda: None):
    for _ in range(3):
        step()
    sync()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=20)
    a = ap.parse_args(argv)
    N, C, H, W, K, R, s, p, d = SHAPE
    g = ((s, s), (p, p), (d, d))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C, H, W), dtype=np.float32)
    Wt = (0.1 * rng.standard_normal((K, C, R, R))).astype(np.float32)
    b = np.zeros(K, np.float32)
    dy = rng.standard_normal((N, K, H, W), dtype=np.float32)
    flops = 3 * 2 * N * K * C * R * R * H * W
    rows = []

    from handprop.kernels import numba_cpu

    numba_cpu.warmup((np.float32,))

    geometry = ConvGeometry(*g)

    def numba_step():
        y, cache = numba_cpu.conv2d_forward(x, Wt, b, geometry, True)
        return (y, *numba_cpu.conv2d_backward(dy, cache))

    truth = numba_step()
    rows.append(("numba (CPU)", timed(numba_step, max(3, a.reps // 4)), 0.0))

    from handprop.backend import gpu_available

    if gpu_available():
        import cupy as cp

        from handprop.kernels import cupy_gpu

        gx, gW, gb, gdy = (cp.asarray(v) for v in (x, Wt, b, dy))

        def cupy_step():
            y, cache = cupy_gpu.conv2d_forward(gx, gW, gb, geometry, True)
            return (y, *cupy_gpu.conv2d_backward(gdy, cache))

        out = cupy_step()
        err = max(float(np.abs(cp.asnumpy(o) - t).max() / max(1.0, np.abs(t).max())) for o, t in zip(out, truth))
        rows.append(("cupy (GPU)", timed(cupy_step, a.reps, cp.cuda.Device().synchronize), err))
        print("GPU:", cp.cuda.runtime.getDeviceProperties(0)["name"].decode())
    else:
        print("no usable CUDA GPU / CuPy: only the CPU row")
    try:
        import torch

        if torch.cuda.is_available():
            tx = torch.tensor(x, device="cuda", requires_grad=True)
            tW = torch.tensor(Wt, device="cuda", requires_grad=True)
            tb = torch.tensor(b, device="cuda", requires_grad=True)
            tdy = torch.tensor(dy, device="cuda")

            def torch_step():
                tx.grad = tW.grad = tb.grad = None
                y = torch.nn.functional.conv2d(tx, tW, tb, s, p, d)
                y.backward(tdy)
                return y, tx.grad, tW.grad

            out = torch_step()
            err = max(float(np.abs(o.detach().cpu().numpy() - t).max() / max(1.0, np.abs(t).max()))
                      for o, t in zip(out, truth))  # fmt: skip
            rows.append(("torch (CUDA)", timed(torch_step, a.reps, torch.cuda.synchronize), err))
    except ImportError:
        pass

    print(f"\nS3 x64: x {(N, C, H, W)}, {K} filters {R}x{R} 'same', float32, forward + dx + dW (+ db)")
    print(f"{'engine':<14}{'ms':>10}{'GFLOP/s':>10}{'max rel diff':>14}")
    for name, t, err in rows:
        print(f"{name:<14}{1e3 * t:>10.2f}{flops / t / 1e9:>10.0f}{err:>14.1e}")


if __name__ == "__main__":
    main()
