"""Argument checks of the model API: mistakes reported in words, before they give wrong numbers.

Each check here replaces a result that used to be silently wrong:

==============================================  =============================================
mistake                                         what happened before
==============================================  =============================================
``fit(batch_size=-1)`` / ``0`` / ``2.7``        loss 0.0 after zero steps / ZeroDivisionError / 2
``fit(epochs=-1)``                              trained nothing, returned an empty History
a Softmax layer before ``SoftmaxCrossEntropy``  softmax applied twice (accuracy 0.34 instead of 0.57)
NaN in the targets                              blamed on the learning rate, after a training step
x finite in float64, beyond float32's range     became inf after the cast, then NaN
a loss growing to 1e11 .. 1e30                  trained on silently
==============================================  =============================================
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np

from .backend import get_array_module, is_gpu_array, to_numpy
from .errors import DataError, DivergenceWarning

DIVERGENCE_FACTOR = 1e6
""":class:`DivergenceWatch` warns when a minibatch loss exceeds this many times the first one
(or than 1, whichever is larger): six orders of magnitude is no noise."""


def check_int(value, what, minimum):
    """``int(value)`` for an integer ``>= minimum`` (Python or NumPy, not bool, not float);
    a TypeError or ValueError that names ``what`` otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{what} must be an int >= {minimum}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{what} must be an int >= {minimum}, got {value}")
    return int(value)


def check_real(value, what, low=-np.inf, high=np.inf, low_open=False, high_open=False):
    """``float(value)`` for a real number (not bool, not NaN) in the range from ``low`` to ``high``
    (each end excluded when ``*_open``); a TypeError or ValueError naming ``what`` otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be a number, got {value!r} ({type(value).__name__})")
    value = float(value)
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if np.isnan(value) or too_low or too_high:
        span = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{what} must lie in {span}{' (positive)' if low == 0 and low_open else ''}, got {value}")
    return value


def check_int_pair(value, what, minimum=1):
    """``(a, b)`` ints ``>= minimum`` from one int or a pair (a tile size, a window)."""
    pair = (value, value) if isinstance(value, numbers.Integral) else value
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise TypeError(f"{what} must be an int or a pair of ints, got {value!r}")
    return tuple(check_int(v, what, minimum) for v in pair)


def check_path(path, what):
    """A file path: a non-empty str or os.PathLike (``save("")`` used to end in a rename to '')."""
    import os

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{what}: the path must be a str or a pathlib.Path, got {type(path).__name__}")
    if not os.fspath(path):
        raise ValueError(f"{what}: the path is empty; give a file name, e.g. 'model.safetensors'")
    return path


def check_output_folder(out, what):
    """``out`` as a Path to a folder that exists (it is created) and takes files: checked before
    a long job starts, not after it (a file of that name, or a folder it cannot write into, is an
    OSError naming it)."""
    import tempfile
    from pathlib import Path

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{what}: the output folder {out} is a file; give a folder (a new name is created)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        raise OSError(f"{what}: cannot write into the output folder {out} ({e.strerror or e}); choose a folder "
                      "you can write to") from None
    return out


def check_class_weight(class_weight):
    """``class_weight``: None or a dict {class index (int >= 0): weight (finite, >= 0)}; a string
    key such as ``"0"`` (JSON's) would silently weigh nothing."""
    if class_weight is None:
        return None
    if not isinstance(class_weight, dict):
        raise TypeError(f"fit: class_weight must be a dict {{class: weight}}, got {type(class_weight).__name__}")
    for k, v in class_weight.items():
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, numbers.Integral):
            raise TypeError(f"fit: class_weight keys must be int class indices, got {k!r} ({type(k).__name__}); "
                            "write {0: 1.0, 1: 5.0}, e.g. {int(k): v for k, v in weights.items()}")
        check_int(k, "fit: a class_weight key", 0)
        check_real(v, f"fit: class_weight[{k}]", 0.0)
        if not np.isfinite(v):
            raise ValueError(f"fit: class_weight[{k}] must be finite, got {v}")
    return class_weight


def check_trainable(model, what):
    """A model whose layers are all frozen (``trainable=False``) has nothing to train."""
    if model.built and not model.trainable_params():
        raise ValueError(f"{what}: {model.name} has no trainable parameter (every layer is frozen, or the model "
                         "has no weights): training would change nothing. Set layer.trainable = True on the "
                         "layers to train")


