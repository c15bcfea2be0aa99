"""The ``numba`` engine, the CPU default: Numba-compiled loops plus OpenBLAS matrix products.

Same functions, shapes and caches as :mod:`handprop.kernels.reference` (the definition; read it
first) -- the full list is in :mod:`handprop.kernels`. One file per concern:

==================  ==========================================================================
``conv.py``         convolution: picks 1 x 1 GEMM, Winograd or chunked im2col by the shape
``winograd.py``     Winograd F(4 x 4, 3 x 3) for 3 x 3 stride-1 convolutions (the U-Net's)
``pooling.py``      max and average pooling (a 2 x 2 fast path)
``activations.py``  ReLU and PReLU in one pass over memory (called by the layers' own code)
``upsampling.py``   nearest upsampling and its backward in one pass
``scaled_add.py``   ``p -= a g`` in one pass (called by SGD's own code)
``_pool.py``        the engine's threads
``_jit.py``         disk caching of compiled code, accepted dtypes, the "compiling" notice
==================  ==========================================================================

**Volumes and depthwise convolutions** (``conv3d_*``, ``maxpool3d_*``, ``avgpool3d_*``,
``depthwise_conv2d_*``) are not compiled here: this engine re-exports the NumPy engine's
vectorized versions (:mod:`handprop.kernels.im2col`, whose GEMMs run on the same OpenBLAS), so
the whole kernel API is implemented. Numba versions would be faster; nothing asked for them yet.

**Threads.** The kernels are compiled serial and ``nogil``; a small pool of Python threads runs
them on pieces of the work (chunks of images, ranges of channel planes) with one-thread OpenBLAS
inside (:mod:`._pool` says why: no OpenMP pool, so nothing spins between calls and no
environment variable needs setting). :func:`handprop.set_num_threads` sets the count;
:func:`handprop.thread_settings` reports it.

**Debugging.** ``NUMBA_DISABLE_JIT=1`` (set before Python starts) runs these kernels as plain
Python, so a debugger can step into them -- slowly. ``with hp.engine("reference"):`` is usually
the better way to step through a backward pass.

**Compilation.** Kernels compile per dtype (float32 and float64; other dtypes are a TypeError
that says what to do) and are cached on disk (``cache=True``) where the install allows it; on a
read-only install they compile in each process, and a ``NumbaCacheWarning`` says so once
(``_jit.py``). A kernel compiles in the calling thread when it is first used (Numba's ordinary
lazy ``@njit``), so the first training step of a fresh install takes a few seconds; one line on
stderr says so while it happens, and nothing is printed when the kernels come from the disk
cache. The engine never hands work to another engine meanwhile: the numbers do not depend on
timing. :func:`warmup` compiles everything up front instead, e.g. before timing.

**Determinism.** Same inputs, same thread count -> same bits. Work is cut into pieces that
depend only on the shapes and the thread count; a piece writes its own part of the output or
returns its own partial sum, and partial sums are added in piece order (never in the order the
threads finish; ``tests/test_determinism.py``).
"""

from __future__ import annotations

import time

import numpy as np

from ..geometry import ConvGeometry, PoolGeometry
from ..im2col import (  # re-exported: the NumPy engine's volume and depthwise kernels
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
from .activations import prelu_backward, prelu_forward, relu_backward, relu_forward
from .conv import (
    CHUNK_BYTES,
    algorithm,
    conv2d,
    conv2d_backward,
    conv2d_forward,
    conv2d_input_grad,
    conv2d_transpose_backward,
    conv2d_transpose_forward,
    conv2d_weight_grad,
)
from .pooling import avgpool2d_backward, avgpool2d_forward, maxpool2d_backward, maxpool2d_forward
from .scaled_add import subtract_scaled
from .upsampling import upsample2d_backward, upsample2d_forward

__all__ = [
    "CHUNK_BYTES", "algorithm", "avgpool2d_backward", "avgpool2d_forward", "conv2d", "conv2d_backward",
    "conv2d_forward", "conv2d_input_grad", "conv2d_transpose_backward", "conv2d_transpose_forward",
    "conv2d_weight_grad", "maxpool2d_backward", "maxpool2d_forward", "prelu_backward", "prelu_forward",
    "relu_backward", "relu_forward", "subtract_scaled", "upsample2d_backward", "upsample2d_forward", "warmup", "conv3d",
    "conv3d_forward", "conv3d_backward", "conv3d_input_grad", "conv3d_weight_grad", "maxpool3d_forward",
    "maxpool3d_backward", "avgpool3d_forward", "avgpool3d_backward", "depthwise_conv2d_forward",
    "depthwise_conv2d_backward",
]


def warmup(dtypes=(np.float32, np.float64)):
    """Compile (or load from the disk cache) every kernel for ``dtypes`` in the calling thread, by
    running each on tiny arrays; returns the seconds spent. Call it before timing anything."""
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    same = ConvGeometry((1, 1), (1, 1), (1, 1))
    for dtype in dtypes:
        for x_shape, W_shape in (((2, 4, 6, 8), (3, 4, 3, 3)),  # im2col (too narrow for Winograd)
                                 ((2, 4, 6, 18), (4, 4, 3, 3))):  # Winograd
            x, W = rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(W_shape).astype(dtype)
            for training in (True, False):  # columns kept, and packed again for the weight gradient
                y, cache = conv2d_forward(x, W, np.zeros(W_shape[0], dtype), same, training)
                conv2d_backward(y, cache)
        x = np.ones((1, 2, 5, 5), dtype)
        for geometry in (PoolGeometry((2, 2), (2, 2), (0, 0)), PoolGeometry((3, 3), (2, 2), (0, 0)),
                         PoolGeometry((3, 3), (2, 2), (1, 1))):  # 2 x 2, unpadded, padded
            y, cache = maxpool2d_forward(x, geometry)
            maxpool2d_backward(y, cache)
        y, cache = avgpool2d_forward(x, PoolGeometry((2, 2), (2, 2), (0, 0)))
        avgpool2d_backward(y, cache)
        for forward, backward, args in ((relu_forward, relu_backward, ()),
                                        (prelu_forward, prelu_backward, (np.full(2, 0.25, dtype),)),
                                        (upsample2d_forward, upsample2d_backward, ((2, 2),))):  # fmt: skip
            y, cache = forward(x, *args)
            backward(y, cache)
        subtract_scaled(np.zeros(2**17, dtype), np.ones(2**17, dtype), 0.5)
    return time.perf_counter() - start
