"""Checkers for chapter 6 (vessel segmentation): metrics inside the field of view, and the weight
reshape that turns a patch classifier's Dense layer into a convolution.

The student's functions::

    segmentation_scores(prediction, vessels, fov) -> {"dice", "sensitivity", "specificity", "accuracy"}
    dense_to_conv(W, feature_shape) -> kernel          W (C h w, units) -> (units, C, h, w)

The scores are compared with :mod:`handprop.metrics` (``dice``, ``sensitivity``, ``specificity``,
``pixel_accuracy`` with ``mask=fov``) on synthetic retinas; the kernel with the conversion inside
``hp.inference.to_fully_convolutional``, and by running it: a ``Conv2D`` with the student's kernel
on a feature map must give what the ``Dense`` layer gives on the flattened map.
"""

from __future__ import annotations

import numpy as np

from .. import metrics
from ..layers import Conv2D, Dense
from .result import CheckResult, StudentError, as_array, call_student, tolerance, worst_entry

__all__ = ["check_segmentation_scores", "check_dense_to_conv"]

SCORES = ("dice", "sensitivity", "specificity", "accuracy")


def _library_scores(pred, vessels, fov):
    return {"dice": metrics.dice(pred, vessels, fov), "sensitivity": metrics.sensitivity(pred, vessels, fov),
            "specificity": metrics.specificity(pred, vessels, fov),
            "accuracy": metrics.pixel_accuracy(pred, vessels, fov)}


def _score_cases():
    """Two (prediction, vessels, fov) cases: a synthetic retina with a noisy prediction that also marks
    pixels outside the FOV, and a small hand-made one."""
    from ..data import synthetic_retina

    data = synthetic_retina(1, seed=3, size=(64, 64))
    rng = np.random.default_rng(0)
    vessels, fov = data.vessels[0], data.fov[0]
    pred = vessels.astype(bool) ^ (rng.random(vessels.shape) < 0.08)  # 8 % of the pixels flipped
    pred[~fov] = rng.random(int((~fov).sum())) < 0.3  # "vessels" in the black surround
    small_v = np.zeros((6, 6), np.uint8)
    small_v[2, 1:5] = 1
    small_f = np.zeros((6, 6), bool)
    small_f[1:5, :] = True
    small_p = np.zeros((6, 6), bool)
    small_p[2, 2:6] = True
    small_p[0, 0] = True  # outside the FOV
    return [("a 64x64 synthetic retina, 8 % of the pixels wrong, some 'vessels' outside the FOV",
             pred, vessels, fov), ("a 6x6 example", small_p, small_v, small_f)]


def _score_variants(pred, vessels, fov):
    """Scores of typical mistakes, keyed by their hint."""
    p, v = np.asarray(pred, bool), np.asarray(vessels) > 0
    tp = lambda m: int(np.sum(p & v & m))
    fp = lambda m: int(np.sum(p & ~v & m))
    fn = lambda m: int(np.sum(~p & v & m))
    tn = lambda m: int(np.sum(~p & ~v & m))
    everywhere = np.ones_like(fov, bool)
    whole = {"dice": 2 * tp(everywhere) / max(2 * tp(everywhere) + fp(everywhere) + fn(everywhere), 1),
             "sensitivity": tp(everywhere) / max(tp(everywhere) + fn(everywhere), 1),
             "specificity": tn(everywhere) / max(tn(everywhere) + fp(everywhere), 1),
             "accuracy": (tp(everywhere) + tn(everywhere)) / everywhere.size}
    f = np.asarray(fov, bool)
    return {
        "whole": (whole, "count only the pixels inside the FOV (mask every count with fov): outside it the black "
                         "surround is easy background that inflates specificity and accuracy"),
        "iou": ({"dice": tp(f) / max(tp(f) + fp(f) + fn(f), 1)},
                "that is the Jaccard index (IoU), TP / (TP + FP + FN); Dice is 2 TP / (2 TP + FP + FN)"),
        "swapped": ({"sensitivity": tn(f) / max(tn(f) + fp(f), 1), "specificity": tp(f) / max(tp(f) + fn(f), 1)},
                    "sensitivity and specificity are swapped: sensitivity = TP / (TP + FN) (vessels found), "
                    "specificity = TN / (TN + FP) (background kept)"),
        "precision": ({"sensitivity": tp(f) / max(tp(f) + fp(f), 1)},
                      "that is the precision, TP / (TP + FP); sensitivity (recall) is TP / (TP + FN)"),
    }


