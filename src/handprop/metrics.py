"""Metrics reported by ``fit`` and ``evaluate``: ``metric(pred, target) -> float``."""

from __future__ import annotations

import functools

import numpy as np

from .backend import get_array_module


def accuracy(pred, target, threshold=0.5):
    """Fraction of correct predictions.

    * (N, classes) scores or (N, classes, H, W) class maps: the predicted class is the ``argmax``
      over axis 1; targets are indices (N,) / (N, H, W) or one-hot along axis 1.
    * any other shape (binary outputs, e.g. (N, 1) or (N, 1, H, W) segmentation maps): class 1 where
      the score is > ``threshold`` — 0.5 for probabilities, 0 for logits (``compile`` picks 0 when
      the loss is ``BinaryCrossEntropy(from_logits=True)``).
    """
    xp = get_array_module(pred)
    target = xp.asarray(target)
    if pred.ndim >= 2 and pred.shape[1] > 1:
        from .losses import labels_to_indices  # here: losses imports the activations, not metrics

        predicted = pred.argmax(axis=1).reshape(-1)
        if target.shape == pred.shape:
            target = target.argmax(axis=1)
        labels = labels_to_indices(target.reshape(-1), pred.shape[1], name="accuracy")
    else:
        predicted = (pred.reshape(-1) > threshold).astype(np.int64)
        labels = target.reshape(-1)
    return float((predicted == labels.astype(predicted.dtype)).mean())


METRICS = {"accuracy": accuracy, "acc": accuracy}


def get(metric, logits=False):
    """``(name, function)`` from a name or a callable; ``logits=True`` thresholds binary scores at 0."""
    if callable(metric):
        return metric.__name__, metric
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {sorted(METRICS)}")
    fn = METRICS[metric]
    if logits and fn is accuracy:
        return "accuracy", functools.partial(accuracy, threshold=0.0)
    return ("accuracy" if metric == "acc" else metric), fn
