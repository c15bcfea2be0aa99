"""Metrics: those reported by ``fit`` and ``evaluate``, and those of vessel segmentation.

* ``fit`` / ``evaluate`` metrics: ``metric(pred, target) -> float``, looked up by name with
  ``get`` (``"accuracy"``).
* Segmentation metrics compare a map of scores or probabilities with a binary ground truth, pixel
  by pixel, **inside a mask** when one is given (the field of view, FOV: metrics over the whole
  image count the easy black surround and inflate accuracy and specificity; DRIVE results are
  reported inside the FOV). Scores, labels and ``mask`` must have one shape (axes of length 1
  aside: (N, 1, H, W) scores with (N, H, W) labels; a transposed mask is refused even though it has
  as many elements); they are then flattened. A pixel is predicted positive when its score is
  ``> threshold``. NaN scores (inside the mask) and a NaN threshold are refused: every metric of
  them would be a made-up number.

  =================  ====================================================================
  ``roc_auc``        area under the ROC curve, threshold-free, exact with ties (rank formula)
  ``roc_curve``      (false positive rate, true positive rate, thresholds), as scikit-learn
  ``dice``/``f1``    2 TP / (2 TP + FP + FN); 1.0 when ground truth and prediction are both empty
  ``accuracy``       (TP + TN) / all (``pixel_accuracy`` for a single (H, W) map without mask)
  ``sensitivity``    TP / (TP + FN), the true positive rate (recall)
  ``specificity``    TN / (TN + FP), the true negative rate
  =================  ====================================================================

  ``segmentation_report`` gives all five per image and their mean.
"""

from __future__ import annotations

import functools

import numpy as np

from . import checks
from .backend import get_array_module, to_numpy


def accuracy(pred, target, *, threshold=0.5, mask=None):
    """Fraction of correct predictions.

    * (N, classes) scores or (N, classes, H, W) class maps: the predicted class is the ``argmax``
      over axis 1; targets are indices (N,) / (N, H, W) or one-hot along axis 1.
    * any other shape (binary outputs, e.g. (N, 1), (N, 1, H, W) or (N, H, W) segmentation
      maps): class 1 where the score is > ``threshold`` — 0.5 for probabilities, 0 for logits
      (``compile`` picks 0 when the loss is ``BinaryCrossEntropy(from_logits=True)``).

    ``mask`` (binary outputs only): count only the pixels where it is true (the FOV). Note that
    a 2-D array is read as (N, classes) scores; for one (H, W) probability map use
    ``pixel_accuracy``, which always thresholds.
    """
    threshold = checks.check_threshold(threshold, "accuracy")
    if mask is not None:
        pred, target = _masked(pred, target, mask, "accuracy")
    xp = get_array_module(pred)
    target = xp.asarray(target)
    # a class axis (N, classes[, H, W]); (N, H, W) maps, and targets of the prediction's shape that
    # are not one-hot (one (H, W) probability map with its 0/1 truth), are binary
    same_shape_binary = target.shape == pred.shape and not _one_hot(target)
    if pred.ndim in (2, 4, 5) and pred.shape[1] > 1 and not same_shape_binary:
        from .losses import labels_to_indices  # here: losses imports the activations, not metrics

        predicted = pred.argmax(axis=1).reshape(-1)
        if target.shape == pred.shape:
            target = target.argmax(axis=1)
        labels = labels_to_indices(target.reshape(-1), pred.shape[1], name="accuracy")
    else:
        predicted = (pred.reshape(-1) > threshold).astype(np.int64)
        labels = target.reshape(-1)
    return float((predicted == labels.astype(predicted.dtype)).mean())


def _one_hot(target):
    """True for 0/1 rows (along axis 1) with exactly one 1 each."""
    xp = get_array_module(target)
    return target.ndim >= 2 and bool(xp.all((target == 0) | (target == 1))) and bool(xp.all(target.sum(axis=1) == 1))


def _masked(scores, labels, mask, name):
    """Flattened NumPy float64 scores and bool labels, restricted to ``mask`` when given; shapes
    compared (never element counts), NaN scores refused."""
    scores, labels = to_numpy(scores), to_numpy(labels)
    checks.check_same_shape(labels.shape, scores.shape, name, "the ground truth", "the score array")
    if mask is not None:
        mask = to_numpy(mask)
        checks.check_same_shape(mask.shape, scores.shape, name, "the mask", "the score array")
    scores, labels = scores.reshape(-1), labels.reshape(-1)
    if mask is not None:
        mask = mask.reshape(-1).astype(bool)
        scores, labels = scores[mask], labels[mask]
    if labels.size and not np.isin(labels, (0, 1)).all():
        raise ValueError(f"{name}: labels must be 0/1 (or bool)")
    scores = scores.astype(np.float64)
    checks.check_finite_scores(scores, name)
    return scores, labels.astype(bool)


