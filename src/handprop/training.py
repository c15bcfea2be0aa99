"""The training loop: what ``model.fit``, ``model.evaluate`` and ``model.predict`` do.

A model (:mod:`handprop.model`) holds layers and weights and knows one step: ``forward``,
``backward`` and ``train_step`` (forward, loss, backward, optimizer update on one batch). Going
through data is this module's job, as in Keras 3, where a Trainer drives the model::

    for epoch in range(initial_epoch, epochs):
        for x, y, w in epoch_batches(...):        # a fresh permutation of the samples, cut in batches
            loss, pred = model.train_step(x, y, w)
        logs = {"loss": ..., "accuracy": ...}     # the epoch's means (exact, weighted by each batch)
        logs.update(validate(model, ...))          # "val_loss", "val_accuracy": no weight changes
        callbacks: History records logs, EarlyStopping may set model.stop_training

An **epoch** is one pass over the training set: every sample once, in a new random order each
time (no sampling with replacement), or one epoch of a batch source (:mod:`handprop.batches`).
``evaluate`` runs the same batches in order with ``training=False`` (Dropout off, BatchNorm on
its running statistics) and no update; ``predict`` only collects the outputs. What ``fit``
prints is a callback too (:class:`handprop.callbacks.ProgressBar`).
"""

from __future__ import annotations

import numpy as np

from . import checks
from .backend import to_numpy
from .batches import (
    Totals,
    class_weights,
    combine_weights,
    epoch_batches,
    is_batch_source,
    n_samples,
    source_length,
    take,
)
from .callbacks import Callback, History, ProgressBar


