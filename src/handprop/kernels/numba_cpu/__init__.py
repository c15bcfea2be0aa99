"""The ``numba`` engine, the CPU default: Numba-compiled loops plus OpenBLAS matrix products.

Same functions, shapes and caches as :mod:`handprop.kernels.reference` (the definition; read it
first) -- the full list is in :mod:`handprop.kernels`. One file per concern:

==================  ==========================================================================
``conv.py``         convolution: picks 1 x 1 GEMM, Winograd or chunked im2col by the shape
``winograd.py``     Winograd F(4 x 4, 3 x 3) for 3 x 3 stride-1 convolutions (the U-Net's)
``pooling.py``      max and average pooling (a 2 x 2 fast path)
``activations.py``  ReLU and PReLU in one pass over memory
``upsampling.py``   nearest upsampling and its backward in one pass
``update.py``       the optimizer hook: SGD and Adam fused into one pass over memory
``_pool.py``        the engine's threads
``_lazy.py``        compiling in the background, the numpy engine meanwhile
``_jit.py``         disk caching of compiled code, accepted dtypes
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
(``_jit.py``). The first use of a dtype starts compiling in a background thread, and the numpy
engine computes meanwhile (:mod:`._lazy`; :func:`compiling` says what is going on, ``fit``
prints it when it takes more than a second). :func:`warmup` compiles everything up front
instead, e.g. before timing.
"""

from __future__ import annotations

import functools
import time

import numpy as np

from .. import im2col as _numpy_engine
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
from . import _lazy, activations, conv, pooling, update, upsampling, winograd
from ._lazy import compiling, set_background, status, wait
from .conv import CHUNK_BYTES, algorithm
from .update import SGD_MIN_SIZE, adam_update, sgd_update


def _compiled_or_numpy(group, module, name, which=0):
    """The function ``name`` of ``module``, run when ``group``'s kernels are compiled for the dtype of
    positional argument ``which``, and the numpy engine's function of that name until then."""

    @functools.wraps(getattr(module, name))
    def kernel(*args, **kwargs):
        engine = module if _lazy.ready(group, args[which].dtype) else _numpy_engine
        return getattr(engine, name)(*args, **kwargs)

    return kernel


_CONV = ("conv2d", "conv2d_input_grad", "conv2d_weight_grad", "conv2d_forward", "conv2d_backward",
         "conv2d_transpose_forward", "conv2d_transpose_backward")  # fmt: skip
conv2d, conv2d_input_grad, conv2d_weight_grad, conv2d_forward, conv2d_backward, conv2d_transpose_forward, \
    conv2d_transpose_backward = (_compiled_or_numpy("convolution", conv, name) for name in _CONV)
maxpool2d_forward, maxpool2d_backward, avgpool2d_forward, avgpool2d_backward = (
    _compiled_or_numpy("pooling", pooling, name)
    for name in ("maxpool2d_forward", "maxpool2d_backward", "avgpool2d_forward", "avgpool2d_backward"))
relu_forward, relu_backward, prelu_forward, prelu_backward = (
    _compiled_or_numpy("activations", activations, name)
    for name in ("relu_forward", "relu_backward", "prelu_forward", "prelu_backward"))
upsample2d_forward, upsample2d_backward = (
    _compiled_or_numpy("activations", upsampling, name) for name in ("upsample2d_forward", "upsample2d_backward"))
optimizer_update = _compiled_or_numpy("optimizer", update, "optimizer_update", which=1)

