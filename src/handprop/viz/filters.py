"""What a convolutional network looks at: first-layer filters and feature maps.

``plot_filters(layer_or_weights)`` draws each filter of a Conv2D weight ``W`` (K, C, R, S) as a
small image: RGB when C = 3, otherwise one grey image per input channel (the first channel by
default). ``plot_feature_maps(model, x, layer)`` runs one image through the model up to a layer
and draws every channel of that layer's output.
"""

from __future__ import annotations

import math

import numpy as np

from ..backend import to_numpy
from .figure import Figure


def _grid(n, max_cols=8):
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols


def _normalize(a):
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def plot_filters(layer_or_weights, channel=0, max_filters=64, title=None, names=None):
    """One panel per filter (up to ``max_filters``). Returns a matplotlib Figure.

    ``layer_or_weights``: a built Conv2D (its ``params["W"]``) or an array (K, C, R, S).
    Filters with 3 input channels are drawn in colour (each filter scaled to [0, 1] on its
    own); otherwise input channel ``channel`` is drawn in grey with a shared symmetric
    colour scale, so positive and negative weights can be compared across filters.
    ``names``: one title per filter (default "filter 0", "filter 1", ...).
    """
    W = getattr(layer_or_weights, "params", {}).get("W") if hasattr(layer_or_weights, "params") else layer_or_weights
    if W is None:
        raise ValueError("plot_filters: the layer has no weight 'W' (is it built?)")
    W = to_numpy(W)
    if W.ndim != 4:
        raise ValueError(f"plot_filters: expects conv weights (K, C, R, S), got shape {W.shape}")
    k = min(W.shape[0], max_filters)
    rows, cols = _grid(k)
    fig = Figure(figsize=(max(1.9 * cols + 0.6, 7.6), 1.9 * rows + 0.8))
    colour = W.shape[1] == 3
    vmax = float(np.abs(W[:k, channel]).max()) or 1.0
    fig.set_layout_engine("constrained")
    axes = []
    for i in range(k):
        ax = fig.add_subplot(rows, cols, i + 1)
        if colour:
            ax.imshow(_normalize(W[i].transpose(1, 2, 0)), interpolation="nearest")
        else:
            shown = ax.imshow(W[i, channel], cmap="gray", vmin=-vmax, vmax=vmax, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(names[i] if names is not None else f"filter {i}", fontsize=12)
        axes.append(ax)
    if not colour:  # one symmetric scale for every filter: its colorbar gives the sign and size of a weight
        fig.colorbar(shown, ax=axes, shrink=0.8, label="weight")
    fig.suptitle(title or f"{W.shape[0]} filters of {W.shape[2]}×{W.shape[3]}"
                 + ("" if colour else f" (input channel {channel})"))
    return fig


def feature_maps(model, x, layer):
    """Output of ``layer`` (index or Layer) for input ``x`` (N, C, H, W), inference mode."""
    layers = model.layers_list()
    index = layer if isinstance(layer, int) else next(i for i, la in enumerate(layers) if la is layer)
    if getattr(model, "layer_nodes", None) is not None:
        raise ValueError("feature_maps: use a Sequential model (graph models: call the sub-graph)")
    h = model._prepare(x)
    model.ensure_built(h)
    for la in layers[: index + 1]:
        h = la.forward(h, training=False)
    return to_numpy(h)


def plot_feature_maps(model, x, layer, max_maps=32, cmap="viridis", names=None):
    """Every channel of ``layer``'s output for the first image of ``x``, on one shared colour scale
    with its colorbar. ``names``: one title per channel (default "map 0", "map 1", ...). Returns a Figure."""
    maps = feature_maps(model, x[:1], layer)
    if maps.ndim != 4:
        raise ValueError(f"plot_feature_maps: layer output has shape {maps.shape}; pick a layer with "
                         "(N, C, H, W) output")
    n = min(maps.shape[1], max_maps)
    rows, cols = _grid(n)
    fig = Figure(figsize=(max(2.0 * cols + 1.4, 7.6), 2.0 * rows + 0.8), layout="constrained")
    lo, hi = float(maps[0, :n].min()), float(maps[0, :n].max())
    axes = []
    for i in range(n):
        ax = fig.add_subplot(rows, cols, i + 1)
        image = ax.imshow(maps[0, i], cmap=cmap, vmin=lo, vmax=hi if hi > lo else lo + 1, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(names[i] if names is not None else f"map {i}", fontsize=12)
        axes.append(ax)
    fig.colorbar(image, ax=axes, shrink=0.8, label="activation")
    name = layer if isinstance(layer, int) else layer.name
    fig.suptitle(f"feature maps of layer {name}: {maps.shape[1]} channels of {maps.shape[2]}×{maps.shape[3]}")
    return fig
