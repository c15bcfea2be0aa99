"""The layer contract.

Every layer is a small object with three methods and three dictionaries::

    out_shape = layer.build(in_shape, rng=None, dtype=np.float32)   # shapes exclude the batch axis
    y  = layer.forward(x, training=True)    # keeps what backward needs in layer._cache
    dx = layer.backward(dy, need_dx=True)   # fills layer.grads, returns dL/dx (None if not needed);
                                            # never writes into dy

    layer.params   name -> array, trainable. The single source of truth: forward reads its
                   weights from here, so ``layer.params["W"] = new`` replaces the weight.
    layer.grads    same keys as params, filled by backward.
    layer.state    name -> array, non-trainable (e.g. BatchNorm running statistics).
    layer.trainable = False    frozen: optimizers leave its params alone; gradients still flow through.

**Building fixes what the weights fix, never the image size.** ``build`` creates the weights
from the parts of the input shape they depend on (a convolution's input channels, a Dense
layer's features) and records them in ``layer.input_spec`` (the rest is ``None``): a Conv2D built
on 64 x 64 tiles runs on a whole 584 x 565 image. Building a built layer again keeps its weights
when the shape is compatible and raises, naming the layer and both shapes, when it is not -- a
trained layer is never re-initialized silently. Sizes may be ``None`` (free) at build time.

**One cache.** ``forward`` stores everything its ``backward`` needs in ``self._cache`` (one
object; for convolutions the engine builds it). A model that calls the same layer twice (shared
weights) keeps one cache per call and sums the gradients.

**Config and registry.** ``get_config()`` returns the constructor's keyword arguments (the name
included), so ``type(layer)(**layer.get_config())`` rebuilds the layer without its weights: this
is what :func:`handprop.load_model` does, looking classes up by name in a registry. handprop's
own layers are registered automatically; a layer class of your own is registered with
``@hp.layers.register_layer`` (or passed to ``load_model(..., custom_layers={...})``).
"""

from __future__ import annotations

import numpy as np

from .. import init
from ..backend import get_array_module, to_device
from ..symbolic import format_shape, normalize_shape

_REGISTRY: dict[str, type] = {}


def register_layer(cls=None, *, name=None):
    """Register a Layer subclass under ``name`` (default: its class name) so that
    :func:`handprop.load_model` can rebuild it. Usable as a decorator::

        @hp.layers.register_layer
        class Scale(hp.layers.Layer):
            def __init__(self, factor=2.0, name=None):
                super().__init__(name)
                self.factor = factor
            def get_config(self):
                return {"factor": self.factor, **super().get_config()}
            ...
    """
    def register(c):
        if not (isinstance(c, type) and issubclass(c, Layer)):
            raise TypeError(f"register_layer: expects a subclass of hp.layers.Layer, got {c!r}")
        _REGISTRY[name or c.__name__] = c
        return c

    return register if cls is None else register(cls)


def get_layer_class(name, custom_layers=None):
    """The layer class registered as ``name`` (``custom_layers``, a dict name -> class, first);
    a ValueError that says how to register it otherwise."""
    if custom_layers and name in custom_layers:
        return custom_layers[name]
    if name in _REGISTRY:
        return _REGISTRY[name]
    raise ValueError(
        f"unknown layer class {name!r}: define it and register it with @hp.layers.register_layer "
        f"(or pass custom_layers={{{name!r}: {name}}}); registered layers: {sorted(_REGISTRY)}"
    )


