"""Nearest-neighbour upsampling on the ``numba`` engine: one pass over memory per direction,
a range of channel planes per thread (:mod:`._pool`).

NumPy's ``x.repeat(sh, axis=2).repeat(sw, axis=3)`` writes an intermediate array, and
``dy.reshape(N, C, H, sh, W, sw).sum(axis=(3, 5))`` is a strided reduction NumPy runs slowly
(5x slower than this backward on the U-Net's maps). The backward adds each window's gradients in
the reference's order, so it gives the reference's bits.
"""

from __future__ import annotations

import numpy as np
from numba import njit, uint64

from . import _pool
from ._jit import CACHE, check_dtype


@njit(nogil=True, cache=CACHE)
def _upsample_forward(x, y, sh, sw, p0, p1):
    """``y[p, h sh + a, w sw + b] = x[p, h, w]`` for planes ``p0 : p1``. x (P, H, W)."""
    H, Wd = x.shape[1], x.shape[2]
    for p in range(uint64(p0), uint64(p1)):  # unsigned: no wrap-around test on p
        for h in range(H):
            for a in range(sh):
                row = h * sh + a
                for w in range(Wd):
                    v = x[p, h, w]
                    for b in range(sw):
                        y[p, row, w * sw + b] = v


@njit(nogil=True, cache=CACHE)
def _upsample_backward(dy, dx, sh, sw, p0, p1):
    """``dx[p, h, w] = sum over (a, b) in row-major order of dy[p, h sh + a, w sw + b]``."""
    H, Wd = dx.shape[1], dx.shape[2]
    for p in range(uint64(p0), uint64(p1)):  # unsigned: no wrap-around test on p
        for h in range(H):
            for w in range(Wd):
                total = dy[p, h * sh, w * sw]
                for b in range(1, sw):
                    total += dy[p, h * sh, w * sw + b]
                for a in range(1, sh):
                    for b in range(sw):
                        total += dy[p, h * sh + a, w * sw + b]
                dx[p, h, w] = total


def upsample2d_forward(x, size, training=True):
    """Nearest upsampling by ``size = (sh, sw)``. x (N, C, H, W) -> ``(y, (x.shape, size))``,
    y (N, C, H sh, W sw)."""
    check_dtype("upsample2d_forward", x)
    N, C, H, Wd = x.shape
    sh, sw = size
    y = np.empty((N, C, H * sh, Wd * sw), x.dtype)
    if y.size:
        x3 = np.ascontiguousarray(x).reshape(N * C, H, Wd)
        _pool.each_range(_upsample_forward, N * C, H * sh * Wd * sw, x3, y.reshape(N * C, H * sh, Wd * sw),
                         sh, sw)
    return y, (x.shape, (sh, sw))


def upsample2d_backward(dy, cache):
    """Each input pixel collects the gradients of its ``sh x sw`` copies. -> dx (N, C, H, W)."""
    check_dtype("upsample2d_backward", dy)
    (N, C, H, Wd), (sh, sw) = cache
    dx = np.empty((N, C, H, Wd), dy.dtype)
    if dx.size:
        _pool.each_range(_upsample_backward, N * C, H * sh * Wd * sw,
                         np.ascontiguousarray(dy).reshape(N * C, H * sh, Wd * sw), dx.reshape(N * C, H, Wd), sh, sw)
    return dx
