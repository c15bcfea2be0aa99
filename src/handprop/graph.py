"""Graph (functional) models: U-Net skips, multi-scale inputs, shared weights, anything beyond a chain.

Build a graph by calling layers on symbolic nodes, as in Keras' functional API
(:mod:`handprop.symbolic`)::

    inp = hp.Input((1, None, None))               # one channel, any image size
    a = hp.layers.Conv2D(8, 3, padding="same")(inp)
    b = hp.layers.ReLU()(a)
    c = hp.layers.Concatenate()([b, inp])         # a skip connection: inp feeds two layers
    out = hp.layers.Conv2D(1, 1)(c)
    model = hp.Model(inputs=inp, outputs=out, seed=0)

``forward`` evaluates the nodes in topological order. ``backward`` walks them in reverse and
hands each layer the gradient of its output; a node used by several layers (fan-out) gets the
**sum** of the gradients flowing back from each use — the multivariable chain rule
``dL/dv = Σ_k dL/du_k · du_k/dv``. That sum is the only new idea compared with ``Sequential``.

A layer called on several nodes shares its weights between them (the tutorial's "reducing
parameters" slide): the model keeps one cache per call and sums the weight gradients of all
calls, the same chain rule read for a weight instead of a node.
"""

from __future__ import annotations

import numpy as np

from .model import BaseModel
from .saving import register_model
from .symbolic import Input, Node, format_shape, topological_order  # noqa: F401  (Input, Node re-exported)


