"""Checkers for chapter 1 (neural networks): a Dense layer's backward, softmax cross-entropy, a
two-layer network's backward pass.

The student's functions::

    dense_backward(dy, x, W) -> (dx, dW, db)                  for y = x @ W + b
    softmax_cross_entropy(z, labels) -> (loss, dz)            mean over the batch
    network_backward(x, t, W1, b1, W2, b2) -> {"W1": ..., "b1": ..., "W2": ..., "b2": ...}

Every gradient is compared with central differences (``hp.gradcheck.numeric_gradient``, float64)
of handprop's own forward pass (``Dense``, ``SoftmaxCrossEntropy``, a ``Sequential`` network with
``MeanSquaredError``), and the loss value with the library's. Typical mistakes are replayed to name
the likely cause.
"""

from __future__ import annotations

import numpy as np

from ..gradcheck import numeric_gradient
from ..layers import Dense, Sigmoid
from ..losses import MeanSquaredError, SoftmaxCrossEntropy
from ..model import Sequential
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

__all__ = ["check_dense_backward", "check_softmax_cross_entropy", "check_network_backward"]

RTOL = 1e-6


def _numeric(loss, arrays):
    """Central differences of ``loss()`` with respect to every entry of each array (perturbed in place)."""
    return [numeric_gradient(loss, a, np.arange(a.size)).reshape(a.shape) for a in arrays]


def _unchanged(given, originals, names, what):
    for g, o, n in zip(given, originals, names):
        if not np.array_equal(g, o):
            raise StudentError(f"{what} changed its input {n}: compute new arrays instead of writing into it")


# ------------------------------------------------------------------------------- Dense backward
DENSE_CASES = [  # label, seed, (N, D_in, D_out)
    ("case 1 (x (4, 5), W (5, 3))", 0, (4, 5, 3)),
    ("case 2 (x (6, 2), W (2, 4))", 1, (6, 2, 4)),
]


def _dense_case(seed, n, d_in, d_out):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, d_in)), rng.standard_normal((d_in, d_out)), rng.standard_normal(d_out),
            rng.standard_normal((n, d_out)))


def _dense_numeric(x, W, b, dy):
    """(dx, dW, db) of ``sum((x @ W + b) * dy)`` by central differences of the Dense layer's forward."""
    layer = Dense(W.shape[1])
    layer.build((W.shape[0],), rng=0, dtype=np.float64)
    layer.params["W"], layer.params["b"] = W.copy(), b.copy()
    x = x.copy()
    return _numeric(lambda: float(np.sum(layer.forward(x, training=False) * dy)),
                    [x, layer.params["W"], layer.params["b"]])


def _dense_shape_hint(name, shape, x, W, dy):
    n, d_in = x.shape
    d_out = W.shape[1]
    if name == "dW" and shape == (d_out, d_in):
        return "dW is transposed: dW = x.T @ dy has W's shape (D_in, D_out)"
    if name == "dx" and shape == (n, d_out):
        return "dx must have x's shape (N, D_in): dx = dy @ W.T"
    if name == "db" and shape == (n, d_out):
        return "db has one entry per output unit: sum dy over the batch, db = dy.sum(axis=0)"
    if name == "dW" and shape == (n, d_in, d_out):
        return "one dW per sample: W is shared by the whole batch, so sum over it (x.T @ dy does that)"
    return None


