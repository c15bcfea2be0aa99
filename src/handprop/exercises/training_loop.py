"""Checkers for assignment 4 (the training loop): minibatches, one step, evaluation, the loop, a trained CNN.

The student's functions, on handprop's model / loss / optimizer objects (not ``fit``)::

    minibatches(n, batch_size, rng) -> [index array, ...]      one epoch: a shuffled partition of range(n)
    train_step(model, loss, optimizer, xb, yb) -> float         forward, loss, backward, optimizer step
    evaluate(model, loss, x, y, batch_size) -> (loss, accuracy) inference mode, batch by batch
    train(model, loss, optimizer, x, y, x_val, y_val, epochs, batch_size, seed) -> history
        rng = np.random.default_rng(seed); per epoch: minibatches(len(x), batch_size, rng), a
        train_step on each; then evaluate on the validation set; history = {"loss": [...],
        "val_loss": [...], "val_accuracy": [...]} (training loss: the epoch's mean over samples)
    cnn: a model the notebook trained with ``train`` on the digits, graded on the test digits

Each is compared with the same computation written with the library's objects (a small CNN with
batch norm, so that ``training=True/False`` matters), exactly (float64); the library's own loops
(``fit``, ``evaluate``, ``train_on_batch``, ``train_step``) are switched off while the student's
code runs.
"""

from __future__ import annotations

import numpy as np

from .. import layers, losses, optimizers
from ..backend import engine
from ..data import load_digits
from ..model import Sequential
from .grading import as_student, grades
from .result import CheckResult, StudentError, call_student, describe_difference, worst_entry

__all__ = ["check_minibatches", "check_train_step", "check_evaluate", "check_train", "check_cnn"]

RTOL = 1e-9
CNN_ACCURACY = 0.9


# ----------------------------------------------------------------------------------------- minibatches
@grades("minibatches")
def check_minibatches(minibatches):
    """Grade ``minibatches(n, batch_size, rng)``: a shuffled partition of ``range(n)`` in batches of
    ``batch_size`` (the last one smaller), a new order every call, drawn from ``rng`` only."""
    name = "minibatches"
    minibatches = as_student(minibatches)
    n, size = 103, 10
    try:
        rng = np.random.default_rng(0)
        epochs = [call_student(minibatches, n, size, rng, what="minibatches") for _ in range(2)]
        again = call_student(minibatches, n, size, np.random.default_rng(0), what="minibatches")
        epochs = [[np.asarray(b).astype(np.int64).reshape(-1) for b in e] for e in epochs]
        again = [np.asarray(b).astype(np.int64).reshape(-1) for b in again]
    except StudentError as error:
        return CheckResult(name, False, [str(error)])
    except (TypeError, ValueError) as error:
        return CheckResult(name, False, [f"minibatches must return a list of index arrays ({error})"])
    first = epochs[0]
    flat = np.concatenate(first) if first else np.array([], dtype=np.int64)
    sizes = [len(b) for b in first]
    if len(np.unique(flat)) < len(flat):
        return CheckResult(name, False, [f"n={n}: some samples appear twice in one epoch"],
                           "an epoch is one pass over a permutation: rng.permutation(n), no draws with replacement")
    if sorted(flat.tolist()) != list(range(n)):
        missing = n - len(flat)
        hint = (f"keep the last, smaller batch (the {n % size} samples left over)"
                if missing == n % size and all(s == size for s in sizes) else
                "every sample once per epoch: split rng.permutation(n) into consecutive batches")
        return CheckResult(name, False, [f"n={n}: the batches hold {len(flat)} indices, {missing} samples missing"],
                           hint)
    if sizes != [size] * (n // size) + [n % size]:
        return CheckResult(name, False, [f"batch sizes {sizes}, expected {[size] * (n // size) + [n % size]}"],
                           "consecutive batches of batch_size, the remainder last: order[i : i + batch_size]")
    if np.array_equal(flat, np.arange(n)):
        return CheckResult(name, False, ["the samples come in their stored order"],
                           "shuffle: minibatches of a permutation (rng.permutation(n)), so that each batch is a "
                           "random sample and consecutive batches are not alike")
    if np.array_equal(flat, np.concatenate(epochs[1])):
        return CheckResult(name, False, ["two epochs (two calls with the same rng) came in the same order"],
                           "draw a new permutation from rng at every call (do not seed a new generator inside)")
    if not np.array_equal(flat, np.concatenate(again)):
        return CheckResult(name, False, ["two fresh rngs with the same seed gave different orders"],
                           "draw from the rng you are given (rng.permutation), not from np.random's global state")
    return CheckResult(name, True, [f"n={n}, batch_size={size}: a new permutation each epoch, batches {sizes[:2]}"
                                    f"...{sizes[-1:]}, reproducible from the rng"])


# ----------------------------------------------------------------------------------------------- models
def _model(seed=0):
    """A small CNN in float64 (so the comparisons are exact), with batch norm: training=True/False matters."""
    model = Sequential([layers.Conv2D(4, 3, padding="same"), layers.BatchNorm(), layers.ReLU(), layers.MaxPool2D(2),
                        layers.Flatten(), layers.Dense(10)], seed=seed)
    model.build((1, 8, 8), dtype=np.float64)
    return model


def _data(n=53, seed=1):
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, 8, 8)), rng.integers(0, 10, n)


