"""Layers that only move numbers around."""

from __future__ import annotations

import numpy as np

from .base import Layer, check_dy


class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1 * d2 * ...), C-order (so (N, C, H, W) flattens as PyTorch's)."""

    def compute_output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def forward(self, x, training=True):
        x = self._ensure_built(x)
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        check_dy(self, dy, (self._shape[0], int(np.prod(self._shape[1:]))))
        return dy.reshape(self._shape).copy()  # a new array, never a view of dy
