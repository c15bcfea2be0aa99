"""Models: the Keras-style training loop around layers with hand-written backward passes.

One training step, written out (``BaseModel.train_step``)::

    pred = model.forward(x_batch, training=True)      # each layer caches what its backward needs
    loss = loss_fn.forward(pred, y_batch, weight)     # weight: None, per sample, or a FOV mask
    dpred = loss_fn.backward()
    model.backward(dpred, input_grad=False)           # layers in reverse order fill layer.grads
    optimizer.step(model.trainable_params(), model.named_grads())

An epoch is one pass over a fresh random permutation of the training set (no sampling with
replacement), or one epoch of a batch source (:mod:`handprop.batches`). ``BaseModel`` holds
everything that does not depend on how layers are wired; ``Sequential`` wires them in a chain,
``handprop.graph.Model`` as a graph.
"""

from __future__ import annotations

import copy
import sys

import numpy as np
from tqdm.auto import tqdm

from . import checks
from . import losses as losses_module
from . import metrics as metrics_module
from .backend import get_array_module, is_gpu_array, to_device, to_numpy
from .batches import (
    Totals,
    array_batches,
    class_weights,
    combine_weights,
    is_batch_source,
    source_batches,
    source_length,
    unpack_batch,
)
from .callbacks import Callback, History
from .kernels import compiling
from .layers.base import Layer
from .symbolic import format_shape, normalize_shape


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _length(x):
    return len(_as_list(x)[0])


def _take(x, idx):
    """Rows ``idx`` of an array, or of each array of a list (multi-input models)."""
    if isinstance(x, (list, tuple)):
        return [xi[idx] for xi in x]
    return x[idx]