def check_dense_backward(dense_backward):
    """Grade ``dense_backward(dy, x, W) -> (dx, dW, db)`` for ``y = x @ W + b``.

    Expected (the docstring of ``handprop.layers.dense``)::

        dx = dy @ W.T      dW = x.T @ dy      db = dy.sum(axis=0)

    compared with central differences of ``Dense``'s forward (float64, every entry) on two cases.
    """
    name = "backward pass of a Dense layer"
    findings = []
    for label, seed, (n, d_in, d_out) in DENSE_CASES:
        x, W, b, dy = _dense_case(seed, n, d_in, d_out)
        inputs = (dy.copy(), x.copy(), W.copy())
        try:
            out = call_student(dense_backward, *inputs, what="dense_backward")
            if not isinstance(out, (tuple, list)) or len(out) != 3:
                raise StudentError(f"dense_backward returned {type(out).__name__}: return the three gradients "
                                   "as a tuple (dx, dW, db)")
            for got_name, got, shape in zip(("dx", "dW", "db"), out, (x.shape, W.shape, b.shape)):
                if got is not None and np.shape(got) != shape:
                    hint = _dense_shape_hint(got_name, np.shape(got), x, W, dy)
                    return CheckResult(name, False, findings + [f"{label}: {got_name} has shape {np.shape(got)}, "
                                                                f"expected {shape}"], hint)
            dx, dW, db = (as_array(v, nm, s) for v, nm, s in zip(out, ("dx", "dW", "db"), (x.shape, W.shape, b.shape)))
            _unchanged(inputs, (dy, x, W), ("dy", "x", "W"), "dense_backward")
        except StudentError as error:
            if is_shape_error(error):
                return _dense_shape_error(name, findings, label, error, dense_backward, x, W, dy)
            return CheckResult(name, False, findings + [f"{label}: {error}"])
        numeric = _dense_numeric(x, W, b, dy)
        got = {"dx": dx, "dW": dW, "db": db}
        rtol = tolerance(RTOL, *out)
        bad = [(k, got[k], e) for k, e in zip(("dx", "dW", "db"), numeric) if not worst_entry(got[k], e)[0] < rtol]
        if not bad:
            findings.append(f"{label}: dx, dW and db match the numerical gradient")
            continue
        failed = [f"{label}: " + describe_difference(k, g, e, "the numerical gradient's") for k, g, e in bad]
        return CheckResult(name, False, findings + failed, _dense_hint(bad, x, W, dy, rtol))
    return CheckResult(name, True, findings)


def _products(a_name, a, b_name, b):
    """Every matrix product of a or a.T with b or b.T, in both orders, that the shapes allow."""
    terms = {a_name: a, f"{a_name}.T": a.T, b_name: b, f"{b_name}.T": b.T}
    out = {}
    for left in (a_name, f"{a_name}.T", b_name, f"{b_name}.T"):
        for right in (b_name, f"{b_name}.T") if left.startswith(a_name) else (a_name, f"{a_name}.T"):
            if terms[left].shape[1] == terms[right].shape[0]:
                out[f"{left} @ {right}"] = terms[left] @ terms[right]
    return out


def _dense_shape_error(name, findings, label, error, dense_backward, x, W, dy):
    """The student's code multiplied arrays whose sizes do not fit (W is never square in the cases,
    so ``dy @ W`` raises): say so in words, then run the function on a square case (N = D_in =
    D_out, where every product fits) and name the product each wrong gradient computed."""
    finding = f"{label}: " + shape_error_finding(error, "dense_backward", {
        "dy": f"(N, D_out) = {dy.shape}", "x": f"(N, D_in) = {x.shape}", "W": f"(D_in, D_out) = {W.shape}"})
    hint = ("pick the product by shapes: dx (N, D_in) = dy (N, D_out) @ W.T (D_out, D_in); dW (D_in, D_out) = "
            "x.T (D_in, N) @ dy (N, D_out); db = dy.sum(axis=0)")
    rng = np.random.default_rng(7)
    xs, Ws, bs, dys = (rng.standard_normal(shape) for shape in ((3, 3), (3, 3), (3,), (3, 3)))
    try:
        out = call_student(dense_backward, dys.copy(), xs.copy(), Ws.copy(), what="dense_backward")
        got = dict(zip(("dx", "dW", "db"), (as_array(v, k, s) for v, k, s in zip(
            out, ("dx", "dW", "db"), ((3, 3), (3, 3), (3,))))))
    except (StudentError, TypeError, ValueError):
        return CheckResult(name, False, findings + [finding], hint)
    numeric = dict(zip(("dx", "dW", "db"), _dense_numeric(xs, Ws, bs, dys)))
    candidates = {"dx": _products("dy", dys, "W", Ws), "dW": _products("x", xs, "dy", dys)}
    right = {"dx": "dy @ W.T", "dW": "x.T @ dy"}
    named = []
    for key in ("dx", "dW"):
        if worst_entry(got[key], numeric[key])[0] < RTOL:
            continue
        formula = next((f for f, value in candidates[key].items() if worst_entry(got[key], value)[0] < RTOL), None)
        if formula:
            named.append(f"your {key} is {formula}; it must be {right[key]}")
    if named:
        return CheckResult(name, False, findings + [finding, "on a square case (N = D_in = D_out = 3, where "
                                                             "every product fits): " + "; ".join(named)],
                           "; ".join(named) + f" ({hint.split(': ', 1)[1]})")
    return CheckResult(name, False, findings + [finding], hint)