def check_fit_arguments(epochs, batch_size, validation_split, shuffle, verbose, callbacks, nb_epoch=None):
    """Validate ``fit``'s arguments; returns ``(epochs, batch_size)`` as ints.

    ``nb_epoch`` is Keras 1's name for ``epochs``: accepted with a DeprecationWarning.
    """
    if nb_epoch is not None:
        warnings.warn("fit(nb_epoch=...) is Keras 1's name; write fit(epochs=...)", DeprecationWarning, stacklevel=3)
        if epochs not in (1, nb_epoch):
            raise ValueError(f"fit: got epochs={epochs} and nb_epoch={nb_epoch}; pass only epochs")
        epochs = nb_epoch
    epochs = check_int(epochs, "fit: epochs", 0)
    batch_size = check_int(batch_size, "fit: batch_size", 1)
    if isinstance(validation_split, bool) or not isinstance(validation_split, numbers.Real):
        raise TypeError(f"fit: validation_split must be a number in [0, 1), got {validation_split!r}")
    if not 0.0 <= validation_split < 1.0:
        raise ValueError(f"fit: validation_split must be in [0, 1), got {validation_split}")
    if not isinstance(shuffle, (bool, np.bool_)):
        raise TypeError(f"fit: shuffle must be True or False, got {shuffle!r}")
    if verbose not in (0, 1, 2) or isinstance(verbose, float):
        raise ValueError(f"fit: verbose must be 0 (silent), 1 (progress bar) or 2 (one line per epoch), "
                         f"got {verbose!r}")
    if callbacks is not None and not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"fit: callbacks must be a list of Callback objects, got {type(callbacks).__name__}")
    return epochs, batch_size


_APPLIED_TWICE = {
    "Softmax": "applies softmax and {name} applies it again (it takes logits, as PyTorch's CrossEntropyLoss). "
               "Remove the Softmax (predict then returns logits; hp.layers.activations.softmax(model.predict(x)) "
               "gives probabilities)",
    "Sigmoid": "applies a sigmoid and {loss} applies it again; remove the Sigmoid, or use "
               "BinaryCrossEntropy(from_logits=False)",
}


def check_output_matches_loss(model, loss):
    """Refuse a model whose last layer already applies the nonlinearity that ``loss`` applies
    itself: ``Softmax`` before ``SoftmaxCrossEntropy`` (softmax twice: the loss then sees
    probabilities as logits, and learning slows to a crawl), or ``Sigmoid`` before
    ``BinaryCrossEntropy(from_logits=True)``.

    The loss names the activation it applies (``loss.applies_activation``, e.g. ``"Softmax"``) and
    the layer is matched by class name along its class hierarchy: this module imports no layer and
    no loss (it sits below them: the thread settings and the engines use its checks too).
    """
    applied = getattr(loss, "applies_activation", None)
    calls = model._calls()
    if applied is None or not calls:
        return
    last = calls[-1]
    if any(_is_a(a, applied) for a in (last, getattr(last, "activation", None))):
        text = _APPLIED_TWICE.get(applied, "applies {activation} and {loss} applies it again; remove one")
        text = text.format(loss=repr(loss), name=type(loss).__name__, activation=applied)
        raise ValueError(f"compile: the last layer ({last.name}) {text}")


def _is_a(obj, class_name):
    """True when ``obj``'s class or one of its base classes is called ``class_name``."""
    return obj is not None and any(cls.__name__ == class_name for cls in type(obj).__mro__)


def as_array(a, what, name):
    """``a`` as an array (CuPy arrays kept); a ragged list or an unconvertible object is a
    ValueError naming ``what`` and ``name`` instead of NumPy's own message."""
    if is_gpu_array(a):
        return a
    if a is None:
        raise TypeError(f"{what}: {name} is None; pass an array")
    try:
        return np.asarray(a)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{what}: {name} cannot be read as one array (ragged rows, or mixed types?): {e}") from None


def check_compiled(model, what):
    """``fit`` and ``train_on_batch`` need a loss and an optimizer."""
    if model.loss is None or model.optimizer is None:
        raise RuntimeError(f"{what}: call model.compile(loss=..., optimizer=...) first")


def check_data(x, y, what, multi_input=False, dtype=np.float32, need_y=True):
    """``(x, y)`` checked and read as arrays (``x`` a list of arrays for a multi-input model):
    numeric, finite, within ``dtype``'s range, one target per sample. Every problem is reported in
    words, naming ``what`` (``"fit"``, ``"predict"``, ...), not as a traceback from a layer."""
    if multi_input:
        if not isinstance(x, (list, tuple)):
            raise ValueError(f"{what}: this model has several inputs; pass a list of arrays")
        x = [as_array(a, what, "x") for a in x]
    else:
        x = as_array(x, what, "x")  # a list of rows becomes one array
    for a in (x if isinstance(x, (list, tuple)) else [x]):
        check_inputs(a, what, dtype)
    counts = {len(a) for a in (x if isinstance(x, (list, tuple)) else [x])}
    if len(counts) != 1:
        raise ValueError(f"{what}: the inputs have different numbers of samples: {sorted(counts)}")
    n = counts.pop()
    if n == 0:
        raise ValueError(f"{what}: no samples (x is empty)")
    if y is None:
        if need_y:
            raise ValueError(f"{what}: targets y are missing")
        return x, None
    y = as_array(y, what, "y")
    if y.ndim == 0 or len(y) != n:
        raise ValueError(f"{what}: x has {n} samples but y has {'none' if y.ndim == 0 else len(y)}")
    check_targets(y, what)
    return x, y


