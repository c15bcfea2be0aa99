"""Pooling layers (NCHW): ``MaxPool2D``, ``AvgPool2D``, ``GlobalAvgPool2D``.

A window of ``R x S`` pixels slides over each channel with stride ``(sh, sw)``; the output size is
the convolution's::

    Ho = floor((H + 2 ph - dh (R - 1) - 1) / sh) + 1        (likewise Wo; dilation dh = 1 by default)

A dilated window (``dilation=2``: every other pixel) is what a pooling layer becomes when a patch
classifier is turned into a fully convolutional network that scores every pixel
(:func:`handprop.inference.to_fully_convolutional`).

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
from ..kernels.geometry import PoolGeometry, check_pool_padding, output_size, positive_pair
from .base import Layer, check_dy
from .conv import check_image_shape


class _Pool2D(Layer):
    """Shared hyper-parameters and shape logic of max and average pooling (any image size)."""

    _repr_defaults = {"dilation": (1, 1)}

    def __init__(self, pool_size=2, stride=None, padding=0, *, dilation=1, name=None, input_shape=None):
        super().__init__(name, input_shape)
        self.pool_size = positive_pair(pool_size, f"{self.name}: pool_size")
        self.stride = self.pool_size if stride is None else positive_pair(stride, f"{self.name}: stride")
        self.padding = positive_pair(padding, f"{self.name}: padding", minimum=0)
        self.dilation = positive_pair(dilation, f"{self.name}: dilation")
        try:
            check_pool_padding(self.pool_size, self.padding)
        except ValueError as e:
            raise ValueError(f"{self.name}: {e}") from None
        self.geometry = PoolGeometry(self.pool_size, self.stride, self.padding, self.dilation)

    def fixed_input(self, input_shape):
        return (None, None, None)  # images of any channel count and size

    def compute_output_shape(self, input_shape):
        check_image_shape(self, input_shape)
        C, H, Wd = input_shape
        (R, S), (sh, sw), (ph, pw), (dh, dw) = self.geometry
        Ho, Wo = output_size(H, R, sh, ph, dh), output_size(Wd, S, sw, pw, dw)
        if (Ho is not None and Ho < 1) or (Wo is not None and Wo < 1):
            raise ValueError(
                f"{self.name}: input (C, H, W) = {tuple(input_shape)} is smaller than the pool "
                f"{self.pool_size} with padding {self.padding}: output would be {(C, Ho, Wo)}"
            )
        return (C, Ho, Wo)

    def get_config(self):
        return {"pool_size": self.pool_size, "stride": self.stride, "padding": self.padding, "dilation": self.dilation,
                **super().get_config()}


class MaxPool2D(_Pool2D):
    """Max pooling: ``y[n, c, i, j] = max over the window``; ``dx`` routes ``dy`` to the winner.

    ``MaxPool2D(pool_size=2, stride=None, padding=0)``: stride defaults to the pool size
    (non-overlapping windows). Padding is ``-inf`` and never wins. The engine's cache holds
    ``argmax`` (the winner's flat index ``h * W + w`` per output) and the input shape.
    """

    def forward(self, x, training=True):
        x = self._ensure_built(x)
        y, cache = get_kernel("maxpool2d_forward", x)(x, self.geometry, training)
        self._cache = (cache, y.shape)
        return y

    def backward(self, dy, need_dx=True):
        """Each output's gradient goes to the pixel that won its window; shared winners add up::

            dx[n, c, h, w] = sum over outputs (i, j) whose window's maximum was (h, w) of dy[n, c, i, j]
        """
        cache, y_shape = self._cached()
        check_dy(self, dy, y_shape)
        return get_kernel("maxpool2d_backward", dy)(dy, cache) if need_dx else None


class AvgPool2D(_Pool2D):
    """Average pooling: ``y[n, c, i, j] = sum over the window / (R S)`` (padding zeros count).

    ``AvgPool2D(pool_size=2, stride=None, padding=0)``; the cache is the input shape.
    """

    def forward(self, x, training=True):
        x = self._ensure_built(x)
        y, cache = get_kernel("avgpool2d_forward", x)(x, self.geometry, training)
        self._cache = (cache, y.shape)
        return y

    def backward(self, dy, need_dx=True):
        """Each pixel of a window receives an equal share::

            dxpad[n, c, i sh + r, j sw + s] += dy[n, c, i, j] / (R S)      for every tap (r, s)
        """
        cache, y_shape = self._cached()
        check_dy(self, dy, y_shape)
        return get_kernel("avgpool2d_backward", dy)(dy, cache) if need_dx else None


MaxPooling2D = MaxPool2D  # Keras's names
AveragePooling2D = AvgPool2D


class GlobalAvgPool2D(Layer):
    """``y[n, c] = mean over (h, w) of x[n, c, h, w]``: (N, C, H, W) -> (N, C), any H × W.

    Backward spreads each ``dy[n, c]`` evenly: ``dx[n, c, h, w] = dy[n, c] / (H W)``.
    """

    def fixed_input(self, input_shape):
        return (None, None, None)

    def compute_output_shape(self, input_shape):
        check_image_shape(self, input_shape)
        return (input_shape[0],)

    def forward(self, x, training=True):
        x = self._ensure_built(x)
        self._cache = x.shape
        return x.mean(axis=(2, 3))

    def backward(self, dy, need_dx=True):
        N, C, H, Wd = self._cached()
        check_dy(self, dy, (N, C))
        if not need_dx:
            return None
        dx = get_array_module(dy).empty((N, C, H, Wd), dtype=dy.dtype)
        dx[...] = (dy / (H * Wd))[:, :, None, None]
        return dx
