"""The graduation path: a handprop model as an equivalent PyTorch module.

    net = hp.export.to_torch(model)        # a torch.nn.Module, in eval mode (as model.predict)
    net(torch.from_numpy(x))               # == model.predict(x), to float32 rounding

Each layer becomes the PyTorch module that computes the same function, with the same weights:

=========================  ===================================================================
handprop                   PyTorch
=========================  ===================================================================
Dense                      ``nn.Linear`` -- its ``weight`` is handprop's ``W`` **transposed**
Conv2D                     ``nn.Conv2d``; ``padding="same"`` pads like handprop (and Keras):
                           half on each side, the odd row/column at the bottom/right, computed
                           per input size, then a convolution without padding
Conv2DTranspose            ``nn.ConvTranspose2d`` (the same ``(C_in, K, R, S)`` weight layout)
MaxPool2D, AvgPool2D       ``nn.MaxPool2d``, ``nn.AvgPool2d(count_include_pad=True)``
GlobalAvgPool2D            mean over (H, W)
UpSampling2D               ``nn.Upsample(mode="nearest")``
BatchNorm                  ``nn.BatchNorm1d`` / ``nn.BatchNorm2d`` with the running statistics
Dropout                    ``nn.Dropout`` (same ``rate`` = drop probability)
activations                ``nn.ReLU``, ``Sigmoid``, ``Tanh``, ``Identity``, ``LeakyReLU``,
                           ``ELU``, ``PReLU`` (per channel), ``Softmax(dim=-1)``
Flatten                    ``nn.Flatten`` (the same C-order)
Concatenate, Add           ``torch.cat`` / a sum over the inputs
``activation=`` argument   ``nn.Sequential(layer, activation)``
=========================  ===================================================================

A ``Sequential`` without shared layers becomes an ``nn.Sequential``; anything else (graph models,
shared layers) a small module that runs the nodes in the same order. Every handprop layer has an
equivalent; a layer class of your own does not, and ``to_torch`` names it -- pass
``converters={MyLayer: function(layer) -> nn.Module}`` to export it too. Randomness differs
(Dropout masks come from torch's generator), and so does training-mode BatchNorm's
``num_batches_tracked`` bookkeeping; the arithmetic is the same.
"""

from __future__ import annotations

import functools

import numpy as np

from .backend import to_numpy
from .kernels.geometry import same_padding


def _import_torch():
    try:
        import torch
    except ImportError:
        raise ImportError("hp.export.to_torch needs PyTorch: pip install torch (handprop itself does not need "
                          "it)") from None
    return torch


