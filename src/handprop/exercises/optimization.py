"""Checkers for chapter 2 (optimization): the largest stable learning rate, a momentum step, an Adam step.

A student's update function has the signature of one step of one parameter array::

    new_w = momentum_step(w, dw, state, lr, momentum)
    new_w = adam_step(w, dw, state, lr, beta1, beta2, eps)

``state`` is a dict that the checker creates empty and passes back at every call, so the function
can keep its velocity, moments and step counter there under any names. The checker walks a few
steps with random gradients, walks the same steps with :mod:`handprop.optimizers` (the equations
of ``torch.optim``), and compares the two paths step by step. When the paths differ it replays
the typical mistakes (no bias correction, eps inside the square root, a sign error, ...) and names
the one that reproduces the student's path.
"""

from __future__ import annotations

import numpy as np

from ..optimizers import SGD, Adam
from ..surfaces import get_surface
from .result import CheckResult, StudentError, as_array, call_student, describe_difference, worst_entry

__all__ = ["check_largest_stable_lr", "check_momentum_step", "check_adam_step"]

RTOL = 1e-6  # float64 paths of a few steps agree to ~1e-15; anything above 1e-6 is a different formula


# ---------------------------------------------------------------------------------------------- walks
def _walk_student(step, w0, grads, hyper, what):
    """The student's path: ``[w after step 1, w after step 2, ...]`` (copies), or a StudentError."""
    w, state, path = w0.copy(), {}, []
    for t, g in enumerate(grads, start=1):
        dw = g.copy()
        with np.errstate(all="ignore"):  # a division by zero shows up as inf/nan in w, reported below
            out = call_student(step, w, dw, state, **hyper, what=what)
        if out is None and t == 1:
            raise StudentError(f"{what} returned None: return the updated w (updating it in place is fine, "
                               "but return it too)")
        w = as_array(out, f"the w returned at step {t}", w0.shape).copy()  # the student may update w in place
        if not np.array_equal(dw, g):
            raise StudentError(f"{what} wrote into dw (the gradient) at step {t}: never modify the gradient "
                               "you are given; compute new arrays (v = momentum * v + dw, not dw *= ...)")
        path.append(w.copy())  # w itself goes back to the student, who may change it in place
    return path


def _walk_variant(step, w0, grads, hyper):
    """A path of one of this module's own step functions (the reference mistakes), without checks."""
    w, state, path = w0.copy(), {}, []
    with np.errstate(all="ignore"):
        for g in grads:
            w = np.asarray(step(w.copy(), g.copy(), state, **hyper), dtype=np.float64)
            path.append(w.copy())
    return path


def _walk_optimizer(optimizer, w0, grads):
    p, path = w0.copy(), []
    for g in grads:
        optimizer.step({"w": p}, {"w": g.copy()})
        path.append(p.copy())
    return path


def _same_path(a, b):
    return all(np.all(np.isfinite(x)) and worst_entry(x, y)[0] < RTOL for x, y in zip(a, b, strict=True))


def _compare_paths(student, expected, case):
    """Findings for the first step at which the paths part (empty list when they agree)."""
    for t, (got, want) in enumerate(zip(student, expected, strict=True), start=1):
        error, _ = worst_entry(got, want)
        if not error < RTOL:
            before = f"steps 1-{t - 1} agree; " if t > 1 else ""
            return [f"{case}: {before}" + describe_difference(f"w after step {t}", got, want, "handprop.optimizers'")]
    return []


def _diagnose_all(step, cases, variants, what):
    """The hint of the first reference mistake that reproduces the student's path in every case
    (one case alone can mislead: with lr = 0.1 and momentum = 0.9, (1 - momentum) dw = lr dw)."""
    paths = []
    for _, w0, grads, hyper in cases:
        try:
            paths.append((_walk_student(step, w0, grads, hyper, what), w0, grads, hyper))
        except StudentError:
            continue
    for variant, hint in variants:
        if paths and all(_same_path(student, _walk_variant(variant, w0, grads, hyper))
                         for student, w0, grads, hyper in paths):
            return hint
    return None