def roc_auc(scores, labels, mask=None):
    """Area under the ROC curve: the probability that a random positive scores above a random negative.

    ``AUC = (R⁺ - P (P + 1) / 2) / (P N)`` where R⁺ is the sum of the positives' ranks among all
    scores (ties get their average rank, which counts a tied positive-negative pair as 1/2), P the
    number of positives and N of negatives: exactly the trapezoidal area under the ROC curve with
    ties, as ``sklearn.metrics.roc_auc_score``. Scores may be probabilities, logits or any value
    that is larger for the positive class. Inside ``mask`` when given. Returns ``nan`` when only
    one class is present (the AUC is undefined).
    """
    scores, labels = _masked(scores, labels, mask, "roc_auc")
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    # average rank (1-based) of each run of equal scores
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], scores.size]
    run_rank = (starts + 1 + ends) / 2.0  # mean of starts+1 .. ends
    ranks = np.repeat(run_rank, ends - starts)
    rank_sum = ranks[labels[order]].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_curve(scores, labels, mask=None, drop_intermediate=False):
    """The ROC curve: ``fpr, tpr, thresholds``, as ``sklearn.metrics.roc_curve``.

    One point per distinct score, from the highest threshold down: at ``thresholds[k]`` the pixels
    with score ``>= thresholds[k]`` are predicted positive. The first point is (0, 0) at threshold
    ``inf``; the last is (1, 1). ``drop_intermediate=True`` drops the points on straight segments
    (the area is unchanged; fewer points to plot). Inside ``mask`` when given. Raises ``ValueError``
    when only one class is present.
    """
    scores, labels = _masked(scores, labels, mask, "roc_curve")
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"roc_curve: need positives and negatives, got {n_pos} positives and {n_neg} negatives")
    order = np.argsort(-scores, kind="stable")
    scores, labels = scores[order], labels[order]
    last = np.r_[np.flatnonzero(scores[1:] != scores[:-1]), scores.size - 1]  # last index of each distinct score
    tps = np.cumsum(labels)[last].astype(np.float64)
    fps = (last + 1) - tps
    thresholds = scores[last]
    if drop_intermediate and len(tps) > 2:
        keep = np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True]
        tps, fps, thresholds = tps[keep], fps[keep], thresholds[keep]
    tps, fps, thresholds = np.r_[0.0, tps], np.r_[0.0, fps], np.r_[np.inf, thresholds]
    return fps / n_neg, tps / n_pos, thresholds


def confusion(pred, target, mask=None, threshold=0.5, name="confusion"):
    """Counts ``{"tp", "fp", "tn", "fn"}`` of ``pred > threshold`` against the 0/1 ``target``, inside
    ``mask`` (``name``: the metric that asks, for its errors)."""
    threshold = checks.check_threshold(threshold, name)
    scores, labels = _masked(pred, target, mask, name)
    predicted = scores > threshold
    tp = int(np.count_nonzero(predicted & labels))
    fp = int(np.count_nonzero(predicted & ~labels))
    fn = int(np.count_nonzero(~predicted & labels))
    return {"tp": tp, "fp": fp, "tn": labels.size - tp - fp - fn, "fn": fn}


def dice(pred, target, mask=None, threshold=0.5):
    """Dice coefficient (= F1 score) ``2 TP / (2 TP + FP + FN)`` of ``pred > threshold``, inside ``mask``.

    ``pred``: probabilities or scores (thresholded at ``threshold``), or a 0/1 prediction.
    Empty ground truth: 1.0 when the prediction is empty too (perfect agreement), 0.0 otherwise
    (every predicted pixel is a false positive).
    """
    c = confusion(pred, target, mask, threshold, "dice")
    denominator = 2 * c["tp"] + c["fp"] + c["fn"]
    return 1.0 if denominator == 0 else 2 * c["tp"] / denominator


f1 = dice


def pixel_accuracy(pred, target, mask=None, threshold=0.5):
    """``(TP + TN) / all`` of ``pred > threshold`` against the 0/1 ``target``, inside ``mask``; any shape."""
    c = confusion(pred, target, mask, threshold, "pixel_accuracy")
    total = sum(c.values())
    return float("nan") if total == 0 else (c["tp"] + c["tn"]) / total


def sensitivity(pred, target, mask=None, threshold=0.5):
    """True positive rate (recall) ``TP / (TP + FN)``, inside ``mask``; ``nan`` without positives."""
    c = confusion(pred, target, mask, threshold, "sensitivity")
    positives = c["tp"] + c["fn"]
    return float("nan") if positives == 0 else c["tp"] / positives


