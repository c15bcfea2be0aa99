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

Cross-entropies are computed from logits with a fused, shifted log-softmax / log-sigmoid:
there is no ``+1e-7`` inside a log, and logits of ±1e4 give exact results.
"""

from __future__ import annotations

import numpy as np

from .backend import get_array_module, to_numpy
from .checks import check_distributions, check_real, same_shape
from .layers.activations import log_softmax, sigmoid


class Loss:
    """Base class: subclasses implement ``_elements(pred, target) -> (l, dl)``: the per-element
    losses and their derivatives; the base class takes the (weighted) mean."""

    applies_activation = None
    """The name of the activation layer this loss applies to its input itself (``"Softmax"``), or
    None: ``compile`` refuses a model whose last layer applies it too (softmax twice)."""

    def __call__(self, pred, target, weight=None):
        return self.forward(pred, target, weight)

    def forward(self, pred, target, weight=None) -> float:
        """The mean (or weighted mean) of the per-element losses; caches the gradient's pieces."""
        xp = get_array_module(pred)
        losses, dl = self._elements(pred, target)
        if weight is None:
            self.total_weight = float(losses.size)
            self._cache = (dl, None, losses.size, pred.dtype.type)
            return float(losses.mean()) if losses.size else 0.0
        w = _broadcast_weight(xp, weight, losses.shape, type(self).__name__, pred.dtype)
        total = float(w.sum())
        self.total_weight = total
        self._cache = (dl, w, total, pred.dtype.type)
        return float((w * losses).sum() / total) if total > 0 else 0.0

    def backward(self):
        """dL/dpred for the last ``forward``: the per-element derivatives, weighted and averaged."""
        dl, w, total, real = self._cache
        if w is None:
            return dl / real(max(total, 1))
        if total <= 0:
            return dl * real(0)
        return dl * self._per_pred(w, dl) / real(total)

    @staticmethod
    def _per_pred(w, dl):
        """Weights of the per-element losses, broadcast onto the prediction's shape."""
        return w

    def _elements(self, pred, target):
        raise NotImplementedError

    def get_config(self) -> dict:
        """The constructor's keyword arguments (``type(loss)(**loss.get_config())`` rebuilds it)."""
        return {}

    def __repr__(self):
        return f"{type(self).__name__}()"


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


class MeanSquaredError(Loss):
    """``L = mean((pred - target)²)`` over every element (PyTorch ``MSELoss``)."""

    def _elements(self, pred, target):
        xp = get_array_module(pred)
        target = xp.asarray(target, dtype=pred.dtype)
        if target.shape != pred.shape and target.ndim == 1 and pred.ndim == 2 and pred.shape[1] == 1:
            target = target.reshape(-1, 1)  # (N,) targets for a (N, 1) regression output
        _check_same_shape("MeanSquaredError", pred, target)
        diff = pred - target
        return diff * diff, diff * pred.dtype.type(2)


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
    """Softmax + cross-entropy on **logits**, fused: ``l = -log_softmax(z)[t]``, softmax over axis 1.

    Logits (N, classes) with targets as class indices (N,) or one-hot / soft labels (N, classes);
    or per-pixel class maps (N, classes, H, W) with targets (N, H, W) or (N, classes, H, W)
    (PyTorch ``CrossEntropyLoss``; Keras ``categorical_crossentropy(from_logits=True)``).
    Gradient: ``dl/dz = softmax(z) - t_onehot`` (then averaged, see the module docstring).
    """

    applies_activation = "Softmax"

    def _elements(self, pred, target):
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
        else:
            if pred.ndim > 2 and target.shape == (n, 1, *pred.shape[2:]):
                target = target[:, 0]  # (N, 1, H, W) label maps
            if pred.ndim > 2 and target.shape != (n, *pred.shape[2:]):
                raise ValueError(f"SoftmaxCrossEntropy: class maps {tuple(pred.shape)} need label maps "
                                 f"{(n, *pred.shape[2:])} or one-hot {tuple(pred.shape)}, got {tuple(target.shape)}")
            idx = labels_to_indices(target.reshape(-1) if pred.ndim > 2 else target, k)
            probs_t = xp.moveaxis(xp.eye(k, dtype=pred.dtype)[idx].reshape((n, *pred.shape[2:], k)), -1, 1)
        logp = log_softmax(pred, axis=1)
        losses = -(probs_t * logp).sum(axis=1)  # (N,) or (N, H, W)
        return losses, xp.exp(logp) - probs_t  # softmax = exp(log_softmax): one exp pass

    @staticmethod
    def _per_pred(w, dl):
        return w[:, None]  # one weight per sample / pixel, the same for every class


class BinaryCrossEntropy(Loss):
    """``l = -(t log p + (1 - t) log(1 - p))`` per element, targets in [0, 1].

    ``from_logits=False`` (default): ``pred`` are probabilities (after a Sigmoid layer); they are
    clipped to [eps, 1 - eps] (eps = 1e-7 as Keras) because log(0) = -inf. Gradient
    ``(p - t) / (p (1 - p))``.
    ``from_logits=True``: ``pred`` are logits z and the loss is computed exactly as
    ``max(z, 0) - z t + log(1 + e^{-|z|})`` (PyTorch ``BCEWithLogitsLoss``); gradient
    ``σ(z) - t``. Prefer this for training: no clipping, no overflow.
    """

    def __init__(self, from_logits=False, eps=1e-7):
        self.from_logits = from_logits
        self.eps = check_real(eps, "BinaryCrossEntropy: eps (probabilities are clipped to [eps, 1 - eps])", 0.0, 0.5,
                              low_open=True, high_open=True)

    @property
    def applies_activation(self):
        return "Sigmoid" if self.from_logits else None

    def _elements(self, pred, target):
        xp = get_array_module(pred)
        target = xp.asarray(target, dtype=pred.dtype)
        if target.shape != pred.shape and same_shape(target.shape, pred.shape):
            target = target.reshape(pred.shape)  # (N,) labels for an (N, 1) output, (N, H, W) maps for (N, 1, H, W)
        _check_same_shape("BinaryCrossEntropy", pred, target)
        if bool(xp.any((target < 0) | (target > 1))):
            raise ValueError("BinaryCrossEntropy: targets must lie in [0, 1]")
        if self.from_logits:
            z = pred
            losses = xp.maximum(z, 0) - z * target + xp.log1p(xp.exp(-xp.abs(z)))
            return losses, sigmoid(z) - target
        if bool(xp.any((pred < 0) | (pred > 1))):
            raise ValueError("BinaryCrossEntropy: predictions must be probabilities in [0, 1]; "
                             "use from_logits=True for raw scores")
        p = xp.clip(pred, self.eps, 1 - self.eps)
        losses = -(target * xp.log(p) + (1 - target) * xp.log1p(-p))
        return losses, (p - target) / (p * (1 - p))

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