def check_segmentation_scores(segmentation_scores):
    """Grade ``segmentation_scores(prediction, vessels, fov) -> dict`` (binary prediction and truth).

    Expected, counting only pixels inside ``fov``: ``dice = 2 TP / (2 TP + FP + FN)``,
    ``sensitivity = TP / (TP + FN)``, ``specificity = TN / (TN + FP)``,
    ``accuracy = (TP + TN) / (TP + FP + TN + FN)`` -- as :mod:`handprop.metrics` with ``mask=fov``.
    """
    name = "Dice, sensitivity, specificity and accuracy inside the FOV"
    findings = []
    for label, pred, vessels, fov in _score_cases():
        inputs = (pred.copy(), vessels.copy(), fov.copy())
        try:
            got = call_student(segmentation_scores, *inputs, what="segmentation_scores")
            if not isinstance(got, dict) or any(k not in got for k in SCORES):
                raise StudentError(f"segmentation_scores should return a dict with the keys {list(SCORES)}, got "
                                   f"{sorted(got) if isinstance(got, dict) else type(got).__name__}")
            got = {k: float(got[k]) for k in SCORES}
        except StudentError as error:
            return CheckResult(name, False, findings + [f"{label}: {error}"])
        except (TypeError, ValueError):
            return CheckResult(name, False, findings + [f"{label}: the scores should be numbers"])
        expected = _library_scores(pred, vessels, fov)
        bad = [k for k in SCORES if not abs(got[k] - expected[k]) < 1e-9]
        if not bad:
            findings.append(f"{label}: " + ", ".join(f"{k} {expected[k]:.4f}" for k in SCORES)
                            + " agree with hp.metrics (mask=fov)")
            continue
        problems = [f"{label}: {k} = {got[k]:.6g}, hp.metrics.{'pixel_accuracy' if k == 'accuracy' else k}"
                    f"(..., mask=fov) gives {expected[k]:.6g}" for k in bad]
        hint = None
        for values, text in _score_variants(pred, vessels, fov).values():
            if all(k in values and abs(got[k] - values[k]) < 1e-9 for k in bad):
                hint = text
                break
        return CheckResult(name, False, findings + problems,
                           hint or "count TP, FP, TN, FN with boolean masks restricted to fov, then the four ratios")
    return CheckResult(name, True, findings)


# ----------------------------------------------------------------------------- Dense -> conv
DENSE_CONV_CASES = [  # label, seed, (C, h, w), units
    ("a 32 x 3 x 3 map, 16 units", 0, (32, 3, 3), 16),
    ("a 5 x 2 x 4 map (not square), 3 units", 1, (5, 2, 4), 3),
]


def _dense_conv_hint(W, shape, kernel, rtol=1e-9):
    C, h, w = shape
    units = W.shape[1]
    candidates = {
        "W has one row per input feature and one column per unit: transpose it first, W.T.reshape(units, C, h, w)":
            W.reshape(units, C, h, w),
        "Flatten orders the features as (C, h, w), channel first (C order): reshape to (units, C, h, w) directly, "
        "not via (h, w, C)": np.moveaxis(W.T.reshape(units, h, w, C), -1, 1),
        "rows and columns are swapped: the feature index is (c h + i) w + j for row i and column j":
            W.T.reshape(units, C, w, h).transpose(0, 1, 3, 2),
    }
    for text, candidate in candidates.items():
        if candidate is not None and candidate.shape == kernel.shape and worst_entry(kernel, candidate)[0] < rtol:
            return text
    return "kernel[k, c, i, j] = W[(c h + i) w + j, k]: W.T.reshape(units, C, h, w)"


def check_dense_to_conv(dense_to_conv):
    """Grade ``dense_to_conv(W, feature_shape) -> kernel``: the ``Dense`` layer after ``Flatten`` of a
    ``(C, h, w)`` feature map as a convolution with an ``h x w`` kernel.

    Expected: ``kernel[k, c, i, j] = W[(c h + i) w + j, k]``, i.e. ``W.T.reshape(units, C, h, w)``
    (as ``hp.inference.to_fully_convolutional``). The checker also runs ``Conv2D`` with the kernel on
    random maps and compares with the ``Dense`` layer on the flattened maps.
    """
    name = "Dense -> convolution weights"
    findings = []
    for label, seed, shape, units in DENSE_CONV_CASES:
        rng = np.random.default_rng(seed)
        C, h, w = shape
        W = rng.standard_normal((C * h * w, units))
        try:
            kernel = call_student(dense_to_conv, W.copy(), shape, what="dense_to_conv")
            if kernel is None:
                raise StudentError("dense_to_conv returned None: return the kernel")
            if np.shape(kernel) != (units, C, h, w):
                hint = ("a convolution kernel is (filters, channels, rows, cols) = (units, C, h, w)"
                        if np.shape(kernel) != (units, h, w, C) else
                        "handprop's kernels are channels first: (units, C, h, w), not (units, h, w, C)")
                return CheckResult(name, False, findings + [f"{label}: the kernel has shape {np.shape(kernel)}, "
                                                            f"expected {(units, C, h, w)}"], hint)
            rtol = tolerance(1e-9, kernel)  # a float32 kernel holds W's entries rounded to float32
            kernel = as_array(kernel, "the kernel", (units, C, h, w))
        except StudentError as error:
            return CheckResult(name, False, findings + [f"{label}: {error}"])
        expected = W.T.reshape(units, C, h, w)
        x = rng.standard_normal((2, C, h, w))
        dense = Dense(units, use_bias=False)
        dense.build((C * h * w,), rng=0, dtype=np.float64)
        dense.params["W"] = W
        conv = Conv2D(units, (h, w), use_bias=False)
        conv.build(shape, rng=0, dtype=np.float64)
        conv.params["W"] = np.ascontiguousarray(kernel)
        y_dense = dense.forward(x.reshape(2, -1), training=False)
        y_conv = conv.forward(x, training=False).reshape(2, units)
        if worst_entry(kernel, expected)[0] < rtol:
            error = worst_entry(y_conv, y_dense)[0]
            findings.append(f"{label}: the kernel equals to_fully_convolutional's; Conv2D with it gives the Dense "
                            f"outputs (max relative difference {error:.1e})")
            continue
        return CheckResult(name, False, findings + [
            f"{label}: Conv2D with your kernel gives outputs that differ from the Dense layer's (max relative "
            f"difference {worst_entry(y_conv, y_dense)[0]:.2g})"], _dense_conv_hint(W, shape, kernel, rtol))
    return CheckResult(name, True, findings)
