"""The ``reference`` engine: convolution and pooling written as the loops on the slides.

This file is the *definition* every faster engine is tested against. Each kernel walks over the
output positions ``(i, j)`` and the kernel taps ``(r, s)`` in plain Python, exactly as one draws a
filter sliding over an image. Only the innermost work -- all images of the batch and all channels
at one position -- is a NumPy matrix product, so the tests finish in seconds. To step through a
backward pass in a debugger, run the model inside ``with hp.engine("reference"):``.

Notation (NCHW layout, PyTorch conventions)::

    x  (N, C, H, W)     input: N images, C channels, H rows, W columns
    Wt (K, C, R, S)     weights: K filters, each C x R x S
    y  (N, K, Ho, Wo)   output
    stride (sh, sw), padding (ph, pw), dilation (dh, dw)    (a ConvGeometry)

A tap ``(r, s)`` of output position ``(i, j)`` reads the (zero-)padded input at::

    h = i * sh + r * dh        w = j * sw + s * dw          (padded coordinates)

and the output size is ``Ho = (H + 2 ph - dh (R - 1) - 1) // sh + 1`` (likewise Wo).

Convolution (really cross-correlation, as in every deep-learning library)::

    y[n, k, i, j] = b[k] + sum_{c, r, s} Wt[k, c, r, s] * xpad[n, c, i sh + r dh, j sw + s dw]

Its gradients reuse the same index map, read backwards:

* input:   dxpad[n, c, i sh + r dh, j sw + s dw] += sum_k dy[n, k, i, j] Wt[k, c, r, s]
* weight:  dWt[k, c, r, s] += sum_{n, i, j} dy[n, k, i, j] xpad[n, c, i sh + r dh, j sw + s dw]
* bias:    db[k] = sum_{n, i, j} dy[n, k, i, j]

Pooling uses the same windows, one channel at a time.

Further down: the **depthwise** convolution (each channel its own filters, no sum over ``c``) as
the same four loops, and **volumes** (N, C, D, H, W): the loops once more, with every index
``(i, j)``, ``(r, s)`` a tuple that ``np.ndindex`` walks, so one definition serves any number of
spatial axes (on images it gives conv2d's numbers; the tests check that).

**The engine API.** Layers call forward/backward *pairs*: ``forward(...) -> (y, cache)`` and
``backward(dy, cache, ...)``; the cache is what backward needs, built by the engine that will read
it (here: the inputs and the geometry). The full list is in :mod:`handprop.kernels`.
"""

from __future__ import annotations

import numpy as np

from .geometry import check_pool_geometry, first_tap, output_size
from .pairs import ConvCache, _bias_grad  # db[k] = sum of dy[n, k, ...]


def _pad(x, ph, pw, value=0.0):
    """Surround the spatial axes of ``x`` (N, C, H, W) with ``ph`` rows and ``pw`` columns of ``value``."""
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


# ----------------------------------------------------------------------------- convolution: the loops
def conv2d(x, W, b, geometry):
    """2-D convolution. x (N, C, H, W), W (K, C, R, S), b (K,) or None -> y (N, K, Ho, Wo)."""
    N, C, H, Wd = x.shape
    K, _, R, S = W.shape
    (sh, sw), (ph, pw), (dh, dw) = geometry
    Ho, Wo = output_size(H, R, sh, ph, dh), output_size(Wd, S, sw, pw, dw)
    xpad = _pad(x, ph, pw)
    y = np.zeros((N, K, Ho, Wo), dtype=np.result_type(x, W))
    for i in range(Ho):  # every output position ...
        for j in range(Wo):
            for r in range(R):  # ... sums over the kernel taps
                for s in range(S):
                    pixel = xpad[:, :, i * sh + r * dh, j * sw + s * dw]  # (N, C)
                    y[:, :, i, j] += pixel @ W[:, :, r, s].T  # (N, C) @ (C, K) -> (N, K)
    if b is not None:
        y += b.reshape(1, K, 1, 1)
    return y


