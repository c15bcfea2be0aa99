"""Saving and loading models: one safetensors file, no pickle, written atomically.

A model file holds everything needed to go on training where it stopped::

    model.save("run1.safetensors")             # architecture + weights + layer state + optimizer
    model = hp.load_model("run1.safetensors")  #   state + step counts + random generators
    model.fit(x, y, epochs=1)                  # continues exactly: the same numbers, bit for bit,
                                               # as if training had never stopped
    model.save_weights("w.safetensors"); other.load_weights("w.safetensors")   # weights only

**The format.** `safetensors <https://github.com/huggingface/safetensors>`_ (as PyTorch and
Hugging Face use for untrusted weights): an 8-byte header length, a JSON header, then the raw
tensors. Loading it never runs code, unlike pickle. The header's ``__metadata__`` (strings only)
holds ``format = "handprop"``, ``format_version``, ``kind`` (``"model"`` or ``"weights"``),
``architecture`` (JSON, below) and, for a model, ``training`` (JSON: loss, optimizer
hyper-parameters and step counts, metrics, and the states of the random generators: the
model's shuffling and initialization streams and every Dropout's mask stream) and, when the model
has a non-empty ``model.metadata`` dict, ``metadata`` (JSON: whatever its owner attached that a
later user of the file needs, e.g. the demo's preprocessing settings and decision threshold;
``load_model`` gives it back as ``model.metadata``, ``{}`` when the file has none). Tensors are named
``weights/<key>`` (the keys of :meth:`Model.get_weights`, e.g. ``weights/0.Dense/W``) and
``optimizer/<key>/<buffer>`` (e.g. ``optimizer/0.Dense/W/exp_avg``).

**The architecture** is JSON: every layer once, as ``{"class_name", "config", "trainable"}``
(``config`` is :meth:`Layer.get_config`, the constructor's keyword arguments); a ``Sequential``
lists which layer each position calls (a shared layer appears once in ``layers`` and several
times in ``calls``); a graph ``Model`` lists its inputs (with ``None`` for free sizes) and its
nodes, each a layer index and the ids of its parent nodes (inputs are ids ``0 .. k-1``).
Classes are found by name in registries: layers in the layer registry
(:func:`handprop.layers.register_layer`), models in :data:`MODEL_CLASSES`, into which
``Sequential`` and ``Model`` register themselves (:func:`register_model`). Each model class says
how its layers are connected (``wiring_config`` / ``from_wiring_config``), so this module imports
no model: the models import it.

**Writes are atomic and private**: the file is written to a temporary file in the same folder
(``.<name>.<host>.<pid>.<token>.handprop-tmp``), flushed to disk, then renamed over the target
(``os.replace``), so a crash leaves the old file or the new one, never half of one. The temporary
file is removed on any exception; one left by a process killed mid-save (``kill -9``) is removed
by the next save to the same path on the same host once its process is gone. A new file gets the
permissions the umask allows (``0600`` under ``umask 077``), an existing one keeps its own; a
read-only target (no write permission) is refused with a PermissionError instead of replaced; a
symbolic link is followed (its target is updated, the link stays).

**Reads check before they allocate.** Only a regular file is opened (not ``/dev/zero``, not a
pipe); the header (at most :data:`MAX_HEADER_BYTES`) is read and checked first: every tensor's
dtype (F32 or F64: an integer or half-precision tensor is refused, never cast), shape and byte
range, the ranges following each other up to the file's end (so the size of everything read is
known from the header). Then every value of the architecture is checked and the model is built
*shapes only* (:func:`handprop.init.shapes_only`: weights are placeholders that take no memory),
so that the names, shapes and dtypes the architecture needs are compared with the file's tensors
-- naming every one that differs -- before a single weight is allocated. Only then are the
tensors read, each straight into its own array, and their SHA-256 compared with the checksum
written with them (``__metadata__["tensors_sha256"]``): a flipped bit is a
:class:`~handprop.ModelFileError`, not a wrong number. The checksum detects corruption, not
tampering (anyone can recompute it). Files written before it existed (the same format version
1, without ``tensors_sha256``) still load: their tensors are checked as above, their bytes are
not. :func:`load_weights` also compares the file's architecture with the model's (a Tanh
network's weights are refused by a ReLU one). Every problem is a
:class:`~handprop.ModelFileError` (a ValueError) naming the file and what is wrong with it; a
missing file is a FileNotFoundError.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import secrets
import socket
import stat
import warnings

import numpy as np

from . import checks
from . import init as init_module
from . import losses as losses_module
from . import metrics as metrics_module
from . import optimizers as optimizers_module
from ._version import __version__
from .backend import to_numpy
from .errors import HandpropWarning, ModelFileError
from .layers.base import get_layer_class

FORMAT = "handprop"
FORMAT_VERSION = 1
"""Bumped whenever a change makes older handprop versions misread new files."""

_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")

MODEL_DTYPES = ("float32", "float64")
"""The dtypes a model computes in (and a model file's tensors have)."""

_TENSOR_DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8")}  # safetensors' names, little-endian
_TENSOR_CODE = {"float32": "F32", "float64": "F64"}

MAX_HEADER_BYTES = 4 * 2**20
"""The largest header read: a U-Net's takes a few kilobytes; a bigger one is not a model's."""

MAX_JSON_DEPTH = 32
"""JSON in a model file nested deeper than this is refused (a model's architecture takes 5 levels)."""

MAX_LAYERS = 10_000
"""An architecture with more layers (or calls, or graph nodes) than this is refused."""

CHECKSUM_KEY = "tensors_sha256"
"""The ``__metadata__`` entry holding the SHA-256 (hex) of all tensor data, in file order."""

TEMPORARY_SUFFIX = ".handprop-tmp"

MODEL_CLASSES: dict[str, type] = {}
"""Model classes by the name a model file gives them (``"Sequential"``, ``"Model"``)."""


def register_model(cls):
    """Register a model class (a decorator) so that model files can name it: it must provide
    ``wiring_config(index) -> dict`` and the class method ``from_wiring_config(config, layers, dtype)``."""
    MODEL_CLASSES[cls.__name__] = cls
    return cls


def _registered_name(model):
    """The registered name of ``model``'s class or of the nearest registered base class."""
    for cls in type(model).__mro__:
        if MODEL_CLASSES.get(cls.__name__) is cls:
            return cls.__name__
    raise TypeError(f"save: expects a handprop Sequential or Model, got {type(model).__name__}")


# ----------------------------------------------------------------------------- JSON helpers
def _jsonable(value, where):
    """``value`` with tuples as lists and NumPy scalars as Python numbers; initializer functions of
    :mod:`handprop.init` by name. Anything else that JSON cannot hold is a ValueError naming ``where``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            raise ValueError(f"save: {where} holds {float(value)}, which a model file cannot hold (JSON has no "
                             "NaN or infinity); store a finite number or None")
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, where) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        others = [k for k in value if not isinstance(k, str)]
        if where.startswith("metadata") and others:
            raise TypeError(f"save: {where} has keys that are not strings ({others!r}); JSON would load them back "
                            "as strings: use string keys")
        return {str(k): _jsonable(v, f"{where}[{k!r}]" if where.startswith("metadata") else where)
                for k, v in value.items()}
    if callable(value):
        for name, fn in init_module.INITIALIZERS.items():
            if fn is value:
                return name
    raise ValueError(f"save: {where} holds {value!r}, which cannot be written to a model file; pass a name "
                     "instead (e.g. kernel_init='he_normal' rather than a function)")


def _tuples(value):
    """JSON lists back to tuples (shapes, pairs), recursively."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def _dumps(obj):
    return json.dumps(obj, sort_keys=False, allow_nan=False)


def _no_constant(name):
    raise ValueError(f"{name} is not a JSON number (a model file holds no NaN or infinity)")


def parse_json(text, what):
    """``json.loads(text)`` for JSON read from a file: no NaN or infinity, nested at most
    :data:`MAX_JSON_DEPTH` levels; a ValueError that names ``what`` otherwise (never a
    RecursionError)."""
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply") from None
    except ValueError as e:  # UnicodeDecodeError and JSONDecodeError included
        raise ValueError(f"{what} is not valid JSON ({e})") from None
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"{what} is nested more than {MAX_JSON_DEPTH} levels deep")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return value


