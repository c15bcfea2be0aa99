"""The graduation path: a handprop model as an equivalent PyTorch module.

    net = hp.export.to_torch(model)        # a torch.nn.Module, in eval mode (as model.predict)
    net(torch.from_numpy(x))               # == model.predict(x), to float32 rounding

Each layer becomes the PyTorch module that computes the same function, with the same weights:

=========================  ===================================================================
handprop                   PyTorch
=========================  ===================================================================
Dense                      ``nn.Linear`` -- its ``weight`` is handprop's ``W`` **transposed**
Conv2D, Conv3D             ``nn.Conv2d``, ``nn.Conv3d``; ``padding="same"`` pads like handprop
                           (and Keras): half on each side, the odd row/column at the
                           bottom/right, computed per input size, then a convolution without
                           padding
DepthwiseConv2D            ``nn.Conv2d(C, C M, k, groups=C)`` (the same ``(C M, 1, R, S)`` weights)
Conv2DTranspose            ``nn.ConvTranspose2d`` (the same ``(C_in, K, R, S)`` weight layout)
MaxPool2D, MaxPool3D       ``nn.MaxPool2d``, ``nn.MaxPool3d`` (dilation included)
AvgPool2D, AvgPool3D       ``nn.AvgPool2d``, ``nn.AvgPool3d`` (``count_include_pad=True``); a
                           *dilated* one, which PyTorch lacks, as a depthwise convolution with
                           every weight ``1 / window size`` (the same numbers)
GlobalAvgPool2D            mean over (H, W)
UpSampling2D               ``nn.Upsample(mode="nearest")``
BatchNorm                  ``nn.BatchNorm1d`` / ``2d`` / ``3d`` with the running statistics
Dropout                    ``nn.Dropout`` (same ``rate`` = drop probability)
activations                ``nn.ReLU``, ``Sigmoid``, ``Tanh``, ``Identity``, ``LeakyReLU``,
                           ``ELU``, ``PReLU`` (per channel), ``Softmax(dim=axis)``, ``LogSoftmax(dim=axis)``
Flatten, Reshape           ``nn.Flatten`` (the same C-order); a reshape to ``(N, *target_shape)``
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
import math
from types import SimpleNamespace

import numpy as np

from . import layers as L
from .backend import to_numpy
from .graph import Model
from .kernels.geometry import same_padding
from .model import Sequential


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

    def same_pad(conv, x):
        """``x`` padded as handprop's "same": ``ceil(H / stride)`` outputs, the total padding split
        in half with the odd pixel at the bottom/right (computed per input size, on every axis)."""
        pads = []
        for n, k, s, d in reversed(list(zip(x.shape[2:], conv.kernel_size, conv.stride, conv.dilation))):
            before, extra = same_padding(n, k, s, d)
            pads += [before, before + extra]  # F.pad lists the last axis first
        return F.pad(x, pads)

    class SamePadConv2d(nn.Conv2d):
        """``nn.Conv2d`` with handprop's "same" padding (:func:`same_pad`)."""

        def forward(self, x):
            return super().forward(same_pad(self, x))

    class SamePadConv3d(nn.Conv3d):
        """``nn.Conv3d`` with handprop's "same" padding (:func:`same_pad`)."""

        def forward(self, x):
            return super().forward(same_pad(self, x))

    class DilatedAvgPool(nn.Module):
        """Average pooling with spaced taps, which PyTorch's ``AvgPool2d/3d`` lack: a depthwise
        convolution whose weights are all ``1 / window size`` (padding zeros count, as handprop's)."""

        def __init__(self, pool, stride, padding, dilation):
            super().__init__()
            self.pool, self.stride, self.padding, self.dilation = pool, stride, padding, dilation

        def forward(self, x):
            C = x.shape[1]
            w = torch.full((C, 1, *self.pool), 1.0 / math.prod(self.pool), dtype=x.dtype, device=x.device)
            conv = F.conv2d if len(self.pool) == 2 else F.conv3d
            return conv(x, w, None, self.stride, self.padding, self.dilation, groups=C)

    class Reshape(nn.Module):
        def __init__(self, shape):
            super().__init__()
            self.shape = tuple(shape)

        def forward(self, x):
            return x.reshape(x.shape[0], *self.shape)

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

    return SimpleNamespace(SamePadConv2d=SamePadConv2d, SamePadConv3d=SamePadConv3d, DilatedAvgPool=DilatedAvgPool,
                           Reshape=Reshape, GlobalAvgPool2d=GlobalAvgPool2d, Concatenate=Concatenate, Add=Add,
                           Graph=Graph)


