"""Loss functions: ``loss.forward(pred, target, weight=None) -> float`` and ``loss.backward() -> dpred``.

Each loss first computes one number ``l_e`` per *element* -- per output value for the squared
error and binary cross-entropy, per sample (or per pixel, for (N, classes, H, W) maps) for the
softmax cross-entropy -- and then averages them. Without weights that is PyTorch's default
``reduction="mean"``:

* ``MeanSquaredError``: l = (p - t)²                          dL/dp = 2 (p - t) / n
* ``SoftmaxCrossEntropy``: l = -log softmax(z)[t] over axis 1 dL/dz = (softmax(z) - onehot(t)) / n
* ``BinaryCrossEntropy``: l = -(t log p + (1 - t) log(1 - p)) dL/dp = (p - t) / (p (1 - p)) / n

with ``n`` the number of elements. With ``weight`` (one per sample (N,), or one per element, e.g.
a field-of-view mask (N, H, W) for a (N, 1, H, W) vessel map) the loss is the **weighted mean**::

    L = Σ_e w_e l_e / Σ_e w_e            dL/dp_e = w_e dl_e/dp_e / Σ_e w_e

so a 0/1 mask averages over the pixels inside it: pixels outside the FOV do not count at all.
(PyTorch's ``weight`` arguments and Keras' ``sample_weight`` divide by ``n`` instead of ``Σ w``;
handprop's mean keeps the loss's scale independent of how much of the image the mask covers.) A
batch whose weights are all 0 has loss 0 and gradient 0. ``loss.total_weight`` is the ``Σ w``
(or ``n``) of the last call, so averages over several batches can be exact.

Each loss is a thin object over a pure pair (CS231n style), which it calls::

    L, cache = mean_squared_error_forward(pred, target, weight=None)
    dpred = mean_squared_error_backward(cache)

=======================  ==========================================================
loss                     pair (``*_forward(...) -> (L, cache)``, ``*_backward(cache) -> dpred``)
=======================  ==========================================================
``MeanSquaredError``     ``mean_squared_error_forward(pred, target, weight=None)``
``SoftmaxCrossEntropy``  ``softmax_cross_entropy_forward(logits, target, weight=None)``
``BinaryCrossEntropy``   ``binary_cross_entropy_forward(pred, target, weight=None, from_logits=False, eps=1e-7)``
=======================  ==========================================================

The backward takes no upstream gradient: a loss is the end of the chain (dL/dL = 1), as
``loss.backward()``. The averaging, plain or weighted, is :func:`weighted_mean` and
:func:`weighted_mean_backward`, shared by all three.

Cross-entropies are computed from logits with a fused, shifted log-softmax / log-sigmoid:
there is no ``+1e-7`` inside a log, and logits of ±1e4 give exact results.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .backend import get_array_module, to_numpy
from .checks import check_distributions, check_real, same_shape
from .layers.activations import log_softmax_forward, sigmoid


class Mean(NamedTuple):
    """How a loss's per-element values were averaged: what every loss's backward divides by.

    ``weight``: None (a plain mean) or the weights, one per per-element loss; ``total``: ``Σ w``,
    or the number of elements; ``real``: the prediction's scalar type (gradients keep its dtype).
    """

    weight: object
    total: float
    real: type


def weighted_mean(losses, weight, name, dtype):
    """``(L, Mean)``: ``L = mean(l)`` without weights, ``Σ w l / Σ w`` with (0.0 when ``Σ w = 0``).

    ``losses``: the per-element losses ``l`` (any shape); ``weight``: None, one per sample (N,),
    or one per element (module docstring); ``name`` names the loss in errors.
    """
    xp = get_array_module(losses)
    if weight is None:
        return (float(losses.mean()) if losses.size else 0.0), Mean(None, float(losses.size), dtype.type)
    w = _broadcast_weight(xp, weight, losses.shape, name, dtype)
    total = float(w.sum())
    return (float((w * losses).sum() / total) if total > 0 else 0.0), Mean(w, total, dtype.type)


def weighted_mean_backward(dl, mean, per_class=False):
    """``dL/dp = dl / n`` or ``w dl / Σ w``: the per-element derivatives ``dl`` averaged as
    :func:`weighted_mean` averaged the losses. ``per_class``: dl has a class axis 1 that the
    weights (one per sample or pixel) lack."""
    w, total, real = mean
    if w is None:
        return dl / real(max(total, 1))
    if total <= 0:
        return dl * real(0)
    return dl * (w[:, None] if per_class else w) / real(total)


def _broadcast_weight(xp, weight, shape, name, dtype):
    """``weight`` as an array of the per-element losses' ``shape``: one per sample (N,) is
    spread over the sample's elements; a map of the same shape up to axes of length 1 is reshaped
    (a (N, H, W) mask for a (N, 1, H, W) map). Shapes are compared, not sizes: a (N, W, H) mask
    has as many elements but would weight the wrong pixels."""
    w = xp.asarray(weight, dtype=dtype)
    if w.shape == tuple(shape):
        pass
    elif w.ndim == 1 and len(shape) >= 1 and w.shape[0] == shape[0]:
        w = w.reshape((-1,) + (1,) * (len(shape) - 1)) * xp.ones(shape, dtype=dtype)
    elif same_shape(w.shape, shape):
        w = w.reshape(shape)
    else:
        raise ValueError(f"{name}: weights of shape {tuple(w.shape)} fit neither one per sample ({shape[0]},) "
                         f"nor one per element {tuple(shape)} (a swapped height and width?)")
    if bool(xp.any(w < 0)) or not bool(xp.all(xp.isfinite(w))):
        raise ValueError(f"{name}: weights must be finite and >= 0")
    return w


def _check_same_shape(name, pred, target):
    if tuple(pred.shape) != tuple(target.shape):
        raise ValueError(f"{name}: prediction has shape {tuple(pred.shape)} but target has {tuple(target.shape)}")


# ----------------------------------------------------------------------------- the pairs
def mean_squared_error_forward(pred, target, weight=None):
    """Squared error, averaged: ``l = (p - t)²`` per element, ``L = mean(l)`` (or ``Σ w l / Σ w``).

    pred (N, ...) any shape; target pred's shape ((N,) is accepted for a (N, 1) output);
    weight None, (N,) or one per element. -> ``(L, cache)``, L a float.
    """
    xp = get_array_module(pred)
    target = xp.asarray(target, dtype=pred.dtype)
    if target.shape != pred.shape and target.ndim == 1 and pred.ndim == 2 and pred.shape[1] == 1:
        target = target.reshape(-1, 1)  # (N,) targets for a (N, 1) regression output
    _check_same_shape("MeanSquaredError", pred, target)
    diff = pred - target
    loss, mean = weighted_mean(diff * diff, weight, "MeanSquaredError", pred.dtype)
    return loss, (diff, mean)


def mean_squared_error_backward(cache):
    """``dL/dp = 2 (p - t) / n`` (or ``2 w (p - t) / Σ w``), pred's shape and dtype."""
    diff, mean = cache
    return weighted_mean_backward(diff * diff.dtype.type(2), mean)