def _dense_hint(bad, x, W, dy, rtol=RTOL):
    n = len(x)
    for k, got, expected in bad:
        if worst_entry(got * n, expected)[0] < rtol:
            return f"{k} is averaged over the batch; the loss here is a sum, so sum over the batch instead"
        if worst_entry(-got, expected)[0] < rtol:
            return f"{k} has the wrong sign"
    names = [k for k, _, _ in bad]
    if names == ["db"]:
        return "db = dy.sum(axis=0): every output unit's bias gets the sum of its dy over the batch"
    return "y = x @ W + b gives dx = dy @ W.T, dW = x.T @ dy, db = dy.sum(axis=0)"


# ------------------------------------------------------------------------ softmax cross-entropy
CE_CASES = [  # label, seed, (N, classes), logit scale
    ("case 1 (z (5, 3))", 0, (5, 3), 1.0),
    ("case 2 (z (4, 6))", 1, (4, 6), 2.0),
    ("case 3 (large logits, up to ±1000)", 2, (3, 4), 1000.0),
]


def _ce_variants(z, labels):
    """(loss, dz) of typical mistakes, keyed by their hint."""
    n, k = z.shape
    onehot = np.eye(k)[labels]
    with np.errstate(all="ignore"):
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        loss = -np.log(p[np.arange(n), labels]).mean()
        variants = {
            "the gradient is not divided by the batch size: the loss is the mean over the N samples, so "
            "dz = (softmax(z) - onehot) / N": (loss, p - onehot),
            "the gradient has the wrong sign: dz = (softmax(z) - onehot) / N": (loss, (onehot - p) / n),
            "the gradient of -log softmax(z)[t] is softmax(z) - onehot(t): subtract 1 at the true class":
                (loss, p / n),
            "the loss is summed over the batch; take the mean over the N samples": (loss * n, (p - onehot) / n),
        }
    return variants