def conv2d_input_grad(dy, W, x_shape, geometry):
    """dL/dx of :func:`conv2d`. dy (N, K, Ho, Wo), W (K, C, R, S) -> dx ``x_shape``.

    Every tap sends ``dy`` back to the pixel it read; overlapping windows add up.
    """
    N, C, H, Wd = x_shape
    K, _, R, S = W.shape
    (sh, sw), (ph, pw), (dh, dw) = geometry
    Ho, Wo = dy.shape[2:]
    dxpad = np.zeros((N, C, H + 2 * ph, Wd + 2 * pw), dtype=np.result_type(dy, W))
    for i in range(Ho):
        for j in range(Wo):
            for r in range(R):
                for s in range(S):
                    # (N, K) @ (K, C) -> (N, C)
                    dxpad[:, :, i * sh + r * dh, j * sw + s * dw] += dy[:, :, i, j] @ W[:, :, r, s]
    return dxpad[:, :, ph : ph + H, pw : pw + Wd].copy()  # the padding's gradient is dropped


def conv2d_weight_grad(dy, x, W_shape, geometry):
    """dL/dW of :func:`conv2d`. dy (N, K, Ho, Wo), x (N, C, H, W) -> dW ``W_shape``.

    Each weight collects ``dy * (the pixel it multiplied)`` over the batch and all positions.
    """
    K, C, R, S = W_shape
    (sh, sw), (ph, pw), (dh, dw) = geometry
    Ho, Wo = dy.shape[2:]
    xpad = _pad(x, ph, pw)
    dW = np.zeros((K, C, R, S), dtype=np.result_type(dy, x))
    for i in range(Ho):
        for j in range(Wo):
            for r in range(R):
                for s in range(S):
                    pixel = xpad[:, :, i * sh + r * dh, j * sw + s * dw]  # (N, C)
                    dW[:, :, r, s] += dy[:, :, i, j].T @ pixel  # (K, N) @ (N, C) -> (K, C)
    return dW


# ----------------------------------------------------------------------------- convolution: the pairs
# Layers call these: ``y, cache = conv2d_forward(x, W, b, geometry, training)`` then
# ``dx, dW, db = conv2d_backward(dy, cache, need_dx)``, which call the loops above. A transposed
# convolution is the same three linear maps with the roles swapped::
#
#     Conv2D           forward y = A x      backward dx = A^T dy,  dW = weight_grad(dy, x)
#     Conv2DTranspose  forward y = A^T x    backward dx = A dy,    dW = weight_grad(x, dy)
def conv2d_forward(x, W, b, geometry, training=True):
    """``y = conv2d(x, W, b)`` and the cache its backward reads. -> ``(y, ConvCache)``."""
    return conv2d(x, W, b, geometry), ConvCache(x, W, b is not None, geometry)


def conv2d_backward(dy, cache, need_dx=True):
    """``(dx, dW, db)`` of :func:`conv2d_forward`: dx None unless ``need_dx`` (a first layer needs
    no input gradient), db None without a bias."""
    x, W, has_bias, geometry, _ = cache
    dW = conv2d_weight_grad(dy, x, W.shape, geometry)
    db = _bias_grad(dy) if has_bias else None
    dx = conv2d_input_grad(dy, W, x.shape, geometry) if need_dx else None
    return dx, dW, db


def conv2d_transpose_forward(x, W, b, geometry, y_shape, training=True):
    """Transposed convolution: x (N, C_in, H, W), W (C_in, K, R, S) -> y ``y_shape``, the input
    gradient of a convolution applied forward (each input pixel stamps the kernel)."""
    y = conv2d_input_grad(x, W, y_shape, geometry)
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y, ConvCache(x, W, b is not None, geometry)


