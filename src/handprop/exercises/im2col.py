"""Checkers for assignment 3 (convolution by im2col): the columns, the forward GEMM, the backward with col2im.

The student's functions (square stride and padding, no dilation)::

    im2col(x, R, S, stride, pad) -> cols                 x (N, C, H, W) -> cols (C R S, N Ho Wo)
        row (c, r, s) = c R S + r S + s  (the order of W.reshape(K, -1));  column (n, i, j) = n Ho Wo + i Wo + j
    conv_forward_im2col(x, W, b, stride, pad) -> (y, cache)     y = W.reshape(K, -1) @ cols + b, as (N, K, Ho, Wo)
    conv_backward_im2col(dy, cache) -> (dx, dW, db)             dx by col2im (overlapping windows add up)

graded against the reference engine's loops (:func:`handprop.kernels.reference.conv2d_forward` /
``conv2d_backward``, switched off while the student's code runs, with every other engine's
convolution) on two geometries: stride 1 with padding 1, and stride 2 with padding 1 and a 2×3
kernel.
"""

from __future__ import annotations

import numpy as np

from ..kernels import reference
from ..kernels.geometry import ConvGeometry
from .grading import as_student, grades
from .result import CheckResult, StudentError, as_array, call_student, describe_difference, worst_entry

__all__ = ["check_im2col", "check_conv_forward_im2col", "check_conv_backward_im2col"]

RTOL = 1e-9


def _cases():
    rng = np.random.default_rng(11)
    return [
        ("stride 1, pad 1: x (2, 3, 5, 6), W (4, 3, 3, 3)", rng.standard_normal((2, 3, 5, 6)),
         rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4), 1, 1),
        ("stride 2, pad 1, a 2x3 kernel: x (2, 2, 7, 7), W (3, 2, 2, 3)", rng.standard_normal((2, 2, 7, 7)),
         rng.standard_normal((3, 2, 2, 3)), rng.standard_normal(3), 2, 1),
    ]


def _out(H, W, R, S, stride, pad):
    return (H + 2 * pad - R) // stride + 1, (W + 2 * pad - S) // stride + 1


def _cols4(x, R, S, stride, pad):
    """(C, R, S, N, Ho, Wo): the value tap (r, s) of channel c reads for output (n, i, j)."""
    N, C, H, W = x.shape
    Ho, Wo = _out(H, W, R, S, stride, pad)
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    cols = np.empty((C, R, S, N, Ho, Wo))
    for r in range(R):
        for s in range(S):
            cols[:, r, s] = xp[:, :, r: r + stride * Ho: stride, s: s + stride * Wo: stride].transpose(1, 0, 2, 3)
    return cols


def _geometry(stride, pad):
    return ConvGeometry((stride, stride), (pad, pad), (1, 1))


@grades("im2col")
def check_im2col(im2col):
    """Grade ``im2col(x, R, S, stride, pad) -> cols`` (C R S, N Ho Wo) against the windows the
    reference convolution reads."""
    name = "im2col"
    im2col = as_student(im2col)
    findings = []
    for label, x, W, _, stride, pad in _cases():
        K, C, R, S = W.shape
        N, _, H, Wd = x.shape
        Ho, Wo = _out(H, Wd, R, S, stride, pad)
        expected4 = _cols4(x, R, S, stride, pad)
        expected = expected4.reshape(C * R * S, N * Ho * Wo)
        try:
            given = x.copy()
            cols = call_student(im2col, given, R, S, stride, pad, what="im2col")
            if not np.array_equal(given, x):
                raise StudentError("im2col changed its input x: build a new array")
            shape = np.shape(cols)
            if shape == expected.shape[::-1]:
                raise StudentError(f"cols has shape {shape}: transposed. One column per output position "
                                   f"(N Ho Wo = {N * Ho * Wo}), one row per weight (C R S = {C * R * S})")
            if shape != expected.shape:
                Hn, Wn = _out(H, Wd, R, S, stride, 0)
                extra = (f" (that is the size without padding: pad the input by {pad} first)"
                         if shape == (C * R * S, N * Hn * Wn) else
                         " (stride ignored?)" if shape == (C * R * S, N * np.prod(_out(H, Wd, R, S, 1, pad))) else "")
                raise StudentError(f"cols has shape {shape}, expected {expected.shape}{extra}")
            cols = as_array(cols, "cols", expected.shape)
        except StudentError as error:
            return CheckResult(name, False, findings + [f"{label}: {error}"])
        if worst_entry(cols, expected)[0] < RTOL:
            findings.append(f"{label}: cols {expected.shape} holds the windows the reference loops read")
            continue
        orders = {
            "rows ordered (r, s, c)": expected4.transpose(1, 2, 0, 3, 4, 5).reshape(expected.shape),
            "columns ordered (i, j, n)": expected4.transpose(0, 1, 2, 4, 5, 3).reshape(expected.shape),
            "columns ordered (i, j, n) and rows (r, s, c)":
                expected4.transpose(1, 2, 0, 4, 5, 3).reshape(expected.shape),
        }
        hint = next((f"the right values in another order: {what}. Rows must follow W.reshape(K, -1), i.e. "
                     "(c, r, s), and columns the output (n, i, j)" for what, wrong in orders.items()
                     if worst_entry(cols, wrong)[0] < RTOL),
                    "column (n, i, j) holds the padded window "
                    "x[n, :, i*stride : i*stride + R, j*stride : j*stride + S], flattened in (c, r, s) order")
        return CheckResult(name, False, findings + [f"{label}: " + describe_difference("cols", cols, expected)], hint)
    return CheckResult(name, True, findings)