def _short(value, limit=80):
    """``repr(value)``, cut to ``limit`` characters (for messages about crafted files)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _is_count(value, minimum=0):
    """An int (not a bool) >= ``minimum``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


# ----------------------------------------------------------------------------- architecture
def layer_spec(layer, where):
    """``{"class_name", "config", "trainable"}`` for one layer."""
    return {"class_name": type(layer).__name__,
            "config": _jsonable(layer.get_config(), f"{where} ({layer.name}) config"),
            "trainable": bool(layer.trainable)}


def layer_from_spec(spec, custom_layers=None):
    """Rebuild a layer (without weights) from :func:`layer_spec`; its constructor checks every
    value of its config (a ValueError naming the layer otherwise)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("class_name"), str):
        raise ValueError(f"load: a layer must be {{\"class_name\": ..., \"config\": {{...}}}}, got {_short(spec)}")
    try:
        cls = get_layer_class(spec["class_name"], custom_layers)
    except ValueError as e:
        raise ValueError(f"load: {e}") from None
    config = spec.get("config", {})
    trainable = spec.get("trainable", True)
    if not isinstance(config, dict):
        raise ValueError(f"load: the config of layer {spec['class_name']} is not a JSON object: {_short(config)}")
    if not isinstance(trainable, bool):
        raise ValueError(f"load: 'trainable' of layer {spec['class_name']} must be true or false, "
                         f"got {_short(trainable)}")
    config = _tuples(config)
    try:
        layer = cls(**config)
    except (TypeError, ValueError, OverflowError, KeyError, IndexError, AttributeError) as e:
        raise ValueError(f"load: could not rebuild layer {spec['class_name']} from its config {_short(config, 200)}: "
                         f"{e}. Its get_config() must return its constructor's keyword arguments") from e
    layer.trainable = trainable
    return layer


def _check_shape(shape, where):
    """A saved input shape: a non-empty list of sizes, each an int >= 1 or None (free)."""
    if not isinstance(shape, list) or not shape or not all(d is None or _is_count(d, 1) for d in shape):
        raise ValueError(f"{where} must be a list of sizes (ints >= 1, or null for a free size), got {_short(shape)}")


def _check_chain(config, n_layers):
    """The wiring of a ``Sequential``: ``calls`` and ``input_shape``."""
    calls = config.get("calls")
    if not isinstance(calls, list) or len(calls) > MAX_LAYERS or not all(
            _is_count(i) and i < n_layers for i in calls):
        raise ValueError(f"'calls' must list at most {MAX_LAYERS} layer indices in 0..{n_layers - 1}, "
                         f"got {_short(calls)}")
    if sorted(set(calls)) != list(range(n_layers)):
        raise ValueError(f"'calls' {_short(calls)} does not call every one of its {n_layers} layers")
    if config.get("input_shape") is not None:
        _check_shape(config["input_shape"], "'input_shape'")


def _check_graph(config, n_layers):
    """The wiring of a graph ``Model``: ``inputs``, ``nodes``, ``output``, ``multi_input``."""
    inputs, nodes = config.get("inputs"), config.get("nodes")
    if not isinstance(config.get("multi_input"), bool):
        raise ValueError(f"'multi_input' must be true or false, got {_short(config.get('multi_input'))}")
    if not isinstance(inputs, list) or not inputs or len(inputs) > MAX_LAYERS or (
            not config["multi_input"] and len(inputs) != 1):
        raise ValueError(f"'inputs' must list the model's inputs (one unless multi_input), got {_short(inputs)}")
    for i, spec in enumerate(inputs):
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise ValueError(f"input {i} must be {{\"name\": ..., \"shape\": [...]}}, got {_short(spec)}")
        _check_shape(spec.get("shape"), f"the shape of input {i}")
    if not isinstance(nodes, list) or len(nodes) > MAX_LAYERS:
        raise ValueError(f"'nodes' must be a list of at most {MAX_LAYERS} nodes, got {_short(nodes)}")
    for j, node in enumerate(nodes):
        known = len(inputs) + j  # a node's parents come before it
        if not isinstance(node, dict) or not (_is_count(node.get("layer")) and node["layer"] < n_layers):
            raise ValueError(f"node {j} must name a layer index in 0..{n_layers - 1}, got {_short(node)}")
        parents = node.get("parents")
        if not isinstance(parents, list) or not parents or not all(_is_count(p) and p < known for p in parents):
            raise ValueError(f"node {j} must list its parents, ids of earlier nodes (< {known}), got {_short(parents)}")
    if not (_is_count(config.get("output")) and config["output"] < len(inputs) + len(nodes)):
        raise ValueError(f"'output' must be a node id below {len(inputs) + len(nodes)}, "
                         f"got {_short(config.get('output'))}")


_WIRING_CHECKS = {"Sequential": _check_chain, "Model": _check_graph}
"""How each of handprop's model classes checks its wiring config before it is built."""


