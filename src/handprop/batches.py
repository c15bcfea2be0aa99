"""Where training batches come from, and the weights that go with them.

``model.fit`` takes its data in one of two forms:

* **arrays** ``x, y`` (and optionally ``sample_weight``): an epoch is one pass over a fresh random
  permutation of the samples, cut into minibatches (no sampling with replacement);
* a **batch source**: any object that hands out batches, e.g. a patch sampler that draws new,
  augmented patches every epoch. Batches are tuples ``(x, y)`` or ``(x, y, weight)``. For epoch
  ``e`` the model asks, in this order:

  - ``source.epoch(e)`` if the source has such a method (an iterable of this epoch's batches;
    a source that derives epoch ``e``'s draws from ``e`` makes training resumable exactly);
  - ``iter(source)`` for a re-iterable object (a list of batches, a sampler with ``__iter__``);
  - a generator or other one-shot iterator is drawn from ``steps_per_epoch`` batches at a time
    (Keras' rule: it never ends by itself).

  ``len(source)``, when defined, is the number of batches per epoch (for the progress bar).

:func:`epoch_batches` is the one iterator over either form that ``fit``, ``evaluate`` and
``predict`` use (:mod:`handprop.training`).

**Weights.** A batch's ``weight`` is one number per sample (N,) or per element of the loss
(a field-of-view mask (N, H, W) for a vessel map (N, 1, H, W)); the loss becomes the weighted
mean (:mod:`handprop.losses`). ``class_weight={0: 1.0, 1: 5.0}`` multiplies in a weight by the
target's class (vessel pixels count 5 times), for integer labels, one-hot rows and 0/1 maps alike.
"""

from __future__ import annotations

import itertools

import numpy as np

from .backend import get_array_module, is_gpu_array
from .checks import same_shape


def is_batch_source(x) -> bool:
    """True for objects that hand out batches (see the module docstring), False for array data.

    A list is a list of batches when its items are tuples ``(x, y[, w])``; a list of arrays is the
    input of a multi-input model.
    """
    if isinstance(x, (list, tuple)):
        return len(x) > 0 and all(isinstance(b, tuple) for b in x)
    if isinstance(x, np.ndarray) or is_gpu_array(x) or hasattr(x, "__array__"):
        return False
    return hasattr(x, "epoch") or hasattr(x, "__iter__") or hasattr(x, "__next__")


def source_length(source, steps_per_epoch=None):
    """Batches per epoch, when known: ``steps_per_epoch``, else ``len(source)``, else None."""
    if steps_per_epoch is not None:
        return int(steps_per_epoch)
    try:
        return len(source)
    except TypeError:
        return None


def source_batches(source, epoch, steps_per_epoch=None, what="fit"):
    """An iterator over epoch ``epoch``'s batches of a batch source (module docstring)."""
    if hasattr(source, "epoch") and callable(source.epoch):
        batches = iter(source.epoch(epoch))
    elif iter(source) is source:  # a generator: it has no epochs, so take steps_per_epoch batches
        if steps_per_epoch is None:
            raise ValueError(f"{what}: a generator never ends by itself; pass steps_per_epoch= "
                             "(the number of batches that make one epoch)")
        batches = source
    else:
        batches = iter(source)
    return batches if steps_per_epoch is None else itertools.islice(batches, int(steps_per_epoch))


def unpack_batch(batch, what="fit"):
    """``(x, y, weight)`` from a batch ``(x, y)`` or ``(x, y, weight)``; a TypeError otherwise."""
    if isinstance(batch, (tuple, list)) and len(batch) in (2, 3):
        x, y = batch[0], batch[1]
        return x, y, (batch[2] if len(batch) == 3 else None)
    raise TypeError(f"{what}: a batch source must yield tuples (x, y) or (x, y, weight), got "
                    f"{type(batch).__name__}{'' if not isinstance(batch, (tuple, list)) else f' of {len(batch)}'}")


