"""Fully connected (dense) layer.

Forward, for a batch ``x`` of shape (N, D_in)::

    y = x @ W + b            W: (D_in, D_out),  b: (D_out,),  y: (N, D_out)

Backward, given the upstream gradient ``dy = dL/dy`` of shape (N, D_out)::

    dW = x.T @ dy            (D_in, D_out)   each weight sums its contribution over the batch
    db = dy.sum(axis=0)      (D_out,)
    dx = dy @ W.T            (N, D_in)
"""

from __future__ import annotations

from .. import init
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


class Dense(Layer):
    """``y = x @ W + b`` with ``W`` (in, out), as Keras; PyTorch's ``Linear`` stores ``W.T``.

    Input (N, D_in), output (N, units). Weights default to Glorot uniform, biases to zeros.
    """

    def __init__(self, units, use_bias=True, kernel_init="glorot_uniform", bias_init="zeros", name=None):
        super().__init__(name)
        if int(units) <= 0:
            raise ValueError(f"{self.name}: units must be positive, got {units}")
        self.units = int(units)
        self.use_bias = use_bias
        self.kernel_init = kernel_init
        self.bias_init = bias_init

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
        self._cache = x
        return dense_forward(x, self.params["W"], self.params.get("b"))

    def backward(self, dy, need_dx=True):
        """``dW = x.T @ dy``, ``db = dy`` summed over the batch, ``dx = dy @ W.T`` (module docstring)."""
        x = self._cached()
        check_dy(self, dy, (x.shape[0], self.units))
        dx, self.grads["W"], db = dense_backward(dy, x, self.params["W"], self.use_bias, need_dx)
        if self.use_bias:
            self.grads["b"] = db
        return dx

    def get_config(self):
        return {"units": self.units, "use_bias": self.use_bias}
