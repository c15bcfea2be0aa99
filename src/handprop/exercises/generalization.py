"""Checkers for chapter 4 (generalization): the gradient of L2 / L1 penalties, early stopping, dropout.

The student's functions::

    regularized_gradient(w, dw, weight_decay, l1) -> g          what the optimizer steps along
    early_stopping(val_losses, patience, min_delta) -> (stop_epoch, best_epoch)
    dropout_forward(x, rate, training, rng) -> y                 inverted dropout, rate = drop probability

They are graded against handprop's own implementations: the optimizers' regularization
(``g + weight_decay * w + l1 * sign(w)``, observed through one ``SGD`` step), the
``hp.callbacks.EarlyStopping`` callback run on the same validation losses, and the rule of the
``Dropout`` layer (every output is 0 or ``x / (1 - rate)``, a fraction ``rate`` of them 0, the identity
at inference).
"""

from __future__ import annotations

import numpy as np

from ..callbacks import EarlyStopping
from ..optimizers import SGD
from .result import CheckResult, StudentError, as_array, call_student, describe_difference, tolerance, worst_entry

__all__ = ["check_regularized_gradient", "check_early_stopping", "check_dropout"]

RTOL = 1e-9


# ------------------------------------------------------------------------ L2 / L1 regularization
def _library_regularized(w, dw, weight_decay, l1):
    """The gradient handprop's optimizers step along, read off one SGD step with lr = 1: w - w' = g."""
    p = w.copy()
    SGD(lr=1.0, weight_decay=weight_decay, l1=l1).step({"w": p}, {"w": dw.copy()})
    return w - p


_REGULARIZATION_MISTAKES = [
    (lambda w, dw, wd, l1: dw + wd * w + l1 * w,
     "the L1 penalty l1 |w| has the derivative l1 * sign(w) (+l1 or -l1, 0 at w = 0), not l1 * w"),
    (lambda w, dw, wd, l1: dw + 2 * wd * w + l1 * np.sign(w),
     "the L2 penalty is (weight_decay / 2) ||w||², whose gradient is weight_decay * w (the factor 2 cancels)"),
    (lambda w, dw, wd, l1: dw + wd / 2 * w + l1 * np.sign(w),
     "the L2 penalty (weight_decay / 2) ||w||² has the gradient weight_decay * w: the 1/2 cancels against the 2 "
     "of the square"),
    (lambda w, dw, wd, l1: wd * w + l1 * np.sign(w),
     "the penalty's gradient is added to the loss's gradient dw, it does not replace it"),
    (lambda w, dw, wd, l1: dw - wd * w - l1 * np.sign(w),
     "the penalties pull the weights towards 0: add their gradients (+ weight_decay * w + l1 * sign(w))"),
    (lambda w, dw, wd, l1: dw + wd * w + l1 * np.abs(w),
     "the derivative of |w| is sign(w), not |w|"),
    (lambda w, dw, wd, l1: dw + wd * w,
     "the L1 term is missing: + l1 * sign(w)"),
    (lambda w, dw, wd, l1: dw + l1 * np.sign(w),
     "the L2 term is missing: + weight_decay * w"),
]


