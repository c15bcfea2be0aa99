"""Models: the Keras-style training loop around layers with hand-written backward passes.

One training step, written out (``Model.train_step``)::

    pred = model.forward(x_batch, training=True)      # each layer caches what its backward needs
    loss = loss_fn.forward(pred, y_batch)
    dpred = loss_fn.backward()
    model.backward(dpred)                             # layers in reverse order fill layer.grads
    optimizer.step(model.named_params(), model.named_grads())

An epoch is one pass over a fresh random permutation of the training set (no sampling with
replacement). ``Model`` holds everything that does not depend on how layers are wired;
``Sequential`` wires them in a chain, ``handprop.graph.Model`` as a graph.
"""

from __future__ import annotations

import copy
import sys

import numpy as np
from tqdm import tqdm

from . import losses as losses_module
from . import metrics as metrics_module
from .backend import get_array_module, is_gpu_array, to_device, to_numpy
from .callbacks import Callback, History
from .layers.base import Layer
from .symbolic import normalize_shape


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

    def _forward_call(self, position, layer, x, training):
        """``layer.forward``; a shared layer's cache is kept per call for its backward."""
        try:
            y = layer.forward(x, training=training)
        except ValueError as e:  # say which of several same-named layers complained
            raise ValueError(f"layer {position} of {self.name}: {e}") from e
        if id(layer) in self._shared_ids():
            self._call_caches[position] = layer._cache
        return y

    def _backward_call(self, position, layer, dy, need_dx, summed):
        """``layer.backward``; for a shared layer, with the cache of this call, and its weight
        gradients added into ``summed`` (see :meth:`_finish_shared_grads`)."""
        shared = id(layer) in self._shared_ids()
        if shared:
            layer._cache = self._call_caches[position]
        dx = layer.backward(dy, need_dx=need_dx)
        if shared:
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
        for key, layer in self._layer_keys():
            for s in layer.state:
                layer.state[s] = state[f"{key}/{s}"].copy()

    def get_weights(self) -> dict:
        """A copy of every parameter and state array, keyed by name (for checkpoints)."""
        out = {k: v.copy() for k, v in self.named_params().items()}
        out.update({k: v.copy() for k, v in self.get_state().items()})
        return out

    def set_weights(self, weights: dict):
        for key, layer in self._layer_keys():
            for d in (layer.params, layer.state):
                for p in d:
                    new = weights[f"{key}/{p}"]
                    if tuple(new.shape) != tuple(d[p].shape):
                        raise ValueError(f"set_weights: {key}/{p} has shape {tuple(d[p].shape)}, "
                                         f"got {tuple(new.shape)}")
                    d[p] = new.copy()

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
        if self.optimizer is not None and hasattr(self.optimizer, "reset"):
            self.optimizer.reset()  # its moment estimates lived on the old device
        return self

    def to_cpu(self):
        for layer in self.layers_list():
            layer.to("cpu")
        self.device = "cpu"
        if self.optimizer is not None and hasattr(self.optimizer, "reset"):
            self.optimizer.reset()
        return self

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

        self.loss = losses_module.get(loss)
        self.optimizer = optimizers.get("sgd" if optimizer is None else optimizer)
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
            x = [a if is_gpu_array(a) else np.asarray(a) for a in x]
        else:
            x = x if is_gpu_array(x) else np.asarray(x)  # a list of rows becomes one array
        for a in _as_list(x):
            if a.ndim == 0:
                raise ValueError(f"{what}: x must have a batch axis, got a scalar")
            if a.dtype.kind not in "fiub":
                raise TypeError(f"{what}: x must be numeric, got dtype {a.dtype}")
            if a.dtype.kind in "fc" and not bool(get_array_module(a).isfinite(a).all()):
                raise ValueError(f"{what}: the input contains NaN or infinite values")
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
        y = y if is_gpu_array(y) else np.asarray(y)
        if y.ndim == 0 or len(y) != n:
            raise ValueError(f"{what}: x has {n} samples but y has {'none' if y.ndim == 0 else len(y)}")
        return x, y

    def train_step(self, x, y):
        """One minibatch: forward, loss, backward, optimizer step. Returns (loss, pred)."""
        # Overflow shows up as an inf/NaN loss, reported below with a hint, instead of as a
        # NumPy RuntimeWarning from deep inside a layer.
        with np.errstate(over="ignore", invalid="ignore"):
            pred = self.forward(x, training=True)
            loss = self.loss.forward(pred, y)
        if not np.isfinite(loss):
            raise FloatingPointError(
                f"the loss became {loss} during training; the learning rate "
                f"({getattr(self.optimizer, 'lr', '?')}) may be too high, or the inputs unnormalized"
            )
        self.backward(self.loss.backward(), input_grad=False)
        self.optimizer.step(self.trainable_params(), self.named_grads())
        return loss, pred

    def train_on_batch(self, x, y):
        """One optimizer step on the batch ``(x, y)``, as Keras: -> the loss (float) before the step.

        For training loops ``fit`` does not cover (a GAN alternates two models). Checks and
        converts ``x`` as ``fit`` does, builds the model if needed, then :meth:`train_step`. Only
        trainable layers are updated (``layer.trainable``, or ``model.trainable = False``).
        """
        self._check_compiled("train_on_batch")
        x, y = self._check_data(x, y, "train_on_batch")
        x = self._prepare(x)
        self.ensure_built(x)
        return float(self.train_step(x, self._prepare_targets(y))[0])

    def input_gradient(self, x, y, training=False):
        """``(loss, dL/dx)``: the compiled loss at ``(x, y)`` and its gradient with respect to the
        *input* -- no optimizer step, the weights stay as they are.

        The input gradient is what flows out of the first layer when ``backward`` is asked for it
        (``model.backward(dy, input_grad=True)``). It shows which pixels a decision depends on
        (saliency maps), and it is how a GAN's generator learns: the discriminator's input gradient
        at a fake image is the generator's output gradient. ``training`` chooses the mode of the
        forward pass (dropout, batch statistics); backward fills the layers' ``grads`` as a side
        effect. ``dx`` comes as a NumPy/CuPy array in the model's dtype (a list for multi-input
        graph models).
        """
        if self.loss is None:
            raise RuntimeError("input_gradient: call model.compile(loss=...) first")
        x, y = self._check_data(x, y, "input_gradient")
        x = self._prepare(x)
        self.ensure_built(x)
        loss = self.loss.forward(self.forward(x, training=training), self._prepare_targets(y))
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

    def fit(self, x, y, epochs=1, batch_size=32, validation_data=None, validation_split=0.0,
            shuffle=True, callbacks=None, verbose=1):
        """Train for ``epochs`` passes over ``(x, y)``; returns a ``History``.

        ``validation_split`` holds out the **last** fraction of the samples, before shuffling
        (as Keras). ``verbose``: 0 silent, 1 a progress bar per epoch, 2 one line per epoch.
        """
        self._check_compiled("fit")
        x, y = self._check_data(x, y, "fit")
        if validation_split and validation_data is None:
            if not 0.0 < validation_split < 1.0:
                raise ValueError(f"validation_split must be in (0, 1), got {validation_split}")
            n_val = int(round(_length(x) * validation_split))
            if n_val == 0 or n_val == _length(x):
                raise ValueError(f"fit: validation_split={validation_split} of {_length(x)} samples leaves "
                                 f"{n_val} for validation and {_length(x) - n_val} for training")
            cut = _length(x) - n_val
            validation_data = (_take(x, slice(cut, None)), y[cut:])
            x, y = _take(x, slice(0, cut)), y[:cut]
        n = _length(x)
        self.ensure_built(self._prepare(_take(x, slice(0, 1))))
        history = History()
        cbs = [*(callbacks or []), history]  # History last: it records what the others logged
        for cb in cbs:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be handprop.callbacks.Callback objects, got {type(cb).__name__}")
            cb.set_model(self)
        self.stop_training = False
        for cb in cbs:
            cb.on_train_begin({})
        batch_size = int(batch_size)
        n_batches = -(-n // batch_size)
        for epoch in range(epochs):
            logs: dict = {}
            for cb in cbs:
                cb.on_epoch_begin(epoch, logs)
            order = self._shuffle_rng.permutation(n) if shuffle else np.arange(n)
            totals = {"loss": 0.0, **{name: 0.0 for name, _ in self.metrics}}
            bar = tqdm(total=n_batches, desc=f"Epoch {epoch + 1}/{epochs}", disable=verbose != 1,
                       file=sys.stdout, leave=True, dynamic_ncols=True)
            for b in range(n_batches):
                idx = order[b * batch_size:(b + 1) * batch_size]
                xb, yb = self._prepare(_take(x, idx)), self._prepare_targets(y[idx])
                loss, pred = self.train_step(xb, yb)
                totals["loss"] += loss * len(idx)
                for name, fn in self.metrics:
                    totals[name] += fn(pred, yb) * len(idx)
                for cb in cbs:
                    cb.on_batch_end(b, {"loss": loss})
                bar.update(1)
                if b % 10 == 0 or b == n_batches - 1:
                    bar.set_postfix(loss=f"{totals['loss'] / min(n, (b + 1) * batch_size):.4f}")
            logs.update({k: v / n for k, v in totals.items()})
            if validation_data is not None:
                scores = self.evaluate(*validation_data, batch_size=max(batch_size, 256), return_dict=True)
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

    # ------------------------------------------------------------------ inference
    def predict(self, x, batch_size=256):
        """Outputs for ``x`` in inference mode (``training=False``), batched; a NumPy array."""
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

    def evaluate(self, x, y, batch_size=256, return_dict=False):
        """Loss (and metrics) in inference mode. Returns the loss alone when there are no metrics,
        else ``[loss, metric1, ...]`` as Keras, or a dict with ``return_dict=True``."""
        if self.loss is None:
            raise RuntimeError("evaluate: call model.compile(loss=...) first")
        x, y = self._check_data(x, y, "evaluate")
        n = _length(x)
        totals = {"loss": 0.0, **{name: 0.0 for name, _ in self.metrics}}
        for i in range(0, n, batch_size):
            xb = self._prepare(_take(x, slice(i, i + batch_size)))
            yb = self._prepare_targets(y[i:i + batch_size])
            self.ensure_built(xb)
            pred = self.forward(xb, training=False)
            m = len(yb)
            totals["loss"] += self.loss.forward(pred, yb) * m
            for name, fn in self.metrics:
                totals[name] += fn(pred, yb) * m
        scores = {k: v / n for k, v in totals.items()}
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
    or at once when ``input_shape`` (without the batch axis) is given; ``(C, None, None)``
    declares images of any size. The same seed gives the same initial weights, dropout masks and
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
        for i, layer in enumerate(self.layers):
            x = self._forward_call(i, layer, x, training)
        return x

    def backward(self, dy, input_grad=True):
        """Run the layers' backward passes in reverse; returns dL/dx (None if ``input_grad`` is
        False: training needs no gradient for the data, so layers with no trainable weights
        before them skip their input gradient)."""
        summed = {}
        trainable_before = [False]
        for layer in self.layers[:-1]:
            trainable_before.append(trainable_before[-1] or (layer.trainable and bool(layer.params)))
        for i in reversed(range(len(self.layers))):
            dy = self._backward_call(i, self.layers[i], dy, input_grad or trainable_before[i], summed)
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


__all__ = ["BaseModel", "Sequential", "clone_model", "get_array_module"]
