"""Inverted dropout (Srivastava et al., 2014), with ``rate`` = the probability of *dropping*.

Training::

    m ~ Bernoulli(1 - rate)    (one draw per element)
    y = x * m / (1 - rate)     dividing by the keep probability keeps E[y] = x
    dx = dy * m / (1 - rate)

Inference (``training=False``): ``y = x``, nothing to rescale — that is why it is "inverted".
``rate`` means the same as PyTorch's ``p`` and Keras' ``rate`` (CS231n's assignments use ``p`` as
the keep probability: a classic source of confusion).

The equations are the pure pair :func:`dropout_forward` / :func:`dropout_backward` (CS231n style,
``hp.layers.dropout_forward``), which the layer calls::

    y, cache = dropout_forward(x, rate, training, rng)      dx = dropout_backward(dy, cache)

Randomness lives in ``self.rng`` (a ``numpy.random.Generator`` seeded by ``build``), so a model
seed makes runs repeatable and the gradient checker can replay the same mask.
"""

from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from .base import Layer, check_dy


def dropout_forward(x, rate, training=True, rng=None):
    """Inverted dropout of ``x`` (any shape) -> ``(y, cache)``, y of x's shape and dtype::

        m = rng.random(x.shape) < 1 - rate      keep each element with probability 1 - rate
        y = x * m / (1 - rate)                  (training);   y = x   (inference, or rate 0)

    ``rate``: the drop probability in [0, 1). ``rng``: a ``numpy.random.Generator`` (a fresh one
    when None); the mask is drawn on the host, so CPU and GPU arrays get the same mask. The cache
    is the scaled mask ``m / (1 - rate)`` in x's dtype, or None when nothing was dropped.
    """
    if not 0.0 <= float(rate) < 1.0:
        raise ValueError(f"dropout_forward: rate is the drop probability, in [0, 1); got {rate}")
    if not training or rate == 0.0:
        return x, None
    if rng is None:
        rng = np.random.default_rng()
    xp = get_array_module(x)
    keep = 1.0 - rate
    mask = rng.random(x.shape) < keep
    scale = xp.asarray(mask / keep, dtype=x.dtype)
    return x * scale, scale


def dropout_backward(dy, cache):
    """``dx = dy * m / (1 - rate)`` with the forward's mask (the cache); a copy of ``dy`` when the
    forward dropped nothing (inference, rate 0)."""
    scale = cache
    return dy.copy() if scale is None else dy * scale


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
        y, scale = dropout_forward(x, self.rate, training, self.rng)
        self._cache = (scale, x.shape)
        return y

    def backward(self, dy, need_dx=True):
        """``dx = dy * m / (1 - rate)`` with the mask of the forward pass (``dy`` in inference);
        :func:`dropout_backward`."""
        scale, shape = self._cached()
        check_dy(self, dy, shape)
        return dropout_backward(dy, scale) if need_dx else None

    def get_config(self):
        return {"rate": self.rate, **super().get_config()}