__all__ = [
    "CHUNK_BYTES", "SGD_MIN_SIZE", "algorithm", "avgpool2d_backward", "avgpool2d_forward", "conv2d",
    "conv2d_backward", "conv2d_forward", "conv2d_input_grad", "conv2d_transpose_backward", "conv2d_transpose_forward",
    "conv2d_weight_grad", "maxpool2d_backward", "maxpool2d_forward", "optimizer_update", "prelu_backward",
    "prelu_forward", "relu_backward", "relu_forward", "upsample2d_backward", "upsample2d_forward", "sgd_update",
    "adam_update", "warmup", "compiling", "wait", "status", "set_background", "conv3d", "conv3d_forward",
    "conv3d_backward", "conv3d_input_grad", "conv3d_weight_grad", "maxpool3d_forward", "maxpool3d_backward",
    "avgpool3d_forward", "avgpool3d_backward", "depthwise_conv2d_forward", "depthwise_conv2d_backward",
]


# ----------------------------------------------------------------------------- what compiles each group
def _compile_convolution(dtype):
    """Every convolution kernel: im2col (columns kept and not), col2im, the three Winograd passes."""
    rng = np.random.default_rng(0)
    same = ConvGeometry((1, 1), (1, 1), (1, 1))
    for x_shape, W_shape in (((2, 4, 6, 8), (3, 4, 3, 3)),  # im2col (too narrow for Winograd)
                             ((2, 4, 6, 18), (4, 4, 3, 3))):  # Winograd
        x, W = rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(W_shape).astype(dtype)
        for training in (True, False):  # columns kept, and packed again for the weight gradient
            y, cache = conv.conv2d_forward(x, W, np.zeros(W_shape[0], dtype), same, training)
            conv.conv2d_backward(y, cache)


def _compile_activations(dtype):
    x = np.ones((1, 2, 3, 3), dtype)
    y, cache = activations.relu_forward(x)
    activations.relu_backward(y, cache)
    y, cache = activations.prelu_forward(x, np.full(2, 0.25, dtype))
    activations.prelu_backward(y, cache)
    y, cache = upsampling.upsample2d_forward(x, (2, 2))
    upsampling.upsample2d_backward(y, cache)


def _compile_pooling(dtype):
    x = np.ones((1, 2, 5, 5), dtype)
    for geometry in (PoolGeometry((2, 2), (2, 2), (0, 0)), PoolGeometry((3, 3), (2, 2), (0, 0)),
                     PoolGeometry((3, 3), (2, 2), (1, 1))):  # 2 x 2, unpadded, padded
        y, cache = pooling.maxpool2d_forward(x, geometry)
        pooling.maxpool2d_backward(y, cache)
    y, cache = pooling.avgpool2d_forward(x, PoolGeometry((2, 2), (2, 2), (0, 0)))
    pooling.avgpool2d_backward(y, cache)


def _compile_optimizer(dtype):
    real = np.dtype(dtype).type
    p = np.zeros(4, dtype)
    update._sgd_update(p, p.copy(), p.copy(), real(0.1), real(0.9), real(1.0), False, False, 0, 4)
    update._adam_update(p, p.copy(), p.copy(), p.copy(), *(real(v) for v in (0.1, 0.999, 0.001, 0.1, 1.0, 1e-8)),
                        0, 4)  # fmt: skip


def _dispatchers(*modules):
    """The Numba-compiled kernels defined in ``modules`` (not the helpers inlined into them)."""
    return [v for m in modules for v in vars(m).values() if hasattr(v, "py_func") and v.__module__ == m.__name__
            and v.targetoptions.get("inline") != "always"]  # fmt: skip


_lazy.register("convolution", _compile_convolution, _dispatchers(conv, winograd))
_lazy.register("activations", _compile_activations, _dispatchers(activations, upsampling))
_lazy.register("pooling", _compile_pooling, _dispatchers(pooling))
_lazy.register("optimizer", _compile_optimizer, _dispatchers(update))


def warmup(dtypes=(np.float32, np.float64)):
    """Compile (or load from the disk cache) every kernel for ``dtypes`` in the calling thread;
    returns the seconds spent. Call it before timing anything."""
    start = time.perf_counter()
    for dtype in dtypes:
        for group in _lazy.GROUPS:
            _lazy._compilers[group](dtype)
        _lazy.mark_ready(dtype)
    return time.perf_counter() - start

