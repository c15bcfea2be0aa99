"""Checkers for chapter 3 (convolutional networks): output size, a convolution's backward, receptive fields.

The student's functions::

    output_size(n, k, stride=1, padding=0, dilation=1) -> int
    conv2d_backward(dy, x, W, stride) -> (dx, dW, db)     valid padding, no dilation
    receptive_field(layers) -> [r_1, r_2, ...]            layers: [(kernel, stride, dilation), ...]

Each is graded against the library: the output size against ``Conv2D``'s own shape rule, the
backward pass against central differences of ``Conv2D``'s forward (``hp.gradcheck.numeric_gradient``,
float64), the receptive fields against ``hp.receptive_field`` of the same chain of layers. Typical
mistakes are replayed to name the likely cause.
"""

from __future__ import annotations

import numpy as np

from ..backend import engine
from ..gradcheck import numeric_gradient
from ..layers import Conv2D
from ..model import Sequential
from ..receptive_field import receptive_field as library_receptive_field
from .result import (
    CheckResult,
    StudentError,
    as_array,
    call_student,
    describe_difference,
    is_shape_error,
    shape_error_finding,
    tolerance,
    worst_entry,
)

__all__ = ["check_output_size", "check_conv2d_backward", "check_receptive_field"]

RTOL = 1e-6


# --------------------------------------------------------------------------------- output size
OUTPUT_SIZE_CASES = [  # (n, k, stride, padding, dilation)
    (5, 3, 1, 0, 1), (28, 5, 1, 0, 1), (7, 3, 2, 0, 1), (8, 3, 2, 0, 1), (8, 3, 2, 1, 1), (32, 3, 1, 1, 1),
    (29, 4, 3, 0, 1), (20, 3, 1, 0, 2), (21, 3, 2, 2, 4),
]


def _library_output_size(n, k, stride, padding, dilation):
    layer = Conv2D(1, k, stride=stride, padding=padding, dilation=dilation)
    return layer.compute_output_shape((1, n, n))[1]