def _weights(model):
    return {**{k: v.copy() for k, v in model.named_params().items()},
            **{k: v.copy() for k, v in model.get_state().items()}}


def _max_difference(a, b):
    return max(worst_entry(a[k], b[k])[0] for k in a)


def _reference_step(model, loss, optimizer, xb, yb, training=True):
    value = loss.forward(model.forward(xb, training=training), yb)
    model.backward(loss.backward())
    optimizer.step(model.trainable_params(), model.named_grads())
    return float(value)


def _reference_evaluate(model, loss, x, y, batch_size, training=False, weighted=True):
    total = correct = 0.0
    means = []
    for i in range(0, len(x), batch_size):
        pred = model.forward(x[i: i + batch_size], training=training)
        value = loss.forward(pred, y[i: i + batch_size])
        total += value * len(pred)
        means.append(value)
        correct += float(np.sum(np.argmax(pred, axis=1) == y[i: i + batch_size]))
    return (total / len(x) if weighted else float(np.mean(means))), correct / len(x)


def _setup():
    model = _model()
    return model, losses.SoftmaxCrossEntropy(), optimizers.SGD(lr=0.1, momentum=0.9)


# ------------------------------------------------------------------------------------------- train_step
def _check_train_step(train_step):
    """Grade ``train_step(model, loss, optimizer, xb, yb) -> loss before the step`` over 3 steps."""
    name = "one training step"
    train_step = as_student(train_step)
    x, y = _data()
    mine, theirs = _setup(), _setup()
    start = _weights(theirs[0])
    for t in range(3):
        xb, yb = x[t * 16: (t + 1) * 16], y[t * 16: (t + 1) * 16]
        expected = _reference_step(*mine, xb, yb)
        try:
            got = call_student(train_step, *theirs, xb.copy(), yb.copy(), what="train_step")
            got = float(got)
        except StudentError as error:
            return CheckResult(name, False, [f"step {t + 1}: {error}"])
        except (TypeError, ValueError):
            return CheckResult(name, False, [f"step {t + 1}: train_step returned {type(got).__name__}"],
                               "return the batch's loss as a number: the value loss.forward(pred, yb) gave")
        after, wanted = _weights(theirs[0]), _weights(mine[0])
        if _max_difference(after, start) == 0:
            return CheckResult(name, False, [f"step {t + 1}: the weights did not change"],
                               "after backward, update: optimizer.step(model.trainable_params(), model.named_grads())")
        if _max_difference(after, wanted) >= RTOL or not abs(got - expected) <= RTOL * max(1.0, abs(expected)):
            replay = _setup()
            for s in range(t + 1):
                _reference_step(*replay, x[s * 16: (s + 1) * 16], y[s * 16: (s + 1) * 16], training=False)
            hint = ("forward with training=True: batch norm normalizes with the batch's statistics while training "
                    "(and updates its running averages)" if _max_difference(after, _weights(replay[0])) < RTOL
                    else "pred = model.forward(xb, training=True); value = loss.forward(pred, yb); "
                         "model.backward(loss.backward()); optimizer.step(model.trainable_params(), "
                         "model.named_grads()); return value")
            findings = [f"step {t + 1}: the loss you returned is {got:.6g}, expected {expected:.6g}"
                        if not abs(got - expected) <= RTOL * max(1.0, abs(expected)) else
                        f"step {t + 1}: the weights after the step differ from forward-loss-backward-step's "
                        f"(max relative error {_max_difference(after, wanted):.2g})"]
            return CheckResult(name, False, findings, hint)
        start = after
    return CheckResult(name, True, ["3 steps of a small CNN with batch norm: the returned losses and the weights "
                                    "match forward, loss, backward and the optimizer's step"])


