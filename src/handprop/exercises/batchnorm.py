"""Checkers for assignment 1 (batch normalization): forward, two backwards, the spatial version.

The student's functions (CS231n's pairs, the cache is theirs)::

    batchnorm_forward(x, gamma, beta, eps=1e-5) -> (y, cache)        x (N, D), training mode
    batchnorm_backward(dy, cache) -> (dx, dgamma, dbeta)             through the computational graph
    batchnorm_backward_alt(dy, cache) -> (dx, dgamma, dbeta)         the simplified formula
    spatial_batchnorm_forward(x, gamma, beta, eps=1e-5) -> (y, cache)   x (N, C, H, W), per channel

Each is graded against the library's own pair, :func:`handprop.layers.normalization.batchnorm_forward`
/ :func:`~handprop.layers.normalization.batchnorm_backward` (switched off while the student's code
runs), on float64 cases where every term matters: a feature with a tiny variance (so eps's place
shows) and a batch of 4 (so the biased variance shows). Each typical mistake is replayed on the
same case; the one that reproduces the student's numbers is named.
"""

from __future__ import annotations

import inspect

import numpy as np

from ..layers import normalization
from .grading import as_student, grades
from .result import CheckResult, StudentError, as_array, call_student, describe_difference, worst_entry

__all__ = ["check_bn_forward", "check_bn_backward", "check_bn_backward_alt", "check_bn_spatial"]

RTOL = 1e-7
EPS = 1e-5


def _case(seed, N=4, D=5):
    rng = np.random.default_rng(seed)
    scale = np.array([1.0, 3.0, 0.5, 2.0, 1e-3][:D])  # the last feature: variance ~1e-6, below eps
    x = rng.standard_normal((N, D)) * scale + rng.standard_normal(D) * 2
    gamma = rng.uniform(0.5, 2.0, D)
    beta = rng.standard_normal(D)
    dy = rng.standard_normal((N, D))
    return x, gamma, beta, dy


CASES = [("case 1 (N=4, D=5)", 0, 4, 5), ("case 2 (N=16, D=5)", 1, 16, 5)]


def _library(x, gamma, beta, dy):
    y, cache = normalization.batchnorm_forward(x, gamma, beta, EPS)
    return (y, *normalization.batchnorm_backward(dy, cache))


# ---------------------------------------------------------------------------------- the mistakes
def _forward_with(x, gamma, beta, ddof=0, eps_outside=False, no_eps=False, axis=0, affine=True, swap=False):
    mu = x.mean(axis=axis, keepdims=True)
    var = x.var(axis=axis, ddof=ddof, keepdims=True)
    if no_eps:
        x_hat = (x - mu) / np.sqrt(var)
    elif eps_outside:
        x_hat = (x - mu) / (np.sqrt(var) + EPS)
    else:
        x_hat = (x - mu) / np.sqrt(var + EPS)
    if not affine:
        return x_hat
    return beta * x_hat + gamma if swap else gamma * x_hat + beta


FORWARD_MISTAKES = [
    ({"ddof": 1}, "the batch variance divides by N (biased), not N - 1: np.var(x, axis=0), not ddof=1"),
    ({"eps_outside": True}, "eps goes inside the square root: (x - mu) / sqrt(var + eps)"),
    ({"no_eps": True}, "eps was left out: (x - mu) / sqrt(var + eps) (it matters for a feature with a tiny variance)"),
    ({"axis": 1}, "you normalized each sample over its features (axis=1, layer norm); batch norm takes the "
                  "statistics of each feature over the batch: axis=0"),
    ({"affine": False}, "y = gamma * x_hat + beta: the scale and shift are missing"),
    ({"swap": True}, "gamma scales and beta shifts: y = gamma * x_hat + beta (yours swaps them)"),
]


def _backward_with(x, gamma, dy, mean_path=True, var_path=True, use_gamma=True, swap=False, db_mean=False):
    N = x.shape[0]
    mu = x.mean(axis=0)
    inv = 1 / np.sqrt(x.var(axis=0) + EPS)
    x_hat = (x - mu) * inv
    g = dy * gamma if use_gamma else dy
    dx = g.copy()
    if mean_path:
        dx = dx - g.mean(axis=0)
    if var_path:
        dx = dx - x_hat * (g * x_hat).mean(axis=0)
    dx = dx * inv
    dgamma, dbeta = (dy * x_hat).sum(axis=0), dy.sum(axis=0)
    if swap:
        dgamma, dbeta = dbeta, dgamma
    if db_mean:
        dbeta = dbeta / N
    return dx, dgamma, dbeta


