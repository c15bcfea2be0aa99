"""Models: layers wired together, with hand-written forward and backward passes and their weights.

One training step, written out (``BaseModel.train_step``)::

    pred = model.forward(x_batch, training=True)      # each layer caches what its backward needs
    loss = loss_fn.forward(pred, y_batch, weight)     # weight: None, per sample, or a FOV mask
    dpred = loss_fn.backward()
    model.backward(dpred, input_grad=False)           # layers in reverse order fill layer.grads
    optimizer.step(model.trainable_params(), model.named_grads())

``BaseModel`` holds everything that does not depend on how layers are wired (calls, named
weights, dtype and device, compile, the training step); ``Sequential`` wires them in a chain,
``handprop.graph.Model`` as a graph. The loop over epochs and batches -- ``fit``, ``evaluate``,
``predict`` -- is :mod:`handprop.training`; the model's methods of those names hand over to it.
"""

from __future__ import annotations

import contextlib
import copy
import threading

import numpy as np

from . import checks, saving, training
from . import losses as losses_module
from . import metrics as metrics_module
from . import optimizers as optimizers_module
from .backend import is_gpu_array, to_device, to_numpy
from .batches import as_list, n_samples
from .layers.base import Layer
from .symbolic import format_shape, normalize_shape

_OWNER_LOCK = threading.Lock()  # makes a model's "who is using it" check-and-set atomic
_OWNERS = {}  # id(model) -> (thread id, "fit"): outside the model, so a deepcopy made meanwhile is free


