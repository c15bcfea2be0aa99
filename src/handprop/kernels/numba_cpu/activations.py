"""ReLU and PReLU on the ``numba`` engine: one pass over memory per direction, on the engine's
threads (:mod:`._pool`).

The equations live in :mod:`handprop.layers.activations` (NumPy lines, run on every other engine);
the layers call these loops through :func:`handprop.kernels.fast_kernel` when the numba engine is
in force, and the tests check that both give the same numbers (PReLU's dalpha to rounding). They
are here for two benchmark rows (issue 20; 2 threads, loops and NumPy lines alternating in one
process, loaded 2-core machine): the tutorial ConvNet's training step
(``benchmarks/bench_convnet.py``, three PReLUs) was 1.14x (25th percentile of 300 steps) to 1.48x
(fastest) slower with the NumPy lines, the U-Net's (``bench_unet.py`` ``train4``, ReLU after every
convolution) 1.16x to 1.31x. The cause is ``np.where`` on random signs: a mispredicted branch per
number, ~4 ns each, where these loops take ~0.1-0.5 ns (2 threads).

ReLU keeps its *output* as the cache: ``y > 0`` exactly where ``x > 0``, so backward needs no mask.
"""

from __future__ import annotations

import numpy as np
from numba import njit, uint64

from . import _pool
from ._jit import CACHE, check_dtype


# ----------------------------------------------------------------------------- ReLU
@njit(nogil=True, cache=CACHE)
def _relu_forward(x, y, i0, i1):
    """``y = max(x, 0)`` on flat numbers ``i0 : i1``; NaN stays NaN (as ``np.maximum``, PyTorch)."""
    z = x.dtype.type(0)
    for i in range(uint64(i0), uint64(i1)):  # unsigned: no wrap-around test per index, so LLVM vectorizes
        v = x[i]
        y[i] = z if v <= z else v


@njit(nogil=True, cache=CACHE)
def _relu_backward(dy, y, dx, i0, i1):
    """``dx = dy where y > 0, else 0`` on flat numbers ``i0 : i1``."""
    z = dx.dtype.type(0)
    for i in range(uint64(i0), uint64(i1)):
        dx[i] = dy[i] if y[i] > z else z


def relu_forward(x, training=True):
    """``y = max(x, 0)``, any shape -> ``(y, y)``: the output is the cache."""
    check_dtype("relu_forward", x)
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    _pool.each_range(_relu_forward, x.size, 1, x.reshape(-1), y.reshape(-1))
    return y, y


def relu_backward(dy, cache):
    """``dx = dy`` where the output ``y`` (the cache) is positive, 0 elsewhere; dy's dtype."""
    check_dtype("relu_backward", dy)
    y = cache
    dy = np.ascontiguousarray(dy)
    dx = np.empty_like(dy)
    _pool.each_range(_relu_backward, dy.size, 1, dy.reshape(-1), np.ascontiguousarray(y).reshape(-1),
                     dx.reshape(-1))
    return dx


# ----------------------------------------------------------------------------- PReLU
@njit(nogil=True, cache=CACHE)
def _prelu_forward(x, alpha, y, c0, c1):
    """x, y (N, C, M); alpha (C,). Channels ``c0 : c1``, visited in memory order (n, c, m)."""
    N, _, M = x.shape
    for n in range(uint64(N)):  # unsigned (as every index here): no wrap-around tests, so LLVM vectorizes
        if M == 1:  # (N, F) features: the innermost loop runs along the features
            for c in range(uint64(c0), uint64(c1)):
                v = x[n, c, 0]
                y[n, c, 0] = v if v > 0 else alpha[c] * v
            continue
        for c in range(uint64(c0), uint64(c1)):
            a = alpha[c]
            for m in range(uint64(M)):
                v = x[n, c, m]
                y[n, c, m] = v if v > 0 else a * v


@njit(nogil=True, cache=CACHE, fastmath={"reassoc"})
def _prelu_backward(dy, x, alpha, dx, dalpha, c0, c1):
    """dy, x, dx (N, C, M); alpha, dalpha (C,). Channels ``c0 : c1``, so dalpha[c] never races; the
    sums per channel are float64.

    ``fastmath={"reassoc"}`` lets LLVM split a float64 sum into several vector accumulators
    (~2x faster: one accumulator is a chain of dependent additions, 4 cycles each). It changes
    only the order of the additions, never NaN or inf handling.
    """
    N, _, M = x.shape
    z = x.dtype.type(0)
    totals = np.zeros(c1 - c0)
    for n in range(uint64(N)):
        if M == 1:  # (N, F) features: along the features
            for c in range(uint64(c0), uint64(c1)):
                v = x[n, c, 0]
                g = dy[n, c, 0]
                positive = v > 0
                dx[n, c, 0] = g if positive else alpha[c] * g
                totals[c - c0] += z if positive else g * v
            continue
        for c in range(uint64(c0), uint64(c1)):
            a = alpha[c]
            total = 0.0
            for m in range(uint64(M)):
                v = x[n, c, m]
                g = dy[n, c, m]
                positive = v > 0
                dx[n, c, m] = g if positive else a * g
                total += z if positive else g * v
            totals[c - c0] += total
    for c in range(c0, c1):
        dalpha[c] = totals[c - c0]


def _channels_view(x, alpha):
    """(N, C, ...) -> contiguous (N, C, M) for per-channel ``alpha`` (C,), or (N, 1, rest) when shared."""
    C = alpha.size
    if C != 1 and (x.ndim < 2 or x.shape[1] != C):
        raise ValueError(f"PReLU: {C} slopes do not match input shape {x.shape}")
    return np.ascontiguousarray(x).reshape(x.shape[0], C, -1)


def prelu_forward(x, alpha, training=True):
    """``y = x`` where x > 0, ``alpha * x`` elsewhere. x (N, C, ...) or (N, F); alpha (C,) or (1,).
    -> ``(y, (x, alpha))``."""
    check_dtype("prelu_forward", x)
    x3 = _channels_view(x, alpha)
    y = np.empty_like(x3)
    if y.size:
        _pool.each_range(_prelu_forward, x3.shape[1], x3.shape[0] * x3.shape[2], x3,
                         np.ascontiguousarray(alpha.reshape(-1), dtype=x.dtype), y)
    return y.reshape(x.shape), (x, alpha)


def prelu_backward(dy, cache, need_dx=True):
    """-> ``(dx, dalpha)``: ``dx = dy`` where x > 0, ``alpha dy`` elsewhere;
    ``dalpha = sum(dy * min(x, 0))`` over everything but the channel axis (all axes if shared).
    One pass computes both (dx is None when ``need_dx`` is False, as on every engine)."""
    check_dtype("prelu_backward", dy)
    x, alpha = cache
    x3 = _channels_view(x, alpha)
    dy3 = np.ascontiguousarray(dy, dtype=x3.dtype).reshape(x3.shape)
    dx = np.empty_like(x3)
    dalpha = np.zeros(alpha.size, dtype=x3.dtype)
    if dx.size:
        _pool.each_range(_prelu_backward, x3.shape[1], x3.shape[0] * x3.shape[2], dy3, x3,
                         np.ascontiguousarray(alpha.reshape(-1), dtype=x3.dtype), dx, dalpha)
    return (dx.reshape(x.shape) if need_dx else None), dalpha.reshape(alpha.shape)