def check_architecture(config):
    """Every value of an architecture (module docstring) except the layers' configs, which their
    constructors check: a ValueError naming the entry and its value, before anything is built."""
    if not isinstance(config, dict):
        raise ValueError(f"the architecture is not a JSON object: {_short(config)}")
    kind = config.get("class_name")
    if not isinstance(kind, str) or kind not in MODEL_CLASSES:
        raise ValueError(f"unknown model class {_short(kind)}; model files hold one of {sorted(MODEL_CLASSES)}")
    if not isinstance(config.get("name"), str):
        raise ValueError(f"the model's 'name' must be a string, got {_short(config.get('name'))}")
    if not (config.get("seed") is None or _is_count(config["seed"])):
        raise ValueError(f"the model's 'seed' must be an int >= 0 or null, got {_short(config.get('seed'))}")
    if config.get("dtype") not in MODEL_DTYPES:
        raise ValueError(f"the model's 'dtype' must be one of {MODEL_DTYPES} (handprop computes in float32 or "
                         f"float64), got {_short(config.get('dtype'))}")
    if not isinstance(config.get("built"), bool):
        raise ValueError(f"the model's 'built' must be true or false, got {_short(config.get('built'))}")
    layers = config.get("layers")
    if not isinstance(layers, list) or len(layers) > MAX_LAYERS:
        raise ValueError(f"'layers' must be a list of at most {MAX_LAYERS} layers, got {_short(layers)}")
    for i, spec in enumerate(layers):
        if not (isinstance(spec, dict) and isinstance(spec.get("class_name"), str)
                and isinstance(spec.get("config", {}), dict) and isinstance(spec.get("trainable", True), bool)):
            raise ValueError(f"layer {i} must be {{\"class_name\": ..., \"config\": {{...}}, \"trainable\": "
                             f"true or false}}, got {_short(spec)}")
    if kind in _WIRING_CHECKS:
        _WIRING_CHECKS[kind](config, len(layers))


def model_config(model):
    """The architecture of a Sequential or graph Model as a JSON-ready dict (module docstring)."""
    class_name = _registered_name(model)
    layers = model.layers_list()
    index = {id(layer): i for i, layer in enumerate(layers)}
    config = {"name": model.name, "seed": _jsonable(model.seed, "model seed"),
              "dtype": np.dtype(model.dtype).name, "built": bool(model.built),
              "layers": [layer_spec(layer, f"layer {i}") for i, layer in enumerate(layers)]}
    config.update(class_name=class_name, **model.wiring_config(index))
    return config


def model_from_config(config, custom_layers=None, shapes_only=False):
    """Rebuild a model (fresh weights) from :func:`model_config`; built as it was when saved.

    Every value is checked first (:func:`check_architecture`, then each layer's constructor), so a
    malformed architecture is a ValueError before anything is built. ``shapes_only=True`` builds
    it with placeholder weights that take no memory (:func:`handprop.init.shapes_only`): the
    names, shapes and dtypes of its weights, for checking a file's tensors before reading them.
    """
    try:
        check_architecture(config)
    except ValueError as e:
        raise ValueError(f"load: the architecture in the file is malformed: {e}") from None
    layers = [layer_from_spec(spec, custom_layers) for spec in config["layers"]]
    dtype = np.dtype(config["dtype"]).type
    try:
        with init_module.shapes_only() if shapes_only else contextlib.nullcontext():
            model = MODEL_CLASSES[config["class_name"]].from_wiring_config(config, layers, dtype)
    except (KeyError, IndexError, TypeError, AttributeError, OverflowError, RuntimeError, MemoryError) as e:
        raise ValueError(f"load: the architecture in the file is malformed ({type(e).__name__}: {e})") from e
    except ValueError as e:
        if str(e).startswith("load"):
            raise
        raise ValueError(f"load: the saved architecture does not build ({e})") from e
    return model


# ----------------------------------------------------------------------------- random generators
def _generator_state(rng):
    return _jsonable(rng.bit_generator.state, "a random generator's state")


