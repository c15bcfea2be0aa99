"""Checkers for assignment 5 (update rules): Nesterov momentum, RMSprop, AdaGrad as pure steps.

The student's functions take one parameter array and a ``state`` dict the checker creates empty
and passes back every step (the student keeps velocities and averages there, under any names)::

    new_w = nesterov_step(w, dw, state, lr, momentum)
    new_w = rmsprop_step(w, dw, state, lr, alpha, eps)
    new_w = adagrad_step(w, dw, state, lr, eps)

Each walks 8 steps on a quadratic bowl (``dw = a * w`` plus a fixed noise) next to
:mod:`handprop.optimizers` (``SGD(nesterov=True)``, ``RMSprop``, ``AdaGrad``: torch.optim's
equations; their ``step`` is switched off while the student's code runs), on two cases, one with
a large ``eps`` so that where eps goes shows. When the paths differ, the typical mistakes are
replayed and the one that reproduces the student's path is named.
"""

from __future__ import annotations

import numpy as np

from .. import optimizers
from .grading import as_student, grades
from .result import CheckResult, StudentError, as_array, call_student, describe_difference, worst_entry

__all__ = ["check_nesterov_step", "check_rmsprop_step", "check_adagrad_step"]

RTOL = 1e-7
STEPS = 8


def _bowl(seed):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.2, 3.0, 6)
    noise = rng.standard_normal((STEPS, 6)) * 0.3
    return rng.standard_normal(6) * 2, a, noise


def _walk(step, w0, a, noise, hyper, student=False, what=""):
    """``[w after step 1, ...]``: dw = a w + noise[t] at the current w."""
    w, state, path = w0.copy(), {}, []
    for t in range(STEPS):
        dw = a * w + noise[t]
        given = dw.copy()
        with np.errstate(all="ignore"):
            if student:
                out = call_student(step, w.copy(), given, state, **hyper, what=what)
                if out is None:
                    raise StudentError(f"{what} returned None: return the updated w")
                if not np.array_equal(given, dw):
                    raise StudentError(f"{what} wrote into dw at step {t + 1}: compute new arrays instead")
                w = as_array(out, f"the w returned at step {t + 1}", w0.shape).copy()
            else:
                w = np.asarray(step(w.copy(), given, state, **hyper), dtype=np.float64)
        path.append(w.copy())
    return path


def _library_step(make):
    """A step function driven by a handprop optimizer built by ``make(**hyper)`` (one per walk)."""
    def step(w, dw, state, **hyper):
        if "opt" not in state:
            state["opt"] = make(**hyper)
        params = {"w": w}
        state["opt"].step(params, {"w": dw})
        return params["w"]
    return step


def _grade(name, what, student, library, cases, mistakes, generic):
    student = as_student(student)
    findings = []
    for label, seed, hyper in cases:
        w0, a, noise = _bowl(seed)
        expected = _walk(library, w0, a, noise, hyper)
        try:
            got = _walk(student, w0, a, noise, hyper, student=True, what=what)
        except StudentError as error:
            return CheckResult(name, False, findings + [f"{label}: {error}"])
        bad = next((t for t, (g, e) in enumerate(zip(got, expected)) if not worst_entry(g, e)[0] < RTOL), None)
        if bad is None:
            findings.append(f"{label}: all {STEPS} steps match handprop's optimizer")
            continue
        hint = next((text for wrong, text in mistakes
                     if all(worst_entry(g, r)[0] < RTOL for g, r in zip(got, _walk(wrong, w0, a, noise, hyper)))),
                    generic)
        return CheckResult(name, False, findings + [
            f"{label}: " + describe_difference(f"w after step {bad + 1}", got[bad], expected[bad])], hint)
    return CheckResult(name, True, findings)


# ------------------------------------------------------------------------------------------ Nesterov
def _momentum(w, dw, state, lr, momentum):
    v = state["v"] = momentum * state["v"] + dw if "v" in state else dw.copy()
    return w - lr * v


def _nesterov_minus(w, dw, state, lr, momentum):
    v = state["v"] = momentum * state["v"] + dw if "v" in state else dw.copy()
    return w - lr * (dw - momentum * v)


NESTEROV_MISTAKES = [
    (lambda w, dw, state, lr, momentum: w - lr * dw, "that is plain SGD: keep a velocity v = momentum v + dw in state"),
    (_momentum, "that is classical momentum (w -= lr v); Nesterov looks ahead: w -= lr (dw + momentum v)"),
    (_nesterov_minus, "the look-ahead adds the velocity: w -= lr (dw + momentum v), not dw - momentum v"),
]


@grades("nesterov_step")
def check_nesterov_step(nesterov_step):
    """Grade ``nesterov_step(w, dw, state, lr, momentum) -> w`` against ``SGD(lr, momentum, nesterov=True)``."""
    return _grade("Nesterov momentum", "nesterov_step", nesterov_step,
                  _library_step(lambda lr, momentum: optimizers.SGD(lr=lr, momentum=momentum, nesterov=True)),
                  [("case 1 (lr 0.1, momentum 0.9)", 0, {"lr": 0.1, "momentum": 0.9}),
                   ("case 2 (lr 0.05, momentum 0.5)", 1, {"lr": 0.05, "momentum": 0.5})],
                  NESTEROV_MISTAKES,
                  "PyTorch's form: v = momentum v + dw (v = dw on the first step), then w -= lr (dw + momentum v)")