@functools.cache
def _modules():
    """The small torch modules that PyTorch lacks, defined once torch is imported."""
    torch = _import_torch()
    nn, F = torch.nn, torch.nn.functional

    class SamePadConv2d(nn.Conv2d):
        """``nn.Conv2d`` with handprop's "same" padding: ``ceil(H / stride)`` outputs, the total
        padding split in half with the odd pixel at the bottom/right (computed per input size)."""

        def forward(self, x):
            pads = [same_padding(n, k, s, d) for n, k, s, d in
                    zip(x.shape[2:], self.kernel_size, self.stride, self.dilation)]
            (ph, eh), (pw, ew) = pads
            return super().forward(F.pad(x, (pw, pw + ew, ph, ph + eh)))

    class GlobalAvgPool2d(nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))

    class Concatenate(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.dim = dim

        def forward(self, xs):
            return torch.cat(list(xs), dim=self.dim)

    class Add(nn.Module):
        def forward(self, xs):
            out = xs[0]
            for x in xs[1:]:
                out = out + x
            return out

    class Graph(nn.Module):
        """Runs ``nodes`` in order: each ``(layer index, parent slots, takes a list)``; slots
        ``0 .. n_inputs-1`` are the inputs, then one slot per node."""

        def __init__(self, layers, nodes, n_inputs, output):
            super().__init__()
            self.layers = nn.ModuleList(layers)
            self.nodes = nodes
            self.n_inputs = n_inputs
            self.output = output

        def forward(self, *inputs):
            if len(inputs) == 1 and isinstance(inputs[0], (list, tuple)):
                inputs = tuple(inputs[0])
            if len(inputs) != self.n_inputs:
                raise ValueError(f"expects {self.n_inputs} inputs, got {len(inputs)}")
            values = list(inputs)
            for index, parents, takes_list in self.nodes:
                args = [values[p] for p in parents]
                values.append(self.layers[index](args if takes_list else args[0]))
            return values[self.output]

    return SamePadConv2d, GlobalAvgPool2d, Concatenate, Add, Graph


def _param(torch, array, dtype):
    return torch.nn.Parameter(torch.from_numpy(np.array(to_numpy(array))).to(dtype))


def _convert(layer, torch, dtype):
    """The torch module computing ``layer``, or None when there is none."""
    from . import layers as L

    nn = torch.nn
    SamePadConv2d, GlobalAvgPool2d, Concatenate, Add, _ = _modules()
    p = layer.params
    if isinstance(layer, L.Dense):
        module = nn.Linear(p["W"].shape[0], layer.units, bias=layer.use_bias)
        module.weight = _param(torch, to_numpy(p["W"]).T, dtype)
    elif isinstance(layer, L.Conv2D):
        C = p["W"].shape[1]
        args = dict(kernel_size=layer.kernel_size, stride=layer.stride, dilation=layer.dilation, bias=layer.use_bias)
        if layer.padding == "same":
            module = SamePadConv2d(C, layer.filters, padding=0, **args)
        else:
            module = nn.Conv2d(C, layer.filters, padding=(0, 0) if layer.padding == "valid" else layer.padding, **args)
        module.weight = _param(torch, p["W"], dtype)
    elif isinstance(layer, L.Conv2DTranspose):
        module = nn.ConvTranspose2d(p["W"].shape[0], layer.filters, layer.kernel_size, stride=layer.stride,
                                    padding=layer.padding, output_padding=layer.output_padding,
                                    dilation=layer.dilation, bias=layer.use_bias)
        module.weight = _param(torch, p["W"], dtype)
    elif isinstance(layer, L.MaxPool2D):
        module = nn.MaxPool2d(layer.pool_size, layer.stride, layer.padding)
    elif isinstance(layer, L.AvgPool2D):
        module = nn.AvgPool2d(layer.pool_size, layer.stride, layer.padding, count_include_pad=True)
    elif isinstance(layer, L.GlobalAvgPool2D):
        module = GlobalAvgPool2d()
    elif isinstance(layer, L.UpSampling2D):
        module = nn.Upsample(scale_factor=tuple(float(s) for s in layer.size), mode="nearest")
    elif isinstance(layer, L.BatchNorm):
        cls = nn.BatchNorm1d if len(layer.input_shape) == 1 else nn.BatchNorm2d
        module = cls(p["gamma"].shape[0], eps=layer.eps, momentum=layer.momentum)
        module.weight = _param(torch, p["gamma"], dtype)
        module.bias = _param(torch, p["beta"], dtype)
        module.running_mean = torch.from_numpy(np.array(to_numpy(layer.state["running_mean"]))).to(dtype)
        module.running_var = torch.from_numpy(np.array(to_numpy(layer.state["running_var"]))).to(dtype)
    elif isinstance(layer, L.Dropout):
        module = nn.Dropout(layer.rate)
    elif isinstance(layer, L.Flatten):
        module = nn.Flatten()
    elif isinstance(layer, L.Concatenate):
        module = Concatenate(layer.axis)
    elif isinstance(layer, L.Add):
        module = Add()
    elif isinstance(layer, L.PReLU):
        module = nn.PReLU(num_parameters=p["alpha"].shape[0])
        module.weight = _param(torch, p["alpha"], dtype)
    elif isinstance(layer, L.LeakyReLU):
        module = nn.LeakyReLU(layer.alpha)
    elif isinstance(layer, L.ELU):
        module = nn.ELU(layer.alpha)
    elif isinstance(layer, L.Softmax):
        module = nn.Softmax(dim=-1)
    else:
        simple = {L.ReLU: nn.ReLU, L.Sigmoid: nn.Sigmoid, L.Tanh: nn.Tanh, L.Linear: nn.Identity}
        cls = simple.get(type(layer))
        if cls is None:
            return None
        module = cls()
    if "b" in p and hasattr(module, "bias") and module.bias is not None:
        module.bias = _param(torch, p["b"], dtype)
    if getattr(layer, "activation", None) is not None:
        module = nn.Sequential(module, _convert(layer.activation, torch, dtype))
    return module.to(dtype)


def to_torch(model, converters=None):
    """An equivalent ``torch.nn.Module`` of a built handprop ``Sequential`` or graph ``Model``, with
    copies of its weights and running statistics, in ``model``'s dtype, in eval mode.

    ``converters``: ``{LayerClass: function(layer) -> nn.Module}`` for layers of your own. A layer
    without an equivalent is a ValueError naming it. Needs PyTorch (an ImportError otherwise).
    """
    from .graph import Model
    from .model import Sequential

    torch = _import_torch()
    if not isinstance(model, (Sequential, Model)):
        raise TypeError(f"to_torch: expects a handprop Sequential or Model, got {type(model).__name__}")
    if not model.built:
        raise RuntimeError("to_torch: the model is not built yet; pass input_shape= or run predict on one batch")
    dtype = torch.float64 if np.dtype(model.dtype) == np.float64 else torch.float32
    layers = model.layers_list()
    modules, missing = [], []
    for layer in layers:
        custom = next((fn for cls, fn in (converters or {}).items() if isinstance(layer, cls)), None)
        module = custom(layer) if custom is not None else _convert(layer, torch, dtype)
        if module is None:
            missing.append(f"{layer.name} ({type(layer).__name__})")
        modules.append(module)
    if missing:
        raise ValueError(f"to_torch: no PyTorch equivalent for {', '.join(missing)}: handprop exports its own layer "
                         "classes; for yours pass converters={YourLayer: function(layer) -> torch.nn.Module}")
    index = {id(layer): i for i, layer in enumerate(layers)}
    Graph = _modules()[-1]
    if isinstance(model, Sequential):
        if len(layers) == len(model.layers):  # no shared layer: a plain nn.Sequential reads best
            return torch.nn.Sequential(*modules).eval()
        nodes = [(index[id(layer)], (i,), False) for i, layer in enumerate(model.layers)]
        return Graph(modules, nodes, 1, len(nodes)).eval()
    slots = {id(node): i for i, node in enumerate(model.inputs)}
    nodes = []
    for node in model.layer_nodes:
        nodes.append((index[id(node.layer)], tuple(slots[id(p)] for p in node.parents), node.layer.takes_list))
        slots[id(node)] = len(slots)
    return Graph(modules, nodes, len(model.inputs), slots[id(model.output)]).eval()


__all__ = ["to_torch"]