def conv2d_transpose_backward(dy, cache, need_dx=True):
    """``dx = conv2d(dy, W)`` (an ordinary convolution), ``dW`` the convolution's weight gradient
    with ``x`` and ``dy`` swapped, ``db`` dy summed."""
    x, W, has_bias, geometry, _ = cache
    dW = conv2d_weight_grad(x, dy, W.shape, geometry)
    db = _bias_grad(dy) if has_bias else None
    dx = conv2d(dy, W, None, geometry) if need_dx else None
    return dx, dW, db


# ----------------------------------------------------------------------------- depthwise convolution
def depthwise_conv2d(x, W, b, geometry):
    """Depthwise convolution: every input channel has its own ``M`` filters and output channel
    ``c M + m`` reads input channel ``c`` only (PyTorch's ``conv2d(..., groups=C)``).
    x (N, C, H, W), W (C M, 1, R, S), b (C M,) or None -> y (N, C M, Ho, Wo)::

        y[n, c M + m, i, j] = b[c M + m] + sum_{r, s} W[c M + m, 0, r, s] * xpad[n, c, i sh + r dh, j sw + s dw]

    (no sum over channels: that is what the 1 x 1 convolution after it in a separable block adds).
    """
    N, C, H, Wd = x.shape
    R, S = W.shape[2:]
    (sh, sw), (ph, pw), (dh, dw) = geometry
    Ho, Wo = output_size(H, R, sh, ph, dh), output_size(Wd, S, sw, pw, dw)
    Wg = W.reshape(C, -1, R, S)  # (C, M, R, S): filter m of channel c
    xpad = _pad(x, ph, pw)
    y = np.zeros((N, *Wg.shape[:2], Ho, Wo), dtype=np.result_type(x, W))  # (N, C, M, Ho, Wo)
    for i in range(Ho):
        for j in range(Wo):
            for r in range(R):
                for s in range(S):
                    pixel = xpad[:, :, i * sh + r * dh, j * sw + s * dw]  # (N, C)
                    y[:, :, :, i, j] += pixel[:, :, None] * Wg[:, :, r, s]  # (N, C, 1) * (C, M)
    y = y.reshape(N, -1, Ho, Wo)
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


def depthwise_conv2d_input_grad(dy, W, x_shape, geometry):
    """dL/dx of :func:`depthwise_conv2d`: each tap sends ``sum_m dy W`` back to the pixel it read."""
    N, C, H, Wd = x_shape
    R, S = W.shape[2:]
    (sh, sw), (ph, pw), (dh, dw) = geometry
    Ho, Wo = dy.shape[2:]
    Wg = W.reshape(C, -1, R, S)
    dy5 = dy.reshape(N, C, -1, Ho, Wo)  # (N, C, M, Ho, Wo)
    dxpad = np.zeros((N, C, H + 2 * ph, Wd + 2 * pw), dtype=np.result_type(dy, W))
    for i in range(Ho):
        for j in range(Wo):
            for r in range(R):
                for s in range(S):
                    dxpad[:, :, i * sh + r * dh, j * sw + s * dw] += (dy5[:, :, :, i, j] * Wg[:, :, r, s]).sum(axis=2)
    return dxpad[:, :, ph : ph + H, pw : pw + Wd].copy()


def depthwise_conv2d_weight_grad(dy, x, W_shape, geometry):
    """dL/dW of :func:`depthwise_conv2d`: each weight collects ``dy * (the pixel it multiplied)``."""
    N, C = x.shape[:2]
    R, S = W_shape[2:]
    (sh, sw), (ph, pw), (dh, dw) = geometry
    Ho, Wo = dy.shape[2:]
    xpad = _pad(x, ph, pw)
    dy5 = dy.reshape(N, C, -1, Ho, Wo)
    dWg = np.zeros((C, dy5.shape[2], R, S), dtype=np.result_type(dy, x))
    for i in range(Ho):
        for j in range(Wo):
            for r in range(R):
                for s in range(S):
                    pixel = xpad[:, :, i * sh + r * dh, j * sw + s * dw]  # (N, C)
                    dWg[:, :, r, s] += (dy5[:, :, :, i, j] * pixel[:, :, None]).sum(axis=0)
    return dWg.reshape(W_shape)


