"""The ``reference`` engine: convolution and pooling written as the loops on the slides.

This file is the *definition* every faster engine is tested against. Each kernel walks over the
output positions ``(i, j)`` and the kernel taps ``(r, s)`` in plain Python, exactly as one draws a
filter sliding over an image. Only the innermost work -- all images of the batch and all channels
at one position -- is a NumPy matrix product, so the tests finish in seconds.

Notation (NCHW layout, PyTorch conventions)::

    x  (N, C, H, W)     input: N images, C channels, H rows, W columns
    Wt (K, C, R, S)     weights: K filters, each C x R x S
    y  (N, K, Ho, Wo)   output
    stride (sh, sw), padding (ph, pw), dilation (dh, dw)

A tap ``(r, s)`` of output position ``(i, j)`` reads the (zero-)padded input at::

    h = i * sh + r * dh        w = j * sw + s * dw          (padded coordinates)

and the output size follows (``floor`` division)::

    Ho = (H + 2 ph - dh (R - 1) - 1) // sh + 1              (likewise Wo)

Convolution (really cross-correlation, as in every deep-learning library)::

    y[n, k, i, j] = b[k] + sum_{c, r, s} Wt[k, c, r, s] * xpad[n, c, i sh + r dh, j sw + s dw]

Its two gradients reuse the same index map, read backwards:

* input:   dxpad[n, c, i sh + r dh, j sw + s dw] += sum_k dy[n, k, i, j] Wt[k, c, r, s]
* weight:  dWt[k, c, r, s] += sum_{n, i, j} dy[n, k, i, j] xpad[n, c, i sh + r dh, j sw + s dw]

Pooling uses the same windows (without dilation), one channel at a time.
"""

from __future__ import annotations

import numpy as np


def output_size(size, kernel, stride, padding, dilation=1):
    """``floor((size + 2 padding - dilation (kernel - 1) - 1) / stride) + 1`` (may be <= 0)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def check_pool_padding(pool, padding):
    """PyTorch's rule: padding at most half the window, so every window sees a real pixel."""
    if padding[0] > pool[0] // 2 or padding[1] > pool[1] // 2:
        raise ValueError(f"pooling padding {tuple(padding)} must be at most half the pool size {tuple(pool)}")


def _pad(x, ph, pw, value=0.0):
    """Surround the spatial axes of ``x`` (N, C, H, W) with ``ph`` rows and ``pw`` columns of ``value``."""
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


# ----------------------------------------------------------------------------- convolution
def conv2d_forward(x, W, b, stride, padding, dilation):
    """2-D convolution. x (N, C, H, W), W (K, C, R, S), b (K,) or None -> y (N, K, Ho, Wo)."""
    N, C, H, Wd = x.shape
    K, _, R, S = W.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
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


def conv2d_backward_input(dy, W, x_shape, stride, padding, dilation):
    """dL/dx of :func:`conv2d_forward`. dy (N, K, Ho, Wo), W (K, C, R, S) -> dx ``x_shape``.

    Every tap sends ``dy`` back to the pixel it read; overlapping windows add up.
    """
    N, C, H, Wd = x_shape
    K, _, R, S = W.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    Ho, Wo = dy.shape[2:]
    dxpad = np.zeros((N, C, H + 2 * ph, Wd + 2 * pw), dtype=np.result_type(dy, W))
    for i in range(Ho):
        for j in range(Wo):
            for r in range(R):
                for s in range(S):
                    # (N, K) @ (K, C) -> (N, C)
                    dxpad[:, :, i * sh + r * dh, j * sw + s * dw] += dy[:, :, i, j] @ W[:, :, r, s]
    return dxpad[:, :, ph : ph + H, pw : pw + Wd].copy()  # the padding's gradient is dropped


def conv2d_backward_weight(dy, x, W_shape, stride, padding, dilation):
    """dL/dW of :func:`conv2d_forward`. dy (N, K, Ho, Wo), x (N, C, H, W) -> dW ``W_shape``.

    Each weight collects ``dy * (the pixel it multiplied)`` over the batch and all positions.
    """
    K, C, R, S = W_shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
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


