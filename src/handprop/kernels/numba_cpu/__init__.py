"""The ``numba`` engine, the CPU default: Numba-compiled loops plus OpenBLAS matrix products.

Same functions, shapes and caches as :mod:`handprop.kernels.reference` (the definition; read it
first) -- the full list is in :mod:`handprop.kernels`. One file per concern:

==================  ==========================================================================
``conv.py``         convolution: chunked im2col packed in parallel + one GEMM per chunk
``pooling.py``      max and average pooling: one thread per channel plane
``activations.py``  PReLU in one pass over memory
``update.py``       the optimizer hook: SGD fused into one pass over memory
==================  ==========================================================================

**Volumes and depthwise convolutions** (``conv3d_*``, ``maxpool3d_*``, ``avgpool3d_*``,
``depthwise_conv2d_*``) are not compiled here: this engine re-exports the NumPy engine's
vectorized versions (:mod:`handprop.kernels.im2col`, whose GEMMs run on the same OpenBLAS), so
the whole kernel API is implemented. Numba versions would be faster; nothing asked for them yet.

**Threads.** Numba's parallel loops and OpenBLAS's matrix products each run a pool of threads.
By default OpenMP threads *spin* for a while after each parallel loop, waiting for more work; on
a small machine they then steal the cores the other pool needs next (a ConvNet training step ran
8x slower on 2 cores). So, when this engine is first imported and the variable is not set
already, handprop sets ``OMP_WAIT_POLICY=PASSIVE`` (threads sleep instead, costing a ~0.05 ms
wake-up per parallel loop). Set the variable yourself before importing handprop to choose
otherwise; :func:`handprop.backend.thread_settings` reports what is in force, and
:func:`handprop.set_num_threads` sets both pools' thread counts (on a shared server, fewer threads
are often faster).

**Debugging.** ``NUMBA_DISABLE_JIT=1`` (set before Python starts) runs these kernels as plain
Python, so a debugger can step into them -- slowly. ``with hp.engine("reference"):`` is usually
the better way to step through a backward pass.

**Compilation.** Kernels compile on first use per dtype (float32 and float64; other dtypes are a
TypeError that says what to do) and are cached on disk (``cache=True``) where the install allows
it; on a read-only install they compile in each process, and a ``NumbaCacheWarning`` says so once
(``_jit.py``). :func:`warmup` pays that cost up front, e.g. before timing.
"""

from __future__ import annotations

import os

# Before Numba starts its thread pool (see "Threads" above); a value the user chose is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

from ..geometry import ConvGeometry, PoolGeometry  # noqa: E402
from ..im2col import (  # noqa: E402  (re-exported: the NumPy engine's volume and depthwise kernels)
    avgpool3d_backward,
    avgpool3d_forward,
    conv3d,
    conv3d_backward,
    conv3d_forward,
    conv3d_input_grad,
    conv3d_weight_grad,
    depthwise_conv2d_backward,
    depthwise_conv2d_forward,
    maxpool3d_backward,
    maxpool3d_forward,
)
from .activations import prelu_backward, prelu_forward  # noqa: E402
from .conv import (  # noqa: E402
    CHUNK_BYTES,
    conv2d,
    conv2d_backward,
    conv2d_forward,
    conv2d_input_grad,
    conv2d_transpose_backward,
    conv2d_transpose_forward,
    conv2d_weight_grad,
)
from .pooling import avgpool2d_backward, avgpool2d_forward, maxpool2d_backward, maxpool2d_forward  # noqa: E402
from .update import SGD_MIN_SIZE, optimizer_update, sgd_update  # noqa: E402

__all__ = [
    "CHUNK_BYTES", "SGD_MIN_SIZE", "avgpool2d_backward", "avgpool2d_forward", "conv2d", "conv2d_backward",
    "conv2d_forward", "conv2d_input_grad", "conv2d_transpose_backward", "conv2d_transpose_forward",
    "conv2d_weight_grad", "maxpool2d_backward", "maxpool2d_forward", "optimizer_update", "prelu_backward",
    "prelu_forward", "sgd_update", "warmup", "conv3d", "conv3d_forward", "conv3d_backward", "conv3d_input_grad",
    "conv3d_weight_grad", "maxpool3d_forward", "maxpool3d_backward", "avgpool3d_forward", "avgpool3d_backward",
    "depthwise_conv2d_forward", "depthwise_conv2d_backward",
]


def warmup(dtypes=(np.float32, np.float64)):
    """Compile (or load from the disk cache) every kernel for ``dtypes``; returns the seconds spent.

    Numba compiles on the first call with a new dtype; call this before timing anything.
    """
    import time

    start = time.perf_counter()
    for dtype in dtypes:
        x = np.ones((1, 2, 5, 5), dtype)
        W = np.ones((3, 2, 3, 3), dtype)
        geometry = ConvGeometry((1, 1), (1, 1), (1, 1))
        y, cache = conv2d_forward(x, W, np.zeros(3, dtype), geometry, training=True)
        conv2d_backward(y, cache)
        y, cache = conv2d_forward(x, W, np.zeros(3, dtype), geometry, training=False)
        conv2d_backward(y, cache)
        p, cache = maxpool2d_forward(x, PoolGeometry((2, 2), (2, 2), (0, 0)))
        maxpool2d_forward(x, PoolGeometry((3, 3), (2, 2), (1, 1)))  # the padded kernel
        maxpool2d_backward(p, cache)
        a, cache = avgpool2d_forward(x, PoolGeometry((2, 2), (2, 2), (0, 0)))
        avgpool2d_backward(a, cache)
        alpha = np.full(2, 0.25, dtype)
        y, cache = prelu_forward(x, alpha)
        prelu_backward(x, cache)
        p = np.zeros(SGD_MIN_SIZE, dtype)
        sgd_update(p, p.copy(), None, 0.1)
    return time.perf_counter() - start
