"""Kernel engines: one module per engine, all exposing the same functions.

Every engine module defines (shapes NCHW; ``stride``, ``padding``, ``dilation`` and ``pool`` are
``(h, w)`` int pairs; padding is symmetric zero padding)::

    conv2d_forward(x, W, b, stride, padding, dilation) -> y
        x (N, C, H, W), W (K, C, R, S), b (K,) or None -> y (N, K, Ho, Wo)
    conv2d_backward_input(dy, W, x_shape, stride, padding, dilation) -> dx   (N, C, H, W)
    conv2d_backward_weight(dy, x, W_shape, stride, padding, dilation) -> dW  (K, C, R, S)
    maxpool2d_forward(x, pool, stride, padding) -> (y, argmax)
        argmax: int array shaped like y, flat index h * W + w of the winner in its channel plane
    maxpool2d_backward(dy, argmax, x_shape) -> dx
    avgpool2d_forward(x, pool, stride, padding) -> y         (padding zeros are counted, as PyTorch)
    avgpool2d_backward(dy, x_shape, pool, stride, padding) -> dx

with  Ho = floor((H + 2 ph - dh (R - 1) - 1) / sh) + 1  (and likewise Wo).

``get_kernel("conv2d_forward", x)`` returns the function of the engine that runs on ``x``
(see :func:`handprop.backend.engine_for`). Engines that lack a kernel fall back to ``numpy``.
"""

from __future__ import annotations

import importlib

from ..backend import engine_for

_MODULES = {
    "reference": "handprop.kernels.reference",
    "numpy": "handprop.kernels.im2col",
    "numba": "handprop.kernels.numba_cpu",
    "cupy": "handprop.kernels.cupy_gpu",
}


def engine_module(name: str):
    """Import and return the kernel module of engine ``name``."""
    return importlib.import_module(_MODULES[name])


def get_optional(op: str, x):
    """The engine's own ``op`` for array ``x``, or None when the engine has no such kernel.

    For operations outside the engine API that an engine may speed up (``prelu_forward``,
    ``conv2d_backward_bias``): the layer keeps its NumPy code as the fallback.
    """
    return getattr(engine_module(engine_for(x)), op, None)


def get_kernel(op: str, x):
    """The function implementing ``op`` on the engine that runs on array ``x``."""
    name = engine_for(x)
    module = engine_module(name)
    fn = getattr(module, op, None)
    if fn is None:  # an engine may leave an op to the vectorized array-module version
        fn = getattr(engine_module("numpy"), op)
    return fn
