"""Checkers for assignment 2 (pooling): max- and average-pool forward and backward.

The student's functions (square windows, no padding; the cache is theirs)::

    maxpool_forward(x, pool, stride) -> (y, cache)      x (N, C, H, W) -> y (N, C, Ho, Wo)
    maxpool_backward(dy, cache) -> dx
    avgpool_forward(x, pool, stride) -> (y, cache)
    avgpool_backward(dy, cache) -> dx

graded against the reference engine's pairs (:func:`handprop.kernels.reference.maxpool2d_forward`
& co., switched off while the student's code runs) on three geometries: non-overlapping windows,
overlapping ones (pool 3, stride 2: a pixel in two windows gets both gradients), and windows with
tied maxima (integer inputs, pool 2 stride 1: the first maximum in row-major order wins, as
PyTorch and ``np.argmax``).
"""

from __future__ import annotations

import numpy as np

from ..kernels import reference
from ..kernels.geometry import PoolGeometry
from .grading import as_student, grades
from .result import CheckResult, StudentError, as_array, call_student, describe_difference, worst_entry

__all__ = ["check_maxpool_forward", "check_maxpool_backward", "check_avgpool_forward", "check_avgpool_backward"]

RTOL = 1e-9


def _cases():
    rng = np.random.default_rng(7)
    return [
        ("2x2 windows, stride 2, x (2, 3, 6, 6)", rng.standard_normal((2, 3, 6, 6)), 2, 2),
        ("overlapping 3x3 windows, stride 2, x (2, 2, 7, 9)", rng.standard_normal((2, 2, 7, 9)), 3, 2),
        ("tied maxima (integer pixels), 2x2 windows, stride 1, x (1, 2, 5, 5)",
         rng.integers(0, 3, (1, 2, 5, 5)).astype(np.float64), 2, 1),
    ]


def _library(kind, x, pool, stride, dy=None):
    forward = getattr(reference, f"{kind}pool2d_forward")
    backward = getattr(reference, f"{kind}pool2d_backward")
    y, cache = forward(x, PoolGeometry((pool, pool), (stride, stride)))
    return y, (None if dy is None else backward(dy, cache))


def _windows(x, pool, stride):
    N, C, H, W = x.shape
    Ho, Wo = (H - pool) // stride + 1, (W - pool) // stride + 1
    for i in range(Ho):
        for j in range(Wo):
            yield i, j, slice(i * stride, i * stride + pool), slice(j * stride, j * stride + pool)


def _backward_with(kind, x, dy, pool, stride, mode):
    """What a typical wrong backward computes."""
    dx = np.zeros_like(x)
    for i, j, rows, cols in _windows(x, pool, stride):
        window = x[:, :, rows, cols]
        g = dy[:, :, i, j][:, :, None, None]
        if mode == "all":                       # every pixel of the window gets dy
            share = np.broadcast_to(g, window.shape)
        elif mode == "divided":                 # average pooling's backward
            share = np.broadcast_to(g / pool**2, window.shape)
        elif mode == "ties":                    # every tied maximum gets dy
            share = (window == window.max(axis=(2, 3), keepdims=True)) * g
        elif mode == "undivided":               # average pooling without the 1 / (pool^2)
            share = np.broadcast_to(g, window.shape)
        elif mode in ("overwrite", "correct"):
            if kind == "max":
                flat = window.reshape(*window.shape[:2], -1)
                mask = np.zeros_like(flat)
                np.put_along_axis(mask, flat.argmax(axis=2)[..., None], 1.0, axis=2)
                share = mask.reshape(window.shape) * g
            else:
                share = np.broadcast_to(g / pool**2, window.shape)
        if mode == "overwrite":  # '=' instead of '+=': a pixel in two windows keeps the last one's share
            dx[:, :, rows, cols] = share
        else:
            dx[:, :, rows, cols] += share
    return dx


_BACKWARD_MISTAKES = {
    "max": [
        ("ties", "with tied maxima only one pixel gets the gradient: the first maximum of the window in row-major "
                 "order (np.argmax of the flattened window), as the forward picked it"),
        ("overwrite", "a pixel in two overlapping windows receives both gradients: accumulate with +=, "
                      "do not assign with ="),
        ("all", "only the pixel that won the window gets dy; the others did not change the output (gradient 0)"),
        ("divided", "that is average pooling's backward: max pooling sends all of dy to the winning pixel"),
    ],
    "avg": [
        ("undivided", "each pixel counted 1 / (pool * pool) in the mean: it gets dy / (pool * pool)"),
        ("overwrite", "a pixel in two overlapping windows receives both shares: accumulate with +=, "
                      "do not assign with ="),
    ],
}