_OUTPUT_SIZE_MISTAKES = [
    (lambda n, k, s, p, d: (n + 2 * p - k) // s + 1,
     "dilation spreads the kernel: its extent is dilation * (k - 1) + 1, not k"),
    (lambda n, k, s, p, d: (n + p - d * (k - 1) - 1) // s + 1, "padding adds p pixels on both sides: n + 2p"),
    (lambda n, k, s, p, d: (n + 2 * p - d * (k - 1) - 1) // s, "count the first position too: ... // stride + 1"),
    (lambda n, k, s, p, d: (n + 2 * p - d * (k - 1)) // s, "the last window must fit: (n + 2p - extent) // stride + 1"),
]


def check_output_size(output_size):
    """Grade ``output_size(n, k, stride=1, padding=0, dilation=1) -> int`` on nine geometries.

    Expected: ``floor((n + 2 padding - dilation (k - 1) - 1) / stride) + 1``, the rule of ``Conv2D``.
    """
    name = "output size of a convolution"
    findings, wrong = [], []
    for n, k, s, p, d in OUTPUT_SIZE_CASES:
        expected = _library_output_size(n, k, s, p, d)
        try:
            got = call_student(output_size, n, k, stride=s, padding=p, dilation=d, what="output_size")
        except StudentError as error:
            return CheckResult(name, False, [str(error)])
        label = f"n={n}, k={k}, stride={s}, padding={p}, dilation={d}"
        if isinstance(got, (float, np.floating)) and not float(got).is_integer():
            return CheckResult(name, False, [f"{label}: you returned {got}, not a whole number"],
                               "a window either fits or it does not: round down with // (floor division)")
        if not isinstance(got, (int, np.integer, float, np.floating)) or got != expected:
            wrong.append((n, k, s, p, d, got))
            findings.append(f"{label}: you returned {got!r}, Conv2D gives {expected}")
    if not wrong:
        return CheckResult(name, True, [f"all {len(OUTPUT_SIZE_CASES)} geometries agree with Conv2D, "
                                        "dilation and stride included"])
    hint = None
    for formula, text in _OUTPUT_SIZE_MISTAKES:
        if all(formula(n, k, s, p, d) == got for n, k, s, p, d, got in wrong):
            hint = text
            break
    return CheckResult(name, False, findings[:4] + ([f"... and {len(findings) - 4} more"] if len(findings) > 4 else []),
                       hint or "count the positions of the window's first pixel: 0, stride, 2 stride, ... "
                               "up to the last one where the whole (dilated) kernel still fits")


# ------------------------------------------------------------------------------ conv backward
def _conv_layer(W, b, stride, input_shape):
    layer = Conv2D(W.shape[0], W.shape[2:], stride=stride)
    layer.build(input_shape, rng=0, dtype=np.float64)
    layer.params["W"] = np.array(W, dtype=np.float64, order="C")
    layer.params["b"] = np.array(b, dtype=np.float64, order="C")
    return layer


def _library_backward(x, W, b, stride, dy):
    """``(dx, dW, db)`` of ``sum(conv(x) * dy)`` from Conv2D's own backward (numpy engine)."""
    with engine("numpy"):
        layer = _conv_layer(W, b, stride, x.shape[1:])
        layer.forward(x)
        dx = layer.backward(dy)
        return dx, layer.grads["W"].copy(), layer.grads["b"].copy()


def _numeric_backward(x, W, b, stride, dy):
    """``(dx, dW, db)`` by central differences of Conv2D's forward, every entry (the sizes are tiny)."""
    x = np.array(x, dtype=np.float64, order="C")
    with engine("numpy"):
        layer = _conv_layer(W, b, stride, x.shape[1:])

        def loss():
            return float(np.sum(layer.forward(x, training=False) * dy))

        return tuple(numeric_gradient(loss, v, np.arange(v.size)).reshape(v.shape)
                     for v in (x, layer.params["W"], layer.params["b"]))


def _conv_case(seed, N, C, H, Wd, K, R, S, stride):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, Wd))
    W = rng.standard_normal((K, C, R, S))
    b = rng.standard_normal(K)
    Ho, Wo = (H - R) // stride + 1, (Wd - S) // stride + 1
    dy = rng.standard_normal((N, K, Ho, Wo))
    return x, W, b, dy


CONV_CASES = [  # label, seed, (N, C, H, W, K, R, S, stride)
    ("case 1 (stride 1: x (2, 3, 5, 5), W (4, 3, 3, 3))", 0, (2, 3, 5, 5, 4, 3, 3, 1)),
    ("case 2 (stride 2, a 3×2 kernel, the last row unused: x (2, 2, 6, 7), W (3, 2, 3, 2))", 1,
     (2, 2, 6, 7, 3, 3, 2, 2)),
]


def _shape_problem(name, value, expected_shape, N):
    """A sentence for a wrongly shaped gradient, or None."""
    shape = np.shape(value)
    if shape == tuple(expected_shape):
        return None
    if name == "db":
        return (f"db has shape {shape}, expected {tuple(expected_shape)}: db[k] is dy[:, k] summed over the "
                "batch and every output position")
    if shape == (N, *expected_shape):
        return (f"{name} has shape {shape}: one gradient per image. Each weight is shared by every image "
                f"of the batch, so sum over the batch (axis 0) to get {tuple(expected_shape)}")
    return f"{name} has shape {shape}, expected {tuple(expected_shape)} (the shape of {name[1:]})"


def check_conv2d_backward(conv2d_backward):
    """Grade ``conv2d_backward(dy, x, W, stride) -> (dx, dW, db)`` (valid padding, no dilation).

    ``dy`` is dL/dy for ``y = conv2d(x, W, b, stride)`` (cross-correlation, as ``Conv2D``)::

        y[n, k, i, j] = b[k] + sum_{c, r, s} W[k, c, r, s] x[n, c, i stride + r, j stride + s]

    The gradients are compared with central differences of ``Conv2D``'s forward (float64, every
    entry) on a stride-1 and a stride-2 case.
    """
    name = "backward pass of a convolution"
    findings = []
    for label, seed, (N, C, H, Wd, K, R, S, stride) in CONV_CASES:
        x, W, b, dy = _conv_case(seed, N, C, H, Wd, K, R, S, stride)
        inputs = (dy.copy(), x.copy(), W.copy())
        try:
            out = call_student(conv2d_backward, *inputs, stride, what="conv2d_backward")
            if not isinstance(out, (tuple, list)) or len(out) != 3:
                raise StudentError(f"conv2d_backward returned {type(out).__name__}: return the three gradients "
                                   "as a tuple (dx, dW, db)")
            for got_name, got, shape in zip(("dx", "dW", "db"), out, (x.shape, W.shape, b.shape)):
                problem = _shape_problem(got_name, got, shape, N)
                if problem:
                    raise StudentError(problem)
            dx, dW, db = (as_array(v, n, s) for v, n, s in zip(out, ("dx", "dW", "db"), (x.shape, W.shape, b.shape)))
            for given, original, what in zip(inputs, (dy, x, W), ("dy", "x", "W")):
                if not np.array_equal(given, original):
                    raise StudentError(f"conv2d_backward changed its input {what}: compute new arrays instead")
        except StudentError as error:
            if is_shape_error(error):
                return CheckResult(name, False, findings + [f"{label}: " + shape_error_finding(
                    error, "conv2d_backward", {"dy": f"(N, K, H_out, W_out) = {dy.shape}",
                                               "x": f"(N, C, H, W) = {x.shape}", "W": f"(K, C, R, S) = {W.shape}"})],
                    "a window of x is x[n, :, i s : i s + R, j s : j s + S], shape (C, R, S) like W[k]: "
                    "dW[k] += dy[n, k, i, j] * window and dx[n, :, window rows, window cols] += dy[n, k, i, j] * W[k]")
            return CheckResult(name, False, findings + [f"{label}: {error}"])
        numeric = _numeric_backward(x, W, b, stride, dy)
        errors = {n: worst_entry(g, e)[0] for n, g, e in zip(("dx", "dW", "db"), (dx, dW, db), numeric)}
        rtol = tolerance(RTOL, *out)
        bad = [(n, g, e) for n, g, e in zip(("dx", "dW", "db"), (dx, dW, db), numeric) if not errors[n] < rtol]
        if not bad:
            findings.append(f"{label}: dx, dW and db match the numerical gradient "
                            f"(max relative error {max(errors.values()):.1e})")
            continue
        failed = [f"{label}: " + describe_difference(n, g, e, "the numerical gradient's") for n, g, e in bad]
        hint = _conv_hint(bad, x, W, b, dy, stride, first_case=not findings, rtol=rtol)
        return CheckResult(name, False, findings + failed, hint)
    return CheckResult(name, True, findings)


def _conv_hint(bad, x, W, b, dy, stride, first_case, rtol=RTOL):
    """The likely cause of the first wrong gradient."""
    got = {n: g for n, g, _ in bad}
    if "dW" in got:
        last = _library_backward(x[-1:], W, b, stride, dy[-1:])[1]
        if worst_entry(got["dW"], last)[0] < rtol:
            return ("dW is the last image's gradient only: did you forget to sum over the batch "
                    "(+= inside the loop over images, not =)?")
        full = _library_backward(x, W, b, stride, dy)[1]
        if worst_entry(got["dW"] * len(x), full)[0] < rtol:
            return "dW is averaged over the batch; the loss here is a sum, so sum over the batch"
    if "db" in got:
        return "db[k] = dy[:, k].sum() over the batch and every output position"
    if "dx" in got:
        flipped = _library_backward(x, W[:, :, ::-1, ::-1].copy(), b, stride, dy)[0]
        if worst_entry(got["dx"], flipped)[0] < rtol:
            return ("dx uses the kernel flipped: each dy[n, k, i, j] goes back to the pixels its window read, "
                    "x[n, :, i s + r, j s + t], weighted by W[k, :, r, t] itself")
        if not first_case:
            return ("the stride-1 case passed, so look at the stride: output (i, j) read the window that starts "
                    "at input (i * stride, j * stride); pixels no window read get zero gradient")
        return ("send each dy[n, k, i, j] back to every pixel its window read: "
                "dx[n, :, i s + r, j s + t] += W[k, :, r, t] * dy[n, k, i, j]")
    return "each weight is used at every output position of every image: accumulate its gradient over all of them"


# ---------------------------------------------------------------------------- receptive fields
RECEPTIVE_FIELD_CASES = [
    ("the tutorial's dilated network", [(3, 1, 1), (3, 1, 1), (3, 1, 2), (3, 1, 4), (3, 1, 8), (3, 1, 16),
                                         (3, 1, 32), (3, 1, 1), (1, 1, 1), (1, 1, 1)]),
    ("conv 3, pool 2, conv 3, pool 2, conv 3", [(3, 1, 1), (2, 2, 1), (3, 1, 1), (2, 2, 1), (3, 1, 1)]),
    ("strided and dilated", [(5, 2, 1), (3, 1, 2), (3, 2, 1), (3, 1, 1)]),
]


def _library_fields(layers):
    model = Sequential([Conv2D(1, k, stride=s, dilation=d) for k, s, d in layers])
    return [int(r) for r in library_receptive_field(model)]


def _fields_with(layers, dilation=True, jump=True, minus_one=True, jump_first=False):
    r, j, out = 1, 1, []
    for k, s, d in layers:
        extent = d * (k - 1) + 1 if dilation else k
        if jump_first:
            j *= s if jump else 1
        r += (extent - (1 if minus_one else 0)) * j
        if not jump_first:
            j *= s if jump else 1
        out.append(r)
    return out


_FIELD_MISTAKES = [
    ({"dilation": False}, "a dilated kernel spans dilation * (k - 1) + 1 pixels; use that extent instead of k"),
    ({"jump": False}, "after a stride s, neighbouring outputs are s times further apart in the input: keep a "
                      "'jump' j (j <- j * s) and grow the field by (extent - 1) * j"),
    ({"minus_one": False}, "a kernel of extent k adds k - 1 pixels to the field, not k (a 1×1 kernel adds none)"),
    ({"jump_first": True}, "the stride of a layer spaces the outputs of that layer; it multiplies the jump for "
                           "the layers after it, so update j after growing r"),
]


def check_receptive_field(receptive_field):
    """Grade ``receptive_field([(kernel, stride, dilation), ...]) -> [r after layer 1, ...]``.

    Expected (the recursion of :mod:`handprop.receptive_field`), from r = 1, j = 1::

        extent = dilation (k - 1) + 1;   r <- r + (extent - 1) j;   j <- j * stride
    """
    name = "receptive fields of a chain of layers"
    findings = []
    for label, layers in RECEPTIVE_FIELD_CASES:
        expected = _library_fields(layers)
        try:
            got = call_student(receptive_field, list(layers), what="receptive_field")
            if got is None:
                raise StudentError("receptive_field returned None: return the list of fields, one per layer")
            got = [int(v) if float(v).is_integer() else float(v) for v in got]
        except StudentError as error:
            return CheckResult(name, False, findings + [f"{label}: {error}"])
        except (TypeError, ValueError):
            return CheckResult(name, False, findings + [f"{label}: expected a list of numbers, got {got!r}"])
        if got == expected:
            findings.append(f"{label}: {got} agrees with hp.receptive_field")
            continue
        if len(got) != len(expected):
            problem = f"{label}: you returned {len(got)} values for {len(layers)} layers (one per layer)"
            return CheckResult(name, False, findings + [problem], "append the field after every layer")
        first = next(i for i, (g, e) in enumerate(zip(got, expected)) if g != e)
        problem = (f"{label}: layers 1-{first} agree, layer {first + 1} {layers[first]} differs: you have "
                   f"{got[first]}, hp.receptive_field gives {expected[first]} (yours {got}, expected {expected})"
                   if first else f"{label}: you have {got}, hp.receptive_field gives {expected}")
        hint = next((text for switches, text in _FIELD_MISTAKES if _fields_with(layers, **switches) == got),
                    "from r = 1, j = 1: r <- r + (dilation (k - 1)) * j, then j <- j * stride")
        return CheckResult(name, False, findings + [problem], hint)
    return CheckResult(name, True, findings)