def check_regularized_gradient(regularized_gradient):
    """Grade ``regularized_gradient(w, dw, weight_decay, l1) -> g``.

    The loss with penalties ``L + (weight_decay / 2) ||w||² + l1 ||w||₁`` has the gradient::

        g = dw + weight_decay * w + l1 * sign(w)        (sign(0) = 0)

    which is what every handprop optimizer steps along (checked through one ``SGD`` step). The
    cases include exact zeros in ``w``.
    """
    name = "the gradient of the L2 and L1 penalties"
    findings = []
    rng = np.random.default_rng(0)
    cases = []
    for label, wd, l1 in (("weight_decay=0.1, l1=0.01", 0.1, 0.01), ("weight_decay=0.003, l1=0.2", 0.003, 0.2),
                          ("L2 only (weight_decay=0.5, l1=0)", 0.5, 0.0)):
        w = rng.standard_normal((4, 5))
        w[0, :2] = 0.0  # sign(0) = 0
        cases.append((label, w, rng.standard_normal((4, 5)), wd, l1))
    for label, w, dw, wd, l1 in cases:
        inputs = (w.copy(), dw.copy())
        try:
            got = call_student(regularized_gradient, *inputs, wd, l1, what="regularized_gradient")
            got = as_array(got, "the returned gradient", w.shape)
            if not (np.array_equal(inputs[0], w) and np.array_equal(inputs[1], dw)):
                raise StudentError("regularized_gradient changed w or dw: return a new array, g = dw + ...")
        except StudentError as error:
            return CheckResult(name, False, findings + [f"{label}: {error}"])
        expected = _library_regularized(w, dw, wd, l1)
        if worst_entry(got, expected)[0] < RTOL:
            findings.append(f"{label}: equals the gradient of handprop's optimizers")
            continue
        hint = next((text for formula, text in _REGULARIZATION_MISTAKES
                     if worst_entry(got, formula(w, dw, wd, l1))[0] < RTOL),
                    "g = dw + weight_decay * w + l1 * np.sign(w)")
        return CheckResult(name, False, findings + [f"{label}: " + describe_difference(
            "g", got, expected, "handprop.optimizers'")], hint)
    return CheckResult(name, True, findings)


# ------------------------------------------------------------------------------- early stopping
class _Weights:
    """A stand-in model for running EarlyStopping on a list of numbers."""

    stop_training = False

    def get_weights(self):
        return {}

    def set_weights(self, weights):
        pass


def _library_early_stopping(val_losses, patience, min_delta):
    """``(stop_epoch, best_epoch)`` of ``hp.callbacks.EarlyStopping`` fed these validation losses."""
    callback = EarlyStopping(monitor="val_loss", patience=patience, min_delta=min_delta)
    model = _Weights()
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, value in enumerate(val_losses):
        callback.on_epoch_end(epoch, {"val_loss": value})
        if model.stop_training:
            break
    return callback.stopped_epoch, callback.best_epoch


def _variant(val_losses, patience, min_delta, *, extra=0, reset=True, use_delta=True, best_last=False,
             ties_improve=False):
    """Early stopping with one of the typical mistakes switched on."""
    best, best_epoch, wait = np.inf, None, 0
    for epoch, value in enumerate(val_losses):
        threshold = best - (min_delta if use_delta else 0.0)
        if value < threshold or (ties_improve and value == threshold):
            best, best_epoch = value, epoch
            wait = 0 if reset else wait
        else:
            wait += 1
            if wait >= patience + extra:
                return epoch, (epoch if best_last else best_epoch)
    return None, best_epoch


_STOPPING_MISTAKES = [
    ({"extra": 1}, "you stop one epoch late: stop as soon as `patience` epochs in a row brought no improvement "
                   "(the counter reaches patience), as Keras"),
    ({"extra": -1}, "you stop one epoch early: wait for `patience` epochs without improvement"),
    ({"reset": False}, "the counter of epochs without improvement must go back to 0 when the loss improves"),
    ({"use_delta": False}, "an improvement must beat the best loss by more than min_delta: value < best - min_delta"),
    ({"best_last": True}, "best_epoch is the epoch of the lowest validation loss, not the last one"),
    ({"ties_improve": True}, "an equal loss is no improvement (a plateau counts towards patience): improve only when "
                             "value < best - min_delta, strictly, as Keras"),
]

STOPPING_CASES = [  # label, losses, patience, min_delta
    ("a clean U (patience 2)", [1.0, 0.8, 0.6, 0.55, 0.6, 0.7, 0.8, 0.9], 2, 0.0),
    ("noisy, improving again after a pause (patience 3)", [0.9, 0.7, 0.72, 0.71, 0.65, 0.66, 0.67, 0.68, 0.69], 3, 0.0),
    ("tiny improvements under min_delta=0.01 (patience 2)", [0.5, 0.4, 0.395, 0.392, 0.39, 0.3], 2, 0.01),
    ("never stops (patience 5)", [0.5, 0.45, 0.46, 0.44, 0.43], 5, 0.0),
    ("patience 1", [0.5, 0.4, 0.41, 0.3], 1, 0.0),
    ("a plateau of equal losses (patience 2)", [0.5, 0.4, 0.4, 0.4, 0.3], 2, 0.0),
]