def _student_forward(forward, x, W, b, stride, pad):
    inputs = (x.copy(), W.copy(), b.copy())
    out = call_student(forward, *inputs, stride, pad, what="conv_forward_im2col")
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise StudentError(f"conv_forward_im2col returned {type(out).__name__}: return the pair (y, cache)")
    for given, original, name in zip(inputs, (x, W, b), ("x", "W", "b")):
        if not np.array_equal(given, original):
            raise StudentError(f"conv_forward_im2col changed its input {name}: compute new arrays instead")
    N, _, H, Wd = x.shape
    K, _, R, S = W.shape
    shape = (N, K, *_out(H, Wd, R, S, stride, pad))
    if np.shape(out[0]) != shape:
        raise StudentError(f"y has shape {np.shape(out[0])}, expected {shape}")
    return as_array(out[0], "y", shape), out[1]


@grades("conv_forward_im2col")
def check_conv_forward_im2col(conv_forward_im2col):
    """Grade ``conv_forward_im2col(x, W, b, stride, pad) -> (y, cache)`` against the reference loops."""
    name = "convolution forward by im2col"
    forward = as_student(conv_forward_im2col)
    findings = []
    for label, x, W, b, stride, pad in _cases():
        try:
            y, _ = _student_forward(forward, x, W, b, stride, pad)
        except StudentError as error:
            return CheckResult(name, False, findings + [f"{label}: {error}"])
        expected = reference.conv2d_forward(x, W, b, _geometry(stride, pad))[0]
        if worst_entry(y, expected)[0] < RTOL:
            findings.append(f"{label}: y matches the reference loops")
            continue
        K = W.shape[0]
        no_bias = reference.conv2d_forward(x, W, None, _geometry(stride, pad))[0]
        flipped = reference.conv2d_forward(x, W[:, :, ::-1, ::-1].copy(), b, _geometry(stride, pad))[0]
        gemm = (no_bias.transpose(1, 0, 2, 3).reshape(K, -1) + b[:, None]).reshape(y.shape)  # (K, N..) read as (N, K..)
        mistakes = [
            (no_bias, "the bias is missing: add b[k] to every output of filter k"),
            (flipped, "your kernel is flipped (a true convolution): deep-learning layers cross-correlate, "
                      "y = sum W[k, c, r, s] x[n, c, i*stride + r, j*stride + s]; W.reshape(K, -1) as it is"),
            (gemm, "W.reshape(K, -1) @ cols is (K, N Ho Wo): reshape it to (K, N, Ho, Wo) and transpose(1, 0, 2, 3); "
                   "a plain reshape to (N, K, Ho, Wo) mixes images and filters"),
        ]
        hint = next((text for wrong, text in mistakes if worst_entry(y, wrong)[0] < RTOL),
                    "y = (W.reshape(K, -1) @ im2col(x, R, S, stride, pad) + b[:, None]), reshaped to (K, N, Ho, Wo) "
                    "and transposed to (N, K, Ho, Wo)")
        return CheckResult(name, False, findings + [f"{label}: " + describe_difference("y", y, expected)], hint)
    return CheckResult(name, True, findings)