def check_inputs(a, what, dtype):
    """One input array: a batch axis, numbers, all finite, representable in ``dtype``."""
    if a.ndim == 0:
        raise ValueError(f"{what}: x must have a batch axis, got a scalar")
    if a.dtype.kind not in "fiub":
        raise TypeError(f"{what}: x must be numeric, got dtype {a.dtype}")
    if a.dtype.kind in "fc" and not bool(get_array_module(a).isfinite(a).all()):
        raise ValueError(f"{what}: the input contains NaN or infinite values")
    check_cast_range(a, dtype, what)


def check_sample_weight(weight, n, what, y=None):
    """``sample_weight`` as an array with one entry (or one map) for each of ``n`` samples; a map
    must have the targets' shape ``y.shape`` (up to axes of length 1), never just their size."""
    w = weight if is_gpu_array(weight) else np.asarray(weight, dtype=np.float64)
    if w.ndim == 0 or len(w) != n:
        raise ValueError(f"{what}: sample_weight needs one entry (or one map) per sample: {n}, got shape "
                         f"{tuple(w.shape)}")
    if y is not None and w.ndim > 1:
        check_same_shape(w.shape, y.shape, what, "sample_weight", "the target array y")
    return w


def same_shape(a, b):
    """True when shapes ``a`` and ``b`` are equal once their axes of length 1 are dropped: a
    (N, H, W) mask fits a (N, 1, H, W) map, a (N, W, H) one does not (even with as many elements)."""
    return tuple(d for d in a if d != 1) == tuple(d for d in b if d != 1)


def check_same_shape(a, b, what, a_name, b_name):
    """A ValueError naming ``what`` and both arrays unless :func:`same_shape` (shapes, not sizes:
    a transposed (W, H) mask has as many elements as the (H, W) map and would scramble it)."""
    if not same_shape(tuple(a), tuple(b)):
        hint = " (a swapped height and width? transpose it)" if sorted(a) == sorted(b) else ""
        raise ValueError(f"{what}: {a_name} has shape {tuple(a)} and {b_name} shape {tuple(b)}; they must "
                         f"match, axes of length 1 aside{hint}")


def check_finite_scores(scores, what, name="scores"):
    """Metrics are undefined on NaN scores (a NaN ranks nowhere and compares False with every
    threshold): a ValueError that counts them. (±inf ranks, so it is allowed.)"""
    bad = np.count_nonzero(np.isnan(scores))
    if bad:
        raise ValueError(f"{what}: {bad} of {scores.size} {name} are NaN; the metric is undefined. "
                         "Fix the model's output (or leave those pixels out of the mask)")


def check_distributions(targets, what, tolerance=1e-3):
    """One-hot or soft targets (N, classes[, H, W]) must be distributions along axis 1: values
    in [0, 1] that sum to 1 (within ``tolerance``). One-hot x255 would multiply the loss by 255, a
    negative target make it negative, a row of ones count every class as right."""
    xp = get_array_module(targets)
    if bool(xp.any((targets < 0) | (targets > 1))) or not bool(xp.all(xp.isfinite(targets))):
        raise ValueError(f"{what}: one-hot / soft targets must lie in [0, 1], got values from "
                         f"{float(xp.nanmin(targets)):g} to {float(xp.nanmax(targets)):g}; divide by the maximum, "
                         "or pass class indices (N,)")
    sums = targets.sum(axis=1)
    worst = float(xp.abs(sums - 1).max()) if sums.size else 0.0
    if worst > tolerance:
        raise ValueError(f"{what}: one-hot / soft targets must sum to 1 over the classes (axis 1); some rows sum "
                         f"to {float(sums.reshape(-1)[int(xp.abs(sums - 1).argmax())]):g}. Normalize them "
                         "(t / t.sum(axis=1, keepdims=True)), or pass class indices (N,)")