def _run_cases(name, step, cases, make_optimizer, variants, generic_hint, what, nonfinite_hint=None, accepted=()):
    """Walk every case, compare with the library, diagnose the first failure. ``accepted``: other
    correct formulations ``(step, description)`` whose paths differ from the library's by more than
    rounding (e.g. where eps sits), accepted when the student's path is theirs."""
    findings = []
    for label, w0, grads, hyper in cases:
        try:
            student = _walk_student(step, w0, grads, hyper, what)
        except StudentError as error:
            return CheckResult(name, False, findings + [f"{label}: {error}"])
        expected = _walk_optimizer(make_optimizer(**hyper), w0, grads)
        differences = _compare_paths(student, expected, label)
        alternative = next((text for variant, text in accepted
                            if _same_path(student, _walk_variant(variant, w0, grads, hyper))), None)
        if differences and alternative:
            findings.append(f"{label}: all {len(grads)} steps match {alternative}")
            continue
        if differences:
            hint = _diagnose_all(step, cases, variants, what)
            if hint is None and nonfinite_hint and not all(np.all(np.isfinite(w)) for w in student):
                hint = nonfinite_hint
            hint = hint or generic_hint
            return CheckResult(name, False, findings + differences, hint)
        findings.append(f"{label}: all {len(grads)} steps match handprop.optimizers "
                        f"(max relative error < {RTOL:.0e})")
    return CheckResult(name, True, findings)


def _random_case(seed, shape, steps, scale=1.0):
    rng = np.random.default_rng(seed)
    w0 = rng.standard_normal(shape)
    grads = [scale * rng.standard_normal(shape) for _ in range(steps)]
    return w0, grads


# ------------------------------------------------------------------------------- learning rate
LR_BOUND = 1.0
"""On f = x²/20 + y² plain SGD converges exactly for 0 < lr < 1 (the steep y direction decides)."""
LR_ACCEPTED = (0.99, 1.0)
"""Answers accepted as "the largest stable learning rate": [0.99, 1), the largest to two decimals.
The stable rates form an open interval, so its bound 1 itself is not one of them."""