def _param(torch, array, dtype):
    return torch.nn.Parameter(torch.from_numpy(np.array(to_numpy(array))).to(dtype))


def _convert(layer, torch, dtype):
    """The torch module computing ``layer``, or None when there is none."""
    nn = torch.nn
    m = _modules()
    p = layer.params
    if isinstance(layer, L.Dense):
        module = nn.Linear(p["W"].shape[0], layer.units, bias=layer.use_bias)
        module.weight = _param(torch, to_numpy(p["W"]).T, dtype)
    elif isinstance(layer, (L.Conv2D, L.Conv3D, L.DepthwiseConv2D)):
        K = p["W"].shape[0]
        groups = K // layer.depth_multiplier if isinstance(layer, L.DepthwiseConv2D) else 1  # depthwise: C
        args = dict(kernel_size=layer.kernel_size, stride=layer.stride, dilation=layer.dilation, bias=layer.use_bias,
                    groups=groups)
        same = layer.padding == "same"
        cls = {(2, False): nn.Conv2d, (3, False): nn.Conv3d,
               (2, True): m.SamePadConv2d, (3, True): m.SamePadConv3d}[layer.spatial_dims, same]
        padding = 0 if same or layer.padding == "valid" else layer.padding
        module = cls(p["W"].shape[1] * groups, K, padding=padding, **args)
        module.weight = _param(torch, p["W"], dtype)
    elif isinstance(layer, L.Conv2DTranspose):
        module = nn.ConvTranspose2d(p["W"].shape[0], layer.filters, layer.kernel_size, stride=layer.stride,
                                    padding=layer.padding, output_padding=layer.output_padding,
                                    dilation=layer.dilation, bias=layer.use_bias)
        module.weight = _param(torch, p["W"], dtype)
    elif isinstance(layer, (L.MaxPool2D, L.MaxPool3D)):
        cls = nn.MaxPool2d if layer.spatial_dims == 2 else nn.MaxPool3d
        module = cls(layer.pool_size, layer.stride, layer.padding, layer.dilation)
    elif isinstance(layer, (L.AvgPool2D, L.AvgPool3D)):
        if set(layer.dilation) != {1}:
            module = m.DilatedAvgPool(layer.pool_size, layer.stride, layer.padding, layer.dilation)
        else:
            cls = nn.AvgPool2d if layer.spatial_dims == 2 else nn.AvgPool3d
            module = cls(layer.pool_size, layer.stride, layer.padding, count_include_pad=True)
    elif isinstance(layer, L.GlobalAvgPool2D):
        module = m.GlobalAvgPool2d()
    elif isinstance(layer, L.UpSampling2D):
        module = nn.Upsample(scale_factor=tuple(float(s) for s in layer.size), mode="nearest")
    elif isinstance(layer, L.BatchNorm):
        cls = {1: nn.BatchNorm1d, 3: nn.BatchNorm2d, 4: nn.BatchNorm3d}[len(layer.input_shape)]
        module = cls(p["gamma"].shape[0], eps=layer.eps, momentum=layer.momentum)
        module.weight = _param(torch, p["gamma"], dtype)
        module.bias = _param(torch, p["beta"], dtype)
        module.running_mean = torch.from_numpy(np.array(to_numpy(layer.state["running_mean"]))).to(dtype)
        module.running_var = torch.from_numpy(np.array(to_numpy(layer.state["running_var"]))).to(dtype)
    elif isinstance(layer, L.Dropout):
        module = nn.Dropout(layer.rate)
    elif isinstance(layer, L.Flatten):
        module = nn.Flatten()
    elif isinstance(layer, L.Reshape):
        module = m.Reshape(layer.output_shape)
    elif isinstance(layer, L.Concatenate):
        module = m.Concatenate(layer.axis)
    elif isinstance(layer, L.Add):
        module = m.Add()
    elif isinstance(layer, L.PReLU):
        module = nn.PReLU(num_parameters=p["alpha"].shape[0])
        module.weight = _param(torch, p["alpha"], dtype)
    elif isinstance(layer, L.LeakyReLU):
        module = nn.LeakyReLU(layer.alpha)
    elif isinstance(layer, L.ELU):
        module = nn.ELU(layer.alpha)
    elif isinstance(layer, L.Softmax):
        module = nn.Softmax(dim=layer.axis)
    elif isinstance(layer, L.LogSoftmax):
        module = nn.LogSoftmax(dim=layer.axis)
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
    Graph = _modules().Graph
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