# --------------------------------------------------------------------------------------------- evaluate
def _check_evaluate(evaluate):
    """Grade ``evaluate(model, loss, x, y, batch_size) -> (mean loss, accuracy)`` in inference mode."""
    name = "evaluation"
    evaluate = as_student(evaluate)
    x, y = _data()
    model, loss, optimizer = _setup()
    for _ in range(2):  # some training, so that running statistics differ from batch statistics
        _reference_step(model, loss, optimizer, x[:32], y[:32])
    before = _weights(model)
    expected = _reference_evaluate(model, loss, x, y, 10)
    try:
        out = call_student(evaluate, model, loss, x.copy(), y.copy(), 10, what="evaluate")
        got = tuple(float(v) for v in out)
        if len(got) != 2:
            raise ValueError
    except StudentError as error:
        return CheckResult(name, False, [str(error)])
    except (TypeError, ValueError):
        return CheckResult(name, False, ["evaluate must return (mean loss, accuracy)"])
    changed = _max_difference(_weights(model), before) > 0
    findings = [f"53 samples in batches of 10: you got loss {got[0]:.6g}, accuracy {got[1]:.4g}; "
                f"expected {expected[0]:.6g}, {expected[1]:.4g}"]
    if changed:
        return CheckResult(name, False, findings + ["evaluating changed the model's weights or running statistics"],
                           "evaluate with model.forward(x, training=False): no dropout, batch norm's running "
                           "statistics, nothing updated (and no backward or optimizer step)")
    if abs(got[0] - expected[0]) <= RTOL * abs(expected[0]) and abs(got[1] - expected[1]) <= 1e-12:
        return CheckResult(name, True, ["53 samples in batches of 10 (the last one 3): the mean loss and the "
                                        "accuracy match, in inference mode"])
    unweighted = _reference_evaluate(model, loss, x, y, 10, weighted=False)[0]
    if abs(got[0] - unweighted) <= RTOL * abs(unweighted):
        hint = ("the mean of the batch means over-weighs the small last batch: add loss * len(batch), "
                "divide by the number of samples")
    elif abs(got[1] - expected[1]) > 1e-12 and abs(got[0] - expected[0]) <= RTOL * abs(expected[0]):
        hint = "accuracy: the share of samples whose largest output (argmax over axis 1) is the label"
    else:
        hint = "pred = model.forward(xb, training=False) per batch; the loss's mean over all samples, and the accuracy"
    return CheckResult(name, False, findings, hint)


# ------------------------------------------------------------------------------------------------ train
def _reference_train(minibatches, x, y, xv, yv, epochs, batch_size, seed, reseed=False):
    model, loss, optimizer = _setup()
    rng = np.random.default_rng(seed)
    history = {"loss": [], "val_loss": [], "val_accuracy": []}
    for _ in range(epochs):
        if reseed:
            rng = np.random.default_rng(seed)
        total = 0.0
        for idx in call_student(minibatches, len(x), batch_size, rng, what="minibatches"):
            idx = np.asarray(idx)
            total += _reference_step(model, loss, optimizer, x[idx], y[idx]) * len(idx)
        history["loss"].append(total / len(x))
        val_loss, val_accuracy = _reference_evaluate(model, loss, xv, yv, batch_size)
        history["val_loss"].append(val_loss)
        history["val_accuracy"].append(val_accuracy)
    return model, history


