"""Metrics reported by ``fit`` and ``evaluate``: ``metric(pred, target) -> float``."""

from __future__ import annotations

import numpy as np

from .backend import get_array_module


def accuracy(pred, target):
    """Fraction of correct predictions.

    * (N, classes) scores: the predicted class is ``argmax``; targets are indices (N,) or one-hot.
    * (N,) or (N, 1) scores of a binary model: class 1 when the score is > 0.5 (probabilities).
    """
    xp = get_array_module(pred)
    target = xp.asarray(target)
    if pred.ndim == 2 and pred.shape[1] > 1:
        predicted = pred.argmax(axis=1)
        labels = target.argmax(axis=1) if target.ndim == 2 else target
    else:
        predicted = (pred.reshape(-1) > 0.5).astype(np.int64)
        labels = target.reshape(-1)
    return float((predicted == labels.astype(predicted.dtype)).mean())


METRICS = {"accuracy": accuracy, "acc": accuracy}


def get(metric):
    """``(name, function)`` from a name or a callable."""
    if callable(metric):
        return metric.__name__, metric
    try:
        return ("accuracy" if metric == "acc" else metric), METRICS[metric]
    except KeyError:
        raise ValueError(f"unknown metric {metric!r}; choose one of {sorted(METRICS)}") from None