def labels_to_indices(target, n_classes, name="SoftmaxCrossEntropy"):
    """Accept integer labels (N,) or one-hot (N, classes); return int labels (N,) with range checks."""
    xp = get_array_module(target)
    target = xp.asarray(target)
    if target.ndim == 2 and target.shape[1] == 1 and n_classes > 1:
        target = target[:, 0]  # (N, 1) column of labels: read as (N,)
    if target.ndim == 2:
        if target.shape[1] != n_classes:
            raise ValueError(f"{name}: one-hot targets have {target.shape[1]} columns but the model "
                             f"predicts {n_classes} classes")
        return target.argmax(axis=1)
    if target.ndim != 1:
        raise ValueError(f"{name}: targets must be class indices (N,) or one-hot (N, {n_classes}); "
                         f"got shape {tuple(target.shape)}")
    if target.dtype.kind == "f":
        if not bool(xp.all(target == xp.round(target))):
            raise ValueError(f"{name}: class labels must be whole numbers, got non-integer values")
        target = target.astype(np.int64)
    if target.dtype.kind not in "iu":
        raise ValueError(f"{name}: class labels must be integers, got dtype {target.dtype}")
    if target.size and (int(target.min()) < 0 or int(target.max()) >= n_classes):
        bad = to_numpy(target)[(to_numpy(target) < 0) | (to_numpy(target) >= n_classes)][:5]
        raise ValueError(f"{name}: labels must lie in [0, {n_classes - 1}] for {n_classes} classes; "
                         f"found {bad.tolist()}")
    return target


def _class_probabilities(pred, target):
    """Targets as per-class probabilities of pred's shape (one-hot from labels; soft labels kept)."""
    xp = get_array_module(pred)
    if pred.ndim < 2:
        raise ValueError(f"SoftmaxCrossEntropy: expects logits of shape (N, classes) or (N, classes, H, W), "
                         f"got {tuple(pred.shape)}")
    n, k = pred.shape[:2]
    target = xp.asarray(target)
    if target.ndim == 0:
        raise ValueError("SoftmaxCrossEntropy: targets must have one entry per sample, got a scalar")
    if target.shape[0] != n:
        raise ValueError(f"SoftmaxCrossEntropy: {n} predictions but {target.shape[0]} targets")
    if target.shape == pred.shape:
        probs_t = target.astype(pred.dtype)  # one-hot (any dtype) or soft labels along axis 1
        check_distributions(probs_t, "SoftmaxCrossEntropy")
        return probs_t
    if pred.ndim > 2 and target.shape == (n, 1, *pred.shape[2:]):
        target = target[:, 0]  # (N, 1, H, W) label maps
    if pred.ndim > 2 and target.shape != (n, *pred.shape[2:]):
        raise ValueError(f"SoftmaxCrossEntropy: class maps {tuple(pred.shape)} need label maps "
                         f"{(n, *pred.shape[2:])} or one-hot {tuple(pred.shape)}, got {tuple(target.shape)}")
    idx = labels_to_indices(target.reshape(-1) if pred.ndim > 2 else target, k)
    return xp.moveaxis(xp.eye(k, dtype=pred.dtype)[idx].reshape((n, *pred.shape[2:], k)), -1, 1)