def _generator_from_state(state):
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if not isinstance(name, str) or name not in _BIT_GENERATORS:
        raise ValueError(f"unknown random bit generator {_short(name)}")
    rng = np.random.Generator(getattr(np.random, name)())
    try:
        rng.bit_generator.state = state
    except (ValueError, TypeError, KeyError, OverflowError) as e:
        raise ValueError(f"a random generator's state is malformed ({e})") from None
    return rng


def _rng_layers(model):
    return {str(i): layer for i, layer in enumerate(model.layers_list())
            if isinstance(getattr(layer, "rng", None), np.random.Generator)}


# ----------------------------------------------------------------------------- training state
def training_config(model, include_optimizer=True):
    """Loss, optimizer (hyper-parameters and per-parameter step counts), metrics and random
    generator states as a JSON-ready dict; the optimizer's arrays are returned separately."""
    arrays = {}
    config = {"loss": None, "optimizer": None, "metrics": [name for name, _ in model.metrics],
              "epochs_trained": int(getattr(model, "epochs_trained", 0)),
              "rng": {"shuffle": _generator_state(model._shuffle_rng), "init": _generator_state(model._init_rng),
                      "layers": {i: _generator_state(layer.rng) for i, layer in _rng_layers(model).items()}}}
    if model.loss is not None:
        config["loss"] = {"class_name": type(model.loss).__name__,
                          "config": _jsonable(model.loss.get_config(),
                                              "the loss")}
    opt = model.optimizer
    if opt is not None and include_optimizer:
        steps = {}
        for key, state in opt.state.items():
            for buf, value in state.items():
                if buf == "step":
                    steps[key] = int(value)
                else:
                    arrays[f"optimizer/{key}/{buf}"] = np.ascontiguousarray(to_numpy(value))
        config["optimizer"] = {"class_name": type(opt).__name__,
                               "config": _jsonable(opt.get_config(), "the optimizer"), "steps": steps}
    return config, arrays


def _saved_instance(module, base, method, spec, what):
    """The loss or optimizer of a ``{"class_name", "config"}`` entry: a concrete class of
    ``module`` (one that overrides ``base.<method>``; not ``base`` itself), built from its config."""
    if not isinstance(spec, dict) or not isinstance(spec.get("class_name"), str) or not isinstance(
            spec.get("config", {}), dict):
        raise ValueError(f"the {what} must be {{\"class_name\": ..., \"config\": {{...}}}}, got {_short(spec)}")
    name = spec["class_name"]
    cls = getattr(module, name, None)
    if not (isinstance(cls, type) and issubclass(cls, base) and getattr(cls, method) is not getattr(base, method)):
        raise ValueError(f"unknown {what} class {_short(name)}; load with compile=False and compile the model "
                         "yourself")
    config = _tuples(spec.get("config", {}))
    try:
        return cls(**config)
    except (TypeError, ValueError, OverflowError) as e:
        raise ValueError(f"the {what} {name} does not accept its saved config {_short(config, 200)}: {e}") from None


def training_from_config(config, model, compile=True):
    """``(loss, optimizer, steps, metrics, rng)`` of a model file's ``training`` entry, every value
    checked (a ValueError naming it otherwise). ``steps``: ``{parameter: int >= 0}`` for the
    optimizer's state; loss and optimizer are None when not saved or when ``compile=False``."""
    if not isinstance(config, dict):
        raise ValueError(f"the training state is not a JSON object: {_short(config)}")
    loss = optimizer = None
    steps, metrics = {}, config.get("metrics", [])
    if compile and config.get("loss") is not None:
        loss = _saved_instance(losses_module, losses_module.Loss, "_forward", config["loss"], "loss")
        if config.get("optimizer") is not None:
            spec = config["optimizer"]
            optimizer = _saved_instance(optimizers_module, optimizers_module.Optimizer, "_update", spec, "optimizer")
            steps = spec.get("steps", {})
            params = model.named_params()
            if not isinstance(steps, dict) or not all(_is_count(v) for v in steps.values()):
                raise ValueError(f"the optimizer's 'steps' must map parameter names to step counts (ints >= 0), "
                                 f"got {_short(steps, 200)}")
            unknown = sorted(k for k in steps if k not in params)
            if unknown:
                raise ValueError(f"the optimizer has state for parameters the model does not have: {unknown[:5]}")
    if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
        raise ValueError(f"'metrics' must be a list of metric names, got {_short(metrics)}")
    if not _is_count(config.get("epochs_trained", 0)):
        raise ValueError(f"'epochs_trained' must be an int >= 0, got {_short(config.get('epochs_trained'))}")
    rng = config.get("rng", {})
    if not isinstance(rng, dict) or not isinstance(rng.get("layers", {}), dict):
        raise ValueError(f"'rng' must be a JSON object of random generator states, got {_short(rng)}")
    return loss, optimizer, steps, metrics, rng


def _optimizer_tensors(model, optimizer, steps, names, compile):
    """``{name: (shape, dtype)}`` of the ``optimizer/<parameter>/<buffer>`` tensors a file may hold:
    each buffer has its parameter's shape and dtype; with ``compile``, the buffers the optimizer
    keeps (e.g. Adam's ``exp_avg``) are required for every parameter in ``steps``."""
    params = model.named_params()
    expected = {}
    for name in names:  # what the file holds: allowed when it belongs to a parameter of the model
        key, _, buf = name[len("optimizer/"):].rpartition("/")
        if name.startswith("optimizer/") and key in params and (key in steps or not compile):
            expected[name] = (params[key].shape, params[key].dtype)
    if optimizer is not None:
        for key in steps:
            p = params[key]
            for buf in optimizer._init_state(np.zeros(1, p.dtype), np):
                expected[f"optimizer/{key}/{buf}"] = (p.shape, p.dtype)
    return expected


