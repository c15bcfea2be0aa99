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

import numpy as np

from .. import init
from ..backend import get_array_module
from .base import Layer, check_dy


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

    @staticmethod
    def _axes_and_shape(x):
        """Reduced axes and the broadcast shape of per-feature vectors for input ``x``."""
        return (0, *range(2, x.ndim)), (1, -1, *(1,) * (x.ndim - 2))

    def forward(self, x, training=True):
        x = self._ensure_built(x)
        xp = get_array_module(x)
        axes, bshape = self._axes_and_shape(x)
        gamma = self.params["gamma"].reshape(bshape)
        beta = self.params["beta"].reshape(bshape)
        if not training:
            mean = self.state["running_mean"].reshape(bshape)
            var = self.state["running_var"].reshape(bshape)
            inv_std = 1.0 / xp.sqrt(var + x.dtype.type(self.eps))
            x_hat = (x - mean) * inv_std
            # the statistics are constants here, so backward is a per-feature scale
            self._cache = (x_hat, inv_std, axes, bshape, False)
            return x_hat * gamma + beta
        m = x.size // x.shape[1]
        if m < 2:
            raise ValueError(
                f"{self.name}: training needs more than one value per feature to estimate a variance; "
                f"got input {tuple(x.shape)} (a last batch of one sample? choose a batch_size that "
                "does not leave one sample over)"
            )
        mean = x.mean(axis=axes, keepdims=True)
        centered = x - mean
        var = (centered * centered).mean(axis=axes, keepdims=True)
        inv_std = 1.0 / xp.sqrt(var + x.dtype.type(self.eps))
        x_hat = centered * inv_std
        mom = self.momentum
        rm, rv = self.state["running_mean"], self.state["running_var"]
        self.state["running_mean"] = ((1 - mom) * rm + mom * mean.reshape(-1)).astype(rm.dtype)
        self.state["running_var"] = ((1 - mom) * rv + mom * var.reshape(-1) * (m / (m - 1))).astype(rv.dtype)
        self._cache = (x_hat, inv_std, axes, bshape, True)
        return x_hat * gamma + beta

    def backward(self, dy, need_dx=True):
        """``dgamma = sum(dy x_hat)``, ``dbeta = sum(dy)``; ``dx`` by the compact formula of the
        module docstring (training) or ``g / sqrt(running_var + eps)`` (inference)."""
        x_hat, inv_std, axes, bshape, training = self._cached()
        check_dy(self, dy, x_hat.shape)
        self.grads["gamma"] = (dy * x_hat).sum(axis=axes)
        self.grads["beta"] = dy.sum(axis=axes)
        if not need_dx:
            return None
        g = dy * self.params["gamma"].reshape(bshape)
        if not training:  # inference: running statistics do not depend on x
            return g * inv_std
        return (g - g.mean(axis=axes, keepdims=True)
                - x_hat * (g * x_hat).mean(axis=axes, keepdims=True)) * inv_std

    def get_config(self):
        return {"momentum": self.momentum, "eps": self.eps, **super().get_config()}


BatchNormalization = BatchNorm  # the Keras name
