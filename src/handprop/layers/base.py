"""The layer contract.

Every layer is a small object with three methods and three dictionaries::

    out_shape = layer.build(in_shape, rng=None, dtype=np.float32)   # shapes exclude the batch axis
    y  = layer.forward(x, training=True)    # caches only what backward needs
    dx = layer.backward(dy)                 # fills layer.grads, returns dL/dx; never writes into dy

    layer.params   name -> array, trainable. The single source of truth: forward reads its
                   weights from here, so ``layer.params["W"] = new`` replaces the weight.
    layer.grads    same keys as params, filled by backward.
    layer.state    name -> array, non-trainable (e.g. BatchNorm running statistics).

``build`` is called once, lazily, from the first batch (``Sequential`` does it) or eagerly by the
user; calling ``forward`` on an unbuilt layer builds it from the input's shape.
"""

from __future__ import annotations

import numpy as np

from ..backend import get_array_module, to_device


class Layer:
    """Base class: holds the dictionaries, the name and the build bookkeeping."""

    def __init__(self, name: str | None = None):
        self.name = name or type(self).__name__
        self.params: dict = {}
        self.grads: dict = {}
        self.state: dict = {}
        self.built = False
        self.input_shape: tuple | None = None
        self.output_shape: tuple | None = None
        self.dtype = np.float32
        # Models set this to False on layers fed directly by the data during training: nobody
        # needs dL/dx there, and for a first convolution it is a third of the backward work.
        self.need_input_grad = True

    # -- building ---------------------------------------------------------------------------
    def build(self, input_shape, rng=None, dtype=np.float32):
        """Create parameters for inputs of shape ``(N, *input_shape)``; return the output shape."""
        self.input_shape = tuple(int(s) for s in input_shape)
        self.dtype = np.dtype(dtype).type
        self.output_shape = self.compute_output_shape(self.input_shape)
        self.built = True
        return self.output_shape

    def compute_output_shape(self, input_shape):
        """Output shape (without batch) for an input shape (without batch). Default: unchanged."""
        return tuple(input_shape)

    def _ensure_built(self, x):
        """Build from the first input if needed, check its shape, and return it as floats.

        Integer or boolean input (e.g. raw pixel counts) is converted to the layer's dtype:
        layers compute in floating point, and ``int(0.5) = 0`` would silently zero a sigmoid.
        """
        if x.dtype.kind not in "fc":
            if x.dtype.kind not in "iub":
                raise TypeError(f"{self.name}: input must be numeric, got dtype {x.dtype}")
            x = x.astype(self.dtype if self.built else np.float32)
        if not self.built:
            self.build(x.shape[1:], dtype=x.dtype)
        self.check_input(x)
        return x

    def check_input(self, x):
        """Raise a ValueError naming this layer when ``x`` does not match the built shape."""
        if x.ndim == 0 or (self.input_shape is not None and tuple(x.shape[1:]) != self.input_shape):
            raise ValueError(
                f"{self.name}: expected input of shape (N, {', '.join(map(str, self.input_shape))})"
                f" but got {tuple(x.shape)}"
            )

    # -- the contract -----------------------------------------------------------------------
    def forward(self, x, training=True):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    def __call__(self, x, training=True):
        """On arrays: ``forward``. On symbolic graph nodes (``hp.Input(...)``): add this layer
        to a graph and return its output node (the Keras functional style)."""
        nodes = x if isinstance(x, (list, tuple)) else [x]
        if nodes and all(getattr(n, "is_graph_node", False) for n in nodes):
            from ..graph import connect  # imported here: graph.py imports this module

            return connect(self, x)
        return self.forward(x, training=training)

    # -- helpers ----------------------------------------------------------------------------
    def zero_grads(self):
        for k, v in self.params.items():
            self.grads[k] = get_array_module(v).zeros_like(v)

    def count_params(self) -> int:
        return int(sum(int(np.prod(v.shape)) for v in self.params.values()))

    def to(self, device: str):
        """Move params, grads and state to ``"cpu"`` or ``"gpu"`` in place; returns self."""
        for d in (self.params, self.grads, self.state):
            for k in list(d):
                d[k] = to_device(d[k], device)
        return self

    def get_config(self) -> dict:
        return {}

    def __repr__(self):
        cfg = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({cfg})"


def check_dy(layer: Layer, dy, expected_shape):
    """Raise if the upstream gradient's shape differs from the layer's output shape."""
    if tuple(dy.shape) != tuple(expected_shape):
        raise ValueError(
            f"{layer.name}.backward: upstream gradient has shape {tuple(dy.shape)} "
            f"but forward produced {tuple(expected_shape)}"
        )


def pair(v, what="value"):
    """``3 -> (3, 3)``, ``(3, 5) -> (3, 5)``; rejects anything else with a readable error."""
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    if isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(i, (int, np.integer)) for i in v):
        return int(v[0]), int(v[1])
    raise ValueError(f"{what} must be an int or a pair of ints, got {v!r}")