def _stopping_hint(early_stopping):
    """The first typical mistake that gives the student's answers in every case (one case alone can
    mislead: on a plateau, stopping late and counting ties as improvements both never stop)."""
    answers = []
    for _, losses, patience, min_delta in STOPPING_CASES:
        try:
            got = call_student(early_stopping, list(losses), patience, min_delta, what="early_stopping")
            answers.append((tuple(None if v is None else int(v) for v in got), losses, patience, min_delta))
        except (StudentError, TypeError, ValueError):
            continue
    return next((text for switches, text in _STOPPING_MISTAKES
                 if answers and all(_variant(losses, patience, min_delta, **switches) == got
                                    for got, losses, patience, min_delta in answers)), None)


def check_early_stopping(early_stopping):
    """Grade ``early_stopping(val_losses, patience, min_delta) -> (stop_epoch, best_epoch)``.

    Epochs count from 0. ``stop_epoch``: the epoch after which training stops, or None when it
    runs to the end; ``best_epoch``: the epoch of the best validation loss so far at that moment
    (the weights ``restore_best_weights=True`` puts back). The rule of
    ``hp.callbacks.EarlyStopping`` (and Keras): an epoch improves when its loss is below
    ``best - min_delta``; training stops when ``patience`` epochs in a row did not improve.
    """
    name = "early stopping"
    findings = []
    for label, losses, patience, min_delta in STOPPING_CASES:
        try:
            got = call_student(early_stopping, list(losses), patience, min_delta, what="early_stopping")
            if not isinstance(got, (tuple, list)) or len(got) != 2:
                raise StudentError(f"early_stopping returned {got!r}: return (stop_epoch, best_epoch)")
            got = tuple(None if v is None else int(v) for v in got)
        except StudentError as error:
            return CheckResult(name, False, findings + [f"{label}: {error}"])
        except (TypeError, ValueError):
            return CheckResult(name, False, findings + [f"{label}: expected two epoch numbers (or None), got {got!r}"])
        expected = _library_early_stopping(losses, patience, min_delta)
        if got == expected:
            findings.append(f"{label}: stop after epoch {expected[0]}, best epoch {expected[1]}, as EarlyStopping")
            continue
        problem = (f"{label}: losses {losses}, patience={patience}, min_delta={min_delta}: you return "
                   f"(stop_epoch, best_epoch) = {got}, hp.callbacks.EarlyStopping gives {expected}")
        hint = _stopping_hint(early_stopping)
        if hint is None and got[0] is None and expected[0] is not None:
            hint = "training should stop here: count the epochs without improvement and stop when it reaches patience"
        return CheckResult(name, False, findings + [problem],
                           hint or "keep best, best_epoch and a counter; improve when value < best - min_delta")
    return CheckResult(name, True, findings)