class Layer:
    """Base class: the dictionaries, the name, building and input checks.

    A subclass writes ``forward``/``backward`` and, as needed, three small hooks:
    ``compute_output_shape(shape)`` (default: unchanged), ``fixed_input(shape)`` (the input
    shape with the sizes the weights do not fix set to None; default None: any shape), and
    ``create_params(rng)`` (fill ``params``/``state`` from ``self.input_shape``).
    """

    takes_list = False
    """True for layers whose forward takes a list of arrays (Concatenate, Add)."""

    activation = None
    """An activation layer applied after this one (``Dense(64, activation="relu")``), or None."""

    _repr_defaults: dict = {}
    """Config entries that ``repr`` leaves out while they hold these (default) values."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__module__.startswith("handprop.") and not cls.__name__.startswith("_"):
            _REGISTRY.setdefault(cls.__name__, cls)  # handprop's own layers; yours: register_layer

    def __init__(self, name: str | None = None, input_shape=None):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}: name must be a string, got {name!r}")
        self.name = name or type(self).__name__
        # Keras style: ``Dense(64, input_shape=(20,))`` as a Sequential's first layer builds it at once
        self.declared_input_shape = (None if input_shape is None
                                     else normalize_shape(input_shape, f"{self.name}: input_shape"))
        self.params: dict = {}
        self.grads: dict = {}
        self.state: dict = {}
        self.built = False
        self.trainable = True
        self.input_shape: tuple | None = None  # the shape it was first built for
        self.output_shape: tuple | None = None
        self.input_spec: tuple | None = None  # what the weights fix; None entries are free
        self.dtype = np.float32
        self._cache = None

    # -- building ---------------------------------------------------------------------------
    def build(self, input_shape, rng=None, dtype=np.float32):
        """Create parameters for inputs of shape ``(N, *input_shape)``; return the output shape.

        On a built layer: check that ``input_shape`` fits the weights (else a ValueError naming
        the layer and both shapes) and return its output shape; the weights are kept.
        """
        shape = self._normalize(input_shape)
        out = self.compute_output_shape(shape)  # validates, naming the layer
        if self.built:
            if not self._fits(shape):
                raise ValueError(
                    f"{self.name}: already built for inputs {self._describe(self.input_shape)}; cannot use it "
                    f"on {self._describe(shape)} (its weights fix {self._describe(self.input_spec)}). "
                    "Create a new layer for this input."
                )
            return out
        self.input_shape = shape
        self.input_spec = self.fixed_input(shape)
        self.output_shape = out
        self.dtype = np.dtype(dtype).type
        self.create_params(init.make_rng(rng))
        self.zero_grads()
        self.built = True
        return out

    def compute_output_shape(self, input_shape):
        """Output shape (without batch) for an input shape (without batch). Default: unchanged."""
        return tuple(input_shape)

    def fixed_input(self, input_shape):
        """The input shape as far as the weights fix it (other sizes None), or None for "any shape"."""
        return None

    def create_params(self, rng):
        """Fill ``self.params`` (and ``self.state``) for ``self.input_shape``. Default: no weights."""

    def _normalize(self, input_shape):
        return normalize_shape(input_shape, f"{self.name}: input shape")

    def _describe(self, shape):
        return "any shape" if shape is None else format_shape(shape)

    def _fits(self, shape) -> bool:
        """Does ``shape`` (without batch; sizes may be None) agree with ``self.input_spec``?"""
        spec = self.input_spec
        if spec is None:
            return True
        return len(shape) == len(spec) and all(s is None or d is None or s == d for s, d in zip(spec, shape))

    def _ensure_built(self, x):
        """Build from the first input if needed, check its shape, and return it in the layer's dtype.

        Integer or boolean input (e.g. raw pixel counts) is converted to the layer's dtype:
        layers compute in floating point, and ``int(0.5) = 0`` would silently zero a sigmoid.
        Floating input of another precision is converted too (a float32 layer computes in float32,
        on every engine: no silent promotion to float64).
        """
        if x.dtype.kind not in "fc":
            if x.dtype.kind not in "iub":
                raise TypeError(f"{self.name}: input must be numeric, got dtype {x.dtype}")
            x = x.astype(self.dtype if self.built else np.float32)
        if x.ndim == 0:
            raise ValueError(f"{self.name}: input must have a batch axis, got a scalar")
        if not self.built:
            self.build(x.shape[1:], dtype=x.dtype)
        elif x.dtype != self.dtype and x.dtype.kind == "f":
            x = x.astype(self.dtype)
        self.check_input(x)
        return x

    def check_input(self, x):
        """Raise a ValueError naming this layer when ``x`` does not fit what the weights fix, or
        is too small for the layer (a window larger than the image)."""
        if not self._fits(tuple(x.shape[1:])):
            raise ValueError(f"{self.name}: expected input of shape {self._describe(self.input_spec)} "
                             f"but got {tuple(x.shape)}")
        self.compute_output_shape(tuple(x.shape[1:]))

    def _cached(self):
        """What forward left for backward; a RuntimeError if forward has not run."""
        if self._cache is None:
            raise RuntimeError(f"{self.name}.backward: call forward first (nothing is cached to differentiate)")
        return self._cache

    # -- the contract -----------------------------------------------------------------------
    def forward(self, x, training=True):
        raise NotImplementedError

    def backward(self, dy, need_dx=True):
        raise NotImplementedError

    def __call__(self, x, training=True):
        """On arrays: ``forward``. On symbolic graph nodes (``hp.Input(...)``): add this layer
        to a graph and return its output node (the Keras functional style)."""
        nodes = x if isinstance(x, (list, tuple)) else [x]
        if nodes and all(getattr(n, "is_graph_node", False) for n in nodes):
            from ..symbolic import connect

            return connect(self, x)
        return self.forward(x, training=training)

    # -- helpers ----------------------------------------------------------------------------
    def zero_grads(self):
        """Gradients of zeros, one per parameter (placeholders for placeholder weights: see
        :func:`handprop.init.shapes_only`). ``zeros``, not ``zeros_like``: the operating system
        hands out zeroed pages when they are first written, so a model loaded for inference does
        not hold a second copy of its weights' size."""
        for k, v in self.params.items():
            self.grads[k] = init.placeholder(v.shape, dtype=v.dtype) if init.is_placeholder(v) else \
                get_array_module(v).zeros(v.shape, dtype=v.dtype)

    def count_params(self) -> int:
        return int(sum(int(np.prod(v.shape)) for v in self.params.values()))

    def to(self, device: str):
        """Move params, grads and state to ``"cpu"`` or ``"gpu"`` in place; returns self."""
        for d in (self.params, self.grads, self.state):
            for k in list(d):
                d[k] = to_device(d[k], device)
        self._cache = None  # it holds arrays of the old device
        return self

    # -- an activation applied after the layer (``activation="relu"``) --------------------------
    def _activate(self, y, training):
        """``(activation(y), its cache)``, or ``(y, None)`` without an activation. The caller keeps
        that cache inside its own ``_cache``, so shared layers (one cache per call) stay right."""
        if self.activation is None:
            return y, None
        return self.activation.forward(y, training=training), self.activation._cache

    def _activation_backward(self, dy, activation_cache):
        """dL/d(pre-activation) from dL/d(output): the activation's backward, first in the chain."""
        if self.activation is None:
            return dy
        self.activation._cache = activation_cache
        return self.activation.backward(dy)

    def get_config(self) -> dict:
        """The constructor's keyword arguments: ``type(layer)(**layer.get_config())`` rebuilds
        it (without weights). Subclasses add theirs: ``{"units": ..., **super().get_config()}``."""
        return {"name": self.name}

    def __repr__(self):
        cfg = {k: v for k, v in self.get_config().items()
               if not (k == "name" and v == type(self).__name__)
               and not (k in self._repr_defaults and self._repr_defaults[k] == v)}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in cfg.items())})"


def check_dy(layer: Layer, dy, expected_shape):
    """Raise if the upstream gradient's shape differs from the layer's output shape."""
    if tuple(dy.shape) != tuple(expected_shape):
        raise ValueError(
            f"{layer.name}.backward: upstream gradient has shape {tuple(dy.shape)} "
            f"but forward produced {tuple(expected_shape)}"
        )