BACKWARD_MISTAKES = [
    ({"mean_path": False, "var_path": False},
     "dx treats the batch mean and variance as constants (dy * gamma / std): both depend on every x of the "
     "feature, so dx has two more terms, through mu and through var"),
    ({"var_path": False}, "dx misses the path through the variance: "
                          "dvar = sum(dx_hat (x - mu)) * -1/2 (var + eps)^-3/2, then dx gets dvar * 2 (x - mu) / N"),
    ({"mean_path": False}, "dx misses the path through the mean: dmu = -sum(dx_hat) / std (+ the variance's share), "
                           "and every x gets dmu / N"),
    ({"use_gamma": False}, "dx_hat = dy * gamma: the scale gamma is missing from dx"),
    ({"swap": True}, "dgamma = sum(dy * x_hat) and dbeta = sum(dy): yours are swapped"),
    ({"db_mean": True}, "dbeta is summed over the batch, not averaged"),
]


def _name(forward_mistake):
    return next(text for switches, text in FORWARD_MISTAKES if switches == forward_mistake)


def _student_forward(forward, x, gamma, beta, what="batchnorm_forward"):
    inputs = (x.copy(), gamma.copy(), beta.copy())
    out = call_student(forward, *inputs, EPS, what=what)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise StudentError(f"{what} returned {type(out).__name__}: return the pair (y, cache)")
    for given, original, name in zip(inputs, (x, gamma, beta), ("x", "gamma", "beta")):
        if not np.array_equal(given, original):
            raise StudentError(f"{what} changed its input {name}: compute new arrays instead")
    return as_array(out[0], "y", x.shape), out[1]


@grades("bn_forward")
def check_bn_forward(batchnorm_forward):
    """Grade ``batchnorm_forward(x, gamma, beta, eps) -> (y, cache)`` (training mode, x (N, D))."""
    name = "batch-norm forward"
    batchnorm_forward = as_student(batchnorm_forward)
    findings = []
    for label, seed, N, D in CASES:
        x, gamma, beta, dy = _case(seed, N, D)
        try:
            y, _ = _student_forward(batchnorm_forward, x, gamma, beta)
        except StudentError as error:
            return CheckResult(name, False, findings + [f"{label}: {error}"])
        expected = _library(x, gamma, beta, dy)[0]
        error = worst_entry(y, expected)[0]
        if error < RTOL:
            findings.append(f"{label}: y matches the library's batchnorm_forward (max relative error {error:.1e})")
            continue
        hint = next((text for switches, text in FORWARD_MISTAKES
                     if worst_entry(y, _forward_with(x, gamma, beta, **switches))[0] < RTOL),
                    "mu and var per feature over the batch (axis 0), x_hat = (x - mu) / sqrt(var + eps), "
                    "y = gamma x_hat + beta")
        return CheckResult(name, False, findings + [f"{label}: " + describe_difference("y", y, expected)], hint)
    return CheckResult(name, True, findings)


def _grade_backward(name, forward, backward, what):
    forward, backward = as_student(forward), as_student(backward)
    findings = []
    for label, seed, N, D in CASES:
        x, gamma, beta, dy = _case(seed, N, D)
        y_lib, dx_lib, dgamma_lib, dbeta_lib = _library(x, gamma, beta, dy)
        try:
            y, cache = _student_forward(forward, x, gamma, beta)
            if worst_entry(y, y_lib)[0] >= RTOL:
                raise StudentError("batchnorm_forward is not right yet (its task says why); the backward needs "
                                   "its cache, so fix the forward first")
            dy_given = dy.copy()
            out = call_student(backward, dy_given, cache, what=what)
            if not isinstance(out, (tuple, list)) or len(out) != 3:
                raise StudentError(f"{what} returned {type(out).__name__}: return (dx, dgamma, dbeta)")
            if np.shape(out[1]) == (N, D) or np.shape(out[2]) == (N, D):
                raise StudentError(f"dgamma / dbeta have shape {(N, D)}: one value per sample. gamma and beta are "
                                   f"shared by the whole batch, so sum over it (axis 0) to get {(D,)}")
            dx = as_array(out[0], "dx", x.shape)
            dgamma, dbeta = as_array(out[1], "dgamma", (D,)), as_array(out[2], "dbeta", (D,))
            if not np.array_equal(dy_given, dy):
                raise StudentError(f"{what} changed dy: compute new arrays instead")
        except StudentError as error:
            return CheckResult(name, False, findings + [f"{label}: {error}"])
        got, expected = (dx, dgamma, dbeta), (dx_lib, dgamma_lib, dbeta_lib)
        bad = [(n, g, e) for n, g, e in zip(("dx", "dgamma", "dbeta"), got, expected) if worst_entry(g, e)[0] >= RTOL]
        if not bad:
            error = max(worst_entry(g, e)[0] for g, e in zip(got, expected))
            findings.append(f"{label}: dx, dgamma and dbeta match the library's batchnorm_backward "
                            f"(max relative error {error:.1e})")
            continue
        hint = None
        for switches, text in BACKWARD_MISTAKES:
            replay = _backward_with(x, gamma, dy, **switches)
            if all(worst_entry(g, r)[0] < RTOL for g, r in zip(got, replay)):
                hint = text
                break
        return CheckResult(name, False, findings + [f"{label}: " + describe_difference(n, g, e) for n, g, e in bad],
                           hint or "walk the graph back one node at a time: y = gamma x_hat + beta, "
                                   "x_hat = (x - mu) * inv_std, inv_std = (var + eps)^-1/2, var = mean((x - mu)^2), "
                                   "mu = mean(x); x reaches the loss through x_hat, mu and var")
    return CheckResult(name, True, findings)


