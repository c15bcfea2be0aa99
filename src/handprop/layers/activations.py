"""Elementwise activations (any input shape: (N, F) or (N, C, H, W)), Softmax and LogSoftmax.

Each activation is a pure pair of functions, CS231n style, that its layer calls::

    y, cache = relu_forward(x)          dx = relu_backward(dy, cache)

The cache holds whichever of ``x`` or ``y`` makes ``f'`` cheapest (sigmoid and tanh reuse ``y``).
The pairs are the definitions (and what the gradient checks and exercises compare with); the
layer classes only keep the cache between the two calls. They are importable from
``hp.layers`` (``hp.layers.relu_forward``):

==============  ===============================  =====================================
layer           f(x)                             f'(x)
==============  ===============================  =====================================
Linear          x                                1
Sigmoid         1 / (1 + e^-x)                   y (1 - y)
Tanh            tanh x                           1 - y²
ReLU            max(0, x)                        1 if x > 0 else 0
LeakyReLU       x if x > 0 else αx  (α=0.01)     1 if x > 0 else α
ELU             x if x > 0 else α(e^x - 1)       1 if x > 0 else y + α
PReLU           x if x > 0 else a x  (a learnt)  1 if x > 0 else a;  da = Σ dy min(x,0)
Softmax         e^x_i / Σ_j e^x_j                dx = y (dy - Σ_j dy_j y_j)
LogSoftmax      x_i - log Σ_j e^x_j              dx = dy - e^y Σ_j dy_j
==============  ===============================  =====================================

The pairs, ``hp.layers.<name>``:

============  ===============================================  ==========================
layer         forward -> (y, cache)                            backward -> dx
============  ===============================================  ==========================
Sigmoid       ``sigmoid_forward(x)``                           ``sigmoid_backward(dy, cache)``
Tanh          ``tanh_forward(x)``                              ``tanh_backward(dy, cache)``
ReLU          ``relu_forward(x)``                              ``relu_backward(dy, cache)``
LeakyReLU     ``leaky_relu_forward(x, alpha=0.01)``            ``leaky_relu_backward(dy, cache)``
ELU           ``elu_forward(x, alpha=1.0)``                    ``elu_backward(dy, cache)``
PReLU         ``prelu_forward(x, alpha)``                      ``prelu_backward(dy, cache) -> (dx, dalpha)``
Softmax       ``softmax_forward(x, axis=-1)``                  ``softmax_backward(dy, cache)``
LogSoftmax    ``log_softmax_forward(x, axis=-1)``              ``log_softmax_backward(dy, cache)``
Dropout       ``dropout_forward(x, rate, training, rng)``      ``dropout_backward(dy, cache)``
============  ===============================================  ==========================

(``SoftmaxCrossEntropy`` calls ``log_softmax_forward`` on the logits too.) Dropout's
pair, ``dropout_forward / dropout_backward``, lives in :mod:`handprop.layers.dropout`; the
losses' pairs in :mod:`handprop.losses`; convolution, pooling and upsampling pairs in
:mod:`handprop.kernels.reference`.

At exactly x = 0 the kinks use the left derivative (0 for ReLU, α for LeakyReLU and PReLU), as
PyTorch does (its ReLU backward tests ``x > 0``).

Every equation is the NumPy (or CuPy) code of the pairs below. ReLU and PReLU also have a one-pass
loop on the ``numba`` engine (:func:`handprop.kernels.fast_kernel`, same signatures as the pairs),
which the layer calls instead when it is there: NumPy's ``where`` takes ~4 ns per number on random
signs (a mispredicted branch), and those loops made the tutorial ConvNet's and the U-Net's
training steps measurably faster (:mod:`handprop.kernels.numba_cpu.activations`). The same y and
dx either way; PReLU's dalpha agrees to rounding (``tests/test_engines.py``).
"""

from __future__ import annotations

import math

from .. import init
from ..backend import get_array_module
from ..kernels import fast_kernel
from .base import Layer, check_dy


def sigmoid(x):
    """Overflow-free logistic function: ``σ(x) = tanh(x / 2) / 2 + 1/2`` (exact identity).

    The textbook ``1 / (1 + exp(-x))`` overflows ``exp`` for x < -709 (float64) or -88
    (float32) and warns; tanh saturates quietly to ±1 instead.
    """
    xp = get_array_module(x)
    half = x.dtype.type(0.5) if hasattr(x, "dtype") else 0.5
    return xp.tanh(x * half) * half + half