class BaseModel:
    """Training, evaluation and bookkeeping shared by ``Sequential`` and graph models.

    Subclasses provide ``_calls()`` (the layer of every call, in forward order; a layer that
    appears twice shares its weights), ``build(input_shape, dtype)``, ``forward(x, training)`` and
    ``backward(dpred, input_grad)``, running each call through ``_forward_call`` /
    ``_backward_call`` so that shared layers get one cache per call and summed gradients.
    """

    def __init__(self, seed=0, name=None):
        self.seed = seed
        self.name = name or type(self).__name__
        init_seq, shuffle_seq = np.random.SeedSequence(seed).spawn(2)
        self._init_rng = np.random.default_rng(init_seq)  # weights, dropout generators
        self._shuffle_rng = np.random.default_rng(shuffle_seq)  # epoch permutations
        self.loss = None
        self.optimizer = None
        self.metrics = []
        self.built = False
        self.dtype = np.float32
        self.device = "cpu"
        self.stop_training = False
        self.multi_input = False  # graph models with several Input nodes take a list of arrays
        self._call_caches = {}  # call position -> cache, for layers called more than once
        self._divergence = checks.DivergenceWatch()  # warns when the loss explodes (train_step)

    # ------------------------------------------------------------------ layers and calls
    def layers_list(self):
        """Every layer once, in the order of its first call."""
        seen, out = set(), []
        for layer in self._calls():
            if id(layer) not in seen:
                seen.add(id(layer))
                out.append(layer)
        return out

    def _shared_ids(self):
        """``id`` of every layer called more than once (recounted only when the calls change)."""
        calls = tuple(id(layer) for layer in self._calls())
        if getattr(self, "_shared_key", None) != calls:
            self._shared_key = calls
            self._shared = {i for i in calls if calls.count(i) > 1}
        return self._shared

    def _forward_call(self, position, layer, x, training, shared):
        """``layer.forward``; a shared layer's cache is kept per call for its backward.
        ``shared``: :meth:`_shared_ids`, taken once per pass."""
        try:
            y = layer.forward(x, training=training)
        except ValueError as e:  # say which of several same-named layers complained
            raise ValueError(f"layer {position} of {self.name}: {e}") from e
        if id(layer) in shared:
            self._call_caches[position] = layer._cache
        return y

    def _backward_call(self, position, layer, dy, need_dx, summed, shared):
        """``layer.backward``; for a shared layer, with the cache of this call, and its weight
        gradients added into ``summed`` (see :meth:`_finish_shared_grads`). ``shared``: as in
        :meth:`_forward_call`."""
        is_shared = id(layer) in shared
        if is_shared:
            layer._cache = self._call_caches[position]
        dx = layer.backward(dy, need_dx=need_dx)
        if is_shared:
            if id(layer) in summed:
                for k, g in layer.grads.items():
                    summed[id(layer)][1][k] = summed[id(layer)][1][k] + g
            else:
                summed[id(layer)] = (layer, {k: g.copy() for k, g in layer.grads.items()})
        return dx

    @staticmethod
    def _finish_shared_grads(summed):
        """A weight used by several calls gets the sum of their gradients (the chain rule)."""
        for layer, grads in summed.values():
            layer.grads.update(grads)

    # ------------------------------------------------------------------ parameters by name
    def _layer_keys(self):
        return [(f"{i}.{layer.name}", layer) for i, layer in enumerate(self.layers_list())]

    def named_params(self) -> dict:
        """``{"3.Conv2D/W": array, ...}``: the layers' own arrays (not copies), built fresh each
        call so that ``layer.params["W"] = new`` is picked up."""
        return {f"{key}/{p}": v for key, layer in self._layer_keys() for p, v in layer.params.items()}

    def named_grads(self) -> dict:
        return {f"{key}/{p}": layer.grads[p] for key, layer in self._layer_keys() for p in layer.params}

    def trainable_params(self) -> dict:
        """:meth:`named_params` without the frozen layers' (``layer.trainable = False``): what the
        optimizer updates."""
        return {f"{key}/{p}": v for key, layer in self._layer_keys() if layer.trainable
                for p, v in layer.params.items()}

    def get_state(self) -> dict:
        return {f"{key}/{s}": v for key, layer in self._layer_keys() for s, v in layer.state.items()}

    def set_state(self, state: dict):
        """Replace every state array (BatchNorm running statistics); all-or-nothing, as :meth:`set_weights`."""
        self._assign("set_state", state, [(key, layer, layer.state) for key, layer in self._layer_keys()])

    def get_weights(self) -> dict:
        """A copy of every parameter and state array, keyed by name (for checkpoints)."""
        out = {k: v.copy() for k, v in self.named_params().items()}
        out.update({k: v.copy() for k, v in self.get_state().items()})
        return out

    def set_weights(self, weights: dict):
        """Replace every parameter and state array from ``weights`` (as :meth:`get_weights` returns).

        All-or-nothing: every key and shape is checked first, and missing, extra and misshapen
        entries are reported together in one ValueError; nothing changes unless all fit. Values
        are converted to the model's dtype and device. An unbuilt model is an error (a
        RuntimeError): its shapes are unknown, so build it first (``input_shape=``, ``build``, or
        ``predict`` on one batch) -- it is not built from the weights' shapes, which do not say
        the image size.
        """
        self._assign("set_weights", weights,
                     [(key, layer, d) for key, layer in self._layer_keys() for d in (layer.params, layer.state)])

    def _assign(self, what, arrays, targets):
        """Check ``arrays`` against every ``(key, layer, dict)`` of ``targets``, then assign."""
        if not isinstance(arrays, dict):
            raise TypeError(f"{what}: expects a dict name -> array (as get_weights returns), "
                            f"got {type(arrays).__name__}")
        if not self.built:
            raise RuntimeError(f"{what}: the model is not built, so its weight shapes are unknown; build it first "
                               "(Sequential(..., input_shape=...), model.build(input_shape), or predict on one batch)")
        expected = {f"{key}/{p}": (d, p) for key, layer, d in targets for p in d}
        problems = []
        missing = [k for k in expected if k not in arrays]
        extra = sorted(k for k in arrays if k not in expected)
        if missing:
            problems.append(f"missing {missing}")
        if extra:
            problems.append(f"unexpected {extra}")
        converted = {}
        for k, (d, p) in expected.items():
            if k not in arrays:
                continue
            new = arrays[k]
            if not hasattr(new, "shape") or not hasattr(new, "dtype") or new.dtype.kind not in "fiu":
                problems.append(f"{k} is not a numeric array ({type(new).__name__})")
            elif tuple(new.shape) != tuple(d[p].shape):
                problems.append(f"{k} has shape {tuple(new.shape)}, the model's is {tuple(d[p].shape)}")
            elif not bool(get_array_module(new).isfinite(new).all()):
                problems.append(f"{k} contains NaN or infinite values")
            else:
                converted[k] = to_device(to_numpy(new).astype(d[p].dtype, copy=True),
                                         "gpu" if is_gpu_array(d[p]) else "cpu")
        if problems:
            raise ValueError(f"{what}: the arrays do not fit {self.name} (nothing was changed): " + "; ".join(problems))
        for k, (d, p) in expected.items():
            d[p] = converted[k]

    # ------------------------------------------------------------------ files (handprop.saving)
    def save(self, path, include_optimizer=True):
        """Save architecture, weights, layer state, optimizer state and random generators in one
        safetensors file (atomically); :func:`handprop.load_model` reads it. See :mod:`handprop.saving`."""
        from .saving import save_model

        save_model(self, path, include_optimizer=include_optimizer)

    def save_weights(self, path):
        """Save parameters and state only (safetensors); :meth:`load_weights` reads them back."""
        from .saving import save_weights

        save_weights(self, path)

    def load_weights(self, path):
        """Load parameters and state saved by :meth:`save_weights` or :meth:`save` (all-or-nothing)."""
        from .saving import load_weights

        load_weights(self, path)
        return self

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self.layers_list())

    def count_trainable_params(self) -> int:
        return sum(layer.count_params() for layer in self.layers_list() if layer.trainable)

    # ------------------------------------------------------------------ dtype and device
    def cast(self, dtype):
        """Convert every parameter, gradient and state array to ``dtype`` (e.g. float64 for
        gradient checks)."""
        dtype = np.dtype(dtype).type
        for layer in self.layers_list():
            for d in (layer.params, layer.grads, layer.state):
                for k in d:
                    d[k] = d[k].astype(dtype)
            layer.dtype = dtype
        self.dtype = dtype
        return self

    def to_gpu(self):
        """Move parameters and state to the GPU (CuPy); kernels then run on the ``cupy`` engine."""
        for layer in self.layers_list():
            layer.to("gpu")
        self.device = "gpu"
        self._move_optimizer_state("gpu")
        return self

    def to_cpu(self):
        for layer in self.layers_list():
            layer.to("cpu")
        self.device = "cpu"
        self._move_optimizer_state("cpu")
        return self

    def _move_optimizer_state(self, device):
        """The optimizer's buffers follow the parameters (a model loaded on the CPU and moved to
        the GPU resumes with its moments, not from scratch)."""
        for state in getattr(self.optimizer, "state", {}).values():
            for key, value in state.items():
                if key != "step":
                    state[key] = to_device(value, device)

    def _prepare(self, x):
        """Cast inputs to the model's dtype and move them to its device (the only conversion)."""
        def one(a):
            if not is_gpu_array(a):
                a = np.asarray(a)
            if a.dtype != self.dtype:
                a = a.astype(self.dtype)
            return to_device(a, self.device) if self.device == "gpu" else a
        return [one(a) for a in x] if isinstance(x, (list, tuple)) else one(x)

    def _prepare_targets(self, y):
        """Targets go to the model's device; their dtype is the loss's business."""
        return to_device(y, "gpu") if self.device == "gpu" else y

    def ensure_built(self, x, dtype=None):
        if not self.built:
            shapes = [tuple(a.shape[1:]) for a in _as_list(x)]
            self.build(shapes if isinstance(x, (list, tuple)) else shapes[0], dtype=dtype or self.dtype)
            if self.device == "gpu":  # to_gpu() was called before the lazy build
                for layer in self.layers_list():
                    layer.to("gpu")

    # ------------------------------------------------------------------ compile / train
    def compile(self, loss, optimizer=None, metrics=None):
        """Choose the loss (object or Keras name), optimizer (object or name) and metrics."""
        from . import optimizers

        loss = losses_module.get(loss)
        checks.check_output_matches_loss(self, loss)
        self.loss = loss
        self.optimizer = optimizers.get("sgd" if optimizer is None else optimizer)
        if isinstance(metrics, str) or callable(metrics):
            metrics = [metrics]  # compile(metrics="accuracy"), as Keras accepts
        self.metrics = [metrics_module.get(m, logits=self._outputs_logits()) for m in (metrics or [])]
        return self

    def _outputs_logits(self):
        """True when the loss takes binary logits, so binary decisions threshold at 0, not 0.5."""
        return bool(getattr(self.loss, "from_logits", False))

    def _check_compiled(self, what):
        if self.loss is None or self.optimizer is None:
            raise RuntimeError(f"{what}: call model.compile(loss=..., optimizer=...) first")

    def _check_data(self, x, y, what, need_y=True):
        """Validate and normalize ``(x, y)``; return them as arrays (a list of arrays for
        multi-input graph models). Every problem is reported in words, not as a traceback."""
        if self.multi_input:
            if not isinstance(x, (list, tuple)):
                raise ValueError(f"{what}: this model has several inputs; pass a list of arrays")
            x = [checks.as_array(a, what, "x") for a in x]
        else:
            x = checks.as_array(x, what, "x")  # a list of rows becomes one array
        for a in _as_list(x):
            if a.ndim == 0:
                raise ValueError(f"{what}: x must have a batch axis, got a scalar")
            if a.dtype.kind not in "fiub":
                raise TypeError(f"{what}: x must be numeric, got dtype {a.dtype}")
            if a.dtype.kind in "fc" and not bool(get_array_module(a).isfinite(a).all()):
                raise ValueError(f"{what}: the input contains NaN or infinite values")
            checks.check_cast_range(a, self.dtype, what)
        nx = {len(a) for a in _as_list(x)}
        if len(nx) != 1:
            raise ValueError(f"{what}: the inputs have different numbers of samples: {sorted(nx)}")
        n = nx.pop()
        if n == 0:
            raise ValueError(f"{what}: no samples (x is empty)")
        if y is None:
            if need_y:
                raise ValueError(f"{what}: targets y are missing")
            return x, None
        y = checks.as_array(y, what, "y")
        if y.ndim == 0 or len(y) != n:
            raise ValueError(f"{what}: x has {n} samples but y has {'none' if y.ndim == 0 else len(y)}")
        checks.check_targets(y, what)
        return x, y

    def train_step(self, x, y, weight=None):
        """One minibatch: forward, loss, backward, optimizer step. Returns (loss, pred).

        ``weight``: None, one per sample (N,) or one per loss element (e.g. a FOV mask); the loss
        is then their weighted mean (:mod:`handprop.losses`).
        """
        # Overflow shows up as an inf/NaN loss, reported below with a hint, instead of as a
        # NumPy RuntimeWarning from deep inside a layer.
        with np.errstate(over="ignore", invalid="ignore"):
            pred = self.forward(x, training=True)
            loss = self.loss.forward(pred, y, weight)
        if not np.isfinite(loss):
            raise FloatingPointError(
                f"the loss became {loss} during training; the learning rate "
                f"({getattr(self.optimizer, 'lr', '?')}) may be too high, or the inputs unnormalized"
            )
        self._divergence.update(loss, getattr(self.optimizer, "lr", "?"))
        self.backward(self.loss.backward(), input_grad=False)
        self.optimizer.step(self.trainable_params(), self.named_grads())
        return loss, pred

    def train_on_batch(self, x, y, sample_weight=None):
        """One optimizer step on the batch ``(x, y)``, as Keras: -> the loss (float) before the step.

        For training loops ``fit`` does not cover (a GAN alternates two models). Checks and
        converts ``x`` as ``fit`` does, builds the model if needed, then :meth:`train_step`. Only
        trainable layers are updated (``layer.trainable``, or ``model.trainable = False``).
        ``sample_weight``: as :meth:`fit`'s (one per sample, or one map per sample).
        """
        self._check_compiled("train_on_batch")
        x, y = self._check_data(x, y, "train_on_batch")
        weight = self._batch_weight(sample_weight, _length(x), "train_on_batch")
        x = self._prepare(x)
        self.ensure_built(x)
        return float(self.train_step(x, self._prepare_targets(y), weight)[0])

    def _batch_weight(self, sample_weight, n, what):
        """``sample_weight`` checked against ``n`` samples and moved to the model's device, or None."""
        if sample_weight is None:
            return None
        return self._prepare_targets(self._check_weights(sample_weight, n, what))

    def input_gradient(self, x, y, training=False, sample_weight=None):
        """``(loss, dL/dx)``: the compiled loss at ``(x, y)`` and its gradient with respect to the
        *input* -- no optimizer step, the weights stay as they are.

        The input gradient is what flows out of the first layer when ``backward`` is asked for it
        (``model.backward(dy, input_grad=True)``). It shows which pixels a decision depends on
        (saliency maps), and it is how a GAN's generator learns: the discriminator's input gradient
        at a fake image is the generator's output gradient. ``training`` chooses the mode of the
        forward pass (dropout, batch statistics); backward fills the layers' ``grads`` as a side
        effect. ``dx`` comes as a NumPy/CuPy array in the model's dtype (a list for multi-input
        graph models). ``sample_weight`` weights the loss as in :meth:`fit`.
        """
        if self.loss is None:
            raise RuntimeError("input_gradient: call model.compile(loss=...) first")
        x, y = self._check_data(x, y, "input_gradient")
        weight = self._batch_weight(sample_weight, _length(x), "input_gradient")
        x = self._prepare(x)
        self.ensure_built(x)
        loss = self.loss.forward(self.forward(x, training=training), self._prepare_targets(y), weight)
        return float(loss), self.backward(self.loss.backward(), input_grad=True)

    @property
    def trainable(self) -> bool:
        """False when every layer is frozen. Setting it sets every layer's ``trainable`` (Keras'
        ``model.trainable = False``): a GAN freezes its discriminator while the generator learns
        through it. Layers shared with another model are frozen there too -- that is the point."""
        return any(layer.trainable for layer in self.layers_list())

    @trainable.setter
    def trainable(self, value):
        for layer in self.layers_list():
            layer.trainable = bool(value)

    def fit(self, x, y=None, epochs=1, batch_size=32, validation_data=None, validation_split=0.0,
            shuffle=True, callbacks=None, verbose=1, sample_weight=None, class_weight=None,
            steps_per_epoch=None, initial_epoch=0, nb_epoch=None, validation_batch_size=None):
        """Train for ``epochs`` epochs; returns a ``History``.

        Data: arrays ``x, y`` (x a list of arrays for a multi-input graph), with optional
        ``sample_weight`` (one per sample (N,), or per loss element, e.g. FOV masks (N, H, W));
        or a **batch source** ``x`` handing out ``(x, y)`` / ``(x, y, weight)`` batches, e.g. a
        patch sampler drawing fresh, augmented patches every epoch (:mod:`handprop.batches`;
        ``steps_per_epoch`` for generators). ``class_weight={class: weight}`` weights the loss by
        the target's class. ``validation_data``: ``(x, y)``, ``(x, y, weight)`` or a batch source.
        ``validation_split`` holds out the **last** fraction of the array samples, before
        shuffling (as Keras); ``validation_batch_size`` defaults to ``batch_size``.
        ``initial_epoch``: the number of the first epoch (to continue a run).
        ``verbose``: 0 silent, 1 a progress bar per epoch, 2 one line per epoch.
        ``nb_epoch`` (Keras 1) is accepted for ``epochs`` with a DeprecationWarning. A loss that
        explodes (x 1e6) raises a :class:`handprop.DivergenceWarning` naming the learning rate.
        """
        self._check_compiled("fit")
        epochs, batch_size = checks.check_fit_arguments(epochs, batch_size, validation_split, shuffle, verbose,
                                                        callbacks, nb_epoch)
        initial_epoch = checks.check_int(initial_epoch, "fit: initial_epoch", 0)
        checks.check_output_matches_loss(self, self.loss)
        self._divergence = checks.DivergenceWatch()
        source = is_batch_source(x)
        if source:
            if y is not None or sample_weight is not None or validation_split:
                raise ValueError("fit: with a batch source, y, sample_weight and validation_split come from the "
                                 "source's batches; pass only the source (and validation_data)")
            n_per_epoch = source_length(x, steps_per_epoch)
        else:
            x, y = self._check_data(x, y, "fit")
            if sample_weight is not None:
                sample_weight = self._check_weights(sample_weight, _length(x), "fit")
            if validation_split and validation_data is None:
                x, y, sample_weight, validation_data = self._split_validation(x, y, sample_weight, validation_split)
            self.ensure_built(self._prepare(_take(x, slice(0, 1))))
            n_per_epoch = -(-_length(x) // batch_size)
        history = History()
        cbs = [*(callbacks or []), history]  # History last: it records what the others logged
        for cb in cbs:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be handprop.callbacks.Callback objects, got {type(cb).__name__}")
            cb.set_model(self)
        self.stop_training = False
        told_compiling = False
        for cb in cbs:
            cb.on_train_begin({})
        for epoch in range(initial_epoch, epochs):
            logs: dict = {}
            for cb in cbs:
                cb.on_epoch_begin(epoch, logs)
            if source:
                batches = (unpack_batch(b) for b in source_batches(x, epoch, steps_per_epoch))
            else:
                batches = ((_take(x, idx), y[idx], None if sample_weight is None else sample_weight[idx])
                           for idx in array_batches(_length(x), int(batch_size), self._shuffle_rng, shuffle))
            bar = tqdm(total=n_per_epoch, desc=f"Epoch {epoch + 1}/{epochs}", disable=verbose != 1,
                       file=sys.stdout, leave=True, dynamic_ncols=True)
            totals = Totals(self.metrics)
            for b, (xb, yb, wb) in enumerate(batches):
                if verbose and not told_compiling:  # a first fit in a fresh process: say why it starts slowly
                    note = compiling(min_seconds=1.0)
                    if note:
                        tqdm.write(note, file=sys.stdout)
                        told_compiling = True
                if source:
                    xb, yb = self._check_data(xb, yb, "fit (a batch of the source)")
                xb, yb = self._prepare(xb), self._prepare_targets(yb)
                wb = combine_weights(None if wb is None else self._prepare_targets(wb),
                                     None if class_weight is None else class_weights(yb, class_weight))
                self.ensure_built(xb)
                loss, pred = self.train_step(xb, yb, wb)
                totals.add(loss, self.loss.total_weight, pred, yb, wb)
                for cb in cbs:
                    cb.on_batch_end(b, {"loss": loss})
                bar.update(1)
                if b % 10 == 0 or b + 1 == n_per_epoch:
                    bar.set_postfix(loss=f"{totals.means()['loss']:.4f}")
            if totals.count == 0:
                bar.close()
                raise ValueError(f"fit: epoch {epoch + 1} had no batches (an empty or exhausted batch source?)")
            logs.update(totals.means())
            if validation_data is not None:
                scores = self._evaluate_validation(validation_data, validation_batch_size or batch_size)
                logs.update({f"val_{k}": v for k, v in scores.items()})
            bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items()})
            bar.close()
            if verbose == 2:
                print(f"Epoch {epoch + 1}/{epochs} - " + " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()))
            for cb in cbs:
                cb.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        for cb in cbs:
            cb.on_train_end({})
        return history

    def _split_validation(self, x, y, sample_weight, validation_split):
        """Hold out the last ``validation_split`` of the samples (before shuffling, as Keras)."""
        if not 0.0 < validation_split < 1.0:
            raise ValueError(f"validation_split must be in (0, 1), got {validation_split}")
        n = _length(x)
        n_val = int(round(n * validation_split))
        if n_val == 0 or n_val == n:
            raise ValueError(f"fit: validation_split={validation_split} of {n} samples leaves "
                             f"{n_val} for validation and {n - n_val} for training")
        cut = n - n_val
        held = (_take(x, slice(cut, None)), y[cut:]) + (() if sample_weight is None else (sample_weight[cut:],))
        w = None if sample_weight is None else sample_weight[:cut]
        return _take(x, slice(0, cut)), y[:cut], w, held

    def _evaluate_validation(self, validation_data, batch_size):
        if is_batch_source(validation_data):
            return self.evaluate(validation_data, return_dict=True)
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise TypeError("fit: validation_data must be (x, y), (x, y, sample_weight) or a batch source")
        xv, yv, *wv = validation_data
        return self.evaluate(xv, yv, batch_size=batch_size, return_dict=True,
                             sample_weight=wv[0] if wv else None)

    def _check_weights(self, weight, n, what):
        w = weight if is_gpu_array(weight) else np.asarray(weight, dtype=np.float64)
        if w.ndim == 0 or len(w) != n:
            raise ValueError(f"{what}: sample_weight needs one entry (or one map) per sample: {n}, got shape "
                             f"{tuple(w.shape)}")
        return w

    # ------------------------------------------------------------------ inference
    def predict(self, x, batch_size=256):
        """Outputs for ``x`` in inference mode (``training=False``), batched; a NumPy array."""
        batch_size = checks.check_int(batch_size, "predict: batch_size", 1)
        x, _ = self._check_data(x, None, "predict", need_y=False)
        self.ensure_built(self._prepare(_take(x, slice(0, 1))))
        n = _length(x)
        outs = [to_numpy(self.forward(self._prepare(_take(x, slice(i, i + batch_size))), training=False))
                for i in range(0, n, batch_size)]
        return np.concatenate(outs, axis=0)

    def predict_classes(self, x, batch_size=256, threshold=None):
        """Class indices: ``argmax`` of multi-class (N, classes) outputs; for binary outputs,
        ``score > threshold`` elementwise (default 0.5, or 0 when the loss takes logits)."""
        p = self.predict(x, batch_size)
        if p.ndim == 2 and p.shape[1] > 1:
            return p.argmax(axis=1)
        if threshold is None:
            threshold = 0.0 if self._outputs_logits() else 0.5
        p = p[:, 0] if p.ndim == 2 else p
        return (p > threshold).astype(np.int64)

    def evaluate(self, x, y=None, batch_size=256, return_dict=False, sample_weight=None, steps=None):
        """Loss (and metrics) in inference mode. Returns the loss alone when there are no metrics,
        else ``[loss, metric1, ...]`` as Keras, or a dict with ``return_dict=True``.

        ``x, y`` arrays (with optional ``sample_weight``, as ``fit``) or a batch source ``x``. The
        loss is averaged exactly over all batches (weighted by their ``Σ w``); metrics per sample.
        """
        if self.loss is None:
            raise RuntimeError("evaluate: call model.compile(loss=...) first")
        batch_size = checks.check_int(batch_size, "evaluate: batch_size", 1)
        if is_batch_source(x):
            batches = (unpack_batch(b, "evaluate") for b in source_batches(x, 0, steps, "evaluate"))
        else:
            x, y = self._check_data(x, y, "evaluate")
            n = _length(x)
            if sample_weight is not None:
                sample_weight = self._check_weights(sample_weight, n, "evaluate")
            batches = ((_take(x, slice(i, i + batch_size)), y[i:i + batch_size],
                        None if sample_weight is None else sample_weight[i:i + batch_size])
                       for i in range(0, n, batch_size))
        totals = Totals(self.metrics)
        for xb, yb, wb in batches:
            xb, yb = self._prepare(xb), self._prepare_targets(yb)
            wb = None if wb is None else self._prepare_targets(wb)
            self.ensure_built(xb)
            pred = self.forward(xb, training=False)
            loss = self.loss.forward(pred, yb, wb)
            totals.add(loss, self.loss.total_weight, pred, yb, wb)
        if totals.count == 0:
            raise ValueError("evaluate: no batches")
        scores = totals.means()
        if return_dict:
            return scores
        return scores["loss"] if not self.metrics else list(scores.values())

    # ------------------------------------------------------------------ description
    def summary(self, print_fn=print):
        """Print (and return) a table of layers, output shapes and parameter counts."""
        if not self.built:
            raise RuntimeError("summary: the model is not built yet; pass input_shape= or call fit/predict")
        def shape_text(layer):
            return "(None" + "".join(f", {d}" for d in layer.output_shape) + ")"

        def name_text(layer):
            return f"{layer.name} ({type(layer).__name__})" + ("" if layer.trainable else " [frozen]")

        rows = [(name_text(layer), shape_text(layer), f"{layer.count_params():,}") for layer in self.layers_list()]
        w0 = max([len("Layer (type)")] + [len(r[0]) for r in rows]) + 2
        w1 = max([len("Output Shape")] + [len(r[1]) for r in rows]) + 2
        line = "=" * (w0 + w1 + 12)
        out = [f'Model: "{self.name}"', line, f"{'Layer (type)':<{w0}}{'Output Shape':<{w1}}{'Param #':>10}", line]
        out += [f"{a:<{w0}}{b:<{w1}}{c:>10}" for a, b, c in rows]
        n_state = sum(int(np.prod(v.shape)) for v in self.get_state().values())
        total, trainable = self.count_params(), self.count_trainable_params()
        out += [line, f"Total params: {total + n_state:,}", f"Trainable params: {trainable:,}",
                f"Non-trainable params: {total - trainable + n_state:,}", line]
        text = "\n".join(out)
        if print_fn is not None:
            print_fn(text)
        return text


class Sequential(BaseModel):
    """A chain of layers: ``y = f_L(... f_2(f_1(x)))``; backward runs the chain in reverse.

    ``Sequential(layers=None, seed=0, input_shape=None)``: builds lazily from the first batch,
    or at once when ``input_shape`` (without the batch axis) is given -- here or, Keras style, on
    the first layer (``Dense(64, input_shape=(20,))``); ``(C, None, None)`` declares images of any
    size. A first convolution given channels-last images, e.g. ``input_shape=(32, 32, 3)``, is an
    error that says how to transpose them. The same seed gives the same initial weights, dropout masks and
    shuffling, hence bit-identical training. A layer may appear twice (its weights are shared;
    gradients of both uses add up).
    """

    def __init__(self, layers=None, seed=0, input_shape=None, name=None):
        super().__init__(seed=seed, name=name)
        self.layers: list[Layer] = []
        self.input_shape = normalize_shape(input_shape, "input_shape") if input_shape is not None else None
        for layer in layers or []:
            self.add(layer)

    def add(self, layer):
        """Append a layer. With a known input shape the layer is built at once (Keras style), so
        a shape mismatch is reported here, naming the layer."""
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a handprop Layer, got {type(layer).__name__}")
        declared = getattr(layer, "declared_input_shape", None)
        if declared is not None and not self.layers:  # Keras: Dense(64, input_shape=(20,)) builds at once
            if self.input_shape is not None and self.input_shape != declared:
                raise ValueError(f"Sequential: input_shape={format_shape(self.input_shape)} but its first layer "
                                 f"{layer.name} declares input_shape={format_shape(declared)}")
            self.input_shape = declared
        if self.input_shape is not None:
            shape = self._output_shape_of(self.layers) if self.layers else self.input_shape
            self._build_layer(len(self.layers), layer, shape)
            self.built = True
        self.layers.append(layer)
        return self

    def _output_shape_of(self, layers):
        shape = self.input_shape
        for layer in layers:
            shape = layer.compute_output_shape(shape)
        return shape

    def _build_layer(self, index, layer, shape):
        if shape == self.input_shape and hasattr(layer, "check_channels_first") and not any(
                hasattr(earlier, "check_channels_first") for earlier in self.layers[:index]):
            layer.check_channels_first(shape)  # the first convolution reads the data itself
        try:
            out = layer.build(shape, rng=self._init_rng, dtype=self.dtype)
        except ValueError as e:
            where = "(N" + "".join(f", {d}" for d in shape) + ")"
            raise ValueError(f"building layer {index} ({layer.name}) on input {where}: {e}") from e
        if self.device == "gpu":
            layer.to("gpu")
        return out

    def _calls(self):
        return self.layers

    def build(self, input_shape, dtype=np.float32):
        """Build every layer in turn; each layer's output shape is the next one's input shape.
        Layers built before (e.g. taken from a trained model) keep their weights."""
        if not self.layers:
            raise RuntimeError("Sequential: add at least one layer before building")
        shape = normalize_shape(input_shape, "input_shape")
        self.input_shape = shape
        self.dtype = np.dtype(dtype).type
        for i, layer in enumerate(self.layers):
            shape = self._build_layer(i, layer, shape)
        self.built = True
        return shape

    def forward(self, x, training=True):
        if getattr(x, "is_graph_node", False):
            raise TypeError("a Sequential model cannot be called on hp.Input nodes; use its layers in the graph")
        x = self._prepare(x)
        self.ensure_built(x)
        shared = self._shared_ids()
        for i, layer in enumerate(self.layers):
            x = self._forward_call(i, layer, x, training, shared)
        return x

    def backward(self, dy, input_grad=True):
        """Run the layers' backward passes in reverse; returns dL/dx (None if ``input_grad`` is
        False: training needs no gradient for the data, so layers with no trainable weights
        before them skip their input gradient)."""
        summed = {}
        trainable_before = [False]
        for layer in self.layers[:-1]:
            trainable_before.append(trainable_before[-1] or (layer.trainable and bool(layer.params)))
        shared = self._shared_ids()
        for i in reversed(range(len(self.layers))):
            dy = self._backward_call(i, self.layers[i], dy, input_grad or trainable_before[i], summed, shared)
            if dy is None:  # nothing before this layer learns: stop here
                break
        self._finish_shared_grads(summed)
        return dy if input_grad else None

    __call__ = forward

    def __repr__(self):
        return "Sequential([\n" + "".join(f"    {layer!r},\n" for layer in self.layers) + "])"


def clone_model(model):
    """A deep copy (weights, state, optimizer state) — handy for ensembles and experiments."""
    return copy.deepcopy(model)


__all__ = ["BaseModel", "Sequential", "clone_model"]
