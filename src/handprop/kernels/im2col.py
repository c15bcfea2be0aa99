"""The ``numpy`` engine: im2col + one matrix product, chunked so memory stays bounded.

The idea (Chellapilla et al., 2006; the CS231n "fast layers"): copy every receptive field into a
column, so the whole convolution becomes **one GEMM**::

    cols[n, (c, r, s), (i, j)] = xpad[n, c, i sh + r dh, j sw + s dw]        im2col
    y[n]   = Wt.reshape(K, C R S) @ cols[n]                                   forward
    dcols  = Wt.reshape(K, C R S).T @ dy[n]   -> added back into dx          col2im (input grad)
    dWt    = sum_n dy[n] @ cols[n].T                                          weight grad

with the notation of :mod:`handprop.kernels.reference`. ``cols`` is filled one *tap* ``(r, s)`` at a
time: for a fixed tap, the pixels read by all output positions form a strided slice of the
padded input, so no index arrays and no ``add.at`` are needed, and col2im is the same slices with
``+=``.

**Memory.** ``cols`` holds ``R S`` copies of the input: on a 584 x 565 retina image with 64
channels and a 3 x 3 kernel that is ~760 MB in float32. So the work is cut into chunks -- a few
images at a time, or, for one big image, a band of output rows -- whose column buffer stays under
:data:`CHUNK_BYTES`. Each band reads only the input rows it needs (plus a halo of ``(R-1) dh``
rows), padded on the fly.

Pooling uses the same tap slices (a running max; a running sum), and max pooling's backward is a
scatter-add done with ``bincount``.

Everything goes through ``xp = get_array_module(x)`` and uses only functions NumPy and CuPy share,
so the CuPy engine can reuse this file verbatim. float32 stays float32.
"""

from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from .geometry import check_pool_padding, output_size
from .pairs import conv_pairs
from .reference import optimizer_update, prelu_backward, prelu_forward  # noqa: F401 (xp-generic)

CHUNK_BYTES = 32 * 2**20
"""Upper bound for one chunk's column buffer, in bytes (a single output row may exceed it).

The working memory is this plus one padded band and one GEMM result: 35 MB measured for a
(1, 32, 584, 565) float32 3 x 3 convolution, forward and backward (benchmarks/memory_numpy_conv.py)."""


GPU_CHUNK_BYTES = 512 * 2**20
"""The budget for CuPy arrays: a GPU has gigabytes of memory and wants few, large GEMMs."""