class BaseModel:
    """What ``Sequential`` and graph models share: calls of layers, named weights, dtype and device,
    ``compile`` and the training step (the loop over data is :mod:`handprop.training`).

    Subclasses provide ``_calls()`` (the layer of every call, in forward order; a layer that
    appears twice shares its weights), ``build(input_shape, dtype)``, ``forward(x, training)`` and
    ``backward(dpred, input_grad)``, running each call through ``_forward_call`` /
    ``_backward_call`` so that shared layers get one cache per call and summed gradients; and, for
    model files, ``wiring_config(index)`` and ``from_wiring_config(config, layers, dtype)`` (how
    the layers are connected; :mod:`handprop.saving`, where each model class is registered).
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
        self.epochs_trained = 0  # epochs fit has completed: a batch source's draws continue from here
        self.metadata = {}  # JSON-able notes saved with the model (handprop demo: its recipe); saving.py
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
        """Check ``arrays`` against every ``(key, layer, dict)`` of ``targets``, then assign them all
        (converted to the model's dtype and device) -- or nothing."""
        checks.check_dict_of_arrays(what, arrays)
        if not self.built:
            raise RuntimeError(f"{what}: the model is not built, so its weight shapes are unknown; build it first "
                               "(Sequential(..., input_shape=...), model.build(input_shape), or predict on one batch)")
        expected = {f"{key}/{p}": (d, p) for key, layer, d in targets for p in d}
        checks.check_named_arrays(what, arrays, {k: d[p] for k, (d, p) in expected.items()}, self.name)
        converted = {}
        for k, (d, p) in expected.items():
            device = "gpu" if is_gpu_array(d[p]) else "cpu"
            converted[k] = to_device(to_numpy(arrays[k]).astype(d[p].dtype, copy=True), device)
        for k, (d, p) in expected.items():
            d[p] = converted[k]

    # ------------------------------------------------------------------ files (handprop.saving)
    def save(self, path, include_optimizer=True):
        """Save architecture, weights, layer state, optimizer state and random generators in one
        safetensors file (atomically); :func:`handprop.load_model` reads it. See :mod:`handprop.saving`."""
        checks.check_path(path, "save")
        saving.save_model(self, path, include_optimizer=include_optimizer)

    def save_weights(self, path):
        """Save parameters and state only (safetensors); :meth:`load_weights` reads them back."""
        checks.check_path(path, "save_weights")
        saving.save_weights(self, path)

    def load_weights(self, path, strict=True):
        """Load parameters and state saved by :meth:`save_weights` or :meth:`save` (all-or-nothing);
        the file's architecture must compute what this model computes unless ``strict=False``
        (:func:`handprop.saving.load_weights`)."""
        checks.check_path(path, "load_weights")
        saving.load_weights(self, path, strict=strict)
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
            shapes = [tuple(a.shape[1:]) for a in as_list(x)]
            self.build(shapes if isinstance(x, (list, tuple)) else shapes[0], dtype=dtype or self.dtype)
            if self.device == "gpu":  # to_gpu() was called before the lazy build
                for layer in self.layers_list():
                    layer.to("gpu")

    # ------------------------------------------------------------------ compile and one training step
    def compile(self, loss, optimizer=None, metrics=None):
        """Choose the loss (object or Keras name), optimizer (object or name) and metrics."""
        loss = losses_module.get(loss)
        checks.check_output_matches_loss(self, loss)
        self.loss = loss
        self.optimizer = optimizers_module.get("sgd" if optimizer is None else optimizer)
        if isinstance(metrics, str) or callable(metrics):
            metrics = [metrics]  # compile(metrics="accuracy"), as Keras accepts
        self.metrics = [metrics_module.get(m, logits=self._outputs_logits()) for m in (metrics or [])]
        return self

    def _outputs_logits(self):
        """True when the loss takes binary logits, so binary decisions threshold at 0, not 0.5."""
        return bool(getattr(self.loss, "from_logits", False))

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

    def _batch_weight(self, sample_weight, n, what):
        """``sample_weight`` checked against ``n`` samples and moved to the model's device, or None."""
        if sample_weight is None:
            return None
        return self._prepare_targets(checks.check_sample_weight(sample_weight, n, what))

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
        x, y = checks.check_data(x, y, "input_gradient", self.multi_input, self.dtype)
        weight = self._batch_weight(sample_weight, n_samples(x), "input_gradient")
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

    @contextlib.contextmanager
    def _exclusive(self, what):
        """One thread at a time: every layer keeps one cache of its last forward pass for its
        backward, so a ``predict`` in a second thread during ``fit`` overwrote the training pass's
        caches (a crash, or weights updated with the wrong gradients). The thread that holds the
        model may re-enter (``fit`` validates with ``evaluate`` and ``predict``); another one gets
        a RuntimeError that says what to do."""
        me = threading.get_ident()
        with _OWNER_LOCK:
            owner = _OWNERS.get(id(self))
            if owner is not None and owner[0] != me:
                raise RuntimeError(f"{what}: {self.name} is running {owner[1]} in another thread, and a model runs one "
                                   "pass at a time (its layers keep one cache each). Wait for it to finish, or "
                                   f"{what} with a copy: copy.deepcopy(model), or hp.load_model of a saved one")
            if owner is None:
                _OWNERS[id(self)] = (me, what)
        try:
            yield
        finally:
            if owner is None:
                with _OWNER_LOCK:
                    del _OWNERS[id(self)]

    # ------------------------------------------------------------------ the loop: handprop.training
    def fit(self, x, y=None, epochs=1, batch_size=32, validation_data=None, validation_split=0.0,
            shuffle=True, callbacks=None, verbose=1, sample_weight=None, class_weight=None,
            steps_per_epoch=None, initial_epoch=0, nb_epoch=None, validation_batch_size=None):
        """Train for ``epochs`` epochs; returns a ``History``. The loop, and every argument, is
        described in :func:`handprop.training.fit`."""
        with self._exclusive("fit"):
            return training.fit(self, x, y, epochs=epochs, batch_size=batch_size, validation_data=validation_data,
                                validation_split=validation_split, shuffle=shuffle, callbacks=callbacks,
                                verbose=verbose, sample_weight=sample_weight, class_weight=class_weight,
                                steps_per_epoch=steps_per_epoch, initial_epoch=initial_epoch, nb_epoch=nb_epoch,
                                validation_batch_size=validation_batch_size)

    def evaluate(self, x, y=None, batch_size=256, return_dict=False, sample_weight=None, steps=None):
        """Loss (and metrics) in inference mode: the loss alone without metrics, else
        ``[loss, metric1, ...]`` as Keras, or a dict (``return_dict=True``). :func:`handprop.training.evaluate`."""
        with self._exclusive("evaluate"):
            return training.evaluate(self, x, y, batch_size=batch_size, return_dict=return_dict,
                                     sample_weight=sample_weight, steps=steps)

    def predict(self, x, batch_size=256):
        """Outputs for ``x`` in inference mode (``training=False``), batched; a NumPy array.
        :func:`handprop.training.predict`."""
        with self._exclusive("predict"):
            return training.predict(self, x, batch_size=batch_size)

    def predict_classes(self, x, batch_size=256, threshold=None):
        """Class indices: ``argmax`` of multi-class (N, classes) outputs; for binary outputs,
        ``score > threshold`` elementwise (default 0.5, or 0 when the loss takes logits)."""
        return training.predict_classes(self, x, batch_size=batch_size, threshold=threshold)

    def train_on_batch(self, x, y, sample_weight=None):
        """One optimizer step on the batch ``(x, y)``, as Keras: -> the loss (float) before the step.
        For loops ``fit`` does not cover (a GAN alternates two models); :func:`handprop.training.train_on_batch`."""
        with self._exclusive("train_on_batch"):
            return training.train_on_batch(self, x, y, sample_weight=sample_weight)

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


@saving.register_model
class Sequential(BaseModel):
    """A chain of layers: ``y = f_L(... f_2(f_1(x)))``; backward runs the chain in reverse.

    ``Sequential(layers=None, seed=0, input_shape=None)``: builds lazily from the first batch,
    or at once when ``input_shape`` (without the batch axis) is given -- here or, Keras style, on
    the first layer (``Dense(64, input_shape=(20,))``); ``(C, None, None)`` declares images of any
    size. A first convolution given channels-last images, e.g. ``input_shape=(32, 32, 3)``, is an
    error that says how to transpose them. The same seed gives the same initial weights, dropout masks and
    shuffling, hence bit-identical training. A layer may appear twice (its weights are shared;
    gradients of both uses add up).

    ``model.layers`` is the chain, in order, as in Keras: a layer used twice is listed twice
    (:meth:`layers_list` has every layer once). There is no input layer to leave out: the input
    shape is ``model.input_shape``.
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

    def wiring_config(self, index):
        """For model files: which layer (``index``: id -> position in :meth:`layers_list`) each
        position of the chain calls, and the input shape."""
        return {"calls": [index[id(layer)] for layer in self.layers],
                "input_shape": None if self.input_shape is None else list(self.input_shape)}

    @classmethod
    def from_wiring_config(cls, config, layers, dtype):
        """The model of :meth:`wiring_config` (and the common entries of a model file) from
        rebuilt ``layers``; built in ``dtype`` when it was saved built."""
        model = cls([layers[i] for i in config["calls"]], seed=config["seed"], name=config["name"])
        if config["built"] and config["input_shape"] is not None:
            model.build(tuple(config["input_shape"]), dtype=dtype)
        return model


def clone_model(model):
    """A deep copy (weights, state, optimizer state) — handy for ensembles and experiments."""
    return copy.deepcopy(model)


__all__ = ["BaseModel", "Sequential", "clone_model"]