def softmax_cross_entropy_forward(logits, target, weight=None):
    """Softmax and cross-entropy, fused, along axis 1::

        l = -Σ_k t_k log softmax(z)_k       (= -log softmax(z)[label] for a one-hot t)

    logits z (N, classes) or (N, classes, H, W); target class indices (N,) / (N, H, W), one-hot
    or soft labels of z's shape; weight None, one per sample (N,) or one per pixel (N, H, W).
    -> ``(L, cache)``: L the (weighted) mean of l over samples (and pixels), a float.
    """
    probs_t = _class_probabilities(logits, target)
    logp, _ = log_softmax_forward(logits, axis=1)
    losses = -(probs_t * logp).sum(axis=1)  # (N,) or (N, H, W)
    loss, mean = weighted_mean(losses, weight, "SoftmaxCrossEntropy", logits.dtype)
    return loss, (logp, probs_t, mean)


def softmax_cross_entropy_backward(cache):
    """``dL/dz = (softmax(z) - t) / n`` (or weighted by ``w / Σ w``), z's shape and dtype;
    ``softmax(z) = exp(log_softmax(z))``, one exp pass."""
    logp, probs_t, mean = cache
    xp = get_array_module(logp)
    return weighted_mean_backward(xp.exp(logp) - probs_t, mean, per_class=True)


def binary_cross_entropy_forward(pred, target, weight=None, from_logits=False, eps=1e-7):
    """Binary cross-entropy per element, averaged::

        from_logits=False:  p = clip(pred, eps, 1 - eps)    l = -(t log p + (1 - t) log(1 - p))
        from_logits=True:   z = pred                        l = max(z, 0) - z t + log(1 + e^-|z|)

    (the second is the first with p = σ(z), computed exactly). pred any shape (probabilities in
    [0, 1], or logits); target in [0, 1], pred's shape or as many entries (reshaped); weight None,
    (N,) or one per element. -> ``(L, cache)``, L a float.
    """
    xp = get_array_module(pred)
    target = xp.asarray(target, dtype=pred.dtype)
    if target.shape != pred.shape and same_shape(target.shape, pred.shape):
        target = target.reshape(pred.shape)  # (N,) labels for an (N, 1) output, (N, H, W) maps for (N, 1, H, W)
    _check_same_shape("BinaryCrossEntropy", pred, target)
    if bool(xp.any((target < 0) | (target > 1))):
        raise ValueError("BinaryCrossEntropy: targets must lie in [0, 1]")
    if from_logits:
        z = pred
        losses = xp.maximum(z, 0) - z * target + xp.log1p(xp.exp(-xp.abs(z)))
        kept = z  # the backward needs the logits
    else:
        if bool(xp.any((pred < 0) | (pred > 1))):
            raise ValueError("BinaryCrossEntropy: predictions must be probabilities in [0, 1]; "
                             "use from_logits=True for raw scores")
        p = xp.clip(pred, eps, 1 - eps)
        losses = -(target * xp.log(p) + (1 - target) * xp.log1p(-p))
        kept = p  # the backward needs the clipped probabilities
    loss, mean = weighted_mean(losses, weight, "BinaryCrossEntropy", pred.dtype)
    return loss, (kept, target, from_logits, mean)


def binary_cross_entropy_backward(cache):
    """``dL/dp = (p - t) / (p (1 - p)) / n`` on probabilities (p clipped), ``(σ(z) - t) / n`` on
    logits (or weighted by ``w / Σ w``); pred's shape and dtype."""
    kept, target, from_logits, mean = cache  # the logits z, or the clipped probabilities p
    if from_logits:
        dl = sigmoid(kept) - target
    else:
        p = kept
        dl = (p - target) / (p * (1 - p))
    return weighted_mean_backward(dl, mean)