def _restore_training(model, loss, optimizer, steps, metrics, tensors):
    """Compile ``model`` with the saved loss, optimizer (its state from ``tensors``) and metrics."""
    if loss is None:
        return
    if optimizer is not None:
        for key, step in steps.items():
            prefix = f"optimizer/{key}/"
            optimizer.state[key] = {"step": int(step), **{name[len(prefix):]: tensors[name] for name in tensors
                                                          if name.startswith(prefix) and "/" not in name[len(prefix):]}}
    known = []
    for name in metrics:
        if name in metrics_module.METRICS:
            known.append(name)
        else:
            warnings.warn(f"load: metric {name!r} is not one of handprop's; compile again to add it",
                          HandpropWarning, stacklevel=4)
    model.compile(loss=loss, optimizer=optimizer, metrics=known)
    if optimizer is None:
        model.optimizer = None  # saved without optimizer: fit needs compile(optimizer=...) again


def _restore_generators(model, rng):
    """The model's shuffling and initialization streams and every Dropout's mask stream."""
    if "shuffle" in rng:
        model._shuffle_rng = _generator_from_state(rng["shuffle"])
    if "init" in rng:
        model._init_rng = _generator_from_state(rng["init"])
    layers = _rng_layers(model)
    for i, state in rng.get("layers", {}).items():
        if i in layers:
            layers[i].rng = _generator_from_state(state)


# ----------------------------------------------------------------------------- writing
def _temporary_prefix(name):
    return f".{name}."


def _temporary_name(name):
    """``.<name>.<host>.<pid>.<token>.handprop-tmp``: recognisable, unique, and it says which
    process on which host wrote it (see :func:`_remove_stale_temporaries`)."""
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"
    return f"{_temporary_prefix(name)}{host}.{os.getpid()}.{secrets.token_hex(4)}{TEMPORARY_SUFFIX}"


def _process_is_gone(pid):
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)  # signal 0: checks that the process exists, sends nothing
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by someone else
        return False
    return False


def _remove_stale_temporaries(folder, name):
    """Remove the temporary files of earlier saves to ``folder/name`` whose process, on this host,
    no longer runs (killed mid-save: ``kill -9`` leaves no chance to clean up). Those of running
    processes, or of other hosts sharing the folder, are left alone."""
    if os.name != "posix":
        return
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"
    prefix = _temporary_prefix(name)
    try:
        candidates = [f for f in os.listdir(folder) if f.startswith(prefix) and f.endswith(TEMPORARY_SUFFIX)]
    except OSError:
        return
    for f in candidates:
        parts = f[len(prefix):-len(TEMPORARY_SUFFIX)].split(".")
        if len(parts) == 3 and parts[0] == host and parts[1].isdigit() and _process_is_gone(int(parts[1])):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, f))


def _atomic_write(path, chunks, what="save"):
    """Write the byte strings ``chunks`` to ``path`` via a temporary file in the same folder and
    ``os.replace`` (the module docstring: umask, read-only targets, symbolic links, cleanup)."""
    path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not path:
        raise ValueError(f"{what}: the path is empty; pass a file name such as 'model.safetensors'")
    target = os.path.realpath(path)  # through a symbolic link: update its target, keep the link
    folder, name = os.path.split(target)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{what}: the folder {folder!r} does not exist")
    try:
        existing = os.stat(target)
    except FileNotFoundError:
        existing = None
    if existing is not None:
        if stat.S_ISDIR(existing.st_mode):
            raise IsADirectoryError(f"{what}: {path!r} is a folder; pass a file name inside it")
        if not stat.S_ISREG(existing.st_mode):
            raise OSError(f"{what}: {path!r} is not a regular file (a device or a pipe); save to a file")
        if not existing.st_mode & 0o222 or not os.access(target, os.W_OK):
            raise PermissionError(f"{what}: {path!r} is read-only (mode {stat.S_IMODE(existing.st_mode):04o}); it is "
                                  "not replaced. Make it writable (chmod u+w) or save to another file")
    _remove_stale_temporaries(folder, name)
    tmp = os.path.join(folder, _temporary_name(name))
    # a new file: 0666 less the umask, as open() gives; an existing one keeps its mode (below)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                 0o666 if existing is None else 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        if existing is not None:
            os.chmod(tmp, stat.S_IMODE(existing.st_mode))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _tensor_bytes(array):
    """The raw little-endian bytes of ``array`` in C order: a flat uint8 view of it, no copy
    (for a C-contiguous array on a little-endian machine, as a model's weights are)."""
    a = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False)
    return a.reshape(-1).view(np.uint8)


def _write(path, tensors, metadata):
    """Write a safetensors file: an 8-byte header length, the JSON header (padded with spaces to a
    multiple of 8), then every tensor's bytes in the order of their names; the SHA-256 of those
    bytes goes into the metadata (:data:`CHECKSUM_KEY`)."""
    host = {name: to_numpy(tensors[name]) for name in sorted(tensors)}  # GPU arrays copied to the host
    arrays = {name: _tensor_bytes(a) for name, a in host.items()}
    header, offset, digest = {}, 0, hashlib.sha256()
    for name, data in arrays.items():
        dtype = host[name].dtype.name
        if dtype not in _TENSOR_CODE:
            raise TypeError(f"save: tensor {name!r} has dtype {dtype}; model files hold float32 or float64")
        header[name] = {"dtype": _TENSOR_CODE[dtype], "shape": [int(d) for d in host[name].shape],
                        "data_offsets": [offset, offset + data.size]}
        offset += data.size
        digest.update(data)
    meta = {"format": FORMAT, "format_version": str(FORMAT_VERSION), **metadata, "handprop_version": __version__,
            CHECKSUM_KEY: digest.hexdigest()}
    text = json.dumps({"__metadata__": meta, **header}, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % 8)  # the tensors start 8-byte aligned
    _atomic_write(path, [len(text).to_bytes(8, "little"), text, *arrays.values()])