def check_softmax_cross_entropy(softmax_cross_entropy):
    """Grade ``softmax_cross_entropy(z, labels) -> (loss, dz)`` against ``SoftmaxCrossEntropy``.

    Expected, for logits ``z`` (N, classes) and integer labels (N,)::

        p = softmax(z) (row by row)     loss = mean_n -log p[n, labels[n]]     dz = (p - onehot(labels)) / N

    The third case has logits of ±1000: ``exp(1000)`` overflows unless the row maximum is
    subtracted first (which changes nothing else: softmax(z - c) = softmax(z)).
    """
    name = "softmax cross-entropy and its gradient"
    findings = []
    for label, seed, (n, k), scale in CE_CASES:
        rng = np.random.default_rng(seed)
        z = rng.standard_normal((n, k)) * scale
        labels = rng.integers(0, k, n)
        inputs = (z.copy(), labels.copy())
        try:
            with np.errstate(all="ignore"):
                out = call_student(softmax_cross_entropy, *inputs, what="softmax_cross_entropy")
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                raise StudentError(f"softmax_cross_entropy returned {type(out).__name__}: return (loss, dz)")
            try:
                loss = float(np.asarray(out[0]).reshape(()))
            except (TypeError, ValueError):
                raise StudentError(f"the loss should be one number (the mean over the batch), got shape "
                                   f"{np.shape(out[0])}") from None
            dz = as_array(out[1], "dz", z.shape)
            _unchanged(inputs, (z, labels), ("z", "labels"), "softmax_cross_entropy")
        except StudentError as error:
            if is_shape_error(error):
                return CheckResult(name, False, findings + [f"{label}: " + shape_error_finding(
                    error, "softmax_cross_entropy", {"z": f"(N, classes) = {z.shape}",
                                                     "labels": f"(N,) = {labels.shape} (class indices)"})],
                    "labels are class indices, not one-hot rows: subtract 1 at each sample's class, "
                    "p[np.arange(N), labels] -= 1, or build onehot = np.eye(classes)[labels] first")
            return CheckResult(name, False, findings + [f"{label}: {error}"])
        reference = SoftmaxCrossEntropy()
        expected_loss = reference.forward(z, labels)
        zc = z.copy()
        expected_dz = _numeric(lambda zc=zc, labels=labels: SoftmaxCrossEntropy().forward(zc, labels), [zc])[0]
        problems = []
        if not np.isfinite(loss) or not np.all(np.isfinite(dz)):
            if scale > 100 and not np.isfinite(loss) and np.all(np.isfinite(dz)):
                hint = ("dz is fine but the loss is inf: a probability underflowed to 0 and log(0) = -inf; take the "
                        "log of the softmax without forming it, log p = (z - max z) - log(sum(exp(z - max z)))")
            else:
                hint = ("exp of a logit of 1000 overflows to inf (and inf / inf = nan): subtract each row's maximum "
                        "before exp, softmax(z - max z) = softmax(z)") if scale > 100 else None
            return CheckResult(name, False, findings + [f"{label}: the loss or dz is not finite (inf or nan)"], hint)
        rtol, dz_rtol = tolerance(RTOL, *out), tolerance(1e-5, *out)
        if abs(loss - expected_loss) > rtol * max(1.0, abs(expected_loss)):
            problems.append(f"{label}: loss {loss:.6g}, SoftmaxCrossEntropy gives {expected_loss:.6g}")
        if not worst_entry(dz, expected_dz)[0] < dz_rtol:
            problems.append(f"{label}: " + describe_difference("dz", dz, expected_dz, "the numerical gradient's"))
        if not problems:
            findings.append(f"{label}: loss and dz agree with SoftmaxCrossEntropy and its numerical gradient")
            continue
        hint = None
        for text, (v_loss, v_dz) in _ce_variants(z, labels).items():
            if abs(v_loss - loss) <= rtol * max(1.0, abs(v_loss)) and worst_entry(dz, v_dz)[0] < dz_rtol:
                hint = text
                break
        if hint is None and abs(loss - expected_loss) > rtol * max(1.0, abs(expected_loss)):
            hint = "loss = mean over the batch of -log(softmax(z)[n, labels[n]]), softmax taken along each row"
        return CheckResult(name, False, findings + problems, hint or "dz = (softmax(z) - onehot(labels)) / N")
    return CheckResult(name, True, findings)


# ----------------------------------------------------------------------- a two-layer network
NETWORK_CASES = [  # label, seed, (N, D_in, hidden, D_out)
    ("case 1 (x (5, 3), 4 hidden units, 2 outputs)", 0, (5, 3, 4, 2)),
    ("case 2 (x (8, 2), 3 hidden units, 1 output)", 1, (8, 2, 3, 1)),
]


