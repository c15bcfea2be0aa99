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

Pooling uses the same tap slices (a running max; a running sum; dilation spaces the taps as a
convolution's), and max pooling's backward is a scatter-add done with ``bincount``.

**Images and volumes, one code path.** A tap is a tuple ``(r, s)`` -- or ``(t, r, s)`` for a
volume -- walked by ``np.ndindex``, and bands cut the first spatial axis, so every function here
takes (N, C, H, W) and (N, C, D, H, W) alike: ``conv3d`` *is* ``conv2d``. The depthwise
convolution needs no GEMM (each output reads one channel): one multiply-add per tap, vectorized
over all positions.

Everything goes through ``xp = get_array_module(x)`` and uses only functions NumPy and CuPy share,
so the CuPy engine can reuse this file verbatim. float32 stays float32.
"""

from __future__ import annotations

import math

import numpy as np

from ..backend import get_array_module
from .geometry import check_pool_geometry, first_tap, output_size
from .pairs import conv_pairs

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


_EVERY = (slice(None), slice(None))
"""Index prefix for "every image, every channel": ``a[_EVERY + tap]`` is ``a[:, :, r, s]``."""


def _tap_slices(tap, out, stride, dilation):
    """The slices through the padded input that one window tap reads at every output position:
    along each spatial axis ``t d : t d + s (o - 1) + 1 : s`` (``o`` outputs, stride ``s``,
    dilation ``d``). For a fixed tap they form a strided view: no index arrays, no ``add.at``."""
    return tuple(slice(t * d, t * d + s * (o - 1) + 1, s) for t, o, s, d in zip(tap, out, stride, dilation))


def _padded_band(x, h0, h1, padding, value=0.0):
    """Slab ``h0:h1`` of the first spatial axis of ``x`` (n, C, H, ...) -- indices outside
    ``[0, H)`` are padding -- with the other spatial axes padded by ``padding[1:]`` on both sides
    with ``value``: (n, C, H, W) -> (n, C, h1 - h0, W + 2 pw); volumes likewise."""
    xp = get_array_module(x)
    n, C, H, *rest = x.shape
    out = xp.full((n, C, h1 - h0, *(m + 2 * p for m, p in zip(rest, padding[1:]))), value, dtype=x.dtype)
    a, b = max(h0, 0), min(h1, H)
    if a < b:
        inner = tuple(slice(p, p + m) for m, p in zip(rest, padding[1:]))
        out[(*_EVERY, slice(a - h0, b - h0), *inner)] = x[:, :, a:b]
    return out


def _band(i0, i1, sh, ph, R, dh):
    """Input rows ``h0:h1`` (unpadded coordinates, may stick out) read by output rows ``i0:i1``."""
    h0 = i0 * sh - ph
    return h0, h0 + (i1 - i0 - 1) * sh + (R - 1) * dh + 1


def im2col(xband, kernel, out, stride, dilation, dtype):
    """Columns of a padded band: xband (n, C, rows, Wp) -> cols (n, C, R, S, Hc, Wo), where
    ``kernel = (R, S)`` and ``out = (Hc, Wo)`` (volumes: one more axis in each)."""
    xp = get_array_module(xband)
    cols = xp.empty((*xband.shape[:2], *kernel, *out), dtype=dtype)
    for tap in np.ndindex(*kernel):  # one tap: the pixels it reads for all outputs form a strided slice
        cols[_EVERY + tap] = xband[_EVERY + _tap_slices(tap, out, stride, dilation)]
    return cols


def col2im(cols, band_shape, stride, dilation):
    """Adjoint of :func:`im2col`: add each column entry back onto the pixel it was copied from."""
    xp = get_array_module(cols)
    dims = len(band_shape) - 2
    kernel, out = cols.shape[2 : 2 + dims], cols.shape[2 + dims :]
    band = xp.zeros(band_shape, dtype=cols.dtype)
    for tap in np.ndindex(*kernel):  # within one tap the slice has no repeated pixel, so '+=' is exact
        band[_EVERY + _tap_slices(tap, out, stride, dilation)] += cols[_EVERY + tap]
    return band


# ----------------------------------------------------------------------------- convolution
# One code path for images and volumes: every function below takes any number of spatial axes
# (x (N, C, H, W) or (N, C, D, H, W)); bands cut the first spatial axis.
def conv(x, W, b, geometry):
    """Convolution. x (N, C, H, W), W (K, C, R, S), b (K,) or None -> y (N, K, Ho, Wo);
    volumes: x (N, C, D, H, W), W (K, C, T, R, S) -> y (N, K, Do, Ho, Wo)."""
    xp = get_array_module(x)
    N, C = x.shape[:2]
    K, _, *kernel = W.shape
    stride, padding, dilation = geometry
    out = [output_size(*a) for a in zip(x.shape[2:], kernel, stride, padding, dilation)]
    dtype = xp.result_type(x.dtype, W.dtype)
    taps = C * math.prod(kernel)  # rows of the column matrix
    W2 = W.reshape(K, taps)
    y = xp.empty((N, K, *out), dtype=dtype)
    for n0, n1, i0, i1 in _chunks(N, out[0], taps * math.prod(out[1:]) * dtype.itemsize, xp):
        h0, h1 = _band(i0, i1, stride[0], padding[0], kernel[0], dilation[0])
        band_out = (i1 - i0, *out[1:])
        cols = im2col(_padded_band(x[n0:n1], h0, h1, padding), kernel, band_out, stride, dilation, dtype)
        product = xp.matmul(W2, cols.reshape(n1 - n0, taps, -1))  # (n, K, outputs of the band)
        y[n0:n1, :, i0:i1] = product.reshape(n1 - n0, K, *band_out)
        del cols, product  # free this chunk before the next is allocated (else two coexist)
    if b is not None:
        y += b.reshape(1, K, *(1,) * len(out))
    return y


def conv_input_grad(dy, W, x_shape, geometry):
    """dL/dx of :func:`conv`: ``dcols = W2.T @ dy`` then col2im. -> dx ``x_shape``."""
    xp = get_array_module(dy)
    N, C, H, *rest = x_shape
    K, _, *kernel = W.shape
    stride, padding, dilation = geometry
    out = dy.shape[2:]
    dtype = xp.result_type(dy.dtype, W.dtype)
    taps = C * math.prod(kernel)
    W2T = W.reshape(K, taps).T
    dx = xp.zeros(x_shape, dtype=dtype)
    inner = tuple(slice(p, p + m) for m, p in zip(rest, padding[1:]))  # the real pixels of a band
    for n0, n1, i0, i1 in _chunks(N, out[0], taps * math.prod(out[1:]) * dtype.itemsize, xp):
        n, band_out = n1 - n0, (i1 - i0, *out[1:])
        dcols = xp.matmul(W2T, dy[n0:n1, :, i0:i1].reshape(n, K, -1))  # (n, taps, outputs of the band)
        h0, h1 = _band(i0, i1, stride[0], padding[0], kernel[0], dilation[0])
        band_shape = (n, C, h1 - h0, *(m + 2 * p for m, p in zip(rest, padding[1:])))
        band = col2im(dcols.reshape(n, C, *kernel, *band_out), band_shape, stride, dilation)
        a, b = max(h0, 0), min(h1, H)  # keep the real rows; bands overlap by their halo, so add
        if a < b:
            dx[n0:n1, :, a:b] += band[(*_EVERY, slice(a - h0, b - h0), *inner)]
        del dcols, band  # free this chunk before the next is allocated
    return dx


def conv_weight_grad(dy, x, W_shape, geometry):
    """dL/dW of :func:`conv`: ``dW2 = sum_n dy[n] @ cols[n].T``. -> dW ``W_shape``."""
    xp = get_array_module(x)
    N, C = x.shape[:2]
    K, _, *kernel = W_shape
    stride, padding, dilation = geometry
    out = dy.shape[2:]
    dtype = xp.result_type(dy.dtype, x.dtype)
    taps = C * math.prod(kernel)
    dW2 = xp.zeros((K, taps), dtype=dtype)
    for n0, n1, i0, i1 in _chunks(N, out[0], taps * math.prod(out[1:]) * dtype.itemsize, xp):
        n, band_out = n1 - n0, (i1 - i0, *out[1:])
        h0, h1 = _band(i0, i1, stride[0], padding[0], kernel[0], dilation[0])
        cols = im2col(_padded_band(x[n0:n1], h0, h1, padding), kernel, band_out, stride, dilation, dtype)
        g = dy[n0:n1, :, i0:i1].reshape(n, K, -1)
        dW2 += xp.matmul(g, cols.reshape(n, taps, -1).transpose(0, 2, 1)).sum(axis=0)
        del cols  # free this chunk before the next is allocated
    return dW2.reshape(W_shape)


conv2d, conv2d_input_grad, conv2d_weight_grad = conv, conv_input_grad, conv_weight_grad
conv3d, conv3d_input_grad, conv3d_weight_grad = conv, conv_input_grad, conv_weight_grad
conv2d_forward, conv2d_backward, conv2d_transpose_forward, conv2d_transpose_backward = conv_pairs(
    conv, conv_input_grad, conv_weight_grad)  # the pairs layers call (kernels/pairs.py)
conv3d_forward, conv3d_backward = conv2d_forward, conv2d_backward


# ----------------------------------------------------------------------------- depthwise convolution
def depthwise_conv2d(x, W, b, geometry):
    """Depthwise convolution, vectorized over positions: one tap at a time, every output position
    multiplies its strided slice by that tap's weights (no GEMM: each output reads one channel).
    x (N, C, H, W), W (C M, 1, R, S), b (C M,) or None -> y (N, C M, Ho, Wo)."""
    xp = get_array_module(x)
    N, C = x.shape[:2]
    stride, padding, dilation = geometry
    kernel = W.shape[2:]
    out = [output_size(*a) for a in zip(x.shape[2:], kernel, stride, padding, dilation)]
    Wg = W.reshape(C, -1, *kernel)  # (C, M, R, S): filter m of input channel c
    xpad = _padded_band(x, -padding[0], x.shape[2] + padding[0], padding)
    y = xp.zeros((N, *Wg.shape[:2], *out), dtype=xp.result_type(x.dtype, W.dtype))  # (N, C, M, Ho, Wo)
    for tap in np.ndindex(*kernel):
        y += xpad[_EVERY + _tap_slices(tap, out, stride, dilation)][:, :, None] * Wg[_EVERY + tap][..., None, None]
    y = y.reshape(N, -1, *out)
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


def depthwise_conv2d_input_grad(dy, W, x_shape, geometry):
    """dL/dx of :func:`depthwise_conv2d`: each tap sends ``sum_m dy W`` back to the slice it read."""
    xp = get_array_module(dy)
    N, C, H, Wd = x_shape
    stride, (ph, pw), dilation = geometry
    kernel, out = W.shape[2:], dy.shape[2:]
    Wg = W.reshape(C, -1, *kernel)
    dy5 = dy.reshape(N, C, Wg.shape[1], *out)
    dxpad = xp.zeros((N, C, H + 2 * ph, Wd + 2 * pw), dtype=xp.result_type(dy.dtype, W.dtype))
    for tap in np.ndindex(*kernel):
        dxpad[_EVERY + _tap_slices(tap, out, stride, dilation)] += (dy5 * Wg[_EVERY + tap][..., None, None]).sum(2)
    return dxpad[:, :, ph : ph + H, pw : pw + Wd].copy()


def depthwise_conv2d_weight_grad(dy, x, W_shape, geometry):
    """dL/dW of :func:`depthwise_conv2d`: per tap, ``dy`` times the slice it read, summed over the
    batch and the positions."""
    xp = get_array_module(x)
    N, C = x.shape[:2]
    stride, padding, dilation = geometry
    kernel, out = W_shape[2:], dy.shape[2:]
    xpad = _padded_band(x, -padding[0], x.shape[2] + padding[0], padding)
    dy5 = dy.reshape(N, C, -1, *out)
    dWg = xp.empty((C, dy5.shape[2], *kernel), dtype=xp.result_type(dy.dtype, x.dtype))
    for tap in np.ndindex(*kernel):
        dWg[_EVERY + tap] = (dy5 * xpad[_EVERY + _tap_slices(tap, out, stride, dilation)][:, :, None]).sum((0, 3, 4))
    return dWg.reshape(W_shape)


depthwise_conv2d_forward, depthwise_conv2d_backward = conv_pairs(
    depthwise_conv2d, depthwise_conv2d_input_grad, depthwise_conv2d_weight_grad)[:2]


# ----------------------------------------------------------------------------- pooling
# Images and volumes alike: x (N, C, *spatial), windows of any number of axes; a geometry is
# ``(pool, stride, padding, dilation)``, one entry per spatial axis in each.
def _pool_output(sizes, geometry):
    """The output size along each spatial axis (the convolution's rule, dilation included)."""
    return [output_size(*a) for a in zip(sizes, *geometry, strict=True)]


def _pool_taps(x, geometry, value):
    """Yield ``(tap, view)``: for each window tap, the (N, C, *out) slice it reads."""
    pool, stride, padding, dilation = geometry
    out = _pool_output(x.shape[2:], geometry)
    xpad = _padded_band(x, -padding[0], x.shape[2] + padding[0], padding, value)
    for tap in np.ndindex(*pool):
        yield tap, xpad[_EVERY + _tap_slices(tap, out, stride, dilation)]


def _window_starts(sizes, geometry, xp):
    """Per spatial axis, the first index of every window (unpadded coordinates, may be negative),
    shaped to broadcast over the output: ``(Ho, 1)`` and ``(1, Wo)`` for images."""
    _, stride, padding, _ = geometry
    dims = len(sizes)
    return [(xp.arange(o) * s - p).reshape([-1 if a == axis else 1 for a in range(dims)])
            for axis, (o, s, p) in enumerate(zip(_pool_output(sizes, geometry), stride, padding))]


def _flat_index(coords, sizes):
    """Row-major flat index of per-axis coordinates in an array of ``sizes`` (``h W + w``)."""
    index = 0
    for c, n in zip(coords, sizes):
        index = index * n + c
    return index


def maxpool_forward(x, geometry, training=True):
    """Max pooling -> ``(y, (argmax, x.shape))``; argmax is the winner's flat index in the
    unpadded plane (``h * W + w``; volumes ``(d H + h) W + w``).

    A running comparison over the taps, ``take = v > best or isnan(v)``: the strict ``>`` keeps the
    first of equal maxima in row-major window order, as PyTorch. Padding is ``-inf``. Tap ``t`` of
    a window starting at ``start`` reads ``start + t d`` per axis (dilation ``d``).
    """
    xp = get_array_module(x)
    dilation, sizes = geometry[3], x.shape[2:]
    check_pool_geometry(sizes, geometry)
    starts = _window_starts(sizes, geometry, xp)
    best = xp.full((*x.shape[:2], *(s.size for s in starts)), -xp.inf, dtype=x.dtype)
    # before any tap wins, the winner is the window's first real pixel (as PyTorch)
    argmax = xp.broadcast_to(_flat_index([first_tap(s, d) for s, d in zip(starts, dilation)], sizes), best.shape)
    for tap, v in _pool_taps(x, geometry, -xp.inf):
        take = (v > best) | xp.isnan(v)
        best = xp.where(take, v, best)
        argmax = xp.where(take, _flat_index([s + t * d for s, t, d in zip(starts, tap, dilation)], sizes), argmax)
    return best, (argmax.astype(xp.int64, copy=False), x.shape)


def maxpool_backward(dy, cache):
    """Route each ``dy`` to the pixel that won its window; shared winners add up.

    When windows overlap (stride < pool) several outputs can share a winner, so a plain
    ``dx[idx] += dy`` would lose all but one of them. A scatter-add is a *weighted histogram*:
    ``bincount(index, weights=dy)`` sums the gradients landing on each pixel, in NumPy and CuPy
    alike (it accumulates in float64; the result is cast back to ``dy``'s dtype).
    """
    xp = get_array_module(dy)
    argmax, x_shape = cache
    N, C = x_shape[:2]
    plane_size = math.prod(x_shape[2:])
    plane = xp.arange(N * C).reshape(N, C, *(1,) * (len(x_shape) - 2)) * plane_size  # offset of each plane
    index = (plane + argmax).ravel()
    dx = xp.bincount(index, weights=dy.ravel(), minlength=N * C * plane_size)
    return dx.astype(dy.dtype, copy=False).reshape(x_shape)


def avgpool_forward(x, geometry, training=True):
    """Average pooling: the sum of the tap slices divided by the window size (padding zeros
    count). -> ``(y, (x.shape, geometry))``."""
    xp = get_array_module(x)
    pool = geometry[0]
    check_pool_geometry(x.shape[2:], geometry)
    y = None
    for _, v in _pool_taps(x, geometry, 0):
        y = v.copy() if y is None else y + v
    return y / xp.asarray(math.prod(pool), dtype=x.dtype), (x.shape, geometry)


def avgpool_backward(dy, cache):
    """Each pixel of a window receives ``dy / (window size)``: tap slices with ``+=``, then crop."""
    xp = get_array_module(dy)
    x_shape, (pool, stride, padding, dilation) = cache
    share = dy / xp.asarray(math.prod(pool), dtype=dy.dtype)
    dxpad = xp.zeros((*x_shape[:2], *(n + 2 * p for n, p in zip(x_shape[2:], padding))), dtype=dy.dtype)
    for tap in np.ndindex(*pool):
        dxpad[_EVERY + _tap_slices(tap, dy.shape[2:], stride, dilation)] += share
    return dxpad[_EVERY + tuple(slice(p, p + n) for n, p in zip(x_shape[2:], padding))].copy()


# ----------------------------------------------------------------------------- nearest upsampling
def upsample2d_forward(x, size, training=True):
    """Nearest upsampling by ``size = (sh, sw)`` as two ``repeat`` s: (N, C, H, W) -> (N, C, H sh, W sw).
    -> ``(y, (x.shape, size))``."""
    sh, sw = size
    return x.repeat(sh, axis=2).repeat(sw, axis=3), (x.shape, (sh, sw))


def upsample2d_backward(dy, cache):
    """``dx[n, c, h, w] = sum_{a, b} dy[n, c, h sh + a, w sw + b]``: view dy as
    (N, C, H, sh, W, sw) and sum the two block axes."""
    (N, C, H, Wd), (sh, sw) = cache
    return dy.reshape(N, C, H, sh, Wd, sw).sum(axis=(3, 5))


maxpool2d_forward, maxpool2d_backward, avgpool2d_forward, avgpool2d_backward = (
    maxpool_forward, maxpool_backward, avgpool_forward, avgpool_backward)
maxpool3d_forward, maxpool3d_backward, avgpool3d_forward, avgpool3d_backward = (
    maxpool_forward, maxpool_backward, avgpool_forward, avgpool_backward)