# ----------------------------------------------------------------------------- reading
class ModelFile:
    """A handprop file opened for reading: its header read and checked, its tensors not yet read.

    ``with ModelFile(path, "load_model") as f``: ``f.meta`` (the ``__metadata__`` strings),
    ``f.tensors`` (name -> ``(dtype, shape)`` as the header declares them), ``f.json(key)``,
    ``f.check_tensors(expected)`` and ``f.read_tensors()``. Every problem is a
    :class:`~handprop.ModelFileError` from :meth:`error`, naming the file.
    """

    def __init__(self, path, what="load"):
        if not isinstance(path, (str, bytes, os.PathLike)):
            raise TypeError(f"{what}: path must be a file name, got {type(path).__name__}")
        self.path, self.what = os.fspath(path), what
        self._file, self.size = self._open_regular_file()
        try:
            self._read_header()
        except BaseException:
            self._file.close()
            raise

    def error(self, text):
        """A :class:`~handprop.ModelFileError` saying ``text`` about this file."""
        return ModelFileError(f"{self.what}: {self.path!r} {text}")

    def close(self):
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _open_regular_file(self):
        """Open the file without blocking (a pipe would wait for a writer) and check, on the open
        file itself, that it is a regular file: not a folder, a device (``/dev/zero``) or a pipe."""
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.what}: no such file: {self.path!r}") from None
        except IsADirectoryError:
            raise self.error("is a folder, not a model file") from None
        try:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                raise self.error("is a folder, not a model file")
            if not stat.S_ISREG(info.st_mode):
                raise self.error("is not a regular file (a device, a pipe or a socket); model files are read only "
                                 "from regular files")
            return os.fdopen(fd, "rb", buffering=0), info.st_size
        except BaseException:
            os.close(fd)
            raise

    def _read_into(self, buffer):
        view, got = memoryview(buffer).cast("B"), 0
        while got < len(view):
            n = self._file.readinto(view[got:])
            if not n:
                raise self.error(f"is truncated: it ended {len(view) - got} bytes early while it was read")
            got += n

    def _read_header(self):
        not_ours = "is not a handprop model file"
        if self.size < 8:
            raise self.error(f"{not_ours}: it has only {self.size} bytes (truncated, or another format)")
        header_length = bytearray(8)
        self._read_into(header_length)
        n = int.from_bytes(header_length, "little")
        if n > self.size - 8:
            raise self.error(f"{not_ours}: its safetensors header would take {n} bytes but the file has "
                             f"{self.size} (truncated, or not a safetensors file)")
        if n > MAX_HEADER_BYTES:
            raise self.error(f"has a header of {n} bytes; handprop reads headers up to {MAX_HEADER_BYTES} bytes "
                             "(a model's takes a few kilobytes)")
        raw = bytearray(n)
        self._read_into(raw)
        try:
            header = parse_json(bytes(raw), "its header")
            if not isinstance(header, dict):
                raise ValueError("the header is not a JSON object")
        except ValueError as e:
            raise self.error(f"{not_ours}: no safetensors header ({e})") from None
        meta = header.pop("__metadata__", {})
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            raise self.error(f"has a malformed header: __metadata__ must be a JSON object of strings, "
                             f"got {_short(meta)}")
        if meta.get("format") != FORMAT:
            raise self.error(f"{not_ours}: it is a safetensors file, but not one handprop wrote (its metadata has no "
                             "format 'handprop'). Weights of another library: read them with "
                             "safetensors.numpy.load_file and pass them to model.set_weights")
        try:
            version = int(meta.get("format_version", ""))
        except ValueError:
            raise self.error(f"{not_ours}: unreadable format_version {_short(meta.get('format_version'))}") from None
        if version > FORMAT_VERSION:
            raise self.error(f"has format version {version}, newer than this handprop reads ({FORMAT_VERSION}); "
                             "upgrade handprop")
        self.meta = meta
        self.data_start = 8 + n
        self._entries = self._check_entries(header, self.size - self.data_start)
        self.tensors = {k: (_TENSOR_DTYPES[code], shape) for k, (code, shape, _, _) in self._entries.items()}

    def _check_entries(self, header, body):
        """Each tensor's dtype, shape and byte range; the ranges follow each other from 0 to the
        end of the file, so the header says how much will be read."""
        entries = {}
        for name, entry in header.items():
            if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
                raise self.error(f"has a malformed header: tensor {_short(name)} must be an object with dtype, shape "
                                 f"and data_offsets, got {_short(entry)}")
            code, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
            if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
                raise self.error(f"has a malformed header: tensor {name!r} has shape {_short(shape)}; a shape is a "
                                 "list of ints >= 0")
            if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(o) for o in offsets)
                    and offsets[0] <= offsets[1]):
                raise self.error(f"has a malformed header: tensor {name!r} has data_offsets {_short(offsets)}; they "
                                 "must be [begin, end], two ints with 0 <= begin <= end")
            if not isinstance(code, str) or code not in _TENSOR_DTYPES:
                raise self.error(f"holds tensor {name!r} of dtype {_short(code)}; handprop's weights and optimizer "
                                 "state are F32 or F64 (float32 or float64), and a tensor of another dtype is not "
                                 "converted silently")
            size = math.prod(shape) * _TENSOR_DTYPES[code].itemsize
            if offsets[1] - offsets[0] != size:
                raise self.error(f"has a malformed header: tensor {name!r} of shape {tuple(shape)} and dtype {code} "
                                 f"takes {size} bytes, its data_offsets {offsets} span {offsets[1] - offsets[0]}")
            entries[name] = (code, tuple(shape), offsets[0], offsets[1])
        end = 0
        for name, (_, _, begin, stop) in sorted(entries.items(), key=lambda item: item[1][2:]):
            if begin != end:
                raise self.error(f"has a malformed header: tensor {name!r} starts at byte {begin} of the data, the "
                                 f"tensor before it ends at {end} (tensors follow each other without gaps or overlaps)")
            end = stop
        if end > body:
            raise self.error(f"is truncated: its tensors need {end} bytes after the header, the file has {body}")
        if end < body:
            raise self.error(f"has {body - end} bytes after its last tensor (not a file handprop wrote, or damaged)")
        return entries

    def json(self, key):
        """The JSON value of ``__metadata__[key]`` (a ModelFileError when missing or unreadable)."""
        if key not in self.meta:
            raise self.error(f"has no {key!r} entry in its metadata")
        try:
            return parse_json(self.meta[key], f"its {key!r} entry")
        except ValueError as e:
            raise self.error(f"has no readable {key!r} entry: {e}") from None

    def check_tensors(self, expected, owner, prefix="", note=""):
        """Compare the header's tensors (those named ``prefix...``) with ``expected`` (name without
        ``prefix`` -> ``(shape, dtype)``, dtype None for any): every missing, unexpected, misshapen
        or wrongly typed tensor named in one error that ends with ``note``, before any is read."""
        held = {k[len(prefix):]: v for k, v in self.tensors.items() if k.startswith(prefix)}
        problems = []
        missing = [k for k in expected if k not in held]
        extra = sorted(k for k in held if k not in expected)
        for what, names in (("missing", missing), ("unexpected", extra)):
            if names:
                problems.append(f"{what} {names[:10]}{' ...' if len(names) > 10 else ''}")
        for k, (shape, dtype) in expected.items():
            if k in held:
                got_dtype, got_shape = held[k]
                if tuple(got_shape) != tuple(shape):
                    problems.append(f"{k} has shape {tuple(got_shape)}, {owner}'s is {tuple(shape)}")
                elif dtype is not None and np.dtype(got_dtype) != np.dtype(dtype):
                    problems.append(f"{k} is {np.dtype(got_dtype).name}, {owner} computes in {np.dtype(dtype).name} "
                                    "(a tensor of another dtype is not converted silently)")
        if problems:
            raise self.error(f"does not fit {owner}: " + "; ".join(problems) + note)

    def read_tensors(self, names=None):
        """The tensors (those in ``names``; default all), each read straight into its own array,
        after the SHA-256 of all tensor data has been compared with :data:`CHECKSUM_KEY`."""
        digest, scratch, out = hashlib.sha256(), None, {}
        names = None if names is None else set(names)
        self._file.seek(self.data_start)
        for name, (code, shape, begin, end) in sorted(self._entries.items(), key=lambda item: item[1][2]):
            if names is None or name in names:
                array = np.empty(shape, dtype=_TENSOR_DTYPES[code])
                flat = array.reshape(-1).view(np.uint8)
                self._read_into(flat)
                digest.update(flat)
                out[name] = array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))
                continue
            scratch = bytearray(2**20) if scratch is None else scratch  # not kept: read to be checked
            for start in range(begin, end, len(scratch)):
                chunk = memoryview(scratch)[:min(len(scratch), end - start)]
                self._read_into(chunk)
                digest.update(chunk)
        expected = self.meta.get(CHECKSUM_KEY)
        if expected is not None and digest.hexdigest() != expected:
            raise self.error("is corrupt: the SHA-256 of its tensor data differs from the checksum written with it "
                             "(a changed byte: a damaged disk or copy, or an edited file). Use an intact copy")
        return out


