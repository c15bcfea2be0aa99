"""Peak extra memory of the ``numpy`` (im2col) engine on one retina-sized convolution.

A (1, C, 584, 565) float32 image (a DRIVE fundus image), K filters of 3 x 3, padding "same":
forward, then backward (dx, dW, db). ``tracemalloc`` sees every NumPy allocation, so::

    extra = peak traced bytes - (bytes of y, dx, dW, db)

is the working memory the engine needs *above* its inputs (x, W, b, dy, allocated before tracing
starts), outputs and gradients -- the column buffers, padded bands and GEMM results. Without
chunking, the column buffer alone would be ``C R S Ho Wo`` floats (shown for comparison).

    PYTHONPATH=src python benchmarks/memory_numpy_conv.py [--channels 32] [--filters 32]
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

import numpy as np

from handprop.kernels import im2col
from handprop.kernels.geometry import ConvGeometry

MB = 2**20


def measure(channels=32, filters=32, height=584, width=565, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, channels, height, width), dtype=np.float32).astype(dtype, copy=False)
    W = rng.standard_normal((filters, channels, 3, 3), dtype=np.float32).astype(dtype, copy=False)
    b = np.zeros(filters, dtype=dtype)
    dy = rng.standard_normal((1, filters, height, width), dtype=np.float32).astype(dtype, copy=False)
    g = ((1, 1), (1, 1), (1, 1))  # stride, padding ("same" for 3 x 3), dilation

    tracemalloc.start()
    t0 = time.perf_counter()
    y, cache = im2col.conv2d_forward(x, W, b, ConvGeometry(*g), True)
    _, peak_forward = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    dx, dW, db = im2col.conv2d_backward(dy, cache)
    _, peak_backward = tracemalloc.get_traced_memory()
    seconds = time.perf_counter() - t0
    tracemalloc.stop()

    results = y.nbytes + dx.nbytes + dW.nbytes + db.nbytes
    return {
        "shape": x.shape,
        "filters": filters,
        "dtype": np.dtype(dtype).name,
        "input_MB": x.nbytes / MB,
        "results_MB (y, dx, dW, db)": results / MB,
        "peak_traced_MB": max(peak_forward, peak_backward) / MB,
        "extra_forward_MB": (peak_forward - y.nbytes) / MB,
        "extra_backward_MB": (peak_backward - results) / MB,  # y is still alive during backward
        "extra_MB (max of the two)": max(peak_forward - y.nbytes, peak_backward - results) / MB,
        "chunk_budget_MB": im2col.CHUNK_BYTES / MB,
        "unchunked_column_buffer_MB": channels * 9 * height * width * np.dtype(dtype).itemsize / MB,
        "seconds (fwd + bwd)": seconds,
        "process_max_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--filters", type=int, default=32)
    parser.add_argument("--float64", action="store_true")
    args = parser.parse_args()
    dtype = np.float64 if args.float64 else np.float32
    for k, v in measure(args.channels, args.filters, dtype=dtype).items():
        print(f"{k:<30} {v:.1f}" if isinstance(v, float) else f"{k:<30} {v}")


if __name__ == "__main__":
    main()