# ------------------------------------------------------------------------------------------- RMSprop
def _rms(w, dw, state, lr, alpha, eps, root=True, eps_inside=False, no_one_minus=False, start_at_g=False):
    if "v" not in state:
        state["v"] = dw**2 if start_at_g else np.zeros_like(w)
        if start_at_g:
            v = state["v"]
            return w - lr * dw / (np.sqrt(v) + eps)
    v = state["v"] = alpha * state["v"] + (1 if no_one_minus else 1 - alpha) * dw**2
    if not root:
        return w - lr * dw / (v + eps)
    return w - lr * dw / (np.sqrt(v + eps) if eps_inside else np.sqrt(v) + eps)


RMSPROP_MISTAKES = [
    (lambda w, dw, s, lr, alpha, eps: _rms(w, dw, s, lr, alpha, eps, root=False),
     "divide by the root of the average: dw / (sqrt(v) + eps)"),
    (lambda w, dw, s, lr, alpha, eps: _rms(w, dw, s, lr, alpha, eps, eps_inside=True),
     "eps goes outside the root (PyTorch): dw / (sqrt(v) + eps), not sqrt(v + eps)"),
    (lambda w, dw, s, lr, alpha, eps: _rms(w, dw, s, lr, alpha, eps, no_one_minus=True),
     "the average weighs the new square by (1 - alpha): v = alpha v + (1 - alpha) dw²"),
    (lambda w, dw, s, lr, alpha, eps: _rms(w, dw, s, lr, 1 - alpha, eps),
     "alpha is the weight of the old average (0.99): v = alpha v + (1 - alpha) dw², yours swaps them"),
    (lambda w, dw, s, lr, alpha, eps: _rms(w, dw, s, lr, alpha, eps, start_at_g=True),
     "the average starts at 0 (PyTorch), not at the first dw²"),
]


@grades("rmsprop_step")
def check_rmsprop_step(rmsprop_step):
    """Grade ``rmsprop_step(w, dw, state, lr, alpha, eps) -> w`` against ``RMSprop(lr, alpha, eps)``."""
    return _grade("RMSprop", "rmsprop_step", rmsprop_step,
                  _library_step(lambda lr, alpha, eps: optimizers.RMSprop(lr=lr, alpha=alpha, eps=eps)),
                  [("case 1 (lr 0.01, alpha 0.99, eps 1e-8)", 2, {"lr": 0.01, "alpha": 0.99, "eps": 1e-8}),
                   ("case 2 (lr 0.1, alpha 0.9, eps 0.1)", 3, {"lr": 0.1, "alpha": 0.9, "eps": 0.1})],
                  RMSPROP_MISTAKES, "v = alpha v + (1 - alpha) dw² (v starts at 0), w -= lr dw / (sqrt(v) + eps)")


# ------------------------------------------------------------------------------------------- AdaGrad
def _ada(w, dw, state, lr, eps, square=True, root=True, eps_inside=False, mean=False):
    state["t"] = state.get("t", 0) + 1
    state["G"] = state.get("G", 0.0) + (dw**2 if square else np.abs(dw))
    G = state["G"] / state["t"] if mean else state["G"]
    if not root:
        return w - lr * dw / (G + eps)
    return w - lr * dw / (np.sqrt(G + eps) if eps_inside else np.sqrt(G) + eps)


ADAGRAD_MISTAKES = [
    (lambda w, dw, s, lr, eps: _ada(w, dw, s, lr, eps, square=False), "accumulate the squares dw², not |dw|"),
    (lambda w, dw, s, lr, eps: _ada(w, dw, s, lr, eps, root=False), "divide by the root of the sum: sqrt(G) + eps"),
    (lambda w, dw, s, lr, eps: _ada(w, dw, s, lr, eps, eps_inside=True),
     "eps goes outside the root (PyTorch): dw / (sqrt(G) + eps)"),
    (lambda w, dw, s, lr, eps: _ada(w, dw, s, lr, eps, mean=True),
     "AdaGrad keeps the sum of all squared gradients, not their mean (that would be RMSprop-like)"),
]


@grades("adagrad_step")
def check_adagrad_step(adagrad_step):
    """Grade ``adagrad_step(w, dw, state, lr, eps) -> w`` against ``AdaGrad(lr, eps)``."""
    return _grade("AdaGrad", "adagrad_step", adagrad_step,
                  _library_step(lambda lr, eps: optimizers.AdaGrad(lr=lr, eps=eps)),
                  [("case 1 (lr 0.5, eps 1e-10)", 4, {"lr": 0.5, "eps": 1e-10}),
                   ("case 2 (lr 0.3, eps 0.1)", 5, {"lr": 0.3, "eps": 0.1})],
                  ADAGRAD_MISTAKES, "G += dw² (G starts at 0), w -= lr dw / (sqrt(G) + eps)")