def depthwise_conv2d_forward(x, W, b, geometry, training=True):
    """``y = depthwise_conv2d(x, W, b)`` and its cache. -> ``(y, ConvCache)``."""
    return depthwise_conv2d(x, W, b, geometry), ConvCache(x, W, b is not None, geometry)


def depthwise_conv2d_backward(dy, cache, need_dx=True):
    """``(dx, dW, db)`` of :func:`depthwise_conv2d_forward` (dx None unless ``need_dx``)."""
    x, W, has_bias, geometry, _ = cache
    dW = depthwise_conv2d_weight_grad(dy, x, W.shape, geometry)
    db = _bias_grad(dy) if has_bias else None
    dx = depthwise_conv2d_input_grad(dy, W, x.shape, geometry) if need_dx else None
    return dx, dW, db


# ----------------------------------------------------------------------------- max pooling
def maxpool2d_forward(x, geometry, training=True):
    """Max pooling. x (N, C, H, W) -> ``(y, cache)``, y (N, C, Ho, Wo).

    The cache holds ``argmax[n, c, i, j] = h * W + w``, the winner's flat index in the *unpadded*
    channel plane, and the input shape. Padding is ``-inf`` so it never wins. Ties go to the first
    maximum in row-major window order and NaN propagates (the rule of PyTorch's kernel: take a tap
    when ``v > best or isnan(v)``). Tap ``(r, s)`` of window ``(i, j)`` reads padded pixel
    ``(i sh + r dh, j sw + s dw)``, as a convolution's.
    """
    N, C, H, Wd = x.shape
    (R, S), (sh, sw), (ph, pw), (dh, dw) = geometry
    check_pool_geometry((H, Wd), geometry)
    Ho, Wo = output_size(H, R, sh, ph, dh), output_size(Wd, S, sw, pw, dw)
    xpad = _pad(x, ph, pw, value=-np.inf)
    y = np.empty((N, C, Ho, Wo), dtype=x.dtype)
    argmax = np.empty((N, C, Ho, Wo), dtype=np.int64)
    for i in range(Ho):
        for j in range(Wo):
            best = np.full((N, C), -np.inf, dtype=x.dtype)
            # before any tap wins, the winner is the window's first real pixel (as PyTorch)
            first = first_tap(i * sh - ph, dh) * Wd + first_tap(j * sw - pw, dw)
            where = np.full((N, C), first, dtype=np.int64)
            for r in range(R):
                for s in range(S):
                    v = xpad[:, :, i * sh + r * dh, j * sw + s * dw]  # (N, C)
                    take = (v > best) | np.isnan(v)  # strict '>' keeps the first of equal maxima
                    best = np.where(take, v, best)
                    where = np.where(take, (i * sh + r * dh - ph) * Wd + (j * sw + s * dw - pw), where)
            y[:, :, i, j] = best
            argmax[:, :, i, j] = where
    return y, (argmax, x.shape)


def maxpool2d_backward(dy, cache):
    """dL/dx of max pooling.

    Each output's gradient goes to the pixel that won its window::

        dx[n, c, argmax[n, c, i, j]] += dy[n, c, i, j]
    """
    argmax, (N, C, H, Wd) = cache
    dx = np.zeros((N, C, H * Wd), dtype=dy.dtype)
    n = np.arange(N)[:, None]
    c = np.arange(C)[None, :]
    for i in range(dy.shape[2]):
        for j in range(dy.shape[3]):
            # within one (i, j) the (n, c) pairs are distinct, so '+=' cannot lose a collision
            dx[n, c, argmax[:, :, i, j]] += dy[:, :, i, j]
    return dx.reshape(N, C, H, Wd)


