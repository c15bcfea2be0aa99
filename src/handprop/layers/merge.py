"""Layers that join several inputs: the building blocks of U-Net skips and multi-scale networks.

Both take a list of arrays and return one; their backward returns a list of gradients, one per
input. A tensor that feeds several layers (fan-out) receives the **sum** of their gradients —
the graph model does that addition, not these layers.
"""

from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from .base import Layer, check_dy


class _Merge(Layer):
    n_inputs_min = 2

    def build(self, input_shape, rng=None, dtype=np.float32):
        shapes = [tuple(int(s) for s in sh) for sh in input_shape]
        if len(shapes) < self.n_inputs_min:
            raise ValueError(f"{self.name}: needs at least {self.n_inputs_min} inputs, got {len(shapes)}")
        self.input_shape = shapes
        self.dtype = np.dtype(dtype).type
        self.output_shape = self.compute_output_shape(shapes)
        self.built = True
        return self.output_shape

    def _ensure_built(self, xs):
        if not isinstance(xs, (list, tuple)):
            raise TypeError(f"{self.name}: expects a list of arrays")
        if not self.built:
            self.build([x.shape[1:] for x in xs], dtype=xs[0].dtype)
        got = [tuple(x.shape[1:]) for x in xs]
        if got != self.input_shape:
            raise ValueError(f"{self.name}: built for inputs {self.input_shape} (batch axis left out), got {got}")
        return xs


class Concatenate(_Merge):
    """Join along ``axis`` (default 1: channels for (N, C, H, W), features for (N, F)).

    ``y = [x_1, x_2, ...]`` stacked along the axis; ``dx_i`` is the matching slice of ``dy``.
    U-Net concatenates the decoder's upsampled maps with the encoder's skip connection this way.
    """

    def __init__(self, axis=1, name=None):
        super().__init__(name)
        if axis == 0:
            raise ValueError(f"{self.name}: cannot concatenate along the batch axis")
        self.axis = axis

    def compute_output_shape(self, shapes):
        ax = self.axis - 1 if self.axis > 0 else self.axis  # axis without the batch dimension
        ranks = {len(s) for s in shapes}
        if len(ranks) != 1:
            raise ValueError(f"{self.name}: inputs have different ranks: {shapes}")
        rest = {s[:ax % len(s)] + s[ax % len(s) + 1:] for s in shapes}
        if len(rest) != 1:
            raise ValueError(f"{self.name}: inputs {shapes} differ outside the concatenation axis {self.axis}")
        out = list(shapes[0])
        out[ax] = sum(s[ax] for s in shapes)
        return tuple(out)

    def forward(self, xs, training=True):
        xs = self._ensure_built(xs)
        self._sizes = [x.shape[self.axis] for x in xs]
        return get_array_module(xs[0]).concatenate(xs, axis=self.axis)

    def backward(self, dy):
        splits = np.cumsum(self._sizes)[:-1].tolist()
        check_dy(self, dy, (dy.shape[0], *self.output_shape))
        return [part.copy() for part in get_array_module(dy).split(dy, splits, axis=self.axis)]

    def get_config(self):
        return {"axis": self.axis}


class Add(_Merge):
    """Elementwise sum ``y = x_1 + x_2 + ...`` (residual connections); ``dx_i = dy`` for all i."""

    def compute_output_shape(self, shapes):
        if len(set(shapes)) != 1:
            raise ValueError(f"{self.name}: all inputs must have the same shape, got {shapes}")
        return shapes[0]

    def forward(self, xs, training=True):
        xs = self._ensure_built(xs)
        self._n = len(xs)
        y = xs[0].copy()
        for x in xs[1:]:
            y += x
        return y

    def backward(self, dy):
        return [dy.copy() for _ in range(self._n)]