# ----------------------------------------------------------------------------- fit
def fit(model, x, y=None, epochs=1, batch_size=32, validation_data=None, validation_split=0.0,
        shuffle=True, callbacks=None, verbose=1, sample_weight=None, class_weight=None,
        steps_per_epoch=None, initial_epoch=0, nb_epoch=None, validation_batch_size=None):
    """Train ``model`` for ``epochs`` epochs; returns a ``History`` (``model.fit`` calls this).

    Data: arrays ``x, y`` (x a list of arrays for a multi-input graph), with optional
    ``sample_weight`` (one per sample (N,), or per loss element, e.g. FOV masks (N, H, W));
    or a **batch source** ``x`` handing out ``(x, y)`` / ``(x, y, weight)`` batches, e.g. a
    patch sampler drawing fresh, augmented patches every epoch (:mod:`handprop.batches`;
    ``steps_per_epoch`` for generators). ``class_weight={class: weight}`` weights the loss by
    the target's class. ``validation_data``: ``(x, y)``, ``(x, y, weight)`` or a batch source.
    ``validation_split`` holds out the **last** fraction of the array samples, before
    shuffling (as Keras); ``validation_batch_size`` defaults to ``batch_size``.
    ``initial_epoch``: the number of the first epoch (to continue a run). A batch source's epochs
    continue ``model.epochs_trained`` (the epochs this model has trained): a second ``fit`` on the
    same model draws epoch 2's tiles, not epoch 0's again, with or without ``initial_epoch``.
    ``verbose``: 0 silent, 1 a progress bar per epoch, 2 one line per epoch.
    ``nb_epoch`` (Keras 1) is accepted for ``epochs`` with a DeprecationWarning. A loss that
    explodes (x 1e6) raises a :class:`handprop.DivergenceWarning` naming the learning rate.
    """
    checks.check_compiled(model, "fit")
    epochs, batch_size = checks.check_fit_arguments(epochs, batch_size, validation_split, shuffle, verbose,
                                                    callbacks, nb_epoch)
    initial_epoch = checks.check_int(initial_epoch, "fit: initial_epoch", 0)
    class_weight = checks.check_class_weight(class_weight)
    checks.check_output_matches_loss(model, model.loss)
    x, y, sample_weight, validation_data = _training_data(model, x, y, sample_weight, validation_data,
                                                          validation_split)
    steps = source_length(x, steps_per_epoch) if is_batch_source(x) else -(-n_samples(x) // batch_size)
    progress, history = ProgressBar(verbose), History()
    callbacks = [progress, *(callbacks or []), history]  # History last: it records what the others logged
    _set_up(callbacks, model, {"epochs": epochs, "steps": steps, "verbose": verbose})
    model.stop_training = False
    model._divergence = checks.DivergenceWatch()  # warns against this fit's own first loss
    # a batch source draws epoch e from (seed, e): a second fit continues its count, not epoch 0's draws again
    shift = max(0, model.epochs_trained - initial_epoch)
    try:
        _call(callbacks, "on_train_begin", {})
        for epoch in range(initial_epoch, epochs):
            logs: dict = {}  # one dict from on_epoch_begin to on_epoch_end: a callback may write into it
            _call(callbacks, "on_epoch_begin", epoch, logs)
            batches = epoch_batches(x, y, sample_weight, epoch=epoch + shift, batch_size=batch_size,
                                    rng=model._shuffle_rng, shuffle=shuffle, steps=steps_per_epoch)
            totals = train_epoch(model, batches, class_weight, callbacks, check=is_batch_source(x))
            if totals.count == 0:
                raise ValueError(f"fit: epoch {epoch + 1} had no batches (an empty or exhausted batch source?)")
            logs.update(totals.means())
            model.epochs_trained = epoch + shift + 1
            if validation_data is not None:
                logs.update(validate(model, validation_data, validation_batch_size or batch_size))
            _call(callbacks, "on_epoch_end", epoch, logs)
            if model.stop_training:
                break
        _call(callbacks, "on_train_end", {})
    finally:
        progress.close()  # also when a step fails: no half-drawn bar left open
    return history


def train_epoch(model, batches, class_weight=None, callbacks=(), check=False):
    """One training step per batch of ``batches`` (``(x, y, weight)`` triples); returns the
    running :class:`~handprop.batches.Totals` (the epoch's mean loss and metrics).

    ``check``: check each batch as ``fit`` checks arrays (for a batch source, whose batches ``fit``
    sees only now). Each callback's ``on_batch_end`` gets ``{"batch", "size", "loss"}``.
    """
    totals = Totals(model.metrics)
    for b, (xb, yb, wb) in enumerate(batches):
        if check:
            xb, yb = checks.check_data(xb, yb, "fit (a batch of the source)", model.multi_input, model.dtype)
        xb, yb = model._prepare(xb), model._prepare_targets(yb)
        wb = combine_weights(None if wb is None else model._prepare_targets(wb),
                             None if class_weight is None else class_weights(yb, class_weight))
        model.ensure_built(xb)
        if b == 0:
            checks.check_trainable(model, "fit")
        loss, pred = model.train_step(xb, yb, wb)
        totals.add(loss, model.loss.total_weight, pred, yb, wb)
        _call(callbacks, "on_batch_end", b, {"batch": b, "size": len(yb), "loss": loss})
    return totals


def recalibrate_batchnorm(model, batches, max_batches=None):
    """Replace every BatchNorm layer's running statistics by their average over ``batches``.

    During training each BatchNorm keeps an exponential moving average of its batch statistics
    (``running = (1 - momentum) running + momentum batch``), dominated by the last few batches of
    weights that were still moving. With small batches (two 192-px tiles, as the dilated context
    net trains on) that average is noisy, and inference on its constants differs from what the
    net saw in training. This pass ("precise BatchNorm", Wu & Johnson, 2021) runs the trained,
    now fixed, network forward in training mode over ``batches`` (arrays ``x`` or ``(x, y, ...)``
    tuples, e.g. a :class:`~handprop.data.TileSampler`; at most ``max_batches``) and sets::

        running_mean = mean_k mean_B(x)        running_var = mean_k var_B(x) * m / (m - 1)

    per feature, the average over the K batches of each batch's statistics (``m`` values per
    feature in a batch, the unbiased correction the layer uses). Weights do not change. Returns
    the number of batches used.
    """
    from .layers import BatchNorm

    norms = [layer for layer in _all_layers(model) if isinstance(layer, BatchNorm)]
    if not norms:
        raise ValueError(f"recalibrate_batchnorm: {type(model).__name__} has no BatchNorm layer")
    momenta = [layer.momentum for layer in norms]
    k = 0
    try:
        for k, batch in enumerate(batches, 1):
            x = batch[0] if isinstance(batch, tuple) else batch
            for layer in norms:
                layer.momentum = 1.0 / k  # running = the mean of the k batches' statistics so far
            x = model._prepare(x)
            model.ensure_built(x)
            model.forward(x, training=True)
            if max_batches is not None and k >= max_batches:
                break
    finally:
        for layer, momentum in zip(norms, momenta):
            layer.momentum = momentum
    if k == 0:
        raise ValueError("recalibrate_batchnorm: batches gave no batch")
    return k


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):  # a model used as a layer
            yield from _all_layers(layer)


