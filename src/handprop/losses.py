"""Loss functions: ``loss.forward(pred, target) -> float`` and ``loss.backward() -> dpred``.

Reductions follow PyTorch's defaults (``reduction="mean"``):

* ``MeanSquaredError``: mean over **all elements**      L = (1/n) Σ (p - t)²,   dL/dp = 2 (p - t) / n
* ``SoftmaxCrossEntropy``: mean over the **batch**      L = -(1/N) Σ_i log softmax(z_i)[t_i]
                                                          dL/dz = (softmax(z) - onehot(t)) / N
* ``BinaryCrossEntropy``: mean over all elements        L = -(1/n) Σ t log p + (1 - t) log(1 - p)

Cross-entropies are computed from logits with a fused, shifted log-softmax / log-sigmoid:
there is no ``+1e-7`` inside a log, and logits of ±1e4 give exact results.
"""

from __future__ import annotations

import numpy as np

from .backend import get_array_module, to_numpy
from .layers.activations import log_softmax, sigmoid


class Loss:
    """Base class: subclasses implement ``forward`` (caching what ``backward`` needs)."""

    def __call__(self, pred, target):
        return self.forward(pred, target)

    def forward(self, pred, target) -> float:
        raise NotImplementedError

    def backward(self):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}()"


def _check_same_shape(name, pred, target):
    if tuple(pred.shape) != tuple(target.shape):
        raise ValueError(f"{name}: prediction has shape {tuple(pred.shape)} but target has {tuple(target.shape)}")


class MeanSquaredError(Loss):
    """``L = mean((pred - target)²)`` over every element (PyTorch ``MSELoss``)."""

    def forward(self, pred, target):
        xp = get_array_module(pred)
        target = xp.asarray(target, dtype=pred.dtype)
        if target.shape != pred.shape and target.ndim == 1 and pred.ndim == 2 and pred.shape[1] == 1:
            target = target.reshape(-1, 1)  # (N,) targets for a (N, 1) regression output
        _check_same_shape("MeanSquaredError", pred, target)
        self._diff = pred - target
        return float((self._diff * self._diff).mean())

    def backward(self):
        return self._diff * (self._diff.dtype.type(2.0 / self._diff.size))


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


class SoftmaxCrossEntropy(Loss):
    """Softmax + cross-entropy on **logits** (N, classes), fused: ``L = mean_i(-log_softmax(z_i)[t_i])``.

    Targets: integer class indices (N,) or one-hot / soft labels (N, classes) (PyTorch
    ``CrossEntropyLoss``; Keras ``categorical_crossentropy(from_logits=True)``).
    Gradient: ``dL/dz = (softmax(z) - t_onehot) / N``.
    """

    def forward(self, pred, target):
        xp = get_array_module(pred)
        if pred.ndim != 2:
            raise ValueError(f"SoftmaxCrossEntropy: expects logits of shape (N, classes), got {tuple(pred.shape)}")
        n, k = pred.shape
        target = xp.asarray(target)
        if target.ndim == 0:
            raise ValueError("SoftmaxCrossEntropy: targets must have one entry per sample, got a scalar")
        if target.shape[0] != n:
            raise ValueError(f"SoftmaxCrossEntropy: {n} predictions but {target.shape[0]} targets")
        if target.ndim == 2 and target.shape[1] == k and target.dtype.kind == "f":
            probs_t = target.astype(pred.dtype)  # one-hot or soft labels
        else:
            idx = labels_to_indices(target, k)
            probs_t = xp.zeros_like(pred)
            probs_t[xp.arange(n), idx] = 1
        logp = log_softmax(pred)
        self._cache = (xp.exp(logp), probs_t)  # softmax = exp(log_softmax): one exp pass
        return float(-(probs_t * logp).sum() / n)

    def backward(self):
        p, t = self._cache
        return (p - t) / p.dtype.type(p.shape[0])


class BinaryCrossEntropy(Loss):
    """``L = -mean(t log p + (1 - t) log(1 - p))`` over all elements, targets in [0, 1].

    ``from_logits=False`` (default): ``pred`` are probabilities (after a Sigmoid layer); they are
    clipped to [eps, 1 - eps] (eps = 1e-7 as Keras) because log(0) = -inf. Gradient
    ``(p - t) / (p (1 - p)) / n``.
    ``from_logits=True``: ``pred`` are logits z and the loss is computed exactly as
    ``mean(max(z, 0) - z t + log(1 + e^{-|z|}))`` (PyTorch ``BCEWithLogitsLoss``); gradient
    ``(σ(z) - t) / n``. Prefer this for training: no clipping, no overflow.
    """

    def __init__(self, from_logits=False, eps=1e-7):
        self.from_logits = from_logits
        self.eps = eps

    def forward(self, pred, target):
        xp = get_array_module(pred)
        target = xp.asarray(target, dtype=pred.dtype)
        if target.shape != pred.shape and target.size == pred.size:
            target = target.reshape(pred.shape)  # (N,) labels for an (N, 1) output
        _check_same_shape("BinaryCrossEntropy", pred, target)
        if bool(xp.any((target < 0) | (target > 1))):
            raise ValueError("BinaryCrossEntropy: targets must lie in [0, 1]")
        n = pred.size
        if self.from_logits:
            z = pred
            self._cache = (sigmoid(z), target, n)
            loss = xp.maximum(z, 0) - z * target + xp.log1p(xp.exp(-xp.abs(z)))
            return float(loss.mean())
        if bool(xp.any((pred < 0) | (pred > 1))):
            raise ValueError("BinaryCrossEntropy: predictions must be probabilities in [0, 1]; "
                             "use from_logits=True for raw scores")
        p = xp.clip(pred, self.eps, 1 - self.eps)
        self._cache = (p, target, n)
        return float(-(target * xp.log(p) + (1 - target) * xp.log1p(-p)).mean())

    def backward(self):
        p, t, n = self._cache
        if self.from_logits:
            return (p - t) / p.dtype.type(n)
        return (p - t) / (p * (1 - p)) / p.dtype.type(n)

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