def read_file(path, what="load"):
    """``(metadata, tensors)`` of a handprop file, every tensor read and checked (the checksum
    included); a FileNotFoundError for a missing file, a :class:`~handprop.ModelFileError` for a
    truncated, corrupt, foreign or newer-format one."""
    with ModelFile(path, what) as f:
        return f.meta, f.read_tensors()


# ----------------------------------------------------------------------------- models
def save_model(model, path, include_optimizer=True, metadata=None):
    """Write ``model`` (see the module docstring) to ``path``, atomically. ``metadata``: a JSON-able
    dict stored with it (default: the model's ``metadata`` attribute, if it has a non-empty one)."""
    arch = model_config(model)
    training, tensors = training_config(model, include_optimizer)
    tensors.update({f"weights/{k}": v for k, v in _model_arrays(model).items()})
    header = {"kind": "model", "architecture": _dumps(arch), "training": _dumps(training)}
    metadata = getattr(model, "metadata", None) if metadata is None else metadata
    if metadata:
        if not isinstance(metadata, dict):
            raise TypeError(f"save: metadata must be a dict, got {type(metadata).__name__}")
        header["metadata"] = _dumps(_jsonable(metadata, "metadata"))
    _write(path, tensors, header)


def _model_arrays(model):
    """Every parameter and state array of a built model by name (the arrays themselves, no copies)."""
    return {**model.named_params(), **model.get_state()} if model.built else {}


def _fill_weights(model, f, tensors):
    """Put the file's weights into a model built shapes only (its placeholders replaced), after
    the checks of ``set_weights`` (finite numbers); gradients start at zero."""
    weights = {k[len("weights/"):]: v for k, v in tensors.items() if k.startswith("weights/")}
    try:
        checks.check_named_arrays("load_model", weights, _model_arrays(model), model.name)
    except ValueError as e:
        raise f.error(f"does not fit its own architecture: {e}") from None
    for key, layer in model._layer_keys():
        for arrays in (layer.params, layer.state):
            for name in arrays:
                arrays[name] = weights[f"{key}/{name}"]
        layer.zero_grads()