def check_largest_stable_lr(value, surface="quadratic"):
    """Grade the largest learning rate for which plain SGD converges on f = x²/20 + y².

    Along y, one step is ``y <- y - lr * 2y = (1 - 2 lr) y``: it shrinks while ``|1 - 2 lr| < 1``,
    so for lr < 1 (in x the limit would be 20: the steepest direction decides). At lr = 1 exactly
    the factor is -1: y flips sign forever and the walk never converges, so the bound is not a
    stable rate; the checker accepts the largest stable rate to two decimals, any number in
    [0.99, 1). It also runs handprop's SGD just below and just above the value given, from (-7, 2).
    A string (``"0.99"``) is refused: the answer is a number.
    """
    name = "the largest stable learning rate of SGD on f = x²/20 + y²"
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return CheckResult(name, False, [f"expected a number, got the string {value!r}"])
        findings = [f"expected a number, got the string {value!r}: write the number without quotes"]
        verdict = check_largest_stable_lr(number, surface)
        return CheckResult(name, False, findings + (verdict.findings if not verdict else []),
                           verdict.hint if not verdict else "write it as a number (no quotes)")
    if isinstance(value, bool):
        return CheckResult(name, False, [f"expected a number, got {value!r}"])
    try:
        lr = float(value)
    except (TypeError, ValueError):
        return CheckResult(name, False, [f"expected a number, got {value!r}"])
    surface = get_surface(surface)

    def converges(rate, steps=400):
        p, opt = np.array([-7.0, 2.0]), SGD(lr=rate)
        with np.errstate(all="ignore"):
            for _ in range(steps):
                opt.step({"p": p}, {"p": np.array(surface.gradient(*p))})
        return bool(np.all(np.isfinite(p)) and np.abs(p).max() < 1e-3)

    def runs(rate):
        return f"lr = {rate:.4g} {'converges' if converges(rate) else 'does not converge'}"

    evidence = [f"handprop's SGD, 400 steps from (-7, 2): {runs(0.95 * lr)} (95% of your value), "
                f"{runs(1.05 * lr)} (105%)"]
    low, high = LR_ACCEPTED
    if low <= lr < high:
        return CheckResult(name, True, [f"lr = {lr:g}: along y a step multiplies y by (1 - 2 lr) = {1 - 2 * lr:.3g}, "
                                        "which must stay within (-1, 1), so every lr < 1 converges"] + evidence)
    if abs(lr - LR_BOUND) < 1e-9:
        return CheckResult(name, False, ["lr = 1 is the bound, not a stable rate: a step multiplies y by "
                                         "1 - 2 lr = -1, so y flips between +2 and -2 forever and the walk never "
                                         "reaches the minimum", f"handprop's SGD: {runs(1.0)} in 400 steps"],
                           "the stable rates are the lr with |1 - 2 lr| < 1, i.e. lr < 1 (strictly): give the "
                           "largest to two decimals")
    hints = {2.0: "the gradient of y² is 2y, not y: a step multiplies y by (1 - 2 lr)",
             20.0: "that is the limit along x (a step multiplies x by 1 - lr/10); "
                   "the steeper y direction diverges first",
             10.0: "along x a step multiplies x by (1 - lr/10), which stays in (-1, 1) up to lr = 20; "
                   "but the steeper y direction diverges first",
             0.5: "at lr = 0.5 y jumps straight to 0; above it y oscillates around 0 but still shrinks "
                  "while |1 - 2 lr| < 1"}
    hint = next((h for v, h in hints.items() if abs(lr - v) < 1e-3), None)
    if hint is None and LR_BOUND < lr < 2.0:
        hint = (f"at lr = {lr:g} y's factor 1 - 2 lr = {1 - 2 * lr:.3g} is below -1: y flips sign and grows at "
                "every step; the stable rates are the lr with |1 - 2 lr| < 1")
    if hint is None and 0.5 < lr < low:
        hint = (f"lr = {lr:g} is stable, but not the largest: y's factor 1 - 2 lr = {1 - 2 * lr:.3g} is still "
                "inside (-1, 1); how far can lr go before |1 - 2 lr| reaches 1?")
    hint = hint or "write one SGD step for y alone: y <- y - lr * df/dy; for which lr does |y| shrink?"
    return CheckResult(name, False, [f"{lr:g} is not the largest stable rate"] + evidence, hint)


# ------------------------------------------------------------------------------------- momentum
def _momentum_plain(w, dw, state, lr, momentum):
    return w - lr * dw


def _momentum_ascent(w, dw, state, lr, momentum):
    state["v"] = momentum * state.get("v", 0.0) + dw
    return w + lr * state["v"]


def _momentum_dampened(w, dw, state, lr, momentum):
    state["v"] = momentum * state.get("v", 0.0) + (1 - momentum) * dw
    return w - lr * state["v"]


def _momentum_nesterov(w, dw, state, lr, momentum):
    state["v"] = momentum * state.get("v", 0.0) + dw
    return w - lr * (dw + momentum * state["v"])


def _momentum_lr_twice(w, dw, state, lr, momentum):
    """lr inside the velocity and again in the step."""
    state["v"] = momentum * state.get("v", 0.0) + lr * dw
    return w - lr * state["v"]


def _momentum_late(w, dw, state, lr, momentum):
    """Steps with the old velocity, updates it afterwards."""
    v = state.get("v", 0.0)
    state["v"] = momentum * v + dw
    return w - lr * v


