"""Reducing parameters (the tutorial's slide): five ways to give a layer a 7 x 7 context.

Every block maps ``F`` channels to ``F`` channels and lets each output see a ``k x k``
(default 7 x 7) window of its input; they differ in how many weights that costs
(``F = 16``: counts with biases)::

    "full"        Conv2D(F, 7x7)                         F*F*49 + F       = 12,560
    "factorized"  Conv2D(F, 7x1) -> Conv2D(F, 1x7)      2 (F*F*7 + F)    =  3,616
    "dilated"     Conv2D(F, 3x3, dilation 3)             F*F*9 + F        =  2,320   (holes in the window)
    "shared"      one Conv2D(F, 3x3) applied 3 times     F*F*9 + F        =  2,320   (weights shared)
    "separable"   DepthwiseConv2D(7x7) -> Conv2D(F, 1)   F*49 + F + F*F + F = 1,072

:func:`parameter_reduction_net` puts one block between the same stem and head, so the models
differ only there; ``model.summary()`` shows the counts (a shared layer is listed, and counted,
once).
"""

from __future__ import annotations

from ..layers import Conv2D, DepthwiseConv2D
from ..layers.activations import get as activation_layer
from ..model import Sequential

REDUCTIONS = ("full", "factorized", "dilated", "shared", "separable")
"""The kinds of :func:`context_block`."""


def context_block(kind, filters, kernel_size=7, activation="relu"):
    """The layers of one ``kernel_size``-context block of the given ``kind`` (see the module
    docstring); ``kernel_size`` odd, >= 3. Returns a list of layers ("shared" holds one Conv2D
    object several times, with the activation between its uses)."""
    k = int(kernel_size)
    if k < 3 or k % 2 == 0:
        raise ValueError(f"context_block: kernel_size must be odd and >= 3, got {kernel_size}")
    F = filters
    if kind == "full":
        return [Conv2D(F, k, padding="same")]
    if kind == "factorized":
        return [Conv2D(F, (k, 1), padding="same"), Conv2D(F, (1, k), padding="same")]
    if kind == "dilated":
        return [Conv2D(F, 3, dilation=(k - 1) // 2, padding="same")]
    if kind == "shared":
        conv = Conv2D(F, 3, padding="same")
        layers = [conv]
        for _ in range((k - 1) // 2 - 1):  # each 3 x 3 use widens the window by 2
            layers += [activation_layer(activation), conv]
        return layers
    if kind == "separable":
        return [DepthwiseConv2D(k, padding="same"), Conv2D(F, 1)]
    raise ValueError(f"context_block: kind must be one of {REDUCTIONS}, got {kind!r}")


def parameter_reduction_net(kind, in_channels=1, out_channels=1, filters=16, kernel_size=7, activation="relu",
                            seed=0):
    """``Conv2D(filters, 3) -> activation -> context_block(kind) -> activation -> Conv2D(out_channels, 1)``,
    all "same" padding: a small fully convolutional segmentation network (logits) whose only
    difference between kinds is the context block. Receptive field ``kernel_size + 2`` for every
    kind. Returns a ``Sequential`` on ``(in_channels, None, None)``.
    """
    layers = [Conv2D(filters, 3, padding="same"), activation_layer(activation),
              *context_block(kind, filters, kernel_size, activation), activation_layer(activation),
              Conv2D(out_channels, 1)]
    return Sequential(layers, seed=seed, input_shape=(in_channels, None, None),
                      name=f"{kind}_{kernel_size}x{kernel_size}")