# ----------------------------------------------------------------------------- the loss objects
class Loss:
    """Base class: a thin object over a pair that keeps the cache between the two calls; subclasses
    implement ``_forward(pred, target, weight) -> (L, cache)`` and ``_backward(cache) -> dpred``
    by calling their pair (the cache's last entry is the pair's :class:`Mean`)."""

    applies_activation = None
    """The name of the activation layer this loss applies to its input itself (``"Softmax"``), or
    None: ``compile`` refuses a model whose last layer applies it too (softmax twice)."""

    def __call__(self, pred, target, weight=None):
        return self.forward(pred, target, weight)

    def forward(self, pred, target, weight=None) -> float:
        """The mean (or weighted mean) of the per-element losses; caches what backward needs."""
        loss, self._cache = self._forward(pred, target, weight)
        self.total_weight = self._cache[-1].total
        return loss

    def backward(self):
        """dL/dpred for the last ``forward``: the per-element derivatives, weighted and averaged."""
        return self._backward(self._cache)

    def _forward(self, pred, target, weight):
        raise NotImplementedError(f"{type(self).__name__}: a loss implements _forward(pred, target, weight)")

    def _backward(self, cache):
        raise NotImplementedError(f"{type(self).__name__}: a loss implements _backward(cache)")

    def get_config(self) -> dict:
        """The constructor's keyword arguments (``type(loss)(**loss.get_config())`` rebuilds it)."""
        return {}

    def __repr__(self):
        return f"{type(self).__name__}()"


class MeanSquaredError(Loss):
    """``L = mean((pred - target)²)`` over every element (PyTorch ``MSELoss``);
    :func:`mean_squared_error_forward`, :func:`mean_squared_error_backward`."""

    def _forward(self, pred, target, weight):
        return mean_squared_error_forward(pred, target, weight)

    def _backward(self, cache):
        return mean_squared_error_backward(cache)


class SoftmaxCrossEntropy(Loss):
    """Softmax + cross-entropy on **logits**, fused: ``l = -log_softmax(z)[t]``, softmax over axis 1.

    Logits (N, classes) with targets as class indices (N,) or one-hot / soft labels (N, classes);
    or per-pixel class maps (N, classes, H, W) with targets (N, H, W) or (N, classes, H, W)
    (PyTorch ``CrossEntropyLoss``; Keras ``categorical_crossentropy(from_logits=True)``).
    Gradient: ``dl/dz = softmax(z) - t_onehot`` (then averaged, see the module docstring);
    :func:`softmax_cross_entropy_forward`, :func:`softmax_cross_entropy_backward`.
    """

    applies_activation = "Softmax"
    def _forward(self, pred, target, weight):
        return softmax_cross_entropy_forward(pred, target, weight)

    def _backward(self, cache):
        return softmax_cross_entropy_backward(cache)


class BinaryCrossEntropy(Loss):
    """``l = -(t log p + (1 - t) log(1 - p))`` per element, targets in [0, 1].

    ``from_logits=False`` (default): ``pred`` are probabilities (after a Sigmoid layer); they are
    clipped to [eps, 1 - eps] (eps = 1e-7 as Keras) because log(0) = -inf. Gradient
    ``(p - t) / (p (1 - p))``.
    ``from_logits=True``: ``pred`` are logits z and the loss is computed exactly as
    ``max(z, 0) - z t + log(1 + e^{-|z|})`` (PyTorch ``BCEWithLogitsLoss``); gradient
    ``σ(z) - t``. Prefer this for training: no clipping, no overflow.
    :func:`binary_cross_entropy_forward`, :func:`binary_cross_entropy_backward`.
    """

    def _forward(self, pred, target, weight):
        return binary_cross_entropy_forward(pred, target, weight, self.from_logits, self.eps)

    def _backward(self, cache):
        return binary_cross_entropy_backward(cache)

    def __init__(self, from_logits=False, eps=1e-7):
        self.from_logits = from_logits
        self.eps = check_real(eps, "BinaryCrossEntropy: eps (probabilities are clipped to [eps, 1 - eps])", 0.0, 0.5,
                              low_open=True, high_open=True)

    @property
    def applies_activation(self):
        return "Sigmoid" if self.from_logits else None

    def get_config(self):
        return {"from_logits": self.from_logits, "eps": self.eps}

    def __repr__(self):
        return f"BinaryCrossEntropy(from_logits={self.from_logits})"


LOSSES = {
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "categorical_crossentropy": SoftmaxCrossEntropy, "sparse_categorical_crossentropy": SoftmaxCrossEntropy,
    "softmax_cross_entropy": SoftmaxCrossEntropy, "binary_crossentropy": BinaryCrossEntropy,
}


def get(loss):
    """A loss object from a Keras-style name or pass a Loss through."""
    if isinstance(loss, Loss):
        return loss
    try:
        return LOSSES[loss]()
    except KeyError:
        raise ValueError(f"unknown loss {loss!r}; choose one of {sorted(LOSSES)}") from None