def softmax(x, axis=-1):
    """Numerically stable softmax along ``axis`` (subtracting the max changes nothing)."""
    xp = get_array_module(x)
    z = x - x.max(axis=axis, keepdims=True)
    e = xp.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    """``log softmax(x) = (x - m) - log Σ e^(x - m)`` with ``m = max x``: exact for huge logits."""
    xp = get_array_module(x)
    z = x - x.max(axis=axis, keepdims=True)
    return z - xp.log(xp.exp(z).sum(axis=axis, keepdims=True))


# ----------------------------------------------------------------------------- the pairs
# Every pair: ``*_forward(x, ...) -> (y, cache)`` and ``*_backward(dy, cache) -> dx``, x, y, dy and
# dx of one shape (any shape), dx in dy's dtype; dy is never written into.

def sigmoid_forward(x):
    """``y = σ(x) = 1 / (1 + e^-x)`` (computed overflow-free, :func:`sigmoid`). -> ``(y, cache=y)``."""
    y = sigmoid(x)
    return y, y


def sigmoid_backward(dy, cache):
    """``dx = dy * y * (1 - y)``, with ``y`` the forward's output (the cache)."""
    y = cache
    return dy * y * (1 - y)


def tanh_forward(x):
    """``y = tanh x``. -> ``(y, cache=y)``."""
    y = get_array_module(x).tanh(x)
    return y, y


def tanh_backward(dy, cache):
    """``dx = dy * (1 - y²)``, with ``y`` the forward's output (the cache)."""
    y = cache
    return dy * (1 - y * y)


def relu_forward(x):
    """``y = max(0, x)`` (NaN stays NaN, as in PyTorch). -> ``(y, cache=y)``: ``y > 0`` exactly
    where ``x > 0``, so the output is all the backward needs."""
    y = get_array_module(x).maximum(x, 0)
    return y, y


def relu_backward(dy, cache):
    """``dx = dy where y > 0, else 0`` (a fresh array; as in PyTorch, a NaN or inf in dy where
    x <= 0 gives 0, not the NaN that ``dy * [x > 0]`` would)."""
    y = cache
    return get_array_module(dy).where(y > 0, dy, 0).astype(dy.dtype, copy=False)


def leaky_relu_forward(x, alpha=0.01):
    """``y = x`` where x > 0, ``α x`` elsewhere. -> ``(y, cache=(x > 0, α))``."""
    mask = x > 0
    xp = get_array_module(x)
    return xp.where(mask, x, x * x.dtype.type(alpha)), (mask, alpha)


def leaky_relu_backward(dy, cache):
    """``dx = dy`` where x > 0, ``α dy`` elsewhere."""
    mask, alpha = cache
    xp = get_array_module(dy)
    return xp.where(mask, dy, dy * dy.dtype.type(alpha))


def elu_forward(x, alpha=1.0):
    """``y = x`` where x > 0, ``α (e^x - 1)`` elsewhere. -> ``(y, cache=(x > 0, y, α))``."""
    xp = get_array_module(x)
    mask = x > 0
    a = x.dtype.type(alpha)
    # expm1 on min(x, 0) only: no overflow for large positive x, exact near 0.
    y = xp.where(mask, x, a * xp.expm1(xp.minimum(x, 0)))
    return y, (mask, y, alpha)


def elu_backward(dy, cache):
    """``dx = dy`` where x > 0, ``dy (y + α)`` elsewhere (for x ≤ 0, ``f'(x) = α e^x = y + α``)."""
    xp = get_array_module(dy)
    mask, y, alpha = cache
    return xp.where(mask, dy, dy * (y + dy.dtype.type(alpha)))


def _per_channel(a, ndim):
    """Slopes (C,) -> (1, C, 1, 1) for images, (F,) -> (1, F) for vectors; (1,) broadcasts anyway."""
    return a.reshape((1, -1) + (1,) * (ndim - 2))


def prelu_forward(x, alpha):
    """``y = x`` where x > 0, ``a x`` elsewhere, one slope per channel (axis 1) or one for all.

    x (N, C, ...) or (N, F); alpha (C,) / (F,), or (1,) for one shared slope.
    -> ``(y, cache=(x, alpha))``.
    """
    y = get_array_module(x).where(x > 0, x, _per_channel(alpha, x.ndim) * x)
    return y, (x, alpha)


