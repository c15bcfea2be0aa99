"""The symbolic graph: what ``hp.Input`` and calling a layer on it build, before any numbers flow.

Calling a layer on a symbolic node (Keras' functional style) records *which* layer reads *which*
nodes and checks the shapes; :class:`handprop.graph.Model` later runs the recorded graph on arrays::

    inp = hp.Input((1, None, None))                  # one channel, any image size
    h = hp.layers.Conv2D(8, 3, padding="same")(inp)  # Node(Conv2D, shape=(N, 8, None, None))

Shapes leave out the batch axis; ``None`` is a size fixed only by the data (a fully convolutional
network takes any image size). This module imports no layer and no model: layers import it.
"""

from __future__ import annotations

import numpy as np


def normalize_shape(shape, what="shape"):
    """A shape as a tuple of positive ints or ``None`` (a free size); a ValueError otherwise."""
    try:
        dims = tuple(shape)
    except TypeError:
        raise ValueError(f"{what} must be a tuple of sizes (batch axis left out), got {shape!r}") from None
    out = []
    for d in dims:
        if d is None:
            out.append(None)
        elif isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0:
            out.append(int(d))
        else:
            raise ValueError(f"{what} must hold positive ints or None, got {shape!r}")
    return tuple(out)


def format_shape(shape):
    """``(N, 3, None, None)``-style text for a shape without its batch axis."""
    return "(N" + "".join(f", {d}" for d in shape) + ")"


class Node:
    """A symbolic tensor: the output of ``layer`` applied to ``parents`` (or a model input)."""

    is_graph_node = True

    def __init__(self, shape, layer=None, parents=(), name=None):
        self.shape = tuple(shape)  # without the batch axis; None = any size
        self.layer = layer
        self.parents = list(parents)
        self.name = name

    def __repr__(self):
        what = self.name if self.layer is None else self.layer.name
        return f"Node({what}, shape={format_shape(self.shape)})"


def Input(shape, name="input"):
    """A model input of shape ``(N, *shape)``; ``shape`` excludes the batch axis and may hold
    ``None`` for sizes the data fixes: ``Input((3, None, None))`` takes RGB images of any size."""
    return Node(normalize_shape(shape, "Input shape"), name=name)


def connect(layer, x):
    """Apply ``layer`` to node(s) ``x`` symbolically: check the shapes, return the output node.

    A layer may be called on several nodes (weight sharing): each call adds a node; the model
    sums the gradients of all its uses.
    """
    parents = list(x) if isinstance(x, (list, tuple)) else [x]
    if layer.takes_list != isinstance(x, (list, tuple)):
        wanted = "a list of nodes" if layer.takes_list else "one node"
        raise TypeError(f"{layer.name}: call it on {wanted}, got {x!r}")
    in_shape = [p.shape for p in parents] if layer.takes_list else parents[0].shape
    if hasattr(layer, "check_channels_first") and parents[0].layer is None:
        layer.check_channels_first(in_shape)  # a convolution reading a model input: NCHW, not NHWC?
    out_shape = layer.compute_output_shape(in_shape)  # raises, naming the layer, on a mismatch
    return Node(out_shape, layer=layer, parents=parents)


def topological_order(outputs):
    """Every node the outputs depend on, each after all of its parents."""
    order, seen = [], set()

    def visit(node):
        if id(node) in seen:
            return
        seen.add(id(node))
        for p in node.parents:
            visit(p)
        order.append(node)

    for o in outputs:
        visit(o)
    return order
