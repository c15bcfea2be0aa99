"""Nearest-neighbour upsampling (the decoder half of a U-Net before its convolutions).

Forward repeats each pixel ``sh x sw`` times, (N, C, H, W) -> (N, C, H sh, W sw)::

    y[n, c, h sh + a, w sw + b] = x[n, c, h, w]        0 <= a < sh, 0 <= b < sw

Every input pixel feeds ``sh sw`` outputs, so backward sums their gradients::

    dx[n, c, h, w] = sum_{a, b} dy[n, c, h sh + a, w sw + b]

Equal to PyTorch's ``nn.Upsample(scale_factor=(sh, sw), mode="nearest")`` and Keras' UpSampling2D.
"""

from __future__ import annotations

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
        self._cache = x.shape
        sh, sw = self.size
        return x.repeat(sh, axis=2).repeat(sw, axis=3)

    def backward(self, dy, need_dx=True):
        """``dx[n, c, h, w] = sum_{a, b} dy[n, c, h sh + a, w sw + b]`` (module docstring)."""
        N, C, H, Wd = self._cached()
        sh, sw = self.size
        check_dy(self, dy, (N, C, H * sh, Wd * sw))
        return dy.reshape(N, C, H, sh, Wd, sw).sum(axis=(3, 5)) if need_dx else None

    def get_config(self):
        return {"size": self.size, **super().get_config()}