# ----------------------------------------------------------------------------- max pooling
def maxpool2d_forward(x, pool, stride, padding):
    """Max pooling. x (N, C, H, W) -> ``(y, argmax)``, both (N, C, Ho, Wo).

    ``argmax[n, c, i, j] = h * W + w`` is the winner's flat index in the *unpadded* channel plane.
    Padding is ``-inf`` so it never wins. Ties go to the first maximum in row-major window order
    and NaN propagates (the rule of PyTorch's kernel: take a tap when ``v > best or isnan(v)``).
    """
    N, C, H, Wd = x.shape
    (R, S), (sh, sw), (ph, pw) = pool, stride, padding
    check_pool_padding(pool, padding)
    Ho, Wo = output_size(H, R, sh, ph), output_size(Wd, S, sw, pw)
    xpad = _pad(x, ph, pw, value=-np.inf)
    y = np.empty((N, C, Ho, Wo), dtype=x.dtype)
    argmax = np.empty((N, C, Ho, Wo), dtype=np.int64)
    for i in range(Ho):
        for j in range(Wo):
            best = np.full((N, C), -np.inf, dtype=x.dtype)
            # before any tap wins, the winner is the window's first real pixel (as PyTorch)
            where = np.full((N, C), max(i * sh - ph, 0) * Wd + max(j * sw - pw, 0), dtype=np.int64)
            for r in range(R):
                for s in range(S):
                    v = xpad[:, :, i * sh + r, j * sw + s]  # (N, C)
                    take = (v > best) | np.isnan(v)  # strict '>' keeps the first of equal maxima
                    best = np.where(take, v, best)
                    where = np.where(take, (i * sh + r - ph) * Wd + (j * sw + s - pw), where)
            y[:, :, i, j] = best
            argmax[:, :, i, j] = where
    return y, argmax


def maxpool2d_backward(dy, argmax, x_shape):
    """dL/dx of max pooling: each output's gradient goes to the pixel that won its window."""
    N, C, H, Wd = x_shape
    dx = np.zeros((N, C, H * Wd), dtype=dy.dtype)
    n = np.arange(N)[:, None]
    c = np.arange(C)[None, :]
    for i in range(dy.shape[2]):
        for j in range(dy.shape[3]):
            # within one (i, j) the (n, c) pairs are distinct, so '+=' cannot lose a collision
            dx[n, c, argmax[:, :, i, j]] += dy[:, :, i, j]
    return dx.reshape(N, C, H, Wd)


# ----------------------------------------------------------------------------- average pooling
def avgpool2d_forward(x, pool, stride, padding):
    """Average pooling, ``y = mean of the R x S window``; padding zeros count (PyTorch default)."""
    N, C, H, Wd = x.shape
    (R, S), (sh, sw), (ph, pw) = pool, stride, padding
    check_pool_padding(pool, padding)
    Ho, Wo = output_size(H, R, sh, ph), output_size(Wd, S, sw, pw)
    xpad = _pad(x, ph, pw)
    y = np.zeros((N, C, Ho, Wo), dtype=x.dtype)
    for i in range(Ho):
        for j in range(Wo):
            for r in range(R):
                for s in range(S):
                    y[:, :, i, j] += xpad[:, :, i * sh + r, j * sw + s]
    return y / np.asarray(R * S, dtype=x.dtype)


def avgpool2d_backward(dy, x_shape, pool, stride, padding):
    """dL/dx of average pooling: each pixel of a window receives ``dy / (R S)``."""
    N, C, H, Wd = x_shape
    (R, S), (sh, sw), (ph, pw) = pool, stride, padding
    share = dy / np.asarray(R * S, dtype=dy.dtype)
    dxpad = np.zeros((N, C, H + 2 * ph, Wd + 2 * pw), dtype=dy.dtype)
    for i in range(dy.shape[2]):
        for j in range(dy.shape[3]):
            for r in range(R):
                for s in range(S):
                    dxpad[:, :, i * sh + r, j * sw + s] += share[:, :, i, j]
    return dxpad[:, :, ph : ph + H, pw : pw + Wd].copy()