def _forward_hint(kind, y, x, pool, stride):
    means = np.array([[x[:, :, r, c].mean(axis=(2, 3)) for *_, r, c in _windows(x, pool, stride)]])
    maxes = np.array([[x[:, :, r, c].max(axis=(2, 3)) for *_, r, c in _windows(x, pool, stride)]])
    sums = means * pool**2
    flat = y.transpose(2, 3, 0, 1).reshape(1, -1, *y.shape[:2])
    if kind == "max" and np.allclose(flat, means):
        return "that is the mean of each window: max pooling takes the largest value"
    if kind == "avg" and np.allclose(flat, sums):
        return "that is the sum of each window: divide by pool * pool for the mean"
    if kind == "avg" and np.allclose(flat, maxes):
        return "that is the largest value of each window: average pooling takes the mean"
    return (f"output (i, j) is the {'largest value' if kind == 'max' else 'mean'} of the window "
            "x[:, :, i*stride : i*stride + pool, j*stride : j*stride + pool]")


def _student_forward(kind, forward, x, pool, stride):
    what = f"{kind}pool_forward"
    given = x.copy()
    out = call_student(forward, given, pool, stride, what=what)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise StudentError(f"{what} returned {type(out).__name__}: return the pair (y, cache)")
    if not np.array_equal(given, x):
        raise StudentError(f"{what} changed its input x: compute a new array instead")
    N, C, H, W = x.shape
    shape = (N, C, (H - pool) // stride + 1, (W - pool) // stride + 1)
    if np.shape(out[0]) != shape:
        raise StudentError(f"y has shape {np.shape(out[0])}, expected {shape}: Ho = (H - pool) // stride + 1")
    return as_array(out[0], "y", shape), out[1]


def _check_forward(kind, forward):
    name = f"{'max' if kind == 'max' else 'average'}-pool forward"
    forward = as_student(forward)
    findings = []
    for label, x, pool, stride in _cases():
        try:
            y, _ = _student_forward(kind, forward, x, pool, stride)
        except StudentError as error:
            return CheckResult(name, False, findings + [f"{label}: {error}"])
        expected = _library(kind, x, pool, stride)[0]
        if worst_entry(y, expected)[0] < RTOL:
            findings.append(f"{label}: y matches the reference engine")
            continue
        return CheckResult(name, False, findings + [f"{label}: " + describe_difference("y", y, expected)],
                           _forward_hint(kind, y, x, pool, stride))
    return CheckResult(name, True, findings)


def _check_backward(kind, forward, backward):
    name = f"{'max' if kind == 'max' else 'average'}-pool backward"
    forward, backward = as_student(forward), as_student(backward)
    what = f"{kind}pool_backward"
    findings = []
    for label, x, pool, stride in _cases():
        rng = np.random.default_rng(pool * 10 + stride)
        y_lib, _ = _library(kind, x, pool, stride)
        dy = rng.standard_normal(y_lib.shape)
        expected = _library(kind, x, pool, stride, dy)[1]
        try:
            y, cache = _student_forward(kind, forward, x, pool, stride)
            if worst_entry(y, y_lib)[0] >= RTOL:
                raise StudentError(f"{kind}pool_forward is not right yet (its task says why); the backward needs "
                                   "its cache, so fix the forward first")
            given = dy.copy()
            dx = as_array(call_student(backward, given, cache, what=what), "dx", x.shape)
            if not np.array_equal(given, dy):
                raise StudentError(f"{what} changed dy: compute a new array instead")
        except StudentError as error:
            return CheckResult(name, False, findings + [f"{label}: {error}"])
        if worst_entry(dx, expected)[0] < RTOL:
            findings.append(f"{label}: dx matches the reference engine")
            continue
        hint = next((text for mode, text in _BACKWARD_MISTAKES[kind]
                     if worst_entry(dx, _backward_with(kind, x, dy, pool, stride, mode))[0] < RTOL),
                    "each dy[n, c, i, j] goes back to the pixels of window (i, j): "
                    + ("all of it to the one that won" if kind == "max" else "dy / (pool * pool) to each"))
        return CheckResult(name, False, findings + [f"{label}: " + describe_difference("dx", dx, expected)], hint)
    return CheckResult(name, True, findings)


@grades("maxpool_forward")
def check_maxpool_forward(maxpool_forward):
    """Grade ``maxpool_forward(x, pool, stride) -> (y, cache)`` against the reference engine."""
    return _check_forward("max", maxpool_forward)


@grades("maxpool_backward")
def check_maxpool_backward(maxpool_forward, maxpool_backward):
    """Grade ``maxpool_backward(dy, cache) -> dx`` (with the cache of the student's forward)."""
    return _check_backward("max", maxpool_forward, maxpool_backward)


@grades("avgpool_forward")
def check_avgpool_forward(avgpool_forward):
    """Grade ``avgpool_forward(x, pool, stride) -> (y, cache)`` against the reference engine."""
    return _check_forward("avg", avgpool_forward)


@grades("avgpool_backward")
def check_avgpool_backward(avgpool_forward, avgpool_backward):
    """Grade ``avgpool_backward(dy, cache) -> dx`` (with the cache of the student's forward)."""
    return _check_backward("avg", avgpool_forward, avgpool_backward)