# ------------------------------------------------------------------------------------- dropout
def check_dropout(dropout_forward, rate=0.3):
    """Grade ``dropout_forward(x, rate, training, rng) -> y`` (inverted dropout, as ``hp.layers.Dropout``);
    CS231n's ``-> (y, cache)``, the convention of ``hp.layers.dropout_forward``, is accepted too.

    Expected: in training, each element is dropped (0) with probability ``rate`` and kept and
    scaled by ``1 / (1 - rate)`` otherwise, so that ``E[y] = x``; at inference (``training=False``)
    ``y = x``. The mask is random, so the checker tests the rule: every output is 0 or
    ``x / (1 - rate)``, the fraction of zeros is ``rate`` (within 5 standard deviations on 40,000
    elements), two calls draw different masks, and ``x`` is not modified.
    """
    name = "inverted dropout"
    x = np.random.default_rng(1).uniform(0.5, 1.5, (200, 200))  # no zeros: a 0 in y means dropped
    findings = []
    raw = []  # the student's outputs before conversion (their dtype sets the tolerance)

    def output(value):
        """y, also from CS231n's ``(y, cache)`` (the convention of ``hp.layers.dropout_forward``)."""
        if isinstance(value, tuple) and len(value) == 2 and np.shape(value[0]) == x.shape:
            value = value[0]
        raw.append(value)
        return value

    try:
        y = as_array(output(call_student(dropout_forward, x.copy(), rate, False, np.random.default_rng(0),
                                         what="dropout_forward")), "y at inference", x.shape)
    except StudentError as error:
        return CheckResult(name, False, [f"training=False: {error}"])
    if not np.allclose(y, x, rtol=1e-12, atol=0):
        if np.allclose(y, x * (1 - rate)):
            hint = ("at inference inverted dropout does nothing: the training outputs were already divided by "
                    "1 - rate, so y = x")
        else:
            hint = "with training=False return x unchanged"
        return CheckResult(name, False, ["training=False: y differs from x"], hint)
    findings.append("training=False: y = x (nothing dropped, nothing rescaled)")
    given = x.copy()
    try:
        y = as_array(output(call_student(dropout_forward, given, rate, True, np.random.default_rng(0),
                                         what="dropout_forward")), "y in training", x.shape)
        y2 = as_array(output(call_student(dropout_forward, x.copy(), rate, True, np.random.default_rng(1),
                                          what="dropout_forward")), "y in training", x.shape)
    except StudentError as error:
        return CheckResult(name, False, findings + [f"training=True: {error}"])
    if not np.array_equal(given, x):
        return CheckResult(name, False, findings + ["training=True: dropout_forward changed x in place"],
                           "return a new array, y = x * mask / (1 - rate)")
    dropped = y == 0
    fraction = float(dropped.mean())
    sigma = np.sqrt(rate * (1 - rate) / x.size)
    kept_ratio = y[~dropped] / x[~dropped] if (~dropped).any() else np.array([np.nan])
    if abs(fraction - (1 - rate)) < 5 * sigma:
        return CheckResult(name, False, findings + [f"training=True: {fraction:.3f} of the elements are 0 for "
                                                    f"rate={rate}"],
                           "rate is the probability of *dropping* an element (as PyTorch and Keras): keep it with "
                           "probability 1 - rate, e.g. mask = rng.random(x.shape) >= rate")
    if abs(fraction - rate) > 5 * sigma:
        return CheckResult(name, False, findings + [f"training=True: {fraction:.3f} of the elements are 0, expected "
                                                    f"about rate = {rate}"],
                           "draw one uniform number per element and drop the element when it is below rate")
    if not np.allclose(kept_ratio, 1 / (1 - rate), rtol=tolerance(1e-9, *raw)):
        if np.allclose(kept_ratio, 1.0):
            hint = ("the kept elements are not rescaled: inverted dropout divides them by 1 - rate so that the "
                    "expected output equals x (and inference needs no change)")
        elif np.allclose(kept_ratio, 1 - rate):
            hint = "divide the kept elements by 1 - rate (the keep probability), do not multiply"
        elif np.allclose(kept_ratio, 1 / rate):
            hint = "divide by the keep probability, 1 - rate, not by rate"
        else:
            hint = "a kept element becomes x / (1 - rate)"
        got = float(np.median(kept_ratio))
        return CheckResult(name, False, findings + [f"training=True: kept elements are x times {got:.4g}, expected "
                                                    f"x times 1 / (1 - rate) = {1 / (1 - rate):.4g}"], hint)
    if np.array_equal(y == 0, y2 == 0):
        return CheckResult(name, False, findings + ["training=True: two calls with different generators dropped "
                                                    "exactly the same elements"],
                           "draw the mask from the rng you are given, e.g. rng.random(x.shape) >= rate")
    findings.append(f"training=True: {fraction:.4f} of the elements dropped (rate {rate}), the others scaled by "
                    f"1 / (1 - rate) = {1 / (1 - rate):.4g}; a new mask every call")
    return CheckResult(name, True, findings)
