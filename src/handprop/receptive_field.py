"""Receptive fields: how many input pixels can influence one output pixel of each layer.

For a chain of layers, with ``r`` the receptive field and ``j`` the *jump* (the distance in
input pixels between neighbouring positions of the current feature map), a layer with kernel
``k``, dilation ``d`` and stride ``s`` gives::

    k_eff = d (k - 1) + 1          the kernel's extent, holes included
    r ← r + (k_eff - 1) · j
    j ← j · s

starting from ``r = 1``, ``j = 1`` at the input. Pooling is a kernel like any other (dilated
pooling too); nearest upsampling by ``f`` divides the jump (``j ← j / f``) and adds nothing; a
transposed convolution divides the jump by its stride, then adds ``(k - 1) · j``. Elementwise
layers change nothing.
In a graph model a node's receptive field is the largest among its inputs. Layers that mix all
positions (``Dense``, ``Flatten``, ``GlobalAvgPool2D``) see the whole input; their entry is the
field of the feature map they received.

The tutorial's dilated network (8 layers of 3×3 with dilations 1, 1, 2, 4, 8, 16, 32, 1, then two
1×1 layers) gives 3, 5, 9, 17, 33, 65, 129, 131, 131, 131: doubling the dilation doubles the growth,
so the field grows exponentially with depth while the parameter count grows linearly. (The
tutorial's kernel-width row reads nine 3s and a final 1, but a ninth 3×3 layer would give 133:
the receptive-field row it prints is that of eight 3×3 layers followed by two 1×1 layers.)
"""

from __future__ import annotations

from .kernels.geometry import ntuple


def _dims(layers):
    """Spatial axes of a model: 3 when it has a 3-D layer (Conv3D, MaxPool3D, ...), else 2."""
    return max((getattr(layer, "spatial_dims", 2) for layer in layers), default=2)


def _geometry(layer, dims=2):
    """``(kernel_extent, stride, upsample)`` per spatial axis for a layer, from its hyper-parameters."""
    kind = type(layer).__name__
    ones = (1,) * dims
    size = getattr(layer, "kernel_size", None) or getattr(layer, "pool_size", None)
    if size is not None:  # every convolution (2-D, 3-D, depthwise, transposed) and max/average pooling
        k = ntuple(size, dims)
        d = ntuple(getattr(layer, "dilation", 1), dims)
        s = ntuple(layer.stride, dims)
        extent = tuple(di * (ki - 1) + 1 for ki, di in zip(k, d))
        if kind == "Conv2DTranspose":
            return extent, ones, s
        return extent, s, ones
    if kind == "UpSampling2D":
        return ones, ones, ntuple(layer.size, dims)
    return ones, ones, ones


def _step(r, j, layer):
    extent, stride, up = _geometry(layer, len(r))
    r, j = list(r), list(j)
    for a in range(len(r)):
        j[a] = j[a] / up[a]
        r[a] = r[a] + (extent[a] - 1) * j[a]
        j[a] = j[a] * stride[a]
    return tuple(r), tuple(j)


def _clean(r):
    r = tuple(int(v) if float(v).is_integer() else v for v in r)
    return r[0] if len(set(r)) == 1 else r


def receptive_field(model):
    """Receptive field (in input pixels) after each layer of ``model``, in layer order.

    Returns a list with one entry per layer call, in forward order (a layer used twice -- shared
    weights -- has two entries, one per use; otherwise the layers of ``model.layers_list()``): an
    int when the field is square (a cube), a pair ``(rows, cols)`` (a triple for volumes)
    otherwise. Works for ``Sequential`` and graph ``Model`` models (the largest field among a
    node's inputs), on images and on volumes (a model with a 3-D layer).
    """
    nodes = getattr(model, "layer_nodes", None)
    ones = (1,) * _dims(model.layers_list())
    if nodes is None:  # a chain
        r, j, out = ones, ones, []
        for layer in model.layers:
            r, j = _step(r, j, layer)
            out.append(_clean(r))
        return out
    info = {id(i): (ones, ones) for i in model.inputs}
    out = []
    for node in nodes:
        parents = [info[id(p)] for p in node.parents]
        r = tuple(max(p[0][a] for p in parents) for a in range(len(ones)))
        j = tuple(max(p[1][a] for p in parents) for a in range(len(ones)))
        info[id(node)] = _step(r, j, node.layer)
        out.append(_clean(info[id(node)][0]))
    return out


def _calls(model):
    """The layer of every call in forward order: a layer used twice (shared weights) twice."""
    nodes = getattr(model, "layer_nodes", None)
    return list(model.layers) if nodes is None else [node.layer for node in nodes]


def receptive_field_table(model) -> str:
    """A printable table: layer, kernel extent, stride, receptive field."""
    lines = [f"{'layer':<28}{'kernel extent':>14}{'stride':>8}{'receptive field':>17}"]
    dims = _dims(model.layers_list())
    for layer, r in zip(_calls(model), receptive_field(model)):
        extent, stride, _ = _geometry(layer, dims)
        lines.append(f"{layer.name + ' (' + type(layer).__name__ + ')':<28}{str(extent[0]):>14}"
                     f"{str(stride[0]):>8}{str(r):>17}")
    return "\n".join(lines)