def _network_model(W1, b1, W2, b2):
    """The network of the exercise as a handprop Sequential, float64, with these weights."""
    model = Sequential([Dense(W1.shape[1]), Sigmoid(), Dense(W2.shape[1])], seed=0)
    model.build((W1.shape[0],), dtype=np.float64)
    first, _, second = model.layers
    first.params["W"], first.params["b"] = W1.copy(), b1.copy()
    second.params["W"], second.params["b"] = W2.copy(), b2.copy()
    model.compile(loss=MeanSquaredError())
    return model


def _network_numeric(x, t, W1, b1, W2, b2):
    model = _network_model(W1, b1, W2, b2)
    first, _, second = model.layers
    arrays = [first.params["W"], first.params["b"], second.params["W"], second.params["b"]]
    grads = _numeric(lambda: float(model.loss.forward(model.forward(x, training=False), t)), arrays)
    return dict(zip(("W1", "b1", "W2", "b2"), grads))


def _network_variant(x, t, W1, b1, W2, b2, *, sigmoid_derivative=True, two=True, mean="all", dh_W2=True):
    """The gradients with one of the typical mistakes switched on."""
    z = x @ W1 + b1
    h = 1 / (1 + np.exp(-z))
    y = h @ W2 + b2
    n = {"all": y.size, "batch": len(y), "none": 1}[mean]
    dy = (2.0 if two else 1.0) * (y - t) / n
    dh = dy @ W2.T if dh_W2 else dy @ np.ones_like(W2).T
    dz = dh * h * (1 - h) if sigmoid_derivative else dh
    return {"W1": x.T @ dz, "b1": dz.sum(axis=0), "W2": h.T @ dy, "b2": dy.sum(axis=0)}


_NETWORK_MISTAKES = [
    ({"sigmoid_derivative": False}, "the hidden layer's gradient skips the sigmoid: dz1 = dh * h * (1 - h), "
                                    "with h = sigmoid(z1) from the forward pass"),
    ({"two": False}, "d/dy of (y - t)² is 2 (y - t): the factor 2 is missing"),
    ({"mean": "batch"}, "MeanSquaredError averages over every element of y (N × D_out numbers), not only over "
                        "the N samples"),
    ({"mean": "none"}, "the loss is a mean: divide dL/dy by the number of elements, y.size"),
]


def _network_shape_error(name, findings, label, error, network_backward, arrays):
    """Say which shapes did not fit, then run the function on a square case (every size 3, where
    every product fits) and name the gradients that come out wrong there."""
    x, t, W1, b1, W2, b2 = arrays
    finding = f"{label}: " + shape_error_finding(error, "network_backward", {
        "x": f"(N, D_in) = {x.shape}", "W1": f"(D_in, H) = {W1.shape}", "h": f"(N, H) = {(len(x), W1.shape[1])}",
        "W2": f"(H, D_out) = {W2.shape}", "dy": f"(N, D_out) = {t.shape}"})
    hint = ("pick each product by its shapes: dW2 = h.T @ dy (H, D_out); dh = dy @ W2.T (N, H); "
            "dz1 = dh * h * (1 - h); dW1 = x.T @ dz1 (D_in, H); db = the sum over the batch")
    rng = np.random.default_rng(7)
    square = tuple(rng.standard_normal(shape) for shape in ((3, 3), (3, 3), (3, 3), (3,), (3, 3), (3,)))
    keys = ("W1", "b1", "W2", "b2")
    try:
        out = call_student(network_backward, *(a.copy() for a in square), what="network_backward")
        got = {k: as_array(out[k], k, a.shape) for k, a in zip(keys, square[2:])}
    except (StudentError, TypeError, ValueError, KeyError, IndexError):
        return CheckResult(name, False, findings + [finding], hint)
    numeric = _network_numeric(*square)
    wrong = [k for k in keys if not worst_entry(got[k], numeric[k])[0] < 1e-5]
    if wrong and set(wrong) <= {"W1", "b1"}:
        return CheckResult(name, False, findings + [finding, "on a square case (every size 3, where every product "
                                                             f"fits) dW2 and db2 are right, d{' and d'.join(wrong)} "
                                                             "wrong"],
                           "the step back through W2 is transposed: dh = dy @ W2.T (N, H), then "
                           "dz1 = dh * h * (1 - h), dW1 = x.T @ dz1")
    if wrong:
        return CheckResult(name, False, findings + [finding, "on a square case (every size 3, where every product "
                                                             f"fits) d{', d'.join(wrong)} come out wrong"], hint)
    return CheckResult(name, False, findings + [finding], hint)