# ----------------------------------------------------------------------------- average pooling
def avgpool2d_forward(x, geometry, training=True):
    """Average pooling, ``y = mean of the R x S window``; padding zeros count (PyTorch default).
    -> ``(y, cache)``; the cache is the input shape and the geometry."""
    N, C, H, Wd = x.shape
    (R, S), (sh, sw), (ph, pw), (dh, dw) = geometry
    check_pool_geometry((H, Wd), geometry)
    Ho, Wo = output_size(H, R, sh, ph, dh), output_size(Wd, S, sw, pw, dw)
    xpad = _pad(x, ph, pw)
    y = np.zeros((N, C, Ho, Wo), dtype=x.dtype)
    for i in range(Ho):
        for j in range(Wo):
            for r in range(R):
                for s in range(S):
                    y[:, :, i, j] += xpad[:, :, i * sh + r * dh, j * sw + s * dw]
    return y / np.asarray(R * S, dtype=x.dtype), (x.shape, geometry)


def avgpool2d_backward(dy, cache):
    """dL/dx of average pooling: each pixel of a window receives ``dy / (R S)``."""
    (N, C, H, Wd), ((R, S), (sh, sw), (ph, pw), (dh, dw)) = cache
    share = dy / np.asarray(R * S, dtype=dy.dtype)
    dxpad = np.zeros((N, C, H + 2 * ph, Wd + 2 * pw), dtype=dy.dtype)
    for i in range(dy.shape[2]):
        for j in range(dy.shape[3]):
            for r in range(R):
                for s in range(S):
                    dxpad[:, :, i * sh + r * dh, j * sw + s * dw] += share[:, :, i, j]
    return dxpad[:, :, ph : ph + H, pw : pw + Wd].copy()


# ----------------------------------------------------------------------------- volumes: any number of axes
# The loops above, with every index ``i, j`` (output), ``r, s`` (tap) replaced by a tuple walked by
# ``np.ndindex``: ``o`` an output position, ``t`` a tap, and the tap reads the padded input at
# ``o * stride + t * dilation`` (per axis). On images these give exactly conv2d & co (tested);
# the engine uses them for volumes (N, C, D, H, W) with W (K, C, T, R, S).
def _pad_nd(x, padding, value=0.0):
    """Pad every spatial axis of ``x`` (N, C, ...) symmetrically with ``value``."""
    return np.pad(x, ((0, 0), (0, 0), *((p, p) for p in padding)), constant_values=value)


def _reads(o, t, stride, dilation):
    """Where tap ``t`` of output position ``o`` reads, in padded coordinates: ``o s + t d`` per axis."""
    return tuple(oi * si + ti * di for oi, ti, si, di in zip(o, t, stride, dilation))


def _flat(coords, sizes):
    """Row-major flat index of ``coords`` in an array of shape ``sizes`` (``h W + w`` for images)."""
    index = 0
    for c, n in zip(coords, sizes):
        index = index * n + c
    return index


def conv_nd(x, W, b, geometry):
    """Convolution over any number of spatial axes.

    ``x (N, C, *sizes), W (K, C, *kernel) -> y (N, K, *out)``::

        y[n, k, o] = b[k] + sum_{c, t} W[k, c, t] * xpad[n, c, o * stride + t * dilation]
    """
    N, K, kernel = x.shape[0], W.shape[0], W.shape[2:]
    stride, padding, dilation = geometry
    out = [output_size(*a) for a in zip(x.shape[2:], kernel, stride, padding, dilation)]
    xpad = _pad_nd(x, padding)
    y = np.zeros((N, K, *out), dtype=np.result_type(x, W))
    for o in np.ndindex(*out):  # every output position ...
        for t in np.ndindex(*kernel):  # ... sums over the kernel taps
            pixel = xpad[(..., *_reads(o, t, stride, dilation))]  # (N, C)
            y[(..., *o)] += pixel @ W[(..., *t)].T  # (N, C) @ (C, K) -> (N, K)
    if b is not None:
        y += b.reshape(1, K, *(1,) * len(out))
    return y


