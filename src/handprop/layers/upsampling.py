"""Nearest-neighbour upsampling (the decoder half of a U-Net before its convolutions).

Forward repeats each pixel ``sh x sw`` times, (N, C, H, W) -> (N, C, H sh, W sw)::

    y[n, c, h sh + a, w sw + b] = x[n, c, h, w]        0 <= a < sh, 0 <= b < sw

Every input pixel feeds ``sh sw`` outputs, so backward sums their gradients::

    dx[n, c, h, w] = sum_{a, b} dy[n, c, h sh + a, w sw + b]

Equal to PyTorch's ``nn.Upsample(scale_factor=(sh, sw), mode="nearest")`` and Keras' UpSampling2D.
Both directions are engine kernels (``upsample2d_forward``/``upsample2d_backward``; the
definition is :func:`handprop.kernels.reference.upsample2d_forward`).
"""

from __future__ import annotations

from ..kernels import get_kernel
from ..kernels.geometry import positive_pair
from .base import Layer, check_dy
from .conv import check_image_shape


class UpSampling2D(Layer):
    """Nearest upsampling by ``size`` (int or (sh, sw)); no parameters, any image size."""

    def __init__(self, size=2, name=None, input_shape=None):
        super().__init__(name, input_shape)
        self.size = positive_pair(size, f"{self.name}: size")

    def fixed_input(self, input_shape):
        return (None, None, None)

    def compute_output_shape(self, input_shape):
        check_image_shape(self, input_shape)
        C, H, Wd = input_shape
        return (C, None if H is None else H * self.size[0], None if Wd is None else Wd * self.size[1])

    def forward(self, x, training=True):
        x = self._ensure_built(x)
        y, cache = get_kernel("upsample2d_forward", x)(x, self.size, training)
        self._cache = (cache, y.shape)
        return y

    def backward(self, dy, need_dx=True):
        """``dx[n, c, h, w] = sum_{a, b} dy[n, c, h sh + a, w sw + b]`` (module docstring)."""
        cache, y_shape = self._cached()
        check_dy(self, dy, y_shape)
        return get_kernel("upsample2d_backward", dy)(dy, cache) if need_dx else None

    def get_config(self):
        return {"size": self.size, **super().get_config()}