MOMENTUM_MISTAKES = [
    (_momentum_plain, "your steps are plain SGD steps: the velocity is not used, or not kept between calls "
                      "(store it in state, e.g. state['v'] = momentum * state.get('v', 0) + dw)"),
    (_momentum_ascent, "your steps go uphill: w moves against the velocity, w <- w - lr * v"),
    (_momentum_dampened, "you averaged, v <- momentum * v + (1 - momentum) * dw; classical momentum adds the "
                         "whole gradient, v <- momentum * v + dw"),
    (_momentum_nesterov, "that is Nesterov's momentum (w <- w - lr * (dw + momentum * v)); this exercise "
                         "asks for the classical one, w <- w - lr * v"),
    (_momentum_late, "you stepped with the velocity of the previous call: update v first, then step with "
                     "the new v"),
    (_momentum_lr_twice, "lr is applied twice, in the velocity and in the step: either v <- momentum * v + dw; "
                         "w <- w - lr * v, or (Sutskever) v <- momentum * v - lr * dw; w <- w + v"),
]


def check_momentum_step(momentum_step, lr=0.1, momentum=0.9, steps=6, seed=0):
    """Grade ``momentum_step(w, dw, state, lr, momentum) -> new w`` against ``SGD(lr, momentum)``.

    The expected update (``torch.optim.SGD``; Sutskever's ``v <- mu v - lr g; w <- w + v`` walks
    the same path and is accepted)::

        v <- momentum * v + dw        (v starts at 0)
        w <- w - lr * v
    """
    cases = [("case 1 (w of shape (3, 4))", *_random_case(seed, (3, 4), steps), {"lr": lr, "momentum": momentum}),
             ("case 2 (lr=0.05, momentum=0.5)", *_random_case(seed + 1, (5,), steps), {"lr": 0.05, "momentum": 0.5})]
    return _run_cases("momentum step", momentum_step, cases, SGD, MOMENTUM_MISTAKES,
                      "compare your two lines with v <- momentum * v + dw; w <- w - lr * v",
                      "momentum_step")


# ----------------------------------------------------------------------------------------- Adam
def _adam(w, dw, state, lr, beta1, beta2, eps, *, correct=True, eps_inside=False, sqrt=True, fixed_t=False,
          swap=False, no_one_minus=False, sign=1.0):
    """Adam with switches for each typical mistake (all off = the right update)."""
    if swap:
        beta1, beta2 = beta2, beta1
    state["t"] = 1 if fixed_t else state.get("t", 0) + 1
    t = state["t"]
    a1, a2 = (1.0, 1.0) if no_one_minus else (1 - beta1, 1 - beta2)
    state["m"] = beta1 * state.get("m", 0.0) + a1 * dw
    state["v"] = beta2 * state.get("v", 0.0) + a2 * dw * dw
    m_hat = state["m"] / (1 - beta1**t) if correct else state["m"]
    v_hat = state["v"] / (1 - beta2**t) if correct else state["v"]
    if eps_inside:
        denom = np.sqrt(v_hat + eps)
    else:
        denom = (np.sqrt(v_hat) if sqrt else v_hat) + eps
    return w - sign * lr * m_hat / denom


def _adam_variant(**switches):
    return lambda w, dw, state, lr, beta1, beta2, eps: _adam(w, dw, state, lr, beta1, beta2, eps, **switches)


def _adam_efficient(w, dw, state, lr, beta1, beta2, eps, eps_inside=False):
    """Kingma & Ba's "more efficient" order (section 2): the bias corrections folded into the step
    size, eps added to sqrt(v) as it is (not to sqrt(v_hat))."""
    t = state["t"] = state.get("t", 0) + 1
    state["m"] = beta1 * state.get("m", 0.0) + (1 - beta1) * dw
    state["v"] = beta2 * state.get("v", 0.0) + (1 - beta2) * dw * dw
    alpha_t = lr * np.sqrt(1 - beta2**t) / (1 - beta1**t)
    denom = np.sqrt(state["v"] + eps) if eps_inside else np.sqrt(state["v"]) + eps
    return w - alpha_t * state["m"] / denom


