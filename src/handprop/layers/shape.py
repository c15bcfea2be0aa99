"""Layers that only move numbers around."""

from __future__ import annotations

import numpy as np

from ..symbolic import format_shape
from .base import Layer, check_dy


class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1 * d2 * ...), C-order (so (N, C, H, W) flattens as PyTorch's).

    The one layer that fixes the image size: the Dense layer after it has one weight per
    flattened number, so a model with Flatten -> Dense runs only on the size it was built for.
    (To run a patch classifier on whole images, make it fully convolutional: its Dense layers
    become convolutions.)
    """

    def fixed_input(self, input_shape):
        return tuple(input_shape)

    def compute_output_shape(self, input_shape):
        if any(d is None for d in input_shape):
            raise ValueError(f"{self.name}: needs a fixed input size, got {format_shape(input_shape)}: the layer "
                             "after it would need a number of weights that depends on the image size")
        return (int(np.prod(input_shape)),)

    def check_input(self, x):
        if self.built and tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"{self.name}: built for inputs {format_shape(self.input_shape)} "
                f"({int(np.prod(self.input_shape))} features for the layer after it), got {tuple(x.shape)}. "
                "A model with Flatten -> Dense only takes the image size it was built for; a fully "
                "convolutional model (no Flatten) takes any size"
            )

    def forward(self, x, training=True):
        x = self._ensure_built(x)
        self._cache = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy, need_dx=True):
        shape = self._cached()
        check_dy(self, dy, (shape[0], int(np.prod(shape[1:]))))
        return dy.reshape(shape).copy() if need_dx else None  # a new array, never a view of dy


class Reshape(Layer):
    """``(N, d1, d2, ...) -> (N, *target_shape)``, C-order, the number of values unchanged (Keras'
    ``Reshape``). One entry of ``target_shape`` may be -1: it is inferred. Backward reshapes
    ``dy`` back. E.g. a generator's ``Dense(16 * 4 * 4)`` -> ``Reshape((16, 4, 4))`` -> convolutions.
    ``input_shape``: as every layer's (on a Sequential's first layer, builds the model at once).
    """

    def __init__(self, target_shape, name=None, input_shape=None):
        super().__init__(name, input_shape)
        try:
            target = tuple(int(d) for d in target_shape)
        except (TypeError, ValueError):
            raise ValueError(f"{self.name}: target_shape must be a tuple of ints, got {target_shape!r}") from None
        if any(d == 0 or d < -1 for d in target) or target.count(-1) > 1:
            raise ValueError(f"{self.name}: target_shape needs positive sizes and at most one -1, got {target}")
        self.target_shape = target

    def fixed_input(self, input_shape):
        return tuple(input_shape)

    def compute_output_shape(self, input_shape):
        if any(d is None for d in input_shape):
            raise ValueError(f"{self.name}: needs a fixed input size, got {format_shape(input_shape)}")
        size = int(np.prod(input_shape))
        known = int(np.prod([d for d in self.target_shape if d != -1]))
        out = tuple(size // known if d == -1 else d for d in self.target_shape)
        if int(np.prod(out)) != size:
            raise ValueError(f"{self.name}: cannot reshape {format_shape(input_shape)} ({size} values) "
                             f"into {format_shape(self.target_shape)}")
        return out

    def check_input(self, x):
        if self.built and tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"{self.name}: built for inputs {format_shape(self.input_shape)}, got {tuple(x.shape)}")

    def forward(self, x, training=True):
        x = self._ensure_built(x)
        self._cache = x.shape
        return x.reshape(x.shape[0], *self.output_shape)

    def backward(self, dy, need_dx=True):
        shape = self._cached()
        check_dy(self, dy, (shape[0], *self.output_shape))
        return dy.reshape(shape).copy() if need_dx else None  # a new array, never a view of dy

    def get_config(self):
        return {"target_shape": self.target_shape, **super().get_config()}
