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

**Writes are atomic**: the file is written to a temporary file in the same folder, flushed to
disk, then renamed over the target (``os.replace``), so a crash leaves the old file or the new
one, never half of one. **Reads check** that the file exists, is a complete safetensors file,
was written by handprop in a format version this version reads, and that every tensor fits the
model (naming the tensor that does not).
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings

import numpy as np

from . import init as init_module
from . import losses as losses_module
from . import metrics as metrics_module
from . import optimizers as optimizers_module
from . import safetensors_io
from ._version import __version__
from .backend import to_numpy
from .errors import HandpropWarning
from .layers.base import get_layer_class

FORMAT = "handprop"
FORMAT_VERSION = 1
"""Bumped whenever a change makes older handprop versions misread new files."""

_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")

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


# ----------------------------------------------------------------------------- architecture
def layer_spec(layer, where):
    """``{"class_name", "config", "trainable"}`` for one layer."""
    return {"class_name": type(layer).__name__,
            "config": _jsonable(layer.get_config(), f"{where} ({layer.name}) config"),
            "trainable": bool(layer.trainable)}


def layer_from_spec(spec, custom_layers=None):
    """Rebuild a layer (without weights) from :func:`layer_spec`."""
    try:
        cls = get_layer_class(spec["class_name"], custom_layers)
    except ValueError as e:
        raise ValueError(f"load: {e}") from None
    config = _tuples(spec.get("config", {}))
    try:
        layer = cls(**config)
    except (TypeError, ValueError) as e:
        raise ValueError(f"load: could not rebuild layer {spec['class_name']} from its config {config}: {e}. "
                         "Its get_config() must return its constructor's keyword arguments") from e
    layer.trainable = bool(spec.get("trainable", True))
    return layer


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


def model_from_config(config, custom_layers=None):
    """Rebuild a model (fresh weights) from :func:`model_config`; built as it was when saved."""
    try:
        layers = [layer_from_spec(spec, custom_layers) for spec in config["layers"]]
        dtype = np.dtype(config["dtype"]).type
        kind = config["class_name"]
        if kind not in MODEL_CLASSES:
            raise ValueError(f"unknown model class {kind!r}")
        model = MODEL_CLASSES[kind].from_wiring_config(config, layers, dtype)
    except (KeyError, IndexError, TypeError, AttributeError, OverflowError, RuntimeError) as e:
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
    name = state.get("bit_generator")
    if name not in _BIT_GENERATORS:
        raise ValueError(f"load: unknown random bit generator {name!r}")
    rng = np.random.Generator(getattr(np.random, name)())
    try:
        rng.bit_generator.state = state
    except (ValueError, TypeError, KeyError, OverflowError) as e:
        raise ValueError(f"load: a random generator's state is malformed ({e})") from None
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


def _restore_training(model, config, tensors):
    if config.get("loss") is not None:
        loss_cls = getattr(losses_module, config["loss"]["class_name"], None)
        if not (isinstance(loss_cls, type) and issubclass(loss_cls, losses_module.Loss)):
            raise ValueError(f"load: unknown loss class {config['loss']['class_name']!r}; "
                             "load with compile=False and compile the model yourself")
        loss = loss_cls(**_tuples(config["loss"]["config"]))
        optimizer = None
        if config.get("optimizer") is not None:
            spec = config["optimizer"]
            opt_cls = getattr(optimizers_module, spec["class_name"], None)
            if not (isinstance(opt_cls, type) and issubclass(opt_cls, optimizers_module.Optimizer)):
                raise ValueError(f"load: unknown optimizer class {spec['class_name']!r}; "
                                 "load with compile=False and compile the model yourself")
            optimizer = opt_cls(**_tuples(spec["config"]))
            for key, step in spec["steps"].items():
                prefix = f"optimizer/{key}/"
                optimizer.state[key] = {"step": int(step), **{name[len(prefix):]: tensors[name].copy()
                                                               for name in tensors if name.startswith(prefix)}}
        metrics = []
        for name in config.get("metrics", []):
            if name in metrics_module.METRICS:
                metrics.append(name)
            else:
                warnings.warn(f"load: metric {name!r} is not one of handprop's; compile again to add it",
                              HandpropWarning, stacklevel=3)
        model.compile(loss=loss, optimizer=optimizer, metrics=metrics)
        if optimizer is None:
            model.optimizer = None  # saved without optimizer: fit needs compile(optimizer=...) again
    rng = config.get("rng", {})
    if "shuffle" in rng:
        model._shuffle_rng = _generator_from_state(rng["shuffle"])
    if "init" in rng:
        model._init_rng = _generator_from_state(rng["init"])
    layers = _rng_layers(model)
    for i, state in rng.get("layers", {}).items():
        if i in layers:
            layers[i].rng = _generator_from_state(state)


# ----------------------------------------------------------------------------- files
def _atomic_write(path, data: bytes):
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"save: the folder {folder!r} does not exist")
    mode = os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0o644
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _write(path, tensors, metadata):
    metadata = {"format": FORMAT, "format_version": str(FORMAT_VERSION), **metadata}
    metadata["handprop_version"] = __version__
    data = safetensors_io.save({k: np.ascontiguousarray(v) for k, v in tensors.items()}, metadata=metadata)
    _atomic_write(path, data)