def _chunks(N, Ho, row_bytes, xp=np):
    """Yield ``(n0, n1, i0, i1)``: images ``n0:n1`` and output rows ``i0:i1`` of one chunk.

    ``row_bytes`` is the column-buffer size of one output row of one image. Whole images are
    grouped while they fit in the budget (:data:`CHUNK_BYTES`, or :data:`GPU_CHUNK_BYTES` when
    ``xp`` is CuPy); a single image too big is cut into row bands.
    """
    budget = CHUNK_BYTES if xp is np else GPU_CHUNK_BYTES
    image_bytes = row_bytes * Ho
    if image_bytes <= budget:
        per_chunk = max(1, budget // max(image_bytes, 1))
        for n0 in range(0, N, per_chunk):
            yield n0, min(N, n0 + per_chunk), 0, Ho
    else:
        rows = max(1, budget // row_bytes)
        for n0 in range(N):
            for i0 in range(0, Ho, rows):
                yield n0, n0 + 1, i0, min(Ho, i0 + rows)


def _padded_rows(x, h0, h1, pw, value=0.0):
    """Rows ``h0:h1`` of ``x`` zero-padded (``value``) by ``pw`` columns; rows outside ``[0, H)``
    are padding. ``x`` (n, C, H, W) -> (n, C, h1 - h0, W + 2 pw)."""
    xp = get_array_module(x)
    n, C, H, Wd = x.shape
    out = xp.full((n, C, h1 - h0, Wd + 2 * pw), value, dtype=x.dtype)
    a, b = max(h0, 0), min(h1, H)
    if a < b:
        out[:, :, a - h0 : b - h0, pw : pw + Wd] = x[:, :, a:b, :]
    return out


def _band(i0, i1, sh, ph, R, dh):
    """Input rows ``h0:h1`` (unpadded coordinates, may stick out) read by output rows ``i0:i1``."""
    h0 = i0 * sh - ph
    return h0, h0 + (i1 - i0 - 1) * sh + (R - 1) * dh + 1


def im2col(xband, R, S, Hc, Wo, stride, dilation, dtype):
    """Columns of a padded band. xband (n, C, rows, Wp) -> cols (n, C, R, S, Hc, Wo)."""
    xp = get_array_module(xband)
    (sh, sw), (dh, dw) = stride, dilation
    n, C = xband.shape[:2]
    cols = xp.empty((n, C, R, S, Hc, Wo), dtype=dtype)
    for r in range(R):
        for s in range(S):  # one tap: the pixels it reads for all (i, j) form a strided slice
            cols[:, :, r, s] = xband[:, :, r * dh : r * dh + sh * (Hc - 1) + 1 : sh,
                                     s * dw : s * dw + sw * (Wo - 1) + 1 : sw]  # fmt: skip
    return cols


def col2im(cols, band_shape, stride, dilation):
    """Adjoint of :func:`im2col`: add each column entry back onto the pixel it was copied from."""
    xp = get_array_module(cols)
    (sh, sw), (dh, dw) = stride, dilation
    n, C, R, S, Hc, Wo = cols.shape
    band = xp.zeros(band_shape, dtype=cols.dtype)
    for r in range(R):
        for s in range(S):  # within one tap the slice has no repeated pixel, so '+=' is exact
            band[:, :, r * dh : r * dh + sh * (Hc - 1) + 1 : sh,
                 s * dw : s * dw + sw * (Wo - 1) + 1 : sw] += cols[:, :, r, s]  # fmt: skip
    return band


# ----------------------------------------------------------------------------- convolution
def conv2d(x, W, b, geometry):
    """2-D convolution. x (N, C, H, W), W (K, C, R, S), b (K,) or None -> y (N, K, Ho, Wo)."""
    xp = get_array_module(x)
    N, C, H, Wd = x.shape
    K, _, R, S = W.shape
    stride, (ph, pw), dilation = geometry
    (sh, sw), (dh, dw) = stride, dilation
    Ho, Wo = output_size(H, R, sh, ph, dh), output_size(Wd, S, sw, pw, dw)
    dtype = xp.result_type(x.dtype, W.dtype)
    W2 = W.reshape(K, C * R * S)
    y = xp.empty((N, K, Ho, Wo), dtype=dtype)
    for n0, n1, i0, i1 in _chunks(N, Ho, C * R * S * Wo * dtype.itemsize, xp):
        h0, h1 = _band(i0, i1, sh, ph, R, dh)
        cols = im2col(_padded_rows(x[n0:n1], h0, h1, pw), R, S, i1 - i0, Wo, stride, dilation, dtype)
        out = xp.matmul(W2, cols.reshape(n1 - n0, C * R * S, (i1 - i0) * Wo))  # (n, K, Hc Wo)
        y[n0:n1, :, i0:i1] = out.reshape(n1 - n0, K, i1 - i0, Wo)
        del cols, out  # free this chunk before the next is allocated (else two coexist)
    if b is not None:
        y += b.reshape(1, K, 1, 1)
    return y


def conv2d_input_grad(dy, W, x_shape, geometry):
    """dL/dx of :func:`conv2d`: ``dcols = W2.T @ dy`` then col2im. -> dx ``x_shape``."""
    xp = get_array_module(dy)
    N, C, H, Wd = x_shape
    K, _, R, S = W.shape
    stride, (ph, pw), dilation = geometry
    sh, dh = stride[0], dilation[0]  # the bands cut rows only
    Ho, Wo = dy.shape[2:]
    dtype = xp.result_type(dy.dtype, W.dtype)
    W2T = W.reshape(K, C * R * S).T
    dx = xp.zeros((N, C, H, Wd), dtype=dtype)
    for n0, n1, i0, i1 in _chunks(N, Ho, C * R * S * Wo * dtype.itemsize, xp):
        n, Hc = n1 - n0, i1 - i0
        dcols = xp.matmul(W2T, dy[n0:n1, :, i0:i1].reshape(n, K, Hc * Wo))  # (n, C R S, Hc Wo)
        h0, h1 = _band(i0, i1, sh, ph, R, dh)
        band = col2im(dcols.reshape(n, C, R, S, Hc, Wo), (n, C, h1 - h0, Wd + 2 * pw), stride, dilation)
        a, b = max(h0, 0), min(h1, H)  # keep the real rows; bands overlap by their halo, so add
        if a < b:
            dx[n0:n1, :, a:b] += band[:, :, a - h0 : b - h0, pw : pw + Wd]
        del dcols, band  # free this chunk before the next is allocated
    return dx


def conv2d_weight_grad(dy, x, W_shape, geometry):
    """dL/dW of :func:`conv2d`: ``dW2 = sum_n dy[n] @ cols[n].T``. -> dW ``W_shape``."""
    xp = get_array_module(x)
    N, C, H, Wd = x.shape
    K, _, R, S = W_shape
    stride, (ph, pw), dilation = geometry
    sh, dh = stride[0], dilation[0]
    Ho, Wo = dy.shape[2:]
    dtype = xp.result_type(dy.dtype, x.dtype)
    dW2 = xp.zeros((K, C * R * S), dtype=dtype)
    for n0, n1, i0, i1 in _chunks(N, Ho, C * R * S * Wo * dtype.itemsize, xp):
        n, Hc = n1 - n0, i1 - i0
        h0, h1 = _band(i0, i1, sh, ph, R, dh)
        cols = im2col(_padded_rows(x[n0:n1], h0, h1, pw), R, S, Hc, Wo, stride, dilation, dtype)
        g = dy[n0:n1, :, i0:i1].reshape(n, K, Hc * Wo)
        dW2 += xp.matmul(g, cols.reshape(n, C * R * S, Hc * Wo).transpose(0, 2, 1)).sum(axis=0)
        del cols  # free this chunk before the next is allocated
    return dW2.reshape(K, C, R, S)


conv2d_forward, conv2d_backward, conv2d_transpose_forward, conv2d_transpose_backward = conv_pairs(
    conv2d, conv2d_input_grad, conv2d_weight_grad)  # the pairs layers call (kernels/pairs.py)


# ----------------------------------------------------------------------------- pooling
def _pool_taps(x, geometry, value):
    """Yield ``(r, s, view)``: for each window tap, the (N, C, Ho, Wo) slice it reads."""
    N, C, H, Wd = x.shape
    (R, S), (sh, sw), (ph, pw), (dh, dw) = geometry
    Ho, Wo = output_size(H, R, sh, ph, dh), output_size(Wd, S, sw, pw, dw)
    xpad = _padded_rows(x, -ph, H + ph, pw, value)
    for r in range(R):
        for s in range(S):
            yield r, s, xpad[:, :, r * dh : r * dh + sh * (Ho - 1) + 1 : sh, s * dw : s * dw + sw * (Wo - 1) + 1 : sw]


def maxpool2d_forward(x, geometry, training=True):
    """Max pooling -> ``(y, (argmax, x.shape))``; argmax is the flat ``h * W + w`` index in the
    unpadded plane.

    A running comparison over the taps, ``take = v > best or isnan(v)``: the strict ``>`` keeps the
    first of equal maxima in row-major window order, as PyTorch. Padding is ``-inf``.
    """
    xp = get_array_module(x)
    N, C, H, Wd = x.shape
    (R, S), (sh, sw), (ph, pw), (dh, dw) = geometry
    check_pool_padding((R, S), (ph, pw))
    Ho, Wo = output_size(H, R, sh, ph, dh), output_size(Wd, S, sw, pw, dw)
    top = xp.arange(Ho) * sh - ph  # first row / column of each window, unpadded coordinates
    left = xp.arange(Wo) * sw - pw
    best = xp.full((N, C, Ho, Wo), -xp.inf, dtype=x.dtype)
    # before any tap wins, the winner is the window's first real pixel (as PyTorch)
    first_row = xp.where(top >= 0, top, top + (-top + dh - 1) // dh * dh)
    first_col = xp.where(left >= 0, left, left + (-left + dw - 1) // dw * dw)
    argmax = xp.broadcast_to(first_row[:, None] * Wd + first_col[None, :], best.shape)
    for r, s, v in _pool_taps(x, geometry, -xp.inf):
        take = (v > best) | xp.isnan(v)
        best = xp.where(take, v, best)
        argmax = xp.where(take, (top[:, None] + r * dh) * Wd + (left[None, :] + s * dw), argmax)
    return best, (argmax.astype(xp.int64, copy=False), x.shape)


def maxpool2d_backward(dy, cache):
    """Route each ``dy`` to the pixel that won its window; shared winners add up.

    When windows overlap (stride < pool) several outputs can share a winner, so a plain
    ``dx[idx] += dy`` would lose all but one of them. A scatter-add is a *weighted histogram*:
    ``bincount(index, weights=dy)`` sums the gradients landing on each pixel, in NumPy and CuPy
    alike (it accumulates in float64; the result is cast back to ``dy``'s dtype).
    """
    xp = get_array_module(dy)
    argmax, (N, C, H, Wd) = cache
    plane = xp.arange(N * C).reshape(N, C, 1, 1) * (H * Wd)  # offset of each channel plane
    index = (plane + argmax).ravel()
    dx = xp.bincount(index, weights=dy.ravel(), minlength=N * C * H * Wd)
    return dx.astype(dy.dtype, copy=False).reshape(N, C, H, Wd)


def avgpool2d_forward(x, geometry, training=True):
    """Average pooling: the sum of the tap slices divided by ``R S`` (padding zeros count).
    -> ``(y, (x.shape, geometry))``."""
    xp = get_array_module(x)
    N, C, H, Wd = x.shape
    (R, S), (sh, sw), (ph, pw), (dh, dw) = geometry
    check_pool_padding((R, S), (ph, pw))
    y = xp.zeros((N, C, output_size(H, R, sh, ph, dh), output_size(Wd, S, sw, pw, dw)), dtype=x.dtype)
    for _, _, v in _pool_taps(x, geometry, 0):
        y += v
    return y / xp.asarray(R * S, dtype=x.dtype), (x.shape, geometry)


def avgpool2d_backward(dy, cache):
    """Each pixel of a window receives ``dy / (R S)``: tap slices with ``+=``, then crop."""
    xp = get_array_module(dy)
    (N, C, H, Wd), ((R, S), (sh, sw), (ph, pw), (dh, dw)) = cache
    Ho, Wo = dy.shape[2:]
    share = dy / xp.asarray(R * S, dtype=dy.dtype)
    dxpad = xp.zeros((N, C, H + 2 * ph, Wd + 2 * pw), dtype=dy.dtype)
    for r in range(R):
        for s in range(S):
            dxpad[:, :, r * dh : r * dh + sh * (Ho - 1) + 1 : sh, s * dw : s * dw + sw * (Wo - 1) + 1 : sw] += share
    return dxpad[:, :, ph : ph + H, pw : pw + Wd].copy()
