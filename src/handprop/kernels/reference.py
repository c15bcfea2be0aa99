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

**The engine API.** Layers call forward/backward *pairs*: ``forward(...) -> (y, cache)`` and
``backward(dy, cache, ...)``; the cache is what backward needs, built by the engine that will read
it (here: the inputs and the geometry). The full list is in :mod:`handprop.kernels`.
"""

from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from .geometry import check_pool_padding, first_tap, output_size
from .pairs import conv_pairs


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
# ``dx, dW, db = conv2d_backward(dy, cache, need_dx)``, which calls the loops above
# (:mod:`handprop.kernels.pairs` explains the transposed pair).
conv2d_forward, conv2d_backward, conv2d_transpose_forward, conv2d_transpose_backward = conv_pairs(
    conv2d, conv2d_input_grad, conv2d_weight_grad)


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
    check_pool_padding((R, S), (ph, pw))
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
    """dL/dx of max pooling: each output's gradient goes to the pixel that won its window::

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
    check_pool_padding((R, S), (ph, pw))
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


# ----------------------------------------------------------------------------- PReLU
def _per_channel(a, ndim):
    """Slopes (C,) -> (1, C, 1, 1) for images, (F,) -> (1, F) for vectors; (1,) broadcasts anyway."""
    return a.reshape((1, -1) + (1,) * (ndim - 2))


def prelu_forward(x, alpha, training=True):
    """``y = x`` where x > 0, ``a x`` elsewhere, with one slope per channel (alpha (C,)) or one for
    all (alpha (1,)). x (N, C, ...) or (N, F). -> ``(y, cache)``; the cache is ``(x, alpha)``."""
    xp = get_array_module(x)
    return xp.where(x > 0, x, _per_channel(alpha, x.ndim) * x), (x, alpha)


def prelu_backward(dy, cache, need_dx=True):
    """``(dx, dalpha)``: ``dx = dy`` where x > 0, ``a dy`` elsewhere; ``dalpha = sum(dy min(x, 0))``
    over every axis the slope is shared by (all but the channel axis, or all of them)."""
    x, alpha = cache
    xp = get_array_module(dy)
    shared = alpha.size == 1
    axes = tuple(i for i in range(x.ndim) if shared or i != 1)
    dalpha = (dy * xp.minimum(x, 0)).sum(axis=axes).reshape(alpha.shape)
    dx = xp.where(x > 0, dy, dy * _per_channel(alpha, x.ndim)) if need_dx else None
    return dx, dalpha


# ----------------------------------------------------------------------------- optimizer updates
def optimizer_update(optimizer, p, g, state, lr):
    """One optimizer step on one parameter, in place: the optimizer's own equations
    (``optimizer._update``, e.g. :meth:`handprop.optimizers.SGD._update`). A fast engine may fuse
    an update into one pass over memory instead; this is the definition it must match."""
    optimizer._update(p, g, state, lr, get_array_module(p))