def conv_nd_input_grad(dy, W, x_shape, geometry):
    """dL/dx of :func:`conv_nd`: every tap sends ``dy`` back to the voxel it read."""
    stride, padding, dilation = geometry
    dxpad = np.zeros((*x_shape[:2], *(n + 2 * p for n, p in zip(x_shape[2:], padding))), dtype=np.result_type(dy, W))
    for o in np.ndindex(*dy.shape[2:]):
        for t in np.ndindex(*W.shape[2:]):
            dxpad[(..., *_reads(o, t, stride, dilation))] += dy[(..., *o)] @ W[(..., *t)]  # (N, K) @ (K, C)
    return dxpad[(..., *(slice(p, p + n) for n, p in zip(x_shape[2:], padding)))].copy()


def conv_nd_weight_grad(dy, x, W_shape, geometry):
    """dL/dW of :func:`conv_nd`: each weight collects ``dy * (the voxel it multiplied)``."""
    stride, padding, dilation = geometry
    xpad = _pad_nd(x, padding)
    dW = np.zeros(W_shape, dtype=np.result_type(dy, x))
    for o in np.ndindex(*dy.shape[2:]):
        for t in np.ndindex(*W_shape[2:]):
            dW[(..., *t)] += dy[(..., *o)].T @ xpad[(..., *_reads(o, t, stride, dilation))]  # (K, N) @ (N, C)
    return dW


conv3d, conv3d_input_grad, conv3d_weight_grad = conv_nd, conv_nd_input_grad, conv_nd_weight_grad


def conv3d_forward(x, W, b, geometry, training=True):
    """``y = conv_nd(x, W, b)`` on volumes and its cache. -> ``(y, ConvCache)``."""
    return conv_nd(x, W, b, geometry), ConvCache(x, W, b is not None, geometry)


def conv3d_backward(dy, cache, need_dx=True):
    """``(dx, dW, db)`` of :func:`conv3d_forward` (dx None unless ``need_dx``)."""
    x, W, has_bias, geometry, _ = cache
    dW = conv_nd_weight_grad(dy, x, W.shape, geometry)
    db = _bias_grad(dy) if has_bias else None
    dx = conv_nd_input_grad(dy, W, x.shape, geometry) if need_dx else None
    return dx, dW, db


def maxpool_nd_forward(x, geometry, training=True):
    """Max pooling over any number of spatial axes -> ``(y, (argmax, x.shape))``; argmax is the
    winner's flat index in the unpadded channel volume (``(d H + h) W + w``). Padding is ``-inf``;
    ties, NaN and dilation as :func:`maxpool2d_forward`."""
    pool, stride, padding, dilation = geometry
    N, C, sizes = x.shape[0], x.shape[1], x.shape[2:]
    check_pool_geometry(sizes, geometry)
    out = [output_size(*a) for a in zip(sizes, pool, stride, padding, dilation, strict=True)]
    xpad = _pad_nd(x, padding, value=-np.inf)
    y = np.empty((N, C, *out), dtype=x.dtype)
    argmax = np.empty((N, C, *out), dtype=np.int64)
    for o in np.ndindex(*out):
        start = [oi * si - pi for oi, si, pi in zip(o, stride, padding)]  # unpadded coordinates
        best = np.full((N, C), -np.inf, dtype=x.dtype)
        first = _flat([first_tap(a, d) for a, d in zip(start, dilation)], sizes)  # the first real voxel
        where = np.full((N, C), first, dtype=np.int64)
        for t in np.ndindex(*pool):
            v = xpad[(..., *_reads(o, t, stride, dilation))]  # (N, C)
            take = (v > best) | np.isnan(v)
            best = np.where(take, v, best)
            where = np.where(take, _flat([a + ti * d for a, ti, d in zip(start, t, dilation)], sizes), where)
        y[(..., *o)] = best
        argmax[(..., *o)] = where
    return y, (argmax, x.shape)