def _training_data(model, x, y, sample_weight, validation_data, validation_split):
    """``(x, y, sample_weight, validation_data)`` checked, with the validation split held out;
    the model built from the first sample."""
    if is_batch_source(x):
        if y is not None or sample_weight is not None or validation_split:
            raise ValueError("fit: with a batch source, y, sample_weight and validation_split come from the "
                             "source's batches; pass only the source (and validation_data)")
        return x, None, None, validation_data
    x, y = checks.check_data(x, y, "fit", model.multi_input, model.dtype)
    if sample_weight is not None:
        sample_weight = checks.check_sample_weight(sample_weight, n_samples(x), "fit", y)
    if validation_split and validation_data is None:
        x, y, sample_weight, validation_data = split_validation(x, y, sample_weight, validation_split)
    model.ensure_built(model._prepare(take(x, slice(0, 1))))
    return x, y, sample_weight, validation_data


def _set_up(callbacks, model, params):
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks must be handprop.callbacks.Callback objects, got {type(cb).__name__}")
        cb.set_model(model)
        cb.set_params(params)


def _call(callbacks, hook, *args):
    """``hook(*args)`` of every callback, in list order."""
    for cb in callbacks:
        getattr(cb, hook)(*args)


# ----------------------------------------------------------------------------- validation
def split_validation(x, y, sample_weight, fraction):
    """Hold out the last ``fraction`` of the samples (before shuffling, as Keras):
    ``(x, y, sample_weight)`` of the rest and the held-out ``validation_data``."""
    n = n_samples(x)
    n_val = int(round(n * fraction))
    if n_val == 0 or n_val == n:
        raise ValueError(f"fit: validation_split={fraction} of {n} samples leaves "
                         f"{n_val} for validation and {n - n_val} for training")
    cut = n - n_val
    held = (take(x, slice(cut, None)), y[cut:]) + (() if sample_weight is None else (sample_weight[cut:],))
    w = None if sample_weight is None else sample_weight[:cut]
    return take(x, slice(0, cut)), y[:cut], w, held


def validate(model, validation_data, batch_size):
    """The ``val_`` entries of an epoch's logs: :func:`evaluate` on ``(x, y)``, ``(x, y, weight)``
    or a batch source."""
    if is_batch_source(validation_data):
        scores = evaluate(model, validation_data, return_dict=True)
    elif isinstance(validation_data, (tuple, list)) and len(validation_data) in (2, 3):
        xv, yv, *wv = validation_data
        scores = evaluate(model, xv, yv, batch_size=batch_size, return_dict=True,
                          sample_weight=wv[0] if wv else None)
    else:
        raise TypeError("fit: validation_data must be (x, y), (x, y, sample_weight) or a batch source")
    if np.isnan(scores["loss"]):
        raise ValueError("fit: every weight of the validation data is 0 (its sample_weight or FOV masks), so "
                         "val_loss is undefined (it would read 0.0 and look like the best epoch); give the "
                         "validation samples non-zero weights")
    return {f"val_{k}": v for k, v in scores.items()}