def prelu_backward(dy, cache, need_dx=True):
    """-> ``(dx, dalpha)``::

        dx = dy                  where x > 0,   dy * a   elsewhere
        da = Σ dy * min(x, 0)    over every axis the slope is shared by (all but axis 1, or all)

    dalpha has alpha's shape; dx is None when ``need_dx`` is False.
    """
    x, alpha = cache
    xp = get_array_module(dy)
    axes = tuple(i for i in range(x.ndim) if alpha.size == 1 or i != 1)  # all the slope is shared by
    dalpha = (dy * xp.minimum(x, 0)).sum(axis=axes).reshape(alpha.shape)
    dx = xp.where(x > 0, dy, dy * _per_channel(alpha, x.ndim)) if need_dx else None
    return dx, dalpha


def softmax_forward(x, axis=-1):
    """``y_i = e^{x_i - max x} / Σ_j e^{x_j - max x}`` along ``axis``. -> ``(y, cache=(y, axis))``."""
    y = softmax(x, axis=axis)
    return y, (y, axis)


def softmax_backward(dy, cache):
    """Softmax's backward: the Jacobian ``diag(y) - y yᵀ`` applied to dy without forming it.

    The product, with the sum along the softmax axis::

        dx = y * (dy - Σ_j dy_j y_j)
    """
    y, axis = cache
    return y * (dy - (dy * y).sum(axis=axis, keepdims=True))


def log_softmax_forward(x, axis=-1):
    """``y_i = x_i - log Σ_j e^{x_j}`` along ``axis`` (shifted by the max: exact for huge logits).
    -> ``(y, cache=(y, axis))``."""
    y = log_softmax(x, axis=axis)
    return y, (y, axis)


def log_softmax_backward(dy, cache):
    """``dx = dy - softmax(x) Σ_j dy_j`` (the sum along the axis), with ``softmax(x) = e^y``."""
    y, axis = cache
    xp = get_array_module(dy)
    return dy - xp.exp(y) * dy.sum(axis=axis, keepdims=True)


# ----------------------------------------------------------------------------- the layers
class _Elementwise(Layer):
    """Shared plumbing: each subclass's ``_forward(x, *self._args()) -> (y, cache)`` and
    ``_backward(dy, cache) -> dx`` call its pair (by name, so the module's function is what runs)."""

    def _args(self):
        return ()

    def forward(self, x, training=True):
        x = self._ensure_built(x)
        y, cache = self._forward(x, *self._args())
        self._cache = (cache, x.shape)
        return y

    def backward(self, dy, need_dx=True):
        cache, shape = self._cached()
        check_dy(self, dy, shape)
        return self._backward(dy, cache) if need_dx else None


class Linear(_Elementwise):
    """Identity, ``y = x`` (Keras' "linear" activation); ``dx`` is a copy of ``dy``."""

    def _forward(self, x):
        return x, None

    def _backward(self, dy, cache):
        return dy.copy()


class Sigmoid(_Elementwise):
    """``y = 1 / (1 + e^-x)``, computed overflow-free; ``dx = dy * y * (1 - y)``
    (:func:`sigmoid_forward`, :func:`sigmoid_backward`)."""

    def _forward(self, x, *args):
        return sigmoid_forward(x, *args)

    def _backward(self, dy, cache):
        return sigmoid_backward(dy, cache)


class Tanh(_Elementwise):
    """``y = tanh x``; ``dx = dy * (1 - y²)`` (:func:`tanh_forward`, :func:`tanh_backward`)."""

    def _forward(self, x, *args):
        return tanh_forward(x, *args)

    def _backward(self, dy, cache):
        return tanh_backward(dy, cache)


class ReLU(_Elementwise):
    """``y = max(0, x)``; ``dx = dy where y > 0, else 0`` (:func:`relu_forward`,
    :func:`relu_backward`; the cache is the output ``y``). On the numba engine a one-pass loop
    computes the same numbers (module docstring)."""

    def _forward(self, x):
        return (fast_kernel("relu_forward", x) or relu_forward)(x)

    def _backward(self, dy, cache):
        return (fast_kernel("relu_backward", dy) or relu_backward)(dy, cache)


class LeakyReLU(_Elementwise):
    """``y = x`` for x > 0, ``α x`` otherwise (α = 0.01 as PyTorch; Keras' default is 0.3)
    (:func:`leaky_relu_forward`, :func:`leaky_relu_backward`)."""

    def _forward(self, x, *args):
        return leaky_relu_forward(x, *args)

    def _backward(self, dy, cache):
        return leaky_relu_backward(dy, cache)

    def __init__(self, alpha=0.01, name=None, input_shape=None):
        super().__init__(name, input_shape)
        self.alpha = _finite(self, "alpha", alpha)

    def _args(self):
        return (self.alpha,)

    def get_config(self):
        return {"alpha": self.alpha, **super().get_config()}