def array_batches(n, batch_size, rng=None, shuffle=True):
    """The rows of each minibatch of one epoch: a fresh permutation of ``range(n)`` drawn from
    ``rng`` cut into ``batch_size`` pieces, the last one shorter; without ``shuffle`` the natural
    order, as slices (views, no copies)."""
    if not shuffle:
        return [slice(i, i + batch_size) for i in range(0, n, batch_size)]
    order = rng.permutation(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def as_list(x):
    """``x`` as a list of arrays: a multi-input model's list as it is, one array as ``[x]``."""
    return list(x) if isinstance(x, (list, tuple)) else [x]


def n_samples(x):
    """The number of samples (rows) of an array, or of each array of a list."""
    return len(as_list(x)[0])


def take(x, rows):
    """Rows ``rows`` (an index array or a slice) of an array, or of each array of a list."""
    if isinstance(x, (list, tuple)):
        return [xi[rows] for xi in x]
    return x[rows]


def epoch_batches(x, y=None, weight=None, *, epoch=0, batch_size=32, rng=None, shuffle=False, steps=None,
                  what="fit"):
    """The batches ``(x, y, weight)`` of epoch ``epoch``, from a batch source or from arrays.

    A batch source (module docstring): its batches for ``epoch`` (``steps`` of them for a
    generator), each unpacked to three entries. Arrays ``x`` (a list of arrays for a multi-input
    model), ``y`` and ``weight`` (either may be None): ``batch_size`` rows at a time, in a fresh
    permutation drawn from ``rng`` when ``shuffle`` (training), else in order (evaluation).
    """
    if is_batch_source(x):
        return (unpack_batch(batch, what) for batch in source_batches(x, epoch, steps, what))
    return ((take(x, rows), None if y is None else y[rows], None if weight is None else weight[rows])
            for rows in array_batches(n_samples(x), batch_size, rng, shuffle))


def class_weights(y, class_weight):
    """One weight per target element from ``class_weight`` ({class: weight}).

    Integer labels (N,) or (N, H, W) map directly; one-hot rows (N, classes[, H, W]) by their
    argmax over axis 1; 0/1 float maps (binary segmentation) by their value. Classes missing from
    the dict weigh 1.
    """
    xp = get_array_module(y)
    y = xp.asarray(y)
    if y.dtype.kind in "iub":
        labels = y.astype(np.int64)
    else:
        hard = bool(xp.all((y == 0) | (y == 1)))
        if not hard:
            raise ValueError("class_weight needs hard labels (class indices, one-hot rows or 0/1 maps); "
                             "the targets hold soft values")
        # one-hot needs a class axis: (N, classes) or (N, classes, H, W); (N, H, W) maps are labels
        one_hot = y.ndim != 3 and y.ndim >= 2 and y.shape[1] > 1 and bool(xp.all(y.sum(axis=1) == 1))
        labels = y.argmax(axis=1) if one_hot else y.astype(np.int64)
    table = np.ones(int(max(int(labels.max()) + 1 if labels.size else 1, max(class_weight) + 1)), np.float64)
    for k, v in class_weight.items():
        if not isinstance(k, (int, np.integer)) or k < 0 or not np.isfinite(v) or v < 0:
            raise ValueError(f"class_weight: classes must be ints >= 0 and weights finite and >= 0, got {k!r}: {v!r}")
        table[int(k)] = float(v)
    return xp.asarray(table)[labels]


def combine_weights(first, second):
    """The product of two weight arrays, either of them per sample (N,) or per element (or None);
    two maps must have one shape (axes of length 1 aside), not just as many elements."""
    if first is None or second is None:
        return second if first is None else first
    xp = get_array_module(first)
    first, second = xp.asarray(first), xp.asarray(second)
    if first.ndim < second.ndim:
        first, second = second, first
    if second.ndim == 1 and first.ndim > 1 and len(second) == len(first):
        second = second.reshape((-1,) + (1,) * (first.ndim - 1))
    elif same_shape(second.shape, first.shape):  # one per element both, e.g. a FOV (N, H, W) for (N, 1, H, W)
        second = second.reshape(first.shape)
    else:
        raise ValueError(f"weights of shapes {tuple(first.shape)} and {tuple(second.shape)} (sample_weight and "
                         "class_weight) do not fit each other: give one weight per sample (N,) or a map of the "
                         "targets' shape")
    return first * second


class Totals:
    """Running means over an epoch: the loss weighted by each batch's ``Σ w`` (exact for masks and
    sample weights); the metrics per sample, or, when the batch has one weight per element (a FOV
    mask), over the elements whose weight is > 0 (a metric that takes ``mask=`` gets it)."""

    def __init__(self, metrics):
        self.metrics = metrics
        self.loss = self.weight = 0.0
        self.sums = {name: 0.0 for name, _ in metrics}
        self.counts = {name: 0.0 for name, _ in metrics}
        self.count = 0

    def add(self, loss, total_weight, pred, y, weight=None):
        self.loss += loss * total_weight
        self.weight += total_weight
        self.count += len(y)
        mask = None
        if weight is not None and weight.ndim > 1 and same_shape(weight.shape, y.shape):
            xp = get_array_module(weight)
            mask = (xp.asarray(weight) > 0).reshape(y.shape)
        for name, fn in self.metrics:
            if mask is not None and _takes_mask(fn):
                n = float(mask.sum())
                if n > 0:
                    self.sums[name] += fn(pred, y, mask=mask) * n
                    self.counts[name] += n
            else:
                self.sums[name] += fn(pred, y) * len(y)
                self.counts[name] += len(y)

    def means(self):
        """The means; the loss is NaN when every weight was 0 (a mean over nothing, not 0.0)."""
        return {"loss": self.loss / self.weight if self.weight > 0 else float("nan"),
                **{k: v / self.counts[k] if self.counts[k] > 0 else 0.0 for k, v in self.sums.items()}}


def _takes_mask(fn):
    import inspect

    target = getattr(fn, "func", fn)  # functools.partial
    try:
        return "mask" in inspect.signature(target).parameters
    except (TypeError, ValueError):
        return False
