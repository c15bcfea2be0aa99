"""Pooling on the ``numba`` engine: the reference's window loops, compiled, one range of channel
planes per thread (:mod:`._pool`).

Three max-pooling forward kernels, all with the reference's rule (the first maximum in window
order wins a tie, NaN wins, padding never does) and the same ``argmax`` (the winner's ``h W + w``):

* :func:`_maxpool_forward`: any geometry, the reference's loops with the window clipped to the image;
* :func:`_maxpool_forward_unpadded`: no padding, so no clipping, and no branch per tap;
* :func:`_maxpool2x2_forward`: the U-Net's 2 x 2 windows with stride 2, unrolled.
"""

from __future__ import annotations

import numpy as np
from numba import njit, uint64

from ..geometry import check_pool_geometry, output_size
from . import _pool
from ._jit import CACHE, check_dtype


@njit(cache=CACHE)
def _taps_inside(start, size, taps, dilation):
    """``(lo, hi)``: the taps ``lo <= r < hi`` whose pixel ``start + r dilation`` lies in [0, size)."""
    lo = max(0, (-start + dilation - 1) // dilation)
    hi = min(taps, (size - 1 - start) // dilation + 1)
    return lo, max(lo, hi)


@njit(nogil=True, cache=CACHE)
def _maxpool_forward(x, y, argmax, R, S, sh, sw, ph, pw, dh, dw, p0, p1):
    """Planes ``p0 : p1`` of x (N C, H, W); the window loop is the reference's, padding never wins."""
    H, Wd = x.shape[1], x.shape[2]
    Ho, Wo = y.shape[1], y.shape[2]
    for p in range(uint64(p0), uint64(p1)):  # unsigned: no wrap-around test on p
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
                        v = x[p, h0 + r * dh, w0 + s * dw]
                        if v > best or np.isnan(v):  # strict '>': the first of equal maxima wins
                            best = v
                            where = (h0 + r * dh) * Wd + w0 + s * dw
                y[p, i, j] = best
                argmax[p, i, j] = where


@njit(nogil=True, cache=CACHE)
def _maxpool_forward_unpadded(x, y, argmax, R, S, sh, sw, dh, dw, p0, p1):
    """:func:`_maxpool_forward` without padding, where every window lies inside the image.

    The same comparisons (so the same winner, NaN included), ~2.5x faster: flat unsigned
    indices (see ``conv._im2col``), the window starts from its first pixel instead of ``-inf``,
    and ``best``/``where`` are chosen by ``take`` without a branch. With random data the
    branch ``if v > best`` is mispredicted about once per window, ~15 cycles each time.
    """
    H, Wd = x.shape[1], x.shape[2]
    Ho, Wo = y.shape[1], y.shape[2]
    xf, yf, af = x.reshape(-1), y.reshape(-1), argmax.reshape(-1)
    step, row_step, col_step = uint64(sw), uint64(dh * Wd), uint64(dw)
    for plane in range(p0, p1):
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


@njit(nogil=True, cache=CACHE)
def _maxpool2x2_forward(x, y, argmax, p0, p1):
    """2 x 2 windows, stride 2, no padding: the four taps unrolled, in the reference's order
    (0, 0), (0, 1), (1, 0), (1, 1), each taken when ``v > best or v is NaN``."""
    Wd = x.shape[2]
    Ho, Wo = y.shape[1], y.shape[2]
    for p in range(uint64(p0), uint64(p1)):  # unsigned: no wrap-around test on p
        for i in range(Ho):
            top, bottom = 2 * i, 2 * i + 1
            for j in range(Wo):
                left = 2 * j
                best = x[p, top, left]
                where = top * Wd + left
                v = x[p, top, left + 1]
                take = (v > best) | (v != v)
                best, where = (v, where + 1) if take else (best, where)
                v = x[p, bottom, left]
                take = (v > best) | (v != v)
                best, where = (v, bottom * Wd + left) if take else (best, where)
                v = x[p, bottom, left + 1]
                take = (v > best) | (v != v)
                best, where = (v, bottom * Wd + left + 1) if take else (best, where)
                y[p, i, j] = best
                argmax[p, i, j] = where


def maxpool2d_forward(x, geometry, training=True):
    """Max pooling. x (N, C, H, W) -> ``(y, (argmax, x.shape))``, y and argmax (N, C, Ho, Wo);
    argmax is the winner's ``h * W + w`` (the reference's cache)."""
    check_dtype("maxpool2d_forward", x)
    N, C, H, Wd = x.shape
    (R, S), (sh, sw), (ph, pw), (dh, dw) = geometry
    check_pool_geometry((H, Wd), geometry)
    Ho, Wo = output_size(H, R, sh, ph, dh), output_size(Wd, S, sw, pw, dw)
    y = np.empty((N, C, Ho, Wo), dtype=x.dtype)
    argmax = np.empty((N, C, Ho, Wo), dtype=np.int64)
    if y.size == 0:
        return y, (argmax, x.shape)
    planes = N * C
    x3 = np.ascontiguousarray(x).reshape(planes, H, Wd)
    y3, a3 = y.reshape(planes, Ho, Wo), argmax.reshape(planes, Ho, Wo)
    if (R, S, sh, sw, ph, pw, dh, dw) == (2, 2, 2, 2, 0, 0, 1, 1):
        _pool.each_range(_maxpool2x2_forward, planes, H * Wd, x3, y3, a3)
    elif ph == 0 and pw == 0:
        _pool.each_range(_maxpool_forward_unpadded, planes, H * Wd, x3, y3, a3, R, S, sh, sw, dh, dw)
    else:
        _pool.each_range(_maxpool_forward, planes, H * Wd, x3, y3, a3, R, S, sh, sw, ph, pw, dh, dw)
    return y, (argmax, x.shape)


@njit(nogil=True, cache=CACHE)
def _maxpool_backward(dy, argmax, dx, p0, p1):
    """dx (planes, H W), uninitialized: planes ``p0 : p1`` are one thread's, which zeroes each
    (while it is in cache) and then scatter-adds ``+=`` into it without races."""
    Q = dy.shape[1]
    z = dx.dtype.type(0)
    for p in range(uint64(p0), uint64(p1)):  # unsigned: no wrap-around test on p
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
    _pool.each_range(_maxpool_backward, N * C, H * Wd, np.ascontiguousarray(dy).reshape(N * C, -1),
                     np.ascontiguousarray(argmax, dtype=np.int64).reshape(N * C, -1), dx)
    return dx.reshape(N, C, H, Wd)


@njit(nogil=True, cache=CACHE)
def _avgpool_forward(x, y, R, S, sh, sw, ph, pw, dh, dw, p0, p1):
    H, Wd = x.shape[1], x.shape[2]
    Ho, Wo = y.shape[1], y.shape[2]
    scale = 1.0 / (R * S)  # padding zeros count: always divide by the full window
    for p in range(uint64(p0), uint64(p1)):  # unsigned: no wrap-around test on p
        for i in range(Ho):
            h0 = i * sh - ph
            rlo, rhi = _taps_inside(h0, H, R, dh)
            for j in range(Wo):
                w0 = j * sw - pw
                slo, shi = _taps_inside(w0, Wd, S, dw)
                total = 0.0
                for r in range(rlo, rhi):
                    for s in range(slo, shi):
                        total += x[p, h0 + r * dh, w0 + s * dw]
                y[p, i, j] = total * scale


def avgpool2d_forward(x, geometry, training=True):
    """Average pooling (padding zeros counted, as PyTorch). x (N, C, H, W) -> y (N, C, Ho, Wo)."""
    check_dtype("avgpool2d_forward", x)
    N, C, H, Wd = x.shape
    (R, S), (sh, sw), (ph, pw), (dh, dw) = geometry
    check_pool_geometry((H, Wd), geometry)
    y = np.empty((N, C, output_size(H, R, sh, ph, dh), output_size(Wd, S, sw, pw, dw)), dtype=x.dtype)
    if y.size:
        _pool.each_range(_avgpool_forward, N * C, H * Wd, np.ascontiguousarray(x).reshape(N * C, H, Wd),
                         y.reshape(N * C, *y.shape[2:]), R, S, sh, sw, ph, pw, dh, dw)
    return y, (x.shape, geometry)


@njit(nogil=True, cache=CACHE)
def _avgpool_backward(dy, dx, R, S, sh, sw, ph, pw, dh, dw, p0, p1):
    H, Wd = dx.shape[1], dx.shape[2]
    Ho, Wo = dy.shape[1], dy.shape[2]
    scale = 1.0 / (R * S)
    for p in range(uint64(p0), uint64(p1)):  # unsigned: no wrap-around test on p
        for i in range(Ho):
            h0 = i * sh - ph
            rlo, rhi = _taps_inside(h0, H, R, dh)
            for j in range(Wo):
                w0 = j * sw - pw
                slo, shi = _taps_inside(w0, Wd, S, dw)
                share = dy[p, i, j] * scale
                for r in range(rlo, rhi):
                    for s in range(slo, shi):
                        dx[p, h0 + r * dh, w0 + s * dw] += share


def avgpool2d_backward(dy, cache):
    """Each pixel of a window receives ``dy / (R S)``. dy (N, C, Ho, Wo) -> dx (N, C, H, W)."""
    check_dtype("avgpool2d_backward", dy)
    x_shape, ((R, S), (sh, sw), (ph, pw), (dh, dw)) = cache
    N, C, H, Wd = x_shape
    dx = np.zeros(x_shape, dtype=dy.dtype)
    if dy.size:
        _pool.each_range(_avgpool_backward, N * C, H * Wd,
                         np.ascontiguousarray(dy).reshape(N * C, *dy.shape[2:]), dx.reshape(N * C, H, Wd),
                         R, S, sh, sw, ph, pw, dh, dw)  # fmt: skip
    return dx