class ELU(_Elementwise):
    """``y = x`` for x > 0, ``α (e^x - 1)`` otherwise; for x ≤ 0, ``f'(x) = α e^x = y + α``
    (:func:`elu_forward`, :func:`elu_backward`)."""

    def _forward(self, x, *args):
        return elu_forward(x, *args)

    def _backward(self, dy, cache):
        return elu_backward(dy, cache)

    def __init__(self, alpha=1.0, name=None, input_shape=None):
        super().__init__(name, input_shape)
        self.alpha = _finite(self, "alpha", alpha)

    def _args(self):
        return (self.alpha,)

    def get_config(self):
        return {"alpha": self.alpha, **super().get_config()}


class PReLU(Layer):
    """Parametric ReLU (He et al., 2015): ``y = x`` for x > 0, ``a x`` otherwise, ``a`` learnt.

    ``shared=False`` (default) learns one slope **per channel** for (N, C, H, W) input and per
    feature for (N, F) input — PyTorch's ``PReLU(num_parameters=C)``, and what Keras does with
    ``shared_axes=[1, 2]`` on images. ``shared=True`` learns a single slope (PyTorch's default
    ``PReLU()``). Slopes start at 0.25. Gradients (:func:`prelu_forward`, :func:`prelu_backward`)::

        dx = dy                  where x > 0,   dy * a   elsewhere
        da = Σ_{batch, spatial} dy * min(x, 0)          (summed over everything a is shared by)
    """

    _repr_defaults = {"alpha_init": 0.25}

    def __init__(self, shared=False, alpha_init=0.25, name=None, input_shape=None):
        super().__init__(name, input_shape)
        if not isinstance(shared, bool):
            raise TypeError(f"{self.name}: shared must be True or False, got {shared!r}")
        self.shared = shared
        self.alpha_init = _finite(self, "alpha_init", alpha_init)

    def fixed_input(self, input_shape):
        if self.shared:
            return None  # one slope for any shape
        return (input_shape[0],) + (None,) * (len(input_shape) - 1)  # one slope per channel

    def create_params(self, rng):
        n = 1 if self.shared else self.input_shape[0]
        self.params["alpha"] = init.get(init.constant(self.alpha_init))((n,), dtype=self.dtype)

    def forward(self, x, training=True):
        x = self._ensure_built(x)
        # the numba engine's one pass (module docstring) or the pair; both cache (x, alpha)
        y, self._cache = (fast_kernel("prelu_forward", x) or prelu_forward)(x, self.params["alpha"])
        return y

    def backward(self, dy, need_dx=True):
        """``dx = dy`` where x > 0, ``a dy`` elsewhere; ``da = sum(dy * min(x, 0))`` over every
        axis the slope is shared by (:func:`prelu_backward`)."""
        cache = self._cached()
        check_dy(self, dy, cache[0].shape)
        dx, self.grads["alpha"] = (fast_kernel("prelu_backward", dy) or prelu_backward)(dy, cache, need_dx)
        return dx

    def get_config(self):
        return {"shared": self.shared, "alpha_init": self.alpha_init, **super().get_config()}


class _AlongAxis(Layer):
    """A layer over one axis of its input (the class axis, ``axis``, by default the last) whose
    equations are a pure pair: subclasses name it in ``_pair_forward`` / ``_pair_backward``."""

    _repr_defaults = {"axis": -1}

    def __init__(self, axis=-1, name=None, input_shape=None):
        super().__init__(name, input_shape)
        self.axis = int(axis)
        if self.axis == 0:
            raise ValueError(f"{self.name}: axis 0 is the batch axis; use the class axis (-1 or 1)")

    def forward(self, x, training=True):
        x = self._ensure_built(x)
        y, self._cache = self._pair_forward(x, axis=self.axis)
        return y

    def backward(self, dy, need_dx=True):
        cache = self._cached()
        check_dy(self, dy, cache[0].shape)
        return self._pair_backward(dy, cache) if need_dx else None

    def get_config(self):
        return {"axis": self.axis, **super().get_config()}