# ----------------------------------------------------------------------------- evaluation and inference
def evaluate(model, x, y=None, batch_size=256, return_dict=False, sample_weight=None, steps=None):
    """Loss (and metrics) in inference mode. Returns the loss alone when there are no metrics,
    else ``[loss, metric1, ...]`` as Keras, or a dict with ``return_dict=True``.

    ``x, y`` arrays (with optional ``sample_weight``, as ``fit``) or a batch source ``x``
    (``steps`` batches of a generator). The loss is averaged exactly over all batches (weighted by
    their ``Σ w``); metrics per sample. When every weight is 0 the loss is NaN (a mean over no
    element), not 0.0; ``fit`` refuses such validation data.
    """
    if model.loss is None:
        raise RuntimeError("evaluate: call model.compile(loss=...) first")
    batch_size = checks.check_int(batch_size, "evaluate: batch_size", 1)
    if not is_batch_source(x):
        x, y = checks.check_data(x, y, "evaluate", model.multi_input, model.dtype)
        if sample_weight is not None:
            sample_weight = checks.check_sample_weight(sample_weight, n_samples(x), "evaluate", y)
    totals = Totals(model.metrics)
    for xb, yb, wb in epoch_batches(x, y, sample_weight, batch_size=batch_size, steps=steps, what="evaluate"):
        xb, yb = model._prepare(xb), model._prepare_targets(yb)
        wb = None if wb is None else model._prepare_targets(wb)
        model.ensure_built(xb)
        pred = model.forward(xb, training=False)
        loss = model.loss.forward(pred, yb, wb)
        totals.add(loss, model.loss.total_weight, pred, yb, wb)
    if totals.count == 0:
        raise ValueError("evaluate: no batches")
    scores = totals.means()
    if return_dict:
        return scores
    return scores["loss"] if not model.metrics else list(scores.values())


def predict(model, x, batch_size=256):
    """Outputs for ``x`` in inference mode (``training=False``), ``batch_size`` samples at a time;
    one NumPy array."""
    batch_size = checks.check_int(batch_size, "predict: batch_size", 1)
    x, _ = checks.check_data(x, None, "predict", model.multi_input, model.dtype, need_y=False)
    model.ensure_built(model._prepare(take(x, slice(0, 1))))
    outputs = [to_numpy(model.forward(model._prepare(xb), training=False))
               for xb, _, _ in epoch_batches(x, batch_size=batch_size, what="predict")]
    return np.concatenate(outputs, axis=0)


def predict_classes(model, x, batch_size=256, threshold=None):
    """Class indices: ``argmax`` of multi-class (N, classes) outputs; for binary outputs,
    ``score > threshold`` elementwise (default 0.5, or 0 when the loss takes logits)."""
    p = predict(model, x, batch_size)
    if p.ndim == 2 and p.shape[1] > 1:
        return p.argmax(axis=1)
    if threshold is None:
        threshold = 0.0 if model._outputs_logits() else 0.5
    p = p[:, 0] if p.ndim == 2 else p
    return (p > threshold).astype(np.int64)


def train_on_batch(model, x, y, sample_weight=None):
    """One optimizer step on the batch ``(x, y)``, as Keras: -> the loss (float) before the step.

    For training loops ``fit`` does not cover (a GAN alternates two models). Checks and
    converts ``x`` as ``fit`` does, builds the model if needed, then ``model.train_step``. Only
    trainable layers are updated (``layer.trainable``, or ``model.trainable = False``).
    ``sample_weight``: as :func:`fit`'s (one per sample, or one map per sample).
    """
    checks.check_compiled(model, "train_on_batch")
    x, y = checks.check_data(x, y, "train_on_batch", model.multi_input, model.dtype)
    weight = model._batch_weight(sample_weight, n_samples(x), "train_on_batch")
    x = model._prepare(x)
    model.ensure_built(x)
    return float(model.train_step(x, model._prepare_targets(y), weight)[0])


__all__ = ["fit", "train_epoch", "split_validation", "validate", "evaluate", "predict", "predict_classes",
           "train_on_batch", "recalibrate_batchnorm"]