def _check_train(minibatches, train):
    """Grade ``train(model, loss, optimizer, x, y, x_val, y_val, epochs, batch_size, seed) -> history``
    against the same loop written with the student's ``minibatches`` and the library's objects."""
    name = "the training loop"
    minibatches, train = as_student(minibatches), as_student(train)
    x, y = _data(53, 1)
    xv, yv = _data(21, 2)
    epochs, batch_size, seed = 3, 10, 5
    try:
        expected_model, expected = _reference_train(minibatches, x, y, xv, yv, epochs, batch_size, seed)
    except StudentError as error:
        return CheckResult(name, False, [str(error)])
    except Exception as error:  # the student's minibatches broke the reference loop
        return CheckResult(name, False, [f"your minibatches does not work yet ({type(error).__name__}): "
                                         "its task says why"])
    model, loss, optimizer = _setup()
    try:
        history = call_student(train, model, loss, optimizer, x.copy(), y.copy(), xv.copy(), yv.copy(), epochs,
                               batch_size, seed, what="train")
        if not isinstance(history, dict):
            raise StudentError(f"train returned {type(history).__name__}: return the history dict")
        missing = [k for k in expected if k not in history]
        if missing:
            raise StudentError(f"the history has no {missing[0]!r}: keys 'loss', 'val_loss', 'val_accuracy'")
        for key in expected:
            if len(history[key]) != epochs:
                raise StudentError(f"history[{key!r}] has {len(history[key])} values for {epochs} epochs: "
                                   "one per epoch")
    except StudentError as error:
        return CheckResult(name, False, [str(error)])
    weights_error = _max_difference(_weights(model), _weights(expected_model))
    if weights_error >= RTOL:
        _, reseeded = _reference_train(minibatches, x, y, xv, yv, epochs, batch_size, seed, reseed=True)
        hint = ("the same batches every epoch: make one rng = np.random.default_rng(seed) before the epochs and "
                "pass it to minibatches each epoch" if np.allclose(history["loss"], reseeded["loss"], rtol=1e-9)
                else "per epoch: for idx in minibatches(len(x), batch_size, rng): train_step(model, loss, optimizer, "
                     "x[idx], y[idx]); then evaluate(model, loss, x_val, y_val, batch_size)")
        return CheckResult(name, False, [f"after {epochs} epochs the weights differ from the reference loop's "
                                         f"(max relative error {weights_error:.2g})"], hint)
    for key in expected:
        got = np.asarray(history[key], dtype=np.float64)
        if worst_entry(got, expected[key])[0] >= 1e-7:
            hint = {"loss": "the epoch's training loss is the mean over its samples: sum loss * len(batch), "
                            "divide by len(x)",
                    "val_loss": "validate after each epoch with evaluate(model, loss, x_val, y_val, batch_size)",
                    "val_accuracy": "validate after each epoch with evaluate(model, loss, x_val, y_val, batch_size)"}
            return CheckResult(name, False, [describe_difference(f"history[{key!r}]", got, expected[key])], hint[key])
    return CheckResult(name, True, [f"{epochs} epochs of a small CNN: the weights and the history match the "
                                    "reference loop built from your minibatches"])


# ------------------------------------------------------------------------------ on the numpy engine
# The checks compare float64 numbers exactly; the numpy engine needs no compilation (no notice on
# stderr in a notebook) and is the same on every machine.
@grades("train_step")
def check_train_step(train_step):
    """Grade ``train_step(model, loss, optimizer, xb, yb) -> loss before the step`` over 3 steps."""
    with engine("numpy"):
        return _check_train_step(train_step)


@grades("evaluate")
def check_evaluate(evaluate):
    """Grade ``evaluate(model, loss, x, y, batch_size) -> (mean loss, accuracy)`` in inference mode."""
    with engine("numpy"):
        return _check_evaluate(evaluate)


@grades("train")
def check_train(minibatches, train):
    """Grade ``train(model, loss, optimizer, x, y, x_val, y_val, epochs, batch_size, seed) -> history``
    against the same loop written with the student's ``minibatches`` and the library's objects."""
    with engine("numpy"):
        return _check_train(minibatches, train)


# -------------------------------------------------------------------------------------------------- cnn
@grades("cnn")
def check_cnn(cnn):
    """Grade the notebook's trained ``cnn``: accuracy on the test digits (``load_digits(flatten=False)``'s
    test split, which the notebook must not train on) of at least 0.9."""
    name = "a CNN trained with your loop"
    if not hasattr(cnn, "forward"):
        return CheckResult(name, False, [f"cnn is a {type(cnn).__name__}, not a model"],
                           "cnn = the hp.Sequential model you trained with train(...)")
    _, (x_test, y_test) = load_digits(flatten=False)
    try:
        pred = np.concatenate([np.asarray(cnn.forward(x_test[i: i + 256].astype(cnn_dtype(cnn)), training=False))
                               for i in range(0, len(x_test), 256)])
        accuracy = float(np.mean(np.argmax(pred.reshape(len(x_test), -1), axis=1) == y_test))
    except Exception as error:
        return CheckResult(name, False, [f"cnn could not classify the test digits (1, 8, 8): "
                                         f"{type(error).__name__}: {error}"])
    hint = ("cnn is at chance level: it is not trained yet (write Tasks 1-4, then run the training cell)"
            if accuracy < 0.2 else "train longer, or with a larger learning rate; check the validation curve")
    result = CheckResult(name, accuracy >= CNN_ACCURACY,
                         [f"accuracy on the {len(x_test)} test digits: {accuracy:.3f} (needed: {CNN_ACCURACY})"], hint)
    result.scores = {"accuracy": accuracy}
    return result


def cnn_dtype(model):
    params = model.named_params()
    return next(iter(params.values())).dtype if params else np.float32