class Softmax(_AlongAxis):
    """``y_i = e^{x_i - max x} / Σ_j e^{x_j - max x}`` over ``axis`` (default the last: class scores
    of (N, classes); ``axis=1`` for per-pixel class maps (N, classes, H, W)).

    Backward (the Jacobian ``diag(y) - y yᵀ`` applied to dy without forming it;
    :func:`softmax_forward`, :func:`softmax_backward`)::

        dx = y * (dy - Σ_j dy_j y_j)

    For training a classifier, prefer ``SoftmaxCrossEntropy`` on logits: it fuses the two and
    is exact for extreme logits.
    """

    @staticmethod
    def _pair_forward(x, axis):
        return softmax_forward(x, axis=axis)  # looked up when called: the autograder may replace the pair

    @staticmethod
    def _pair_backward(dy, cache):
        return softmax_backward(dy, cache)


class LogSoftmax(_AlongAxis):
    """``y_i = x_i - log Σ_j e^{x_j}`` over ``axis`` (default the last), computed shifted by the max
    (exact for huge logits): log-probabilities, as PyTorch's ``LogSoftmax``. Backward
    (:func:`log_softmax_forward`, :func:`log_softmax_backward`)::

        dx = dy - softmax(x) Σ_j dy_j

    ``SoftmaxCrossEntropy`` on its output gives the same loss as on the logits (log-softmax of
    log-probabilities changes nothing), so it is a valid last layer before that loss.
    """

    @staticmethod
    def _pair_forward(x, axis):
        return log_softmax_forward(x, axis=axis)

    @staticmethod
    def _pair_backward(dy, cache):
        return log_softmax_backward(dy, cache)


def _finite(layer, what, value):
    """``float(value)``, or a ValueError naming the layer and argument for NaN, inf or non-numbers."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise TypeError(f"{layer.name}: {what} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{layer.name}: {what} must be finite, got {value}")
    return value


ACTIVATIONS = {
    "linear": Linear, "sigmoid": Sigmoid, "tanh": Tanh, "relu": ReLU,
    "leaky_relu": LeakyReLU, "elu": ELU, "prelu": PReLU, "softmax": Softmax,
}


def get(name):
    """Activation layer from a Keras-style string (``"relu"``) or pass a Layer through."""
    if isinstance(name, Layer):
        return name
    try:
        return ACTIVATIONS[name]()
    except (KeyError, TypeError):
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}") from None


def Activation(activation, name=None, input_shape=None):
    """Keras's ``Activation("relu")`` layer: returns the activation layer itself (here ``ReLU()``).

    ``activation``: a name of :data:`ACTIVATIONS` (``"relu"``, ``"sigmoid"``, ``"softmax"``, ...).
    handprop has one class per activation, so this is a function that picks the class; the layer
    it returns saves, loads and exports as that class.
    """
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(f"Activation: unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[activation](name=name, input_shape=input_shape)


def resolve_activation(activation, owner):
    """The activation layer for ``owner``'s ``activation=`` argument: None, a name (``"relu"``) or a
    weightless activation layer (e.g. ``LeakyReLU(0.2)``). PReLU learns weights, so it must be a
    layer of its own (its slopes would not be the model's parameters otherwise)."""
    if activation is None or activation == "linear":
        return None
    if isinstance(activation, str):
        if activation not in ACTIVATIONS:
            raise ValueError(f"{owner}: unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
        activation = ACTIVATIONS[activation]()
    if isinstance(activation, PReLU):
        raise ValueError(f"{owner}: activation='prelu' learns weights; add hp.layers.PReLU() as a layer after it")
    if not isinstance(activation, (_Elementwise, Softmax)):
        raise TypeError(f"{owner}: activation must be None, a name of {sorted(ACTIVATIONS)} or an activation "
                        f"layer, got {activation!r}")
    return activation


def activation_config(activation):
    """What ``get_config`` stores for an ``activation=`` argument: None, the name, or the layer's
    class and config (``LeakyReLU(0.2)``); :func:`activation_from_config` reads it back."""
    if activation is None:
        return None
    names = {cls: name for name, cls in ACTIVATIONS.items()}
    cls = type(activation)
    if cls in names and activation.get_config() == cls().get_config():
        return names[cls]
    return {"class_name": cls.__name__, "config": activation.get_config()}


def activation_from_config(config):
    """Inverse of :func:`activation_config`: a name, a ``{"class_name", "config"}`` dict, None or a layer."""
    if isinstance(config, dict):
        classes = {cls.__name__: cls for cls in ACTIVATIONS.values()}
        if config.get("class_name") not in classes:
            raise ValueError(f"unknown activation {config!r}")
        return classes[config["class_name"]](**config.get("config", {}))
    return config
