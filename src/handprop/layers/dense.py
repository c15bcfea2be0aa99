"""Fully connected (dense) layer.

Forward, for a batch ``x`` of shape (N, D_in)::

    y = x @ W + b            W: (D_in, D_out),  b: (D_out,),  y: (N, D_out)

Backward, given the upstream gradient ``dy = dL/dy`` of shape (N, D_out)::

    dW = x.T @ dy            (D_in, D_out)   each weight sums its contribution over the batch
    db = dy.sum(axis=0)      (D_out,)
    dx = dy @ W.T            (N, D_in)
"""

from __future__ import annotations

import numpy as np

from .. import init
from .activations import activation_config, activation_from_config, resolve_activation
from .base import Layer, check_dy


def dense_forward(x, W, b):
    """``y = x @ W + b``.  x (N, D_in), W (D_in, D_out), b (D_out,) or None -> y (N, D_out)."""
    y = x @ W
    if b is not None:
        y = y + b
    return y


def dense_backward(dy, x, W, use_bias=True, need_dx=True):
    """Return ``(dx, dW, db)`` for :func:`dense_forward`; ``db`` is None without a bias, ``dx``
    None when ``need_dx`` is False (a first layer: the data's gradient is not needed)."""
    dx = dy @ W.T if need_dx else None
    dW = x.T @ dy
    db = dy.sum(axis=0) if use_bias else None
    return dx, dW, db


def check_initializer(layer, what, value):
    """An initializer name of :mod:`handprop.init` or a callable ``f(shape, rng, dtype, fans=None)``."""
    if callable(value):
        return value
    if not isinstance(value, str) or value not in init.INITIALIZERS:
        raise ValueError(f"{layer.name}: unknown initializer {value!r} for {what}; "
                         f"choose one of {sorted(init.INITIALIZERS)}")
    return value


def check_bool(layer, what, value):
    """``value`` if it is a bool; a TypeError naming the argument otherwise (``Dense(64, "relu")``
    would make ``use_bias="relu"``, true, silently)."""
    if not isinstance(value, (bool, np.bool_)):
        hint = f"; for an activation write activation={value!r}" if isinstance(value, str) else ""
        raise TypeError(f"{layer.name}: {what} must be True or False, got {value!r}{hint}")
    return bool(value)


class Dense(Layer):
    """``y = x @ W + b`` with ``W`` (in, out), as Keras; PyTorch's ``Linear`` stores ``W.T``.

    Input (N, D_in), output (N, units). Weights default to Glorot uniform, biases to zeros.
    ``activation`` (Keras style, e.g. ``"relu"``) applies that activation after the product:
    forward ``a = f(x @ W + b)``, backward runs ``f``'s backward first (``dz = f'(z) * da``) and
    then the three gradients below with ``dz``. ``input_shape=(features,)`` on a Sequential's first
    layer builds the model at once.
    """

    _repr_defaults = {"kernel_init": "glorot_uniform", "bias_init": "zeros", "activation": None}

    def __init__(self, units, use_bias=True, kernel_init="glorot_uniform", bias_init="zeros", name=None, *,
                 activation=None, input_shape=None):
        super().__init__(name, input_shape)
        if not isinstance(units, (int, np.integer)) or isinstance(units, bool) or units <= 0:
            raise ValueError(f"{self.name}: units must be a positive int, got {units!r}")
        self.units = int(units)
        self.activation = resolve_activation(activation_from_config(activation), self.name)
        self.use_bias = check_bool(self, "use_bias", use_bias)
        self.kernel_init = check_initializer(self, "kernel_init", kernel_init)
        self.bias_init = check_initializer(self, "bias_init", bias_init)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(
                f"{self.name}: expects (N, features) input, got (N, {', '.join(map(str, input_shape))});"
                " add a Flatten() layer before it"
            )
        if input_shape[0] is None:
            raise ValueError(f"{self.name}: the number of input features must be known, got (N, None)")
        return (self.units,)

    def fixed_input(self, input_shape):
        return tuple(input_shape)  # one row of W per input feature

    def create_params(self, rng):
        shape = (self.input_shape[0], self.units)
        self.params["W"] = init.get(self.kernel_init)(shape, rng, dtype=self.dtype)
        if self.use_bias:
            self.params["b"] = init.get(self.bias_init)((self.units,), rng, dtype=self.dtype)

    def forward(self, x, training=True):
        x = self._ensure_built(x)
        y, activation_cache = self._activate(dense_forward(x, self.params["W"], self.params.get("b")), training)
        self._cache = (x, activation_cache)
        return y

    def backward(self, dy, need_dx=True):
        """``dW = x.T @ dy``, ``db = dy`` summed over the batch, ``dx = dy @ W.T`` (module docstring);
        with an activation, ``dy`` is first taken back through it."""
        x, activation_cache = self._cached()
        check_dy(self, dy, (x.shape[0], self.units))
        dy = self._activation_backward(dy, activation_cache)
        dx, self.grads["W"], db = dense_backward(dy, x, self.params["W"], self.use_bias, need_dx)
        if self.use_bias:
            self.grads["b"] = db
        return dx

    def get_config(self):
        return {"units": self.units, "activation": activation_config(self.activation), "use_bias": self.use_bias,
                "kernel_init": self.kernel_init, "bias_init": self.bias_init, **super().get_config()}
