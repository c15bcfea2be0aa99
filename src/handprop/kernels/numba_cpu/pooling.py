"""Pooling on the ``numba`` engine: one thread per channel plane, the reference's window loops."""

from __future__ import annotations

import numpy as np
from numba import njit, prange, uint64

from ..geometry import check_pool_geometry, output_size
from ._jit import CACHE, check_dtype


@njit(cache=CACHE)
def _taps_inside(start, size, taps, dilation):
    """``(lo, hi)``: the taps ``lo <= r < hi`` whose pixel ``start + r dilation`` lies in [0, size)."""
    lo = max(0, (-start + dilation - 1) // dilation)
    hi = min(taps, (size - 1 - start) // dilation + 1)
    return lo, max(lo, hi)


@njit(parallel=True, cache=CACHE)
def _maxpool_forward(x, y, argmax, R, S, sh, sw, ph, pw, dh, dw):
    """One thread per channel plane; the window loop is the reference's, padding never wins."""
    N, C, H, Wd = x.shape
    Ho, Wo = y.shape[2], y.shape[3]
    for plane in prange(N * C):
        n = plane // C
        c = plane - n * C
        for i in range(Ho):
            h0 = i * sh - ph
            rlo, rhi = _taps_inside(h0, H, R, dh)
            for j in range(Wo):
                w0 = j * sw - pw
                slo, shi = _taps_inside(w0, Wd, S, dw)
                best = -np.inf
                where = (h0 + rlo * dh) * Wd + w0 + slo * dw  # the first real pixel, as PyTorch
                for r in range(rlo, rhi):
                    for s in range(slo, shi):
                        v = x[n, c, h0 + r * dh, w0 + s * dw]
                        if v > best or np.isnan(v):  # strict '>': the first of equal maxima wins
                            best = v
                            where = (h0 + r * dh) * Wd + w0 + s * dw
                y[n, c, i, j] = best
                argmax[n, c, i, j] = where


@njit(parallel=True, cache=CACHE)
def _maxpool_forward_unpadded(x, y, argmax, R, S, sh, sw, dh, dw):
    """:func:`_maxpool_forward` without padding, where every window lies inside the image.

    The same comparisons (so the same winner, NaN included), ~2.5x faster: flat unsigned
    indices (see :func:`_im2col`), the window starts from its first pixel instead of ``-inf``,
    and ``best``/``where`` are chosen by ``take`` without a branch. With random data the
    branch ``if v > best`` is mispredicted about once per window, ~15 cycles each time.
    """
    N, C, H, Wd = x.shape
    Ho, Wo = y.shape[2], y.shape[3]
    xf, yf, af = x.reshape(-1), y.reshape(-1), argmax.reshape(-1)
    step, row_step, col_step = uint64(sw), uint64(dh * Wd), uint64(dw)
    for plane in prange(N * C):
        xbase = uint64(plane * H * Wd)
        for i in range(Ho):
            q = uint64((plane * Ho + i) * Wo)
            for j in range(uint64(Wo)):
                first = uint64(i * sh * Wd) + j * step  # h * W + w of the window's first pixel
                best = xf[xbase + first]
                where = first
                for r in range(uint64(R)):
                    for s in range(uint64(S)):
                        t = first + r * row_step + s * col_step
                        v = xf[xbase + t]
                        take = (v > best) | (v != v)  # v != v: NaN wins, as in np.isnan above
                        best = v if take else best
                        where = t if take else where
                yf[q + j] = best
                af[q + j] = where


def maxpool2d_forward(x, geometry, training=True):
    """Max pooling. x (N, C, H, W) -> ``(y, argmax)`` (N, C, Ho, Wo); argmax is ``h * W + w``."""
    check_dtype("maxpool2d_forward", x)
    N, C, H, Wd = x.shape
    (R, S), (sh, sw), (ph, pw), (dh, dw) = geometry
    check_pool_geometry((H, Wd), geometry)
    Ho, Wo = output_size(H, R, sh, ph, dh), output_size(Wd, S, sw, pw, dw)
    y = np.empty((N, C, Ho, Wo), dtype=x.dtype)
    argmax = np.empty((N, C, Ho, Wo), dtype=np.int64)
    if y.size == 0:
        return y, (argmax, x.shape)
    x = np.ascontiguousarray(x)
    if ph == 0 and pw == 0:
        _maxpool_forward_unpadded(x, y, argmax, R, S, sh, sw, dh, dw)
    else:
        _maxpool_forward(x, y, argmax, R, S, sh, sw, ph, pw, dh, dw)
    return y, (argmax, x.shape)


@njit(parallel=True, cache=CACHE)
def _maxpool_backward(dy, argmax, dx):
    """dx (planes, H W), uninitialized: each plane is one thread's, which zeroes it (in parallel,
    while it is in cache) and then scatter-adds ``+=`` into it without races."""
    planes, Q = dy.shape
    z = dx.dtype.type(0)
    for p in prange(planes):
        for m in range(dx.shape[1]):
            dx[p, m] = z
        for q in range(Q):
            dx[p, argmax[p, q]] += dy[p, q]


def maxpool2d_backward(dy, cache):
    """Route each ``dy`` to its window's winner; shared winners add up. -> dx (N, C, H, W)."""
    check_dtype("maxpool2d_backward", dy)
    argmax, x_shape = cache
    N, C, H, Wd = x_shape
    if dy.size == 0:
        return np.zeros(x_shape, dtype=dy.dtype)
    dx = np.empty((N * C, H * Wd), dtype=dy.dtype)
    _maxpool_backward(
        np.ascontiguousarray(dy).reshape(N * C, -1),
        np.ascontiguousarray(argmax, dtype=np.int64).reshape(N * C, -1), dx,
    )  # fmt: skip
    return dx.reshape(N, C, H, Wd)


@njit(parallel=True, cache=CACHE)
def _avgpool_forward(x, y, R, S, sh, sw, ph, pw, dh, dw):
    N, C, H, Wd = x.shape
    Ho, Wo = y.shape[2], y.shape[3]
    scale = 1.0 / (R * S)  # padding zeros count: always divide by the full window
    for plane in prange(N * C):
        n = plane // C
        c = plane - n * C
        for i in range(Ho):
            h0 = i * sh - ph
            rlo, rhi = _taps_inside(h0, H, R, dh)
            for j in range(Wo):
                w0 = j * sw - pw
                slo, shi = _taps_inside(w0, Wd, S, dw)
                total = 0.0
                for r in range(rlo, rhi):
                    for s in range(slo, shi):
                        total += x[n, c, h0 + r * dh, w0 + s * dw]
                y[n, c, i, j] = total * scale


def avgpool2d_forward(x, geometry, training=True):
    """Average pooling (padding zeros counted, as PyTorch). x (N, C, H, W) -> y (N, C, Ho, Wo)."""
    check_dtype("avgpool2d_forward", x)
    N, C, H, Wd = x.shape
    (R, S), (sh, sw), (ph, pw), (dh, dw) = geometry
    check_pool_geometry((H, Wd), geometry)
    y = np.empty((N, C, output_size(H, R, sh, ph, dh), output_size(Wd, S, sw, pw, dw)), dtype=x.dtype)
    if y.size:
        _avgpool_forward(np.ascontiguousarray(x), y, R, S, sh, sw, ph, pw, dh, dw)
    return y, (x.shape, geometry)


@njit(parallel=True, cache=CACHE)
def _avgpool_backward(dy, dx, R, S, sh, sw, ph, pw, dh, dw):
    N, C, H, Wd = dx.shape
    Ho, Wo = dy.shape[2], dy.shape[3]
    scale = 1.0 / (R * S)
    for plane in prange(N * C):
        n = plane // C
        c = plane - n * C
        for i in range(Ho):
            h0 = i * sh - ph
            rlo, rhi = _taps_inside(h0, H, R, dh)
            for j in range(Wo):
                w0 = j * sw - pw
                slo, shi = _taps_inside(w0, Wd, S, dw)
                share = dy[n, c, i, j] * scale
                for r in range(rlo, rhi):
                    for s in range(slo, shi):
                        dx[n, c, h0 + r * dh, w0 + s * dw] += share


def avgpool2d_backward(dy, cache):
    """Each pixel of a window receives ``dy / (R S)``. dy (N, C, Ho, Wo) -> dx (N, C, H, W)."""
    check_dtype("avgpool2d_backward", dy)
    x_shape, ((R, S), (sh, sw), (ph, pw), (dh, dw)) = cache
    dx = np.zeros(x_shape, dtype=dy.dtype)
    if dy.size:
        _avgpool_backward(np.ascontiguousarray(dy), dx, R, S, sh, sw, ph, pw, dh, dw)
    return dx


