"""Graph (functional) models: U-Net skips, multi-scale inputs, anything beyond a chain.

Build a graph by calling layers on symbolic nodes, as in Keras' functional API::

    inp = hp.Input((1, 32, 32))
    a = hp.layers.Conv2D(8, 3, padding="same")(inp)
    b = hp.layers.ReLU()(a)
    c = hp.layers.Concatenate()([b, inp])         # a skip connection: inp feeds two layers
    out = hp.layers.Conv2D(1, 1)(c)
    model = hp.Model(inputs=inp, outputs=out, seed=0)

``forward`` evaluates the nodes in topological order. ``backward`` walks them in reverse and
hands each layer the gradient of its output; a node used by several layers (fan-out) gets the
**sum** of the gradients flowing back from each use — the multivariable chain rule
``dL/dv = Σ_k dL/du_k · du_k/dv``. That sum is the only new idea compared with ``Sequential``.

Each layer may appear once in a graph (a layer caches one forward pass for its backward);
weight sharing would need a layer to keep a cache per call.
"""

from __future__ import annotations

import numpy as np

from .layers.base import Layer
from .model import BaseModel


class Node:
    """A symbolic tensor: the output of ``layer`` applied to ``parents`` (or a model input)."""

    is_graph_node = True

    def __init__(self, shape, layer=None, parents=(), name=None):
        self.shape = tuple(shape)  # without the batch axis
        self.layer = layer
        self.parents = list(parents)
        self.name = name

    def __repr__(self):
        what = self.name if self.layer is None else self.layer.name
        return f"Node({what}, shape=(N, {', '.join(map(str, self.shape))}))"


def Input(shape, name="input"):
    """A model input of shape ``(N, *shape)``; ``shape`` excludes the batch axis."""
    return Node(shape, name=name)


def connect(layer: Layer, x):
    """Apply ``layer`` to node(s) ``x`` symbolically: check shapes, return the output node."""
    if getattr(layer, "_graph_used", False):
        raise ValueError(f"{layer.name}: this layer is already used in a graph; create a new layer instead "
                         "(weight sharing is not supported)")
    parents = list(x) if isinstance(x, (list, tuple)) else [x]
    in_shape = [p.shape for p in parents] if isinstance(x, (list, tuple)) else parents[0].shape
    out_shape = layer.compute_output_shape(in_shape)  # raises, naming the layer, on a mismatch
    layer._graph_used = True
    return Node(out_shape, layer=layer, parents=parents)


def _topological_order(outputs):
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


class Model(BaseModel):
    """A model whose layers form a directed acyclic graph from ``inputs`` to ``outputs``.

    ``inputs``: one ``Input`` node or a list (the model then takes a list of arrays, in this
    order); ``outputs``: one node. Same ``compile``/``fit``/``evaluate``/``predict`` as
    ``Sequential``. Built at once (the input shapes are known).
    """

    def __init__(self, inputs, outputs, seed=0, name=None):
        super().__init__(seed=seed, name=name)
        self.multi_input = isinstance(inputs, (list, tuple))
        self.inputs = list(inputs) if self.multi_input else [inputs]
        if isinstance(outputs, (list, tuple)):
            if len(outputs) != 1:
                raise ValueError("Model: one output node is supported (one loss)")
            outputs = outputs[0]
        self.output = outputs
        self.nodes = _topological_order([outputs])
        missing = [n for n in self.nodes if n.layer is None and all(n is not i for i in self.inputs)]
        if missing:
            raise ValueError(f"Model: the output depends on inputs not listed in `inputs`: {missing}")
        unused = [i for i in self.inputs if all(i is not n for n in self.nodes)]
        if unused:
            raise ValueError(f"Model: inputs {unused} do not reach the output")
        self.layer_nodes = [n for n in self.nodes if n.layer is not None]
        self.build([i.shape for i in self.inputs] if self.multi_input else self.inputs[0].shape)

    def layers_list(self):
        return [n.layer for n in self.layer_nodes]

    def build(self, input_shape=None, dtype=np.float32):
        self.dtype = np.dtype(dtype).type
        for node in self.layer_nodes:
            shapes = [p.shape for p in node.parents]
            in_shape = shapes if len(node.parents) > 1 or _is_merge(node.layer) else shapes[0]
            node.layer.build(in_shape, rng=self._init_rng, dtype=self.dtype)
        self.built = True

    def forward(self, x, training=True):
        if self.multi_input and not isinstance(x, (list, tuple)):
            raise ValueError(f"{self.name}: has {len(self.inputs)} inputs; pass a list of {len(self.inputs)} arrays")
        x = self._prepare(x)
        xs = list(x) if self.multi_input else [x]
        if len(xs) != len(self.inputs):
            raise ValueError(f"{self.name}: expects {len(self.inputs)} inputs, got a list of {len(xs)} arrays")
        values = {}
        for node, xi in zip(self.inputs, xs):
            if tuple(xi.shape[1:]) != node.shape:
                raise ValueError(f"{self.name}: input {node.name!r} expects (N, {', '.join(map(str, node.shape))})"
                                 f", got {tuple(xi.shape)}")
            values[id(node)] = xi
        for node in self.layer_nodes:
            args = [values[id(p)] for p in node.parents]
            values[id(node)] = node.layer.forward(args if _is_merge(node.layer) else args[0], training=training)
        return values[id(self.output)]

    def backward(self, dy, input_grad=True):
        """Reverse topological order; fan-out gradients are summed. With ``input_grad=False``
        (training) layers fed only by the inputs skip their input gradient and None is returned."""
        fed_by_inputs = [n for n in self.layer_nodes if all(any(p is i for i in self.inputs) for p in n.parents)]
        own = [node.layer.need_input_grad for node in fed_by_inputs]  # restored afterwards
        for node, flag in zip(fed_by_inputs, own):
            node.layer.need_input_grad = flag and input_grad
        try:
            return self._backward(dy, input_grad)
        finally:
            for node, flag in zip(fed_by_inputs, own):
                node.layer.need_input_grad = flag

    def _backward(self, dy, input_grad):
        grads = {id(self.output): dy}
        for node in reversed(self.layer_nodes):
            g = grads.pop(id(node), None)
            if g is None:  # cannot happen in a connected graph; kept as a guard
                continue
            dxs = node.layer.backward(g)
            if dxs is None:  # a layer fed by the data, input gradient skipped
                continue
            dxs = dxs if _is_merge(node.layer) else [dxs]
            for parent, dx in zip(node.parents, dxs):
                if id(parent) in grads:
                    grads[id(parent)] = grads[id(parent)] + dx  # fan-out: gradients add up
                else:
                    grads[id(parent)] = dx
        if not input_grad:
            return None
        dx_inputs = [grads.get(id(i)) for i in self.inputs]
        return dx_inputs if self.multi_input else dx_inputs[0]

    __call__ = forward


def _is_merge(layer):
    from .layers.merge import _Merge

    return isinstance(layer, _Merge)
