"""Inverted dropout (Srivastava et al., 2014), with ``rate`` = the probability of *dropping*.

Training::

    m ~ Bernoulli(1 - rate)    (one draw per element)
    y = x * m / (1 - rate)     dividing by the keep probability keeps E[y] = x
    dx = dy * m / (1 - rate)

Inference (``training=False``): ``y = x``, nothing to rescale — that is why it is "inverted".
``rate`` means the same as PyTorch's ``p`` and Keras' ``rate`` (CS231n's assignments use ``p`` as
the keep probability: a classic source of confusion).

Randomness lives in ``self.rng`` (a ``numpy.random.Generator`` seeded by ``build``), so a model
seed makes runs repeatable and the gradient checker can replay the same mask.
"""

from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from .base import Layer, check_dy


class Dropout(Layer):
    """Inverted dropout; identity when ``training=False``. Any input shape."""

    def __init__(self, rate, name=None, input_shape=None):
        super().__init__(name, input_shape)
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating, np.integer)):
            raise TypeError(f"{self.name}: rate must be a number in [0, 1), got {rate!r}")
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"{self.name}: rate is the drop probability, in [0, 1); got {rate}")
        self.rate = float(rate)
        self.rng = None

    def create_params(self, rng):
        # no weights; a child generator: drawing masks does not disturb the model's own stream
        self.rng = np.random.default_rng(rng.integers(2**63))

    def forward(self, x, training=True):
        x = self._ensure_built(x)
        if not training or self.rate == 0.0:
            self._cache = (None, x.shape)
            return x
        xp = get_array_module(x)
        keep = 1.0 - self.rate
        mask = self.rng.random(x.shape) < keep  # drawn on the host: same masks on CPU and GPU
        scale = xp.asarray(mask / keep, dtype=x.dtype)
        self._cache = (scale, x.shape)
        return x * scale

    def backward(self, dy, need_dx=True):
        """``dx = dy * m / (1 - rate)`` with the mask of the forward pass (``dy`` in inference)."""
        scale, shape = self._cached()
        check_dy(self, dy, shape)
        if not need_dx:
            return None
        return dy.copy() if scale is None else dy * scale

    def get_config(self):
        return {"rate": self.rate, **super().get_config()}
