"""PReLU on the ``numba`` engine: one pass over memory per direction, one thread per channel."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._jit import CACHE, check_dtype


@njit(parallel=True, cache=CACHE)
def _prelu_forward(x, alpha, y):
    """x, y (N, C, M); alpha (C,). One thread per channel."""
    N, C, M = x.shape
    for c in prange(C):
        a = alpha[c]
        for n in range(N):
            for m in range(M):
                v = x[n, c, m]
                y[n, c, m] = v if v > 0 else a * v


@njit(parallel=True, cache=CACHE, fastmath={"reassoc"})
def _prelu_backward(dy, x, alpha, dx, dalpha):
    """dy, x, dx (N, C, M); alpha, dalpha (C,). One thread per channel, so dalpha[c] never races.

    ``fastmath={"reassoc"}`` lets LLVM split the float64 sum into several vector accumulators
    (~2x faster: one accumulator is a chain of dependent additions, 4 cycles each). It changes
    only the order of the additions, never NaN or inf handling.
    """
    N, C, M = x.shape
    z = x.dtype.type(0)
    for c in prange(C):
        a = alpha[c]
        total = 0.0
        for n in range(N):
            for m in range(M):
                v = x[n, c, m]
                g = dy[n, c, m]
                positive = v > 0
                dx[n, c, m] = g if positive else a * g
                total += z if positive else g * v
        dalpha[c] = total


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
        _prelu_forward(x3, np.ascontiguousarray(alpha.reshape(-1), dtype=x.dtype), y)
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
        _prelu_backward(dy3, x3, np.ascontiguousarray(alpha.reshape(-1), dtype=x3.dtype), dx, dalpha)
    return (dx.reshape(x.shape) if need_dx else None), dalpha.reshape(alpha.shape)


