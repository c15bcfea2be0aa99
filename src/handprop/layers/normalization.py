"""Batch normalization (Ioffe & Szegedy, 2015), PyTorch conventions.

One mean and variance per **feature**: for (N, F) input the statistics are taken over the batch
axis; for (N, C, H, W) input, per **channel**, over the batch and both spatial axes (a channel's
filter is the same everywhere in the image, so it is normalized the same everywhere); volumes
(N, C, D, H, W) likewise, over the batch and all three spatial axes (PyTorch's BatchNorm3d).

Training, with ``axes`` the reduced axes and ``m`` the number of values per feature::

    μ = mean(x, axes)                 σ² = mean((x - μ)², axes)     (biased: divides by m)
    x̂ = (x - μ) / sqrt(σ² + eps)
    y = γ x̂ + β
    running_mean ← (1 - momentum) running_mean + momentum μ
    running_var  ← (1 - momentum) running_var  + momentum σ² m / (m - 1)   (unbiased)

Inference uses the running statistics instead of μ and σ². They start at 0 and 1.
``momentum = 0.1`` is PyTorch's (Keras writes the same rule with 0.99 = 1 - 0.1).

Backward (training), compact form with ``g = dy * γ``::

    dγ = Σ dy x̂        dβ = Σ dy
    dx = (g - mean(g) - x̂ mean(g x̂)) / sqrt(σ² + eps)

Backward after an inference forward (running statistics are constants)::

    dx = g / sqrt(running_var + eps)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .. import init
from ..backend import get_array_module
from .base import Layer, check_dy


class BatchNormCache(NamedTuple):
    """What :func:`batchnorm_backward` needs from :func:`batchnorm_forward`: the normalized input
    ``x_hat``, ``inv_std = 1 / sqrt(σ² + eps)`` and ``gamma`` (broadcastable to x), the reduced
    ``axes``, whether batch statistics were used (``training``), and the batch ``mean`` and biased
    ``var`` (shape (F,) or (C,); the layer's running averages read them)."""

    x_hat: object
    inv_std: object
    gamma: object
    axes: tuple
    training: bool
    mean: object = None
    var: object = None


def _axes_and_shape(x):
    """Reduced axes and the broadcast shape of per-feature vectors for input ``x``."""
    return (0, *range(2, x.ndim)), (1, -1, *(1,) * (x.ndim - 2))


def batchnorm_forward(x, gamma, beta, eps=1e-5, mean=None, var=None):
    """Batch normalization, the pure forward: ``-> (y, BatchNormCache)``.

    x (N, F), (N, C, H, W) or (N, C, D, H, W); gamma, beta (F,) or (C,). Statistics per feature /
    channel over every other axis. With ``mean`` and ``var`` (the running statistics, shape (F,))
    it normalizes with them (inference: they are constants); otherwise with the batch's::

        μ = mean(x, axes)      σ² = mean((x - μ)², axes)   (biased)
        x̂ = (x - μ) / sqrt(σ² + eps)        y = γ x̂ + β
    """
    xp = get_array_module(x)
    axes, bshape = _axes_and_shape(x)
    training = mean is None
    if training:
        mean = x.mean(axis=axes, keepdims=True)
        centered = x - mean
        var = (centered * centered).mean(axis=axes, keepdims=True)
    else:
        mean, var = mean.reshape(bshape), var.reshape(bshape)
        centered = x - mean
    inv_std = 1.0 / xp.sqrt(var + x.dtype.type(eps))
    x_hat = centered * inv_std
    gamma = gamma.reshape(bshape)
    cache = BatchNormCache(x_hat, inv_std, gamma, axes, training, mean.reshape(-1), var.reshape(-1))
    return x_hat * gamma + beta.reshape(bshape), cache


def batchnorm_backward(dy, cache, need_dx=True):
    """The gradients of :func:`batchnorm_forward`: ``-> (dx, dgamma, dbeta)`` (dx None unless
    ``need_dx``). With ``g = dy γ`` and means over the reduced axes::

        dγ = Σ dy x̂        dβ = Σ dy
        dx = (g - mean(g) - x̂ mean(g x̂)) / sqrt(σ² + eps)      (batch statistics)
        dx = g / sqrt(running_var + eps)                         (running statistics: constants)

    The compact dx is the chain rule through μ and σ² (both depend on every x of the feature)
    with the common factors collected.
    """
    x_hat, inv_std, gamma, axes, training = cache[:5]
    dgamma = (dy * x_hat).sum(axis=axes)
    dbeta = dy.sum(axis=axes)
    if not need_dx:
        return None, dgamma, dbeta
    g = dy * gamma
    if not training:  # inference: running statistics do not depend on x
        return g * inv_std, dgamma, dbeta
    dx = (g - g.mean(axis=axes, keepdims=True) - x_hat * (g * x_hat).mean(axis=axes, keepdims=True)) * inv_std
    return dx, dgamma, dbeta


class BatchNorm(Layer):
    """Batch norm for (N, F), (N, C, H, W) or (N, C, D, H, W) input; params ``gamma``, ``beta``; state
    ``running_mean``, ``running_var`` (all of shape (F,) or (C,))."""

    def __init__(self, momentum=0.1, eps=1e-5, name=None, input_shape=None):
        super().__init__(name, input_shape)
        for what, value in (("momentum", momentum), ("eps", eps)):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
                raise TypeError(f"{self.name}: {what} must be a number, got {value!r}")
        if not 0.0 <= momentum <= 1.0:  # also rejects NaN
            raise ValueError(f"{self.name}: momentum must lie in [0, 1] (PyTorch's convention: the weight of the "
                             f"new batch; Keras's 0.99 is momentum=0.01 here), got {momentum}")
        if not (eps > 0 and math.isfinite(eps)):
            raise ValueError(f"{self.name}: eps must be a positive number (it keeps 1/sqrt(var + eps) finite), "
                             f"got {eps}")
        self.momentum = float(momentum)
        self.eps = float(eps)

    def compute_output_shape(self, input_shape):
        if len(input_shape) not in (1, 3, 4):
            raise ValueError(f"{self.name}: expects (N, F), (N, C, H, W) or (N, C, D, H, W) input, "
                             f"got (N, *{input_shape})")
        if input_shape[0] is None:
            raise ValueError(f"{self.name}: the number of features / channels must be known, got (N, None, ...)")
        return tuple(input_shape)

    def fixed_input(self, input_shape):
        return (input_shape[0],) + (None,) * (len(input_shape) - 1)  # the features / channels

    def create_params(self, rng):
        n = self.input_shape[0]
        ones, zeros = init.get("ones"), init.get("zeros")
        self.params["gamma"] = ones((n,), dtype=self.dtype)
        self.params["beta"] = zeros((n,), dtype=self.dtype)
        self.state["running_mean"] = zeros((n,), dtype=self.dtype)
        self.state["running_var"] = ones((n,), dtype=self.dtype)

    def forward(self, x, training=True):
        """:func:`batchnorm_forward` with the batch's statistics (training; the running averages
        are updated) or the running ones (inference)."""
        x = self._ensure_built(x)
        gamma, beta = self.params["gamma"], self.params["beta"]
        if not training:
            y, self._cache = batchnorm_forward(x, gamma, beta, self.eps,
                                               self.state["running_mean"], self.state["running_var"])
            return y
        m = x.size // x.shape[1]
        if m < 2:
            raise ValueError(
                f"{self.name}: training needs more than one value per feature to estimate a variance; "
                f"got input {tuple(x.shape)} (a last batch of one sample? choose a batch_size that "
                "does not leave one sample over)"
            )
        y, self._cache = batchnorm_forward(x, gamma, beta, self.eps)
        mom = self.momentum
        rm, rv = self.state["running_mean"], self.state["running_var"]
        self.state["running_mean"] = ((1 - mom) * rm + mom * self._cache.mean).astype(rm.dtype)
        self.state["running_var"] = ((1 - mom) * rv + mom * self._cache.var * (m / (m - 1))).astype(rv.dtype)
        return y

    def backward(self, dy, need_dx=True):
        """:func:`batchnorm_backward`: ``dgamma = sum(dy x_hat)``, ``dbeta = sum(dy)``, ``dx`` by the
        compact formula (training) or ``g / sqrt(running_var + eps)`` (inference)."""
        cache = self._cached()
        check_dy(self, dy, cache.x_hat.shape)
        dx, self.grads["gamma"], self.grads["beta"] = batchnorm_backward(dy, cache, need_dx)
        return dx

    def get_config(self):
        return {"momentum": self.momentum, "eps": self.eps, **super().get_config()}


BatchNormalization = BatchNorm  # the Keras name
