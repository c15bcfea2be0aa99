"""Layers that join several inputs: the building blocks of U-Net skips and multi-scale networks.

Both take a list of arrays and return one; their backward returns a list of gradients, one per
input. A tensor that feeds several layers (fan-out) receives the **sum** of their gradients —
the graph model does that addition, not these layers.
"""

from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from ..symbolic import normalize_shape
from .base import Layer, check_dy


def _size_hint(shapes):
    """What to do when maps of different image sizes meet (a U-Net given 65 x 63 pixels: a
    pooling rounded an odd size down and the upsampling cannot give it back)."""
    if len({len(s) for s in shapes}) != 1 or len(shapes[0]) < 3 or len({tuple(s[-2:]) for s in shapes}) == 1:
        return ""
    return ("; maps of different sizes meet here because a pooling rounded an odd size down: the input's height "
            "and width must divide by the network's total pooling (2**depth for a U-Net). Pad the images, e.g. "
            "hp.inference.predict_padded(model, x, multiple=2**depth), or crop them")


def _same(a, b):
    """Two sizes agree when equal or when either is free (None)."""
    return a is None or b is None or a == b


class _Merge(Layer):
    """Shared plumbing: a list of inputs, at least ``n_inputs_min`` of them, no weights."""

    takes_list = True
    n_inputs_min = 2

    def _normalize(self, input_shape):
        shapes = [normalize_shape(sh, f"{self.name}: input shape") for sh in input_shape]
        if len(shapes) < self.n_inputs_min:
            raise ValueError(f"{self.name}: needs at least {self.n_inputs_min} inputs, got {len(shapes)}")
        return shapes

    def _ensure_built(self, xs):
        if not isinstance(xs, (list, tuple)):
            raise TypeError(f"{self.name}: expects a list of arrays")
        if not self.built:
            self.build([x.shape[1:] for x in xs], dtype=xs[0].dtype)
        self.compute_output_shape(self._normalize([x.shape[1:] for x in xs]))  # raises on a mismatch
        return xs


class Concatenate(_Merge):
    """Join along ``axis`` (default 1: channels for (N, C, H, W), features for (N, F)).

    ``y = [x_1, x_2, ...]`` stacked along the axis; ``dx_i`` is the matching slice of ``dy``.
    U-Net concatenates the decoder's upsampled maps with the encoder's skip connection this way.
    """

    def __init__(self, axis=1, name=None):
        super().__init__(name)
        if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
            raise TypeError(f"{self.name}: axis must be an int, got {axis!r}")
        if axis == 0:
            raise ValueError(f"{self.name}: cannot concatenate along the batch axis")
        self.axis = axis

    def compute_output_shape(self, shapes):
        ranks = {len(s) for s in shapes}
        if len(ranks) != 1:
            raise ValueError(f"{self.name}: inputs have different ranks: {shapes}")
        rank = ranks.pop()
        ax = (self.axis - 1 if self.axis > 0 else self.axis) % rank  # axis without the batch dimension
        for s in shapes[1:]:
            if not all(_same(a, b) for i, (a, b) in enumerate(zip(shapes[0], s)) if i != ax):
                raise ValueError(f"{self.name}: inputs {shapes} differ outside the concatenation axis {self.axis}"
                                 + _size_hint(shapes))
        out = [next((s[i] for s in shapes if s[i] is not None), None) for i in range(rank)]
        sizes = [s[ax] for s in shapes]
        out[ax] = None if None in sizes else sum(sizes)
        return tuple(out)

    def forward(self, xs, training=True):
        xs = self._ensure_built(xs)
        y = get_array_module(xs[0]).concatenate(xs, axis=self.axis)
        self._cache = ([x.shape[self.axis] for x in xs], y.shape)
        return y

    def backward(self, dy, need_dx=True):
        """``dx_i`` is the slice of ``dy`` where ``x_i`` sits: views into ``dy``, no copies (no layer
        writes into the gradient it is given, so the slices stay valid)."""
        sizes, y_shape = self._cached()
        check_dy(self, dy, y_shape)
        if not need_dx:
            return None
        splits = np.cumsum(sizes)[:-1].tolist()
        return get_array_module(dy).split(dy, splits, axis=self.axis)

    def get_config(self):
        return {"axis": self.axis, **super().get_config()}


class Add(_Merge):
    """Elementwise sum ``y = x_1 + x_2 + ...`` (residual connections); ``dx_i = dy`` for all i."""

    def compute_output_shape(self, shapes):
        first = shapes[0]
        if any(len(s) != len(first) or not all(_same(a, b) for a, b in zip(first, s)) for s in shapes):
            raise ValueError(f"{self.name}: all inputs must have the same shape, got {shapes}" + _size_hint(shapes))
        return tuple(next((s[i] for s in shapes if s[i] is not None), None) for i in range(len(first)))

    def forward(self, xs, training=True):
        xs = self._ensure_built(xs)
        y = xs[0].copy()
        for x in xs[1:]:
            y += x
        self._cache = (len(xs), y.shape)
        return y

    def backward(self, dy, need_dx=True):
        n, y_shape = self._cached()
        check_dy(self, dy, y_shape)
        return [dy.copy() for _ in range(n)] if need_dx else None