ADAM_MISTAKES = [
    (_adam_variant(correct=False), "no bias correction: divide m by (1 - beta1**t) and v by (1 - beta2**t), "
                                   "with t = 1 at the first step"),
    (_adam_variant(fixed_t=True), "t does not grow: count the steps in state (t = 1 at the first call, "
                                  "2 at the second, ...) for the bias correction"),
    (_adam_variant(eps_inside=True), "eps belongs outside the square root: sqrt(v_hat) + eps, as in the paper "
                                     "and torch (TensorFlow 1 put it inside)"),
    (lambda w, dw, state, lr, beta1, beta2, eps: _adam_efficient(w, dw, state, lr, beta1, beta2, eps, True),
     "eps belongs outside the square root, also in the paper's efficient form: w <- w - alpha_t m / (sqrt(v) + eps)"),
    (_adam_variant(sqrt=False), "divide by the square root of v_hat (the RMS of the gradient), not by v_hat"),
    (_adam_variant(swap=True), "the betas are swapped: beta1 (0.9) averages dw, beta2 (0.999) averages dw**2"),
    (_adam_variant(no_one_minus=True), "the running averages need (1 - beta) on the new term: "
                                       "m <- beta1 * m + (1 - beta1) * dw"),
    (_adam_variant(sign=-1.0), "your steps go uphill: w <- w - lr * m_hat / (sqrt(v_hat) + eps)"),
]


ADAM_ACCEPTED = [
    (_adam_efficient, "the paper's efficient form (alpha_t = lr sqrt(1 - beta2^t) / (1 - beta1^t), "
                      "w <- w - alpha_t m / (sqrt(v) + eps); Kingma & Ba, section 2): correct, it differs from "
                      "torch.optim.Adam only in where eps sits (eps / sqrt(1 - beta2^t) in Algorithm 1's terms)"),
]


def check_adam_step(adam_step, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, steps=6, seed=0):
    """Grade ``adam_step(w, dw, state, lr, beta1, beta2, eps) -> new w`` against ``hp.optimizers.Adam``.

    The expected update (Kingma & Ba's Algorithm 1, ``torch.optim.Adam``), t = 1, 2, ...::

        m <- beta1 m + (1 - beta1) dw          v <- beta2 v + (1 - beta2) dw²
        m_hat = m / (1 - beta1^t)              v_hat = v / (1 - beta2^t)
        w <- w - lr m_hat / (sqrt(v_hat) + eps)

    The second case has gradients of size ~1e-3 and eps = 1e-3, where putting eps inside or
    outside the square root makes a visible difference.

    Also accepted: the paper's "efficient" form (``alpha_t = lr sqrt(1 - beta2^t) / (1 - beta1^t)``,
    ``w <- w - alpha_t m / (sqrt(v) + eps)``), which moves eps by a factor ``sqrt(1 - beta2^t)``
    (:data:`ADAM_ACCEPTED`); eps inside the root, no correction and the other mistakes are not.
    """
    hyper = {"lr": lr, "beta1": beta1, "beta2": beta2, "eps": eps}
    cases = [("case 1 (w of shape (3, 4))", *_random_case(seed, (3, 4), steps), hyper),
             ("case 2 (small gradients, eps=1e-3)", *_random_case(seed + 1, (6,), steps, scale=1e-3),
              {**hyper, "eps": 1e-3})]

    def make_adam(lr, beta1, beta2, eps):
        return Adam(lr=lr, betas=(beta1, beta2), eps=eps)

    return _run_cases("Adam step", adam_step, cases, make_adam, ADAM_MISTAKES,
                      "check each line against m <- beta1 m + (1 - beta1) dw; v <- beta2 v + (1 - beta2) dw²; "
                      "m_hat = m / (1 - beta1^t); v_hat = v / (1 - beta2^t); "
                      "w <- w - lr m_hat / (sqrt(v_hat) + eps)",
                      "adam_step",
                      nonfinite_hint="w became inf or nan: is t 0 at the first step (1 - beta**0 = 0)? "
                                     "Or a square root of a negative number (v averages dw**2, not dw)?",
                      accepted=ADAM_ACCEPTED)