@grades("conv_backward_im2col")
def check_conv_backward_im2col(conv_forward_im2col, conv_backward_im2col):
    """Grade ``conv_backward_im2col(dy, cache) -> (dx, dW, db)`` with the cache of the student's forward."""
    name = "convolution backward by im2col / col2im"
    forward, backward = as_student(conv_forward_im2col), as_student(conv_backward_im2col)
    findings = []
    for label, x, W, b, stride, pad in _cases():
        geometry = _geometry(stride, pad)
        y_lib, cache_lib = reference.conv2d_forward(x, W, b, geometry)
        dy = np.random.default_rng(5).standard_normal(y_lib.shape)
        expected = reference.conv2d_backward(dy, cache_lib)
        try:
            y, cache = _student_forward(forward, x, W, b, stride, pad)
            if worst_entry(y, y_lib)[0] >= RTOL:
                raise StudentError("conv_forward_im2col is not right yet (its task says why); the backward needs "
                                   "its cache, so fix the forward first")
            given = dy.copy()
            out = call_student(backward, given, cache, what="conv_backward_im2col")
            if not isinstance(out, (tuple, list)) or len(out) != 3:
                raise StudentError(f"conv_backward_im2col returned {type(out).__name__}: return (dx, dW, db)")
            if np.shape(out[2]) != b.shape:
                raise StudentError(f"db has shape {np.shape(out[2])}, expected {b.shape}: db[k] is dy[:, k] summed "
                                   "over the batch and every position")
            got = tuple(as_array(v, n, s) for v, n, s in zip(out, ("dx", "dW", "db"), (x.shape, W.shape, b.shape)))
            if not np.array_equal(given, dy):
                raise StudentError("conv_backward_im2col changed dy: compute new arrays instead")
        except StudentError as error:
            return CheckResult(name, False, findings + [f"{label}: {error}"])
        bad = [(n, g, e) for n, g, e in zip(("dx", "dW", "db"), got, expected) if worst_entry(g, e)[0] >= RTOL]
        if not bad:
            findings.append(f"{label}: dx, dW and db match the reference loops")
            continue
        failed = {n: g for n, g, _ in bad}
        hint = None
        if "dW" in failed and worst_entry(failed["dW"] * x.shape[0], expected[1])[0] < RTOL:
            hint = "dW is averaged over the batch: the loss sums over it, so sum (dy_cols @ cols.T, no division)"
        elif "dx" in failed:
            flipped = reference.conv2d_backward(dy, cache_lib._replace(W=W[:, :, ::-1, ::-1].copy()))[0]
            K = W.shape[0]
            dcols = W.reshape(K, -1).T @ dy.transpose(1, 0, 2, 3).reshape(K, -1)
            overwrite = _col2im_overwrite(dcols, x.shape, W.shape[2], W.shape[3], stride, pad)
            if worst_entry(failed["dx"], flipped)[0] < RTOL:
                hint = "dx uses the kernel flipped: dcols = W.reshape(K, -1).T @ dy_cols, then col2im; no flip"
            elif worst_entry(failed["dx"], overwrite)[0] < RTOL:
                hint = ("col2im must add the columns back (+=): a pixel read by several windows gets the sum of "
                        "their gradients; yours assigns (=), so the last window wins")
        hint = hint or ("dy_cols = dy.transpose(1, 0, 2, 3).reshape(K, -1); dW = (dy_cols @ cols.T).reshape(W.shape); "
                        "db = dy.sum((0, 2, 3)); dx = col2im(W.reshape(K, -1).T @ dy_cols), adding overlaps and "
                        "dropping the padding")
        return CheckResult(name, False, findings + [f"{label}: " + describe_difference(n, g, e) for n, g, e in bad],
                           hint)
    return CheckResult(name, True, findings)


def _col2im_overwrite(dcols, x_shape, R, S, stride, pad):
    """col2im with '=' instead of '+=' (the typical mistake)."""
    N, C, H, W = x_shape
    Ho, Wo = _out(H, W, R, S, stride, pad)
    d = dcols.reshape(C, R, S, N, Ho, Wo)
    dxp = np.zeros((N, C, H + 2 * pad, W + 2 * pad))
    for i in range(Ho):
        for j in range(Wo):
            window = d[:, :, :, :, i, j].transpose(3, 0, 1, 2)
            dxp[:, :, i * stride: i * stride + R, j * stride: j * stride + S] = window
    return dxp[:, :, pad: pad + H, pad: pad + W]