def check_network_backward(network_backward):
    """Grade ``network_backward(x, t, W1, b1, W2, b2) -> {"W1", "b1", "W2", "b2"}``.

    The network and loss (handprop: ``Dense -> Sigmoid -> Dense`` with ``MeanSquaredError``)::

        z1 = x @ W1 + b1     h = sigmoid(z1)     y = h @ W2 + b2     L = mean((y - t)²)  over all elements

    Each gradient is compared with central differences of that model's loss (float64, every entry)
    on two cases.
    """
    name = "backward pass of a two-layer network"
    findings = []
    keys = ("W1", "b1", "W2", "b2")
    for label, seed, (n, d_in, hidden, d_out) in NETWORK_CASES:
        rng = np.random.default_rng(seed)
        x, t = rng.standard_normal((n, d_in)), rng.standard_normal((n, d_out))
        W1, b1 = rng.standard_normal((d_in, hidden)), rng.standard_normal(hidden)
        W2, b2 = rng.standard_normal((hidden, d_out)), rng.standard_normal(d_out)
        arrays = (x, t, W1, b1, W2, b2)
        inputs = tuple(a.copy() for a in arrays)
        try:
            out = call_student(network_backward, *inputs, what="network_backward")
            if not isinstance(out, dict) or any(k not in out for k in keys):
                raise StudentError(f"network_backward should return a dict with the keys {list(keys)}, got "
                                   f"{sorted(out) if isinstance(out, dict) else type(out).__name__}")
            shapes = dict(zip(keys, (W1.shape, b1.shape, W2.shape, b2.shape)))
            got = {k: as_array(out[k], f"the gradient {k}", shapes[k]) for k in keys}
            _unchanged(inputs, arrays, ("x", "t", "W1", "b1", "W2", "b2"), "network_backward")
        except StudentError as error:
            if is_shape_error(error):
                return _network_shape_error(name, findings, label, error, network_backward, arrays)
            return CheckResult(name, False, findings + [f"{label}: {error}"])
        numeric = _network_numeric(*arrays)
        rtol = tolerance(1e-5, *out.values())
        bad = [k for k in keys if not worst_entry(got[k], numeric[k])[0] < rtol]
        if not bad:
            findings.append(f"{label}: dW1, db1, dW2, db2 match the numerical gradient of handprop's model")
            continue
        failed = [f"{label}: " + describe_difference(f"d{k}", got[k], numeric[k], "the numerical gradient's")
                  for k in bad]
        hint = None
        for switches, text in _NETWORK_MISTAKES:
            variant = _network_variant(*arrays, **switches)
            if all(worst_entry(got[k], variant[k])[0] < rtol for k in keys):
                hint = text
                break
        if hint is None and set(bad) <= {"W1", "b1"}:
            hint = ("the output layer is right; go back one more layer: dh = dy @ W2.T, "
                    "dz1 = dh * h * (1 - h), dW1 = x.T @ dz1, db1 = dz1.sum(axis=0)")
        return CheckResult(name, False, findings + failed,
                           hint or "start from dy = 2 (y - t) / y.size and apply the chain rule layer by layer")
    return CheckResult(name, True, findings)
