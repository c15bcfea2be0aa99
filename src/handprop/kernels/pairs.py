"""How an engine turns its three convolution primitives into the pairs that layers call.

A layer calls ``y, cache = forward(...)`` and later ``dx, dW, db = backward(dy, cache, need_dx)``
(the CS231n pattern: the cache is whatever backward needs, built by the engine that reads it).
For a convolution three primitives suffice, because a transposed convolution is the same three
linear maps with the roles swapped::

    conv2d(x, W, b, geometry)                  y  = A x (+ b)
    conv2d_input_grad(dy, W, x_shape, geometry)    dx = A^T dy
    conv2d_weight_grad(dy, x, W_shape, geometry)   dW = sum over positions of dy * x

    Conv2D           forward y = A x          backward dx = A^T dy,  dW = weight_grad(dy, x)
    Conv2DTranspose  forward y = A^T x        backward dx = A dy,    dW = weight_grad(x, dy)

:func:`conv_pairs` writes those four functions once for any engine's primitives. The pairs
do not care how many spatial axes there are, nor how the primitives connect channels: the same
function makes ``conv3d_forward``/``conv3d_backward`` from 3-D primitives and
``depthwise_conv2d_forward``/``depthwise_conv2d_backward`` from depthwise ones.
"""

from __future__ import annotations

from typing import NamedTuple


class ConvCache(NamedTuple):
    """What a convolution's backward needs: its input, the weights, whether there is a bias, and
    the geometry. ``extra`` is an engine's private addition (the numba engine keeps its packed
    columns there); every other engine ignores it, so a cache from one engine works in another."""

    x: object
    W: object
    has_bias: bool
    geometry: tuple
    extra: object = None


def _bias_grad(dy):
    """``db[k] = sum of dy[n, k, ...]`` over the batch and every spatial axis."""
    return dy.sum(axis=(0, *range(2, dy.ndim)))


def conv_pairs(conv2d, conv2d_input_grad, conv2d_weight_grad):
    """``(conv2d_forward, conv2d_backward, conv2d_transpose_forward, conv2d_transpose_backward)``
    built from an engine's three primitives (see the module docstring)."""

    def conv2d_forward(x, W, b, geometry, training=True):
        """``y = conv2d(x, W, b)`` and the cache its backward reads. -> ``(y, ConvCache)``."""
        return conv2d(x, W, b, geometry), ConvCache(x, W, b is not None, geometry)

    def conv2d_backward(dy, cache, need_dx=True):
        """``(dx, dW, db)``: dx None unless ``need_dx`` (a first layer needs no input gradient),
        db None without a bias."""
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
            y += b.reshape(1, -1, *(1,) * (y.ndim - 2))
        return y, ConvCache(x, W, b is not None, geometry)

    def conv2d_transpose_backward(dy, cache, need_dx=True):
        """``dx = conv2d(dy, W)`` (an ordinary convolution), ``dW`` the convolution's weight
        gradient with ``x`` and ``dy`` swapped, ``db`` dy summed."""
        x, W, has_bias, geometry, _ = cache
        dW = conv2d_weight_grad(x, dy, W.shape, geometry)
        db = _bias_grad(dy) if has_bias else None
        dx = conv2d(dy, W, None, geometry) if need_dx else None
        return dx, dW, db

    return conv2d_forward, conv2d_backward, conv2d_transpose_forward, conv2d_transpose_backward
