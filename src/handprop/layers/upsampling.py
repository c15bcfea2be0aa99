"""Nearest-neighbour upsampling (the decoder half of a U-Net before its convolutions).

Forward repeats each pixel ``sh x sw`` times, (N, C, H, W) -> (N, C, H sh, W sw)::

    y[n, c, h sh + a, w sw + b] = x[n, c, h, w]        0 <= a < sh, 0 <= b < sw

Every input pixel feeds ``sh sw`` outputs, so backward sums their gradients::

    dx[n, c, h, w] = sum_{a, b} dy[n, c, h sh + a, w sw + b]

Equal to PyTorch's ``nn.Upsample(scale_factor=(sh, sw), mode="nearest")`` and Keras' UpSampling2D.
"""

from __future__ import annotations

from .base import Layer, check_dy
from .conv import _positive_pair, check_image_shape


class UpSampling2D(Layer):
    """Nearest upsampling by ``size`` (int or (sh, sw)); no parameters, caches nothing but a shape."""

    def __init__(self, size=2, name=None):
        super().__init__(name)
        self.size = _positive_pair(self, size, "size")

    def compute_output_shape(self, input_shape):
        check_image_shape(self, input_shape)
        C, H, Wd = input_shape
        return (C, H * self.size[0], Wd * self.size[1])

    def forward(self, x, training=True):
        x = self._ensure_built(x)
        self._x_shape = x.shape
        sh, sw = self.size
        return x.repeat(sh, axis=2).repeat(sw, axis=3)

    def backward(self, dy):
        N, C, H, Wd = self._x_shape
        check_dy(self, dy, (N, *self.output_shape))
        sh, sw = self.size
        return dy.reshape(N, C, H, sh, Wd, sw).sum(axis=(3, 5))

    def get_config(self):
        return {"size": self.size}