@grades("bn_backward")
def check_bn_backward(batchnorm_forward, batchnorm_backward):
    """Grade ``batchnorm_backward(dy, cache) -> (dx, dgamma, dbeta)`` with the cache of the student's forward."""
    return _grade_backward("batch-norm backward", batchnorm_forward, batchnorm_backward, "batchnorm_backward")


def _calls_naive(function):
    try:
        source = inspect.getsource(inspect.unwrap(function))
    except (OSError, TypeError):
        return False
    body = source.split(":", 1)[-1]
    return "batchnorm_backward(" in body


@grades("bn_backward_alt")
def check_bn_backward_alt(batchnorm_forward, batchnorm_backward_alt):
    """Grade the simplified ``batchnorm_backward_alt(dy, cache)``: the same numbers, from the compact
    formula ``dx = (g - mean(g) - x_hat mean(g x_hat)) / std`` with ``g = dy gamma`` (it must not
    call the graph version)."""
    name = "batch-norm backward (simplified)"
    if _calls_naive(batchnorm_backward_alt):
        return CheckResult(name, False, ["batchnorm_backward_alt calls batchnorm_backward"],
                           "derive the compact formula on paper and write it directly: "
                           "dx = (g - mean(g) - x_hat * mean(g * x_hat)) / std, g = dy * gamma")
    return _grade_backward(name, batchnorm_forward, batchnorm_backward_alt, "batchnorm_backward_alt")


# ---------------------------------------------------------------------------------------- spatial
def _spatial_with(x, gamma, beta, axes=(0, 2, 3), plain_reshape=False):
    C = x.shape[1]
    if plain_reshape:  # x.reshape(-1, C) without moving C last: mixes channels and positions
        flat = x.reshape(-1, C)
        y = (flat - flat.mean(0)) / np.sqrt(flat.var(0) + EPS) * gamma + beta
        return y.reshape(x.shape)
    mu, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    b = (1, C, 1, 1)
    return (x - mu) / np.sqrt(var + EPS) * gamma.reshape(b) + beta.reshape(b)


SPATIAL_MISTAKES = [
    ({"axes": (0,)}, "one mean per activation (c, h, w) over the batch only: a channel's filter is the same at every "
                     "position, so take one mean and variance per channel over N, H and W"),
    ({"plain_reshape": True}, "x.reshape(-1, C) mixes channels with positions: move the channels last first, "
                              "x.transpose(0, 2, 3, 1).reshape(-1, C), and transpose back afterwards"),
    ({"axes": (1, 2, 3)}, "you normalized each image over its channels and pixels; batch norm normalizes each "
                          "channel over the batch and the pixels: axes (0, 2, 3)"),
]


@grades("bn_spatial")
def check_bn_spatial(spatial_batchnorm_forward):
    """Grade ``spatial_batchnorm_forward(x, gamma, beta, eps) -> (y, cache)`` for x (N, C, H, W)."""
    name = "spatial batch norm"
    forward = as_student(spatial_batchnorm_forward)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 4, 5, 6)) * np.array([1, 2, 0.5, 3]).reshape(1, 4, 1, 1) + 1.5
    gamma, beta = rng.uniform(0.5, 2, 4), rng.standard_normal(4)
    try:
        y, _ = _student_forward(forward, x, gamma, beta, what="spatial_batchnorm_forward")
    except StudentError as error:
        return CheckResult(name, False, [str(error)])
    expected = normalization.batchnorm_forward(x, gamma, beta, EPS)[0]
    error = worst_entry(y, expected)[0]
    if error < RTOL:
        return CheckResult(name, True, [f"y (3, 4, 5, 6) matches the library's per-channel batch norm "
                                        f"(max relative error {error:.1e})"])
    hint = next((text for switches, text in SPATIAL_MISTAKES
                 if worst_entry(y, _spatial_with(x, gamma, beta, **switches))[0] < RTOL),
                "per channel over (N, H, W): reuse your batchnorm_forward on x.transpose(0, 2, 3, 1).reshape(-1, C)")
    return CheckResult(name, False, [describe_difference("y", y, expected)], hint)