def specificity(pred, target, mask=None, threshold=0.5):
    """True negative rate ``TN / (TN + FP)``, inside ``mask``; ``nan`` without negatives."""
    c = confusion(pred, target, mask, threshold, "specificity")
    negatives = c["tn"] + c["fp"]
    return float("nan") if negatives == 0 else c["tn"] / negatives


SEGMENTATION_METRICS = ("auc", "dice", "accuracy", "sensitivity", "specificity")


def _segmentation_metrics(prob, truth, mask, threshold):
    c = confusion(prob, truth, mask, threshold, "segmentation_report")
    total = c["tp"] + c["fp"] + c["tn"] + c["fn"]
    nan = float("nan")
    return {
        "auc": roc_auc(prob, truth, mask),
        "dice": 1.0 if 2 * c["tp"] + c["fp"] + c["fn"] == 0 else 2 * c["tp"] / (2 * c["tp"] + c["fp"] + c["fn"]),
        "accuracy": (c["tp"] + c["tn"]) / total if total else nan,
        "sensitivity": c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else nan,
        "specificity": c["tn"] / (c["tn"] + c["fp"]) if c["tn"] + c["fp"] else nan,
    }


def segmentation_report(probabilities, vessels, fov=None, threshold=0.5, ids=None):
    """In-FOV metrics of a vessel segmentation, per image and averaged.

    Parameters
    ----------
    probabilities : (n, H, W) or (n, 1, H, W) array of vessel probabilities (or any scores, with a
        matching ``threshold``)
    vessels : (n, H, W) ground truth in {0, 1}
    fov : (n, H, W) bool, optional: the metrics are computed inside it (the whole image without it)
    threshold : the prediction is ``probabilities > threshold`` (for all but the AUC)
    ids : n names, optional (default ``"0"``, ``"1"``, ...)

    Returns
    -------
    dict with
        ``"per_image"``: a list of n dicts ``{"id", "auc", "dice", "accuracy", "sensitivity", "specificity"}``;
        ``"mean"``: the mean over images of each of the five (``nan`` if any image's value is ``nan``);
        ``"pooled"``: the five computed over all images' pixels together (one ROC curve for the
        whole test set, as some DRIVE papers report);
        ``"threshold"`` and ``"inside_fov"`` (whether a FOV mask was used).
    """
    prob = to_numpy(probabilities)
    truth = to_numpy(vessels)
    if prob.ndim == 4 and prob.shape[1] == 1:
        prob = prob[:, 0]
    if prob.ndim == 2:
        prob, truth = prob[None], truth[None]
        fov = None if fov is None else to_numpy(fov)[None]
    if prob.ndim != 3 or truth.shape != prob.shape:
        raise ValueError(f"segmentation_report: probabilities {np.shape(probabilities)} and vessels "
                         f"{np.shape(vessels)} must both be (n, H, W)")
    if fov is not None and np.shape(fov) != prob.shape:
        raise ValueError(f"segmentation_report: fov must be (n, H, W) = {prob.shape}, got {np.shape(fov)}")
    ids = [str(i) for i in range(len(prob))] if ids is None else [str(i) for i in ids]
    if len(ids) != len(prob):
        raise ValueError(f"segmentation_report: {len(ids)} ids for {len(prob)} images")
    per_image = []
    for i in range(len(prob)):
        row = _segmentation_metrics(prob[i], truth[i], None if fov is None else fov[i], threshold)
        per_image.append({"id": ids[i], **row})
    mean = {k: float(np.mean([row[k] for row in per_image])) if per_image else float("nan")
            for k in SEGMENTATION_METRICS}
    pooled = _segmentation_metrics(prob, truth, fov, threshold)
    return {"per_image": per_image, "mean": mean, "pooled": pooled, "threshold": float(threshold),
            "inside_fov": fov is not None}


def format_segmentation_report(report):
    """A plain-text table of a ``segmentation_report``: one row per image, then the mean and pooled rows."""
    names = list(SEGMENTATION_METRICS)
    width = max([len("pooled")] + [len(row["id"]) for row in report["per_image"]])
    where = "inside the FOV" if report.get("inside_fov") else "over whole images"
    lines = [f"metrics {where}, threshold {report['threshold']:g}",
             f"{'image':<{width}}  " + "  ".join(f"{n:>11}" for n in names)]
    rows = [(row["id"], row) for row in report["per_image"]] + [("mean", report["mean"]), ("pooled", report["pooled"])]
    for k, (name, row) in enumerate(rows):
        if k == len(report["per_image"]):
            lines.append("-" * len(lines[1]))
        lines.append(f"{name:<{width}}  " + "  ".join(f"{row[n]:>11.4f}" for n in names))
    return "\n".join(lines)


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
