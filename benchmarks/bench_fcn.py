"""A patch classifier on a whole retina: sliding windows vs the fully convolutional conversion.

    PYTHONPATH=src python benchmarks/bench_fcn.py [--size 584 565] [--rounds 2] [--json out.json]

The patch classifier (25 x 25 RGB patches, the tutorial's pattern)::

    Conv2D 16 3x3 -> ReLU -> Conv2D 16 3x3 -> ReLU -> MaxPool 2 -> Conv2D 32 3x3 -> ReLU
    -> Conv2D 32 3x3 -> ReLU -> MaxPool 2 -> Flatten -> Dense 64 -> ReLU -> Dense 1

scores one pixel per patch. ``sliding_window_predict`` runs it on the patch around every pixel of
the image (one pass per pixel, 2048 patches per batch); ``to_fully_convolutional`` turns it into
one network that scores every pixel in one pass (pooling strides become dilations). Both give the
same numbers (the largest difference is printed); the timings are medians over ``--rounds``
alternating rounds, numba engine, float32, after a warm-up.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import handprop as hp
from handprop.inference import predict_dense, sliding_window_predict, to_fully_convolutional

L = hp.layers
PATCH = 25


def patch_classifier(seed=0):
    return hp.Sequential([
        L.Conv2D(16, 3), L.ReLU(), L.Conv2D(16, 3), L.ReLU(), L.MaxPool2D(2),
        L.Conv2D(32, 3), L.ReLU(), L.Conv2D(32, 3), L.ReLU(), L.MaxPool2D(2),
        L.Flatten(), L.Dense(64), L.ReLU(), L.Dense(1),
    ], seed=seed, input_shape=(3, PATCH, PATCH))  # fmt: skip


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=2, default=(584, 565))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    H, W = args.size
    model = patch_classifier()
    fcn = to_fully_convolutional(model)
    x = np.random.default_rng(0).random((1, 3, H, W), dtype=np.float32)
    predict_dense(fcn, x[:, :, :64, :64], PATCH)  # warm-up: compile
    sliding_window_predict(model, x[:, :, :16, :16])
    times = {"sliding window": [], "fully convolutional": []}
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        slow = sliding_window_predict(model, x, batch_size=2048)
        times["sliding window"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fast = predict_dense(fcn, x, PATCH)
        times["fully convolutional"].append(time.perf_counter() - t0)
    diff = float(np.abs(slow - fast).max())
    med = {k: float(np.median(v)) for k, v in times.items()}
    speedup = med["sliding window"] / med["fully convolutional"]
    print(f"image {H}x{W}, patch {PATCH}x{PATCH}: sliding window {med['sliding window']:.2f} s, "
          f"fully convolutional {med['fully convolutional']:.2f} s -> {speedup:.1f}x faster; "
          f"largest difference {diff:.2e}")
    result = {"size": [H, W], "patch": PATCH, "seconds": med, "speedup": speedup, "max_abs_difference": diff}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
