"""Keras 1's ``keras.layers.advanced_activations``: ``PReLU``, ``LeakyReLU``, ``ELU``.

``PReLU()`` in Keras 1 learns one slope **per position** (its slopes have the shape of one
sample: 25 x 25 x 20 = 12,500 of them after the ConvNet's first convolution) and starts them at
0 (``init='zero'``). handprop's :class:`~handprop.layers.PReLU` learns one slope per channel, or
per feature on (N, F) input. So, without new arithmetic, the translation of a per-position PReLU
on images is three handprop layers, which :class:`handprop.keras1.models.Sequential` inserts::

    Flatten() -> hp.layers.PReLU(alpha_init=0.0)   (one slope per feature = per position)
              -> Reshape((C, H, W))

and on (N, F) input just ``hp.layers.PReLU(alpha_init=0.0)``. ``shared_axes`` (Keras 1.2) that
share the slopes across the image give handprop's per-channel PReLU directly.
"""

from __future__ import annotations

from ... import layers as _hp
from .._translate import mark, reject

__all__ = ["PReLU", "LeakyReLU", "ELU"]

_SPATIAL_AXES = {"tf": {1, 2}, "th": {2, 3}}


def PReLU(init="zero", weights=None, shared_axes=None, name=None, input_shape=None, trainable=True, **others):
    """Keras 1's ``PReLU``: slopes start at 0 (``init='zero'``), one per position unless
    ``shared_axes`` shares them over the image (the module docstring)."""
    reject("PReLU", {"weights": weights, **others}, ["init", "shared_axes", "name", "input_shape", "trainable"])
    if init not in ("zero", "one"):
        raise ValueError(f"handprop.keras1.PReLU: init={init!r}: handprop's PReLU starts its slopes at a constant; "
                         "write init='zero' (Keras 1's default) or hp.layers.PReLU(alpha_init=...)")
    layer = _hp.PReLU(alpha_init=0.0 if init == "zero" else 1.0, name=name, input_shape=input_shape)
    if shared_axes is None:
        layer.keras1_per_position = True  # Sequential.add wraps it in Flatten/Reshape on images
    else:
        axes = {shared_axes} if isinstance(shared_axes, int) else set(shared_axes)
        if axes not in _SPATIAL_AXES.values():
            raise ValueError(f"handprop.keras1.PReLU: shared_axes={shared_axes!r}: handprop shares slopes over the "
                             "whole image (per channel): [1, 2] for dim_ordering='tf', [2, 3] for 'th'")
        layer.keras1_per_position = False
    return mark(layer, trainable=trainable)


def LeakyReLU(alpha=0.3, name=None, input_shape=None, trainable=True, **others):
    """Keras 1's ``LeakyReLU(alpha=0.3)``: ``hp.layers.LeakyReLU(0.3)`` (handprop's default is 0.01, as PyTorch)."""
    reject("LeakyReLU", others, ["alpha", "name", "input_shape", "trainable"])
    return mark(_hp.LeakyReLU(alpha, name=name, input_shape=input_shape), trainable=trainable)


def ELU(alpha=1.0, name=None, input_shape=None, trainable=True, **others):
    """Keras 1's ``ELU(alpha=1.0)``: ``hp.layers.ELU(alpha)``."""
    reject("ELU", others, ["alpha", "name", "input_shape", "trainable"])
    return mark(_hp.ELU(alpha, name=name, input_shape=input_shape), trainable=trainable)
