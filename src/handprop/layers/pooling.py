"""Pooling layers (NCHW): ``MaxPool2D``, ``AvgPool2D``, ``GlobalAvgPool2D``.

A window of ``R x S`` pixels slides over each channel with stride ``(sh, sw)``; the output size is
the convolution's (no dilation)::

    Ho = floor((H + 2 ph - R) / sh) + 1                    (likewise Wo)

* max pooling keeps the largest pixel of each window; its gradient flows only to that pixel
  (``argmax``, cached by forward). Ties go to the first maximum in row-major window order.
* average pooling takes the mean; each pixel of a window receives ``dy / (R S)``. Padding zeros
  count in the mean (PyTorch's default ``count_include_pad=True``).
* global average pooling averages each whole channel: (N, C, H, W) -> (N, C).

Padding is at most half the window (PyTorch's rule), so every window contains a real pixel.
"""

from __future__ import annotations

from ..backend import get_array_module
from ..kernels import get_kernel
from ..kernels.reference import check_pool_padding, output_size
from .base import Layer, check_dy
from .conv import _positive_pair, check_image_shape


class _Pool2D(Layer):
    """Shared hyper-parameters and shape logic of max and average pooling."""

    def __init__(self, pool_size=2, stride=None, padding=0, name=None):
        super().__init__(name)
        self.pool_size = _positive_pair(self, pool_size, "pool_size")
        self.stride = self.pool_size if stride is None else _positive_pair(self, stride, "stride")
        self.padding = _positive_pair(self, padding, "padding", minimum=0)
        try:
            check_pool_padding(self.pool_size, self.padding)
        except ValueError as e:
            raise ValueError(f"{self.name}: {e}") from None

    def compute_output_shape(self, input_shape):
        check_image_shape(self, input_shape)
        C, H, Wd = input_shape
        (R, S), (sh, sw), (ph, pw) = self.pool_size, self.stride, self.padding
        Ho, Wo = output_size(H, R, sh, ph), output_size(Wd, S, sw, pw)
        if Ho < 1 or Wo < 1:
            raise ValueError(
                f"{self.name}: input (C, H, W) = {tuple(input_shape)} is smaller than the pool "
                f"{self.pool_size} with padding {self.padding}: output would be {(C, Ho, Wo)}"
            )
        return (C, Ho, Wo)

    def get_config(self):
        return {"pool_size": self.pool_size, "stride": self.stride, "padding": self.padding}


class MaxPool2D(_Pool2D):
    """Max pooling: ``y[n, c, i, j] = max over the window``; ``dx`` routes ``dy`` to the winner.

    ``MaxPool2D(pool_size=2, stride=None, padding=0)``: stride defaults to the pool size
    (non-overlapping windows). Padding is ``-inf`` and never wins. Caches only ``argmax`` (the
    winner's flat index ``h * W + w`` per output) and the input shape.
    """

    def forward(self, x, training=True):
        x = self._ensure_built(x)
        pool = get_kernel("maxpool2d_forward", x)
        y, self._argmax = pool(x, self.pool_size, self.stride, self.padding)
        self._x_shape = x.shape
        return y

    def backward(self, dy):
        check_dy(self, dy, (self._x_shape[0], *self.output_shape))
        return get_kernel("maxpool2d_backward", dy)(dy, self._argmax, self._x_shape)


class AvgPool2D(_Pool2D):
    """Average pooling: ``y[n, c, i, j] = sum over the window / (R S)`` (padding zeros count).

    ``AvgPool2D(pool_size=2, stride=None, padding=0)``; caches only the input shape.
    """

    def forward(self, x, training=True):
        x = self._ensure_built(x)
        self._x_shape = x.shape
        return get_kernel("avgpool2d_forward", x)(x, self.pool_size, self.stride, self.padding)

    def backward(self, dy):
        check_dy(self, dy, (self._x_shape[0], *self.output_shape))
        backward = get_kernel("avgpool2d_backward", dy)
        return backward(dy, self._x_shape, self.pool_size, self.stride, self.padding)


class GlobalAvgPool2D(Layer):
    """``y[n, c] = mean over (h, w) of x[n, c, h, w]``: (N, C, H, W) -> (N, C).

    Backward spreads each ``dy[n, c]`` evenly: ``dx[n, c, h, w] = dy[n, c] / (H W)``.
    """

    def compute_output_shape(self, input_shape):
        check_image_shape(self, input_shape)
        return (input_shape[0],)

    def forward(self, x, training=True):
        x = self._ensure_built(x)
        self._x_shape = x.shape
        return x.mean(axis=(2, 3))

    def backward(self, dy):
        N, C, H, Wd = self._x_shape
        check_dy(self, dy, (N, C))
        dx = get_array_module(dy).empty(self._x_shape, dtype=dy.dtype)
        dx[...] = (dy / (H * Wd))[:, :, None, None]
        return dx