def check_both_classes(vessels, fov, ids, what):
    """Every image of a set that chooses something (validation patients: the epoch, the threshold)
    must have vessel and background pixels inside its FOV: without them its AUC is NaN and any
    threshold's Dice 0 or 1, and the choice is made on nothing. A DataError naming the images."""
    bad = [str(ids[i]) for i in range(len(vessels))
           if not 0 < int(np.count_nonzero(np.asarray(vessels[i])[np.asarray(fov[i], bool)])) < int(np.sum(fov[i]))]
    if bad:
        raise DataError(f"{what}: the annotation of {', '.join(bad)} has no vessel (or no background) pixel inside "
                        "the FOV, so its AUC and Dice are undefined; fix the annotation or choose other patients")


def check_threshold(threshold, what):
    """A decision threshold must be a real, non-NaN number (``p > nan`` is False everywhere)."""
    if isinstance(threshold, (bool, np.bool_)) or not isinstance(threshold, numbers.Real):
        raise TypeError(f"{what}: threshold must be a number, got {threshold!r}")
    if np.isnan(threshold):
        raise ValueError(f"{what}: threshold is NaN; every comparison with it is False. Pass a number, e.g. 0.5")
    return float(threshold)


def check_dict_of_arrays(what, arrays):
    if not isinstance(arrays, dict):
        raise TypeError(f"{what}: expects a dict name -> array (as get_weights returns), "
                        f"got {type(arrays).__name__}")


def check_named_arrays(what, arrays, expected, owner):
    """``arrays`` (a dict name -> array) must hold exactly the names of ``expected`` (name ->
    the array it replaces), each numeric, finite and of the same shape. All problems are reported
    together in one ValueError that says nothing was changed (``set_weights`` is all-or-nothing)."""
    check_dict_of_arrays(what, arrays)
    problems = []
    missing = [k for k in expected if k not in arrays]
    extra = sorted(k for k in arrays if k not in expected)
    if missing:
        problems.append(f"missing {missing}")
    if extra:
        problems.append(f"unexpected {extra}")
    for k, old in expected.items():
        if k not in arrays:
            continue
        new = arrays[k]
        if not hasattr(new, "shape") or not hasattr(new, "dtype") or new.dtype.kind not in "fiu":
            problems.append(f"{k} is not a numeric array ({type(new).__name__})")
        elif tuple(new.shape) != tuple(old.shape):
            problems.append(f"{k} has shape {tuple(new.shape)}, the model's is {tuple(old.shape)}")
        elif not bool(get_array_module(new).isfinite(new).all()):
            problems.append(f"{k} contains NaN or infinite values")
    if problems:
        raise ValueError(f"{what}: the arrays do not fit {owner} (nothing was changed): " + "; ".join(problems))


def check_targets(y, what):
    """Targets must be numeric and finite: a NaN label is the data's fault, not the learning rate's."""
    if y.dtype.kind not in "fiub":
        raise TypeError(f"{what}: targets y must be numeric, got dtype {y.dtype}")
    if y.dtype.kind == "f":
        bad = ~get_array_module(y).isfinite(y)
        if bool(bad.any()):
            rows = np.unique(np.nonzero(to_numpy(bad).reshape(len(y), -1))[0])
            raise ValueError(f"{what}: the targets y contain NaN or infinite values (in {rows.size} samples, "
                             f"e.g. at indices {rows[:5].tolist()}); clean or drop those samples")


def check_cast_range(a, dtype, what):
    """Values of float input ``a`` must survive the cast to the model's ``dtype`` (e.g. 1e39 is
    finite in float64 and inf in float32)."""
    dtype = np.dtype(dtype)
    if a.dtype.kind != "f" or dtype.kind != "f" or np.finfo(a.dtype).max <= np.finfo(dtype).max or a.size == 0:
        return
    biggest = float(get_array_module(a).abs(a).max())
    if biggest > float(np.finfo(dtype).max):
        raise ValueError(f"{what}: x has values up to {biggest:.3g}, beyond the largest {dtype.name} "
                         f"({float(np.finfo(dtype).max):.3g}); they would become inf in the model's dtype. "
                         "Rescale (normalize) the inputs")


class DivergenceWatch:
    """Warns once (:class:`handprop.DivergenceWarning`) when the training loss explodes: a minibatch
    loss above ``DIVERGENCE_FACTOR`` times the first one of this ``fit`` (or than 1, whichever is
    larger). A non-finite loss is an error raised by ``train_step`` itself."""

    def __init__(self):
        self.first = None
        self.warned = False

    def update(self, loss, lr):
        if self.first is None:
            self.first = float(loss)
            return
        if not self.warned and loss > DIVERGENCE_FACTOR * max(self.first, 1.0):
            self.warned = True
            warnings.warn(
                f"training is diverging: the loss grew from {self.first:.4g} to {loss:.4g}; the learning rate "
                f"({lr}) is probably too high (try 10x smaller), or the inputs or targets are unnormalized",
                DivergenceWarning, stacklevel=4,
            )