@register_model
class Model(BaseModel):
    """A model whose layers form a directed acyclic graph from ``inputs`` to ``outputs``.

    ``inputs``: one ``Input`` node or a list (the model then takes a list of arrays, in this
    order); ``outputs``: one node. Same ``compile``/``fit``/``evaluate``/``predict`` as
    ``Sequential``. Built at once (the input shapes are known, sizes may be None), in ``dtype``
    (float32 by default; ``model.cast`` converts it later).

    ``model.layers``: every layer once, in the order the graph runs them (topological order; a
    layer called on several nodes appears at its first call). ``Input`` nodes are not in it: they
    are nodes, not layers (``model.inputs`` lists them). Keras' functional ``Model.layers`` lists
    an ``InputLayer`` per input first; handprop follows Keras' ``Sequential.layers``, which leaves
    the input out, so that both kinds of model list only layers with ``forward``/``backward``.
    """

    def __init__(self, inputs, outputs, seed=0, name=None, dtype=np.float32):
        super().__init__(seed=seed, name=name)
        self.multi_input = isinstance(inputs, (list, tuple))
        self.inputs = list(inputs) if self.multi_input else [inputs]
        if isinstance(outputs, (list, tuple)):
            if len(outputs) != 1:
                raise ValueError("Model: one output node is supported (one loss)")
            outputs = outputs[0]
        self.output = outputs
        self.nodes = topological_order([outputs])
        missing = [n for n in self.nodes if n.layer is None and all(n is not i for i in self.inputs)]
        if missing:
            raise ValueError(f"Model: the output depends on inputs not listed in `inputs`: {missing}")
        unused = [i for i in self.inputs if all(i is not n for n in self.nodes)]
        if unused:
            raise ValueError(f"Model: inputs {unused} do not reach the output")
        self.layer_nodes = [n for n in self.nodes if n.layer is not None]
        self.build([i.shape for i in self.inputs] if self.multi_input else self.inputs[0].shape, dtype=dtype)

    def _calls(self):
        return [node.layer for node in self.layer_nodes]

    @property
    def layers(self):
        """Every layer once, in topological order, without the inputs (the class docstring)."""
        return self.layers_list()

    def build(self, input_shape=None, dtype=np.float32):
        self.dtype = np.dtype(dtype).type
        for node in self.layer_nodes:
            shapes = [p.shape for p in node.parents]
            if hasattr(node.layer, "check_channels_first") and node.parents[0].layer is None:
                node.layer.check_channels_first(shapes[0])  # a convolution reading an Input: NCHW?
            node.layer.build(shapes if node.layer.takes_list else shapes[0], rng=self._init_rng, dtype=self.dtype)
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
            got = tuple(xi.shape[1:])
            if len(got) != len(node.shape) or any(s is not None and s != d for s, d in zip(node.shape, got)):
                raise ValueError(f"{self.name}: input {node.name!r} expects {format_shape(node.shape)}, "
                                 f"got {tuple(xi.shape)}")
            values[id(node)] = xi
        shared = self._shared_ids()
        for position, node in enumerate(self.layer_nodes):
            args = [values[id(p)] for p in node.parents]
            try:
                values[id(node)] = self._forward_call(position, node.layer, args if node.layer.takes_list else args[0],
                                                      training, shared)
            except ValueError as e:
                if not (node.layer.takes_list and xs[0].ndim == 4):
                    raise
                raise ValueError(f"{e} (the input images are {xs[0].shape[2]}x{xs[0].shape[3]} pixels)") from e
        return values[id(self.output)]

    def backward(self, dy, input_grad=True):
        """Reverse topological order; fan-out gradients are summed, shared layers' weight
        gradients too. With ``input_grad=False`` (training) layers whose input gradient nobody
        needs (no trainable weights before them) skip it, and None is returned."""
        needed = self._needs_input_grad(input_grad)
        grads = {id(self.output): dy}
        summed = {}
        shared = self._shared_ids()
        for position in reversed(range(len(self.layer_nodes))):
            node = self.layer_nodes[position]
            g = grads.pop(id(node), None)
            if g is None:  # cannot happen in a connected graph; kept as a guard
                continue
            dxs = self._backward_call(position, node.layer, g, needed[position], summed, shared)
            if dxs is None:  # input gradient skipped
                continue
            dxs = dxs if node.layer.takes_list else [dxs]
            for parent, dx in zip(node.parents, dxs):
                if id(parent) in grads:
                    grads[id(parent)] = grads[id(parent)] + dx  # fan-out: gradients add up
                else:
                    grads[id(parent)] = dx
        self._finish_shared_grads(summed)
        if not input_grad:
            return None
        dx_inputs = [grads.get(id(i)) for i in self.inputs]
        return dx_inputs if self.multi_input else dx_inputs[0]

    def _needs_input_grad(self, input_grad):
        """Per node: does anyone need dL/d(its input)? Yes when the model's input gradient is
        asked for, or when some node before it has trainable weights."""
        trains = {}  # id(node) -> a trainable weight lies at or before this node
        needed = []
        for node in self.layer_nodes:
            before = any(trains.get(id(p), False) for p in node.parents)
            needed.append(input_grad or before)
            trains[id(node)] = before or (node.layer.trainable and bool(node.layer.params))
        return needed

    __call__ = forward

    def wiring_config(self, index):
        """For model files: the inputs (names, shapes with None for free sizes) and every node as
        a layer position (``index``: id -> position in :meth:`layers_list`) and the ids of its
        parents (inputs are ids ``0 .. k-1``, then the nodes in order)."""
        ids = {id(node): i for i, node in enumerate(self.inputs)}
        for node in self.layer_nodes:
            ids[id(node)] = len(ids)
        return {"multi_input": self.multi_input,
                "inputs": [{"name": node.name, "shape": list(node.shape)} for node in self.inputs],
                "nodes": [{"layer": index[id(node.layer)], "parents": [ids[id(p)] for p in node.parents]}
                          for node in self.layer_nodes],
                "output": ids[id(self.output)]}

    @classmethod
    def from_wiring_config(cls, config, layers, dtype):
        """The graph of :meth:`wiring_config`, replayed by calling the rebuilt ``layers`` on new
        ``Input`` nodes; built in ``dtype``."""
        nodes = [Input(tuple(spec["shape"]), name=spec["name"]) for spec in config["inputs"]]
        inputs = list(nodes)
        for spec in config["nodes"]:
            layer = layers[spec["layer"]]
            parents = [nodes[i] for i in spec["parents"]]
            nodes.append(layer(parents if layer.takes_list else parents[0]))
        return cls(inputs if config["multi_input"] else inputs[0], nodes[config["output"]],
                   seed=config["seed"], name=config["name"], dtype=dtype)