def read_file(path, what="load"):
    """``(metadata, tensors)`` of a handprop file, or a clear error: FileNotFoundError for a missing
    file, ValueError for a truncated, foreign or newer-format one."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"{what}: path must be a file name, got {type(path).__name__}")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what}: no such file: {path!r}")
    if os.path.isdir(path):
        raise ValueError(f"{what}: {path!r} is a folder, not a model file")
    with open(path, "rb") as f:
        data = f.read()
    not_ours = f"{what}: {path!r} is not a handprop model file"
    if len(data) < 8:
        raise ValueError(f"{not_ours}: it has only {len(data)} bytes (truncated, or another format)")
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8:
        raise ValueError(f"{not_ours}: its safetensors header would take {n} bytes but the file has "
                         f"{len(data)} (truncated, or not a safetensors file)")
    try:
        header = json.loads(data[8:8 + n])
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{not_ours}: no safetensors header ({e})") from None
    meta = header.get("__metadata__") or {}
    if meta.get("format") != FORMAT:
        raise ValueError(f"{not_ours}: it is a safetensors file, but not one handprop wrote (its metadata has no "
                         "format 'handprop'). Weights of another library: read them with "
                         "safetensors.numpy.load_file and pass them to model.set_weights")
    try:
        version = int(meta.get("format_version", ""))
    except ValueError:
        raise ValueError(f"{not_ours}: unreadable format_version {meta.get('format_version')!r}") from None
    if version > FORMAT_VERSION:
        raise ValueError(f"{what}: {path!r} has format version {version}, newer than this handprop reads "
                         f"({FORMAT_VERSION}); upgrade handprop")
    ends = [v["data_offsets"][1] for k, v in header.items()
            if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v]
    body = len(data) - 8 - n
    if ends and max(ends) > body:
        raise ValueError(f"{what}: {path!r} is truncated: its tensors need {max(ends)} bytes after the header, "
                         f"the file has {body}")
    try:
        tensors = safetensors_io.load(data)
    except Exception as e:  # a corrupt file (safetensors_io says where)
        raise ValueError(f"{what}: {path!r} is corrupt ({e})") from None
    return meta, tensors


def _json_field(meta, key, path, what):
    try:
        return json.loads(meta[key])
    except (KeyError, ValueError) as e:
        raise ValueError(f"{what}: {path!r} has no readable {key!r} entry ({e})") from None


def save_model(model, path, include_optimizer=True, metadata=None):
    """Write ``model`` (see the module docstring) to ``path``, atomically. ``metadata``: a JSON-able
    dict stored with it (default: the model's ``metadata`` attribute, if it has a non-empty one)."""
    arch = model_config(model)
    training, tensors = training_config(model, include_optimizer)
    weights = model.get_weights() if model.built else {}
    tensors.update({f"weights/{k}": to_numpy(v) for k, v in weights.items()})
    header = {"kind": "model", "architecture": _dumps(arch), "training": _dumps(training)}
    metadata = getattr(model, "metadata", None) if metadata is None else metadata
    if metadata:
        if not isinstance(metadata, dict):
            raise TypeError(f"save: metadata must be a dict, got {type(metadata).__name__}")
        header["metadata"] = _dumps(_jsonable(metadata, "metadata"))
    _write(path, tensors, header)


def load_model(path, custom_layers=None, compile=True):
    """Rebuild the model saved by :meth:`Model.save`: architecture, weights, layer state and, with
    ``compile=True``, loss, optimizer (with its state and step counts), metrics and the random
    generators -- so that ``fit`` continues exactly where it stopped. ``model.metadata`` is the
    dict saved with it (``{}`` when none was).

    ``custom_layers``: ``{"ClassName": cls}`` for layer classes of your own that are not registered
    with :func:`handprop.layers.register_layer`. The model comes back on the CPU.
    """
    meta, tensors = read_file(path, "load_model")
    if meta.get("kind") != "model":
        raise ValueError(f"load_model: {os.fspath(path)!r} holds weights only (save_weights); build the model "
                         "and call model.load_weights(path)")
    model = model_from_config(_json_field(meta, "architecture", path, "load_model"), custom_layers)
    weights = {k[len("weights/"):]: v for k, v in tensors.items() if k.startswith("weights/")}
    if model.built:
        model.set_weights(weights)
    elif weights:
        raise ValueError("load_model: the file has weights but its architecture is not built")
    if compile:
        training = _json_field(meta, "training", path, "load_model")
        try:
            _restore_training(model, training, tensors)
        except (KeyError, IndexError, TypeError, AttributeError, OverflowError) as e:
            raise ValueError(f"load_model: the training state in {os.fspath(path)!r} is malformed "
                             f"({type(e).__name__}: {e})") from e
    model.metadata = _json_field(meta, "metadata", path, "load_model") if "metadata" in meta else {}
    if not isinstance(model.metadata, dict):
        raise ValueError(f"load_model: the metadata in {os.fspath(path)!r} is not a JSON object")
    return model


def save_weights(model, path):
    """Write the parameters and state arrays of ``model`` (no optimizer) to ``path``, atomically."""
    if not model.built:
        raise RuntimeError("save_weights: the model is not built yet, so it has no weights")
    tensors = {f"weights/{k}": to_numpy(v) for k, v in model.get_weights().items()}
    _write(path, tensors, {"kind": "weights", "architecture": _dumps(model_config(model))})


def load_weights(model, path):
    """Set ``model``'s weights from a file of :func:`save_weights` or :func:`save_model`:
    all-or-nothing, every missing, extra or misshapen tensor named in one error."""
    _, tensors = read_file(path, "load_weights")
    model.set_weights({k[len("weights/"):]: v for k, v in tensors.items() if k.startswith("weights/")})


__all__ = ["save_model", "load_model", "save_weights", "load_weights", "model_config", "model_from_config",
           "read_file", "FORMAT_VERSION", "MODEL_CLASSES", "register_model"]