def maxpool_nd_backward(dy, cache):
    """``dx[n, c, argmax[n, c, o]] += dy[n, c, o]``: each gradient goes to its window's winner."""
    argmax, x_shape = cache
    N, C = x_shape[:2]
    dx = np.zeros((N, C, int(np.prod(x_shape[2:]))), dtype=dy.dtype)
    n, c = np.arange(N)[:, None], np.arange(C)[None, :]
    for o in np.ndindex(*dy.shape[2:]):
        dx[n, c, argmax[(..., *o)]] += dy[(..., *o)]
    return dx.reshape(x_shape)


def avgpool_nd_forward(x, geometry, training=True):
    """Average pooling over any number of spatial axes (padding zeros count) -> ``(y, cache)``."""
    pool, stride, padding, dilation = geometry
    check_pool_geometry(x.shape[2:], geometry)
    out = [output_size(*a) for a in zip(x.shape[2:], pool, stride, padding, dilation, strict=True)]
    xpad = _pad_nd(x, padding)
    y = np.zeros((*x.shape[:2], *out), dtype=x.dtype)
    for o in np.ndindex(*out):
        for t in np.ndindex(*pool):
            y[(..., *o)] += xpad[(..., *_reads(o, t, stride, dilation))]
    return y / np.asarray(np.prod(pool), dtype=x.dtype), (x.shape, geometry)


def avgpool_nd_backward(dy, cache):
    """Each voxel of a window receives ``dy / (window size)``."""
    x_shape, (pool, stride, padding, dilation) = cache
    share = dy / np.asarray(np.prod(pool), dtype=dy.dtype)
    dxpad = np.zeros((*x_shape[:2], *(n + 2 * p for n, p in zip(x_shape[2:], padding))), dtype=dy.dtype)
    for o in np.ndindex(*dy.shape[2:]):
        for t in np.ndindex(*pool):
            dxpad[(..., *_reads(o, t, stride, dilation))] += share[(..., *o)]
    return dxpad[(..., *(slice(p, p + n) for n, p in zip(x_shape[2:], padding)))].copy()


maxpool3d_forward, maxpool3d_backward = maxpool_nd_forward, maxpool_nd_backward
avgpool3d_forward, avgpool3d_backward = avgpool_nd_forward, avgpool_nd_backward


# ----------------------------------------------------------------------------- nearest upsampling
def upsample2d_forward(x, size, training=True):
    """Nearest upsampling by ``size = (sh, sw)``: every pixel becomes an ``sh x sw`` block.
    x (N, C, H, W) -> ``(y, cache)``, y (N, C, H sh, W sw)::

        y[n, c, h sh + a, w sw + b] = x[n, c, h, w]        0 <= a < sh, 0 <= b < sw

    One strided slice per offset ``(a, b)``: ``y[:, :, a::sh, b::sw]`` is the set of pixels that
    copy ``x`` at that offset. The cache is the input shape and ``size``."""
    N, C, H, Wd = x.shape
    sh, sw = size
    y = np.empty((N, C, H * sh, Wd * sw), dtype=x.dtype)
    for a in range(sh):
        for b in range(sw):
            y[:, :, a::sh, b::sw] = x
    return y, (x.shape, (sh, sw))


def upsample2d_backward(dy, cache):
    """dL/dx of nearest upsampling.

    Each pixel fed ``sh sw`` outputs, so their gradients add up::

        dx[n, c, h, w] = sum_{a, b} dy[n, c, h sh + a, w sw + b]
    """
    x_shape, (sh, sw) = cache
    dx = np.zeros(x_shape, dtype=dy.dtype)
    for a in range(sh):
        for b in range(sw):
            dx += dy[:, :, a::sh, b::sw]
    return dx