def load_model(path, custom_layers=None, compile=True):
    """Rebuild the model saved by :meth:`Model.save`: architecture, weights, layer state, random
    generators and, with ``compile=True``, loss, optimizer (with its state and step counts) and
    metrics -- so that ``fit`` continues exactly where it stopped. ``model.metadata`` is the dict
    saved with it (``{}`` when none was).

    Everything is checked before it is allocated (the module docstring): a bad file is a
    :class:`~handprop.ModelFileError` naming it. ``custom_layers``: ``{"ClassName": cls}`` for
    layer classes of your own that are not registered with
    :func:`handprop.layers.register_layer` (a custom layer whose ``create_params`` does not use
    :func:`handprop.init.get` allocates its weights while the file is checked). The model comes
    back on the CPU.
    """
    with ModelFile(path, "load_model") as f:
        if f.meta.get("kind") != "model":
            raise f.error("holds weights only (save_weights); build the model and call model.load_weights(path)")
        try:
            model = model_from_config(f.json("architecture"), custom_layers, shapes_only=True)
            loss, optimizer, steps, metrics, rng = training_from_config(f.json("training"), model, compile)
        except ModelFileError:
            raise
        except ValueError as e:
            raise f.error(f"cannot be loaded: {e}") from None
        expected = {f"weights/{k}": (v.shape, v.dtype) for k, v in _model_arrays(model).items()}
        expected.update(_optimizer_tensors(model, optimizer, steps, f.tensors, compile))
        f.check_tensors(expected, "its architecture")
        tensors = f.read_tensors(names=None if compile else [k for k in f.tensors if k.startswith("weights/")])
        _fill_weights(model, f, tensors)
        try:
            _restore_generators(model, rng)
            _restore_training(model, loss, optimizer, steps, metrics, tensors)
            model.epochs_trained = int(f.json("training").get("epochs_trained", 0))  # a batch source continues
        except ValueError as e:
            raise f.error(f"has a training state that cannot be restored: {e}") from None
        model.metadata = f.json("metadata") if "metadata" in f.meta else {}
        if not isinstance(model.metadata, dict):
            raise f.error("has metadata that is not a JSON object")
    return model


def save_weights(model, path):
    """Write the parameters and state arrays of ``model`` (no optimizer) to ``path``, atomically."""
    if not model.built:
        raise RuntimeError("save_weights: the model is not built yet, so it has no weights")
    tensors = {f"weights/{k}": v for k, v in _model_arrays(model).items()}
    _write(path, tensors, {"kind": "weights", "architecture": _dumps(model_config(model))})


def _computation(config):
    """What an architecture computes, without what does not change it: the model's name, seed,
    dtype and input sizes, and each layer's name and ``trainable`` flag."""
    layers = [(spec.get("class_name"), {k: v for k, v in spec.get("config", {}).items() if k not in (
        "name", "input_shape")}) for spec in config.get("layers", [])]
    wiring = {k: v for k, v in config.items() if k in ("class_name", "calls", "nodes", "output", "multi_input")}
    return layers, wiring


def _architecture_differences(saved, model):
    """Where the file's architecture and ``model``'s differ (layer classes and configs, wiring)."""
    (saved_layers, saved_wiring), (own_layers, own_wiring) = _computation(saved), _computation(model_config(model))
    out = [f"layer {i}: {a[0]}{a[1]} in the file, {b[0]}{b[1]} in the model"
           for i, (a, b) in enumerate(zip(saved_layers, own_layers)) if a != b]
    if len(saved_layers) != len(own_layers):
        out.append(f"{len(saved_layers)} layers in the file, {len(own_layers)} in the model")
    if saved_wiring != own_wiring:
        out.append("the layers are connected differently")
    return out


def load_weights(model, path, strict=True):
    """Set ``model``'s weights from a file of :func:`save_weights` or :func:`save_model`:
    all-or-nothing, every missing, extra or misshapen tensor named in one error. The file's
    architecture must compute what ``model`` computes (same layer classes and configs, same
    connections; names, dtype and input sizes may differ): weights of a ``Tanh`` network are
    refused by a ``ReLU`` one even though every tensor fits. ``strict=False`` skips that
    comparison (e.g. to fine-tune with another dropout rate); the tensors are still checked."""
    if not model.built:
        raise RuntimeError("load_weights: the model is not built, so its weight shapes are unknown; build it first "
                           "(Sequential(..., input_shape=...), model.build(input_shape), or predict on one batch)")
    with ModelFile(path, "load_weights") as f:
        f.check_tensors({k: (v.shape, None) for k, v in _model_arrays(model).items()}, "the model",
                        prefix="weights/", note=" (nothing was changed)")
        if strict:
            try:
                saved = f.json("architecture")
                check_architecture(saved)
            except ValueError as e:  # ModelFileError included
                raise f.error(f"has no readable architecture to compare with the model ({e}); pass strict=False "
                              "to load its weights anyway") from None
            differences = _architecture_differences(saved, model)
            if differences:
                raise f.error(f"holds the weights of another architecture: {'; '.join(differences[:5])}. Nothing "
                              "was changed; build the same architecture, or pass strict=False to load weights "
                              "whose tensors fit anyway")
        tensors = f.read_tensors(names=[k for k in f.tensors if k.startswith("weights/")])
    model.set_weights({k[len("weights/"):]: v for k, v in tensors.items()})

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "model_config", "model_from_config",
           "check_architecture", "training_from_config", "read_file", "ModelFile", "parse_json", "FORMAT_VERSION",
           "MODEL_CLASSES", "MODEL_DTYPES", "MAX_HEADER_BYTES", "CHECKSUM_KEY", "register_model"]
