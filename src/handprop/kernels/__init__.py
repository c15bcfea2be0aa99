"""Kernel engines: one module per engine, every one implementing the same functions.

Layers never ask what an engine can do: they call the kernel of the engine in force, and each
engine implements the whole API below. Forward kernels return ``(y, cache)``; the cache is what
the matching backward needs, built by the engine (the CS231n pattern: ``fast_layers.py`` keeps
``x_cols`` in its conv cache), and handed back unchanged by the layer. Shapes are NCHW; a
``ConvGeometry`` is ``(stride, padding, dilation)`` and a ``PoolGeometry`` ``(pool, stride,
padding, dilation)``, each entry an ``(h, w)`` int pair -- a ``(d, h, w)`` triple for the 3-D
kernels --, padding symmetric (:mod:`.geometry`)::

    conv2d_forward(x, W, b, geometry, training=True) -> (y, cache)
        x (N, C, H, W), W (K, C, R, S), b (K,) or None -> y (N, K, Ho, Wo)
    conv2d_backward(dy, cache, need_dx=True) -> (dx, dW, db)
        dx (N, C, H, W) or None when need_dx is False; dW (K, C, R, S); db (K,) or None
    conv2d_transpose_forward(x, W, b, geometry, y_shape, training=True) -> (y, cache)
        x (N, C_in, H, W), W (C_in, K, R, S) -> y ``y_shape`` (N, K, Ho, Wo)
    conv2d_transpose_backward(dy, cache, need_dx=True) -> (dx, dW, db)
    maxpool2d_forward(x, geometry, training=True) -> (y, cache)      x (N, C, H, W) -> y (N, C, Ho, Wo)
    maxpool2d_backward(dy, cache) -> dx
    avgpool2d_forward(x, geometry, training=True) -> (y, cache)      padding zeros count, as PyTorch
    avgpool2d_backward(dy, cache) -> dx
    conv3d_forward(x, W, b, geometry, training=True) -> (y, cache)
        x (N, C, D, H, W), W (K, C, T, R, S), b (K,) or None -> y (N, K, Do, Ho, Wo)
    conv3d_backward(dy, cache, need_dx=True) -> (dx, dW, db)
    maxpool3d_forward(x, geometry, training=True) -> (y, cache)      x (N, C, D, H, W) -> y (N, C, Do, Ho, Wo)
    maxpool3d_backward(dy, cache) -> dx
    avgpool3d_forward(x, geometry, training=True) -> (y, cache)
    avgpool3d_backward(dy, cache) -> dx
    depthwise_conv2d_forward(x, W, b, geometry, training=True) -> (y, cache)
        x (N, C, H, W), W (C M, 1, R, S), b (C M,) or None -> y (N, C M, Ho, Wo)   (groups = C)
    depthwise_conv2d_backward(dy, cache, need_dx=True) -> (dx, dW, db)
    upsample2d_forward(x, size, training=True) -> (y, cache)        nearest, size (sh, sw): (N, C, H sh, W sw)
    upsample2d_backward(dy, cache) -> dx

and, as the building blocks of the pairs, the convolution's three linear maps::

    conv2d(x, W, b, geometry) -> y
    conv2d_input_grad(dy, W, x_shape, geometry) -> dx
    conv2d_weight_grad(dy, x, W_shape, geometry) -> dW
    conv3d(...), conv3d_input_grad(...), conv3d_weight_grad(...)      the same for volumes

with  ``Ho = floor((H + 2 ph - dh (R - 1) - 1) / sh) + 1``  (likewise Wo).

======================  ============================================================  =========
engine                  module                                                        runs on
======================  ============================================================  =========
``reference``           :mod:`.reference`: the loops on the slides -- the definition  NumPy
``numpy``               :mod:`.im2col`: im2col + one GEMM per bounded chunk           NumPy
``numba`` (default)     :mod:`.numba_cpu`: Winograd / im2col, Numba + OpenBLAS        CPU
``cupy``                :mod:`.cupy_gpu`: the im2col engine on CuPy arrays (cuBLAS)   CUDA GPU
======================  ============================================================  =========

``get_kernel("conv2d_forward", x)`` returns the function of the engine that runs on ``x``
(:func:`handprop.backend.engine_for`: CuPy arrays always run on ``cupy``). Every engine is tested
against ``reference`` (``tests/test_engines.py``).

Optimizer updates and activations are not in the API: their equations live once, where a student
reads them (:mod:`handprop.optimizers`, :mod:`handprop.layers.activations`). The exceptions are
:data:`FAST`: one-pass ReLU and PReLU loops and SGD's ``p -= lr g`` that only the ``numba`` engine
has, which the layers' and SGD's own code call through :func:`fast_kernel` when present (their
measured gains are in :mod:`handprop.kernels.numba_cpu.activations` and ``.scaled_add``).
"""

from __future__ import annotations

import importlib

import numpy as np

from ..backend import engine_for

_MODULES = {
    "reference": "handprop.kernels.reference",
    "numpy": "handprop.kernels.im2col",
    "numba": "handprop.kernels.numba_cpu",
    "cupy": "handprop.kernels.cupy_gpu",
}

API = (
    "conv2d_forward", "conv2d_backward", "conv2d_transpose_forward", "conv2d_transpose_backward",
    "maxpool2d_forward", "maxpool2d_backward", "avgpool2d_forward", "avgpool2d_backward",
    "upsample2d_forward", "upsample2d_backward", "conv2d", "conv2d_input_grad", "conv2d_weight_grad",
    "conv3d_forward", "conv3d_backward", "maxpool3d_forward", "maxpool3d_backward", "avgpool3d_forward",
    "avgpool3d_backward", "conv3d", "conv3d_input_grad", "conv3d_weight_grad", "depthwise_conv2d_forward",
    "depthwise_conv2d_backward",
)
"""Every name each engine module defines (checked by the tests)."""


def engine_module(name: str):
    """Import and return the kernel module of engine ``name``."""
    return importlib.import_module(_MODULES[name])


def get_kernel(op: str, x, strict: bool = True):
    """The function implementing ``op`` on the engine that runs on array ``x``.

    ``strict=False`` lets NumPy data run on the ``numpy`` engine while ``cupy`` is in force (the
    optimizers do this: the same optimizer walks a NumPy point across a 2-D surface).
    """
    if op not in API:
        raise ValueError(f"unknown kernel {op!r}; the engine API is {API}")
    return getattr(engine_module(engine_for(x, strict=strict)), op)


FAST = ("relu_forward", "relu_backward", "prelu_forward", "prelu_backward", "subtract_scaled")
"""Optional kernels: one pass over memory for what the layers and SGD compute with NumPy (only ``numba``)."""


def fast_kernel(op: str, x):
    """The engine's one-pass kernel ``op`` (one of :data:`FAST`) for array ``x``, or None when the
    engine in force has none; the caller then runs its own NumPy/CuPy lines (the definition)."""
    if op not in FAST:
        raise ValueError(f"unknown fast kernel {op!r}; they are {FAST}")
    if getattr(x, "dtype", None) not in (np.float32, np.float64):  # e.g. float16: the caller's NumPy lines
        return None
    return getattr(engine_module(engine_for(x, strict=False)), op, None)
