"""Keras 1's ``keras.layers.core``: ``Dense``, ``Activation``, ``Flatten``, ``Dropout``.

Each name is a function that returns handprop's own layer (:mod:`handprop.layers`) built from
the 2016 arguments::

    Dense(output_dim=64, input_dim=100, init="glorot_uniform")
        -> hp.layers.Dense(64, kernel_init="glorot_uniform", input_shape=(100,))
    Activation("relu")  -> hp.layers.ReLU()
    Flatten()           -> hp.layers.Flatten()
    Dropout(0.5)        -> hp.layers.Dropout(0.5)    (Keras 1's p is the drop probability, as rate)

``Flatten`` after channels-last (``dim_ordering='tf'``) layers: handprop holds images as
(C, H, W) inside the model, so the flattened vector lists the same numbers in another order
(channel by channel instead of pixel by pixel); the next Dense layer has the same number of
weights, and a model trained here is the same function class. Only weights copied from a real
Keras 1 model would need their rows permuted.
"""

from __future__ import annotations

from ... import layers as _hp
from .._translate import init_name, mark, reject

__all__ = ["Dense", "Activation", "Flatten", "Dropout"]


def Dense(output_dim=None, init="glorot_uniform", activation=None, weights=None, W_regularizer=None, b_regularizer=None,
          activity_regularizer=None, W_constraint=None, b_constraint=None, bias=True, input_dim=None,
          input_shape=None, name=None, trainable=True, **others):
    """Keras 1's ``Dense``: ``hp.layers.Dense(output_dim, use_bias=bias, kernel_init=init,
    activation=activation, input_shape=(input_dim,))`` (``y = x W + b``, ``W`` (in, out), as Keras)."""
    reject("Dense", {"weights": weights, "W_regularizer": W_regularizer, "b_regularizer": b_regularizer,
                     "activity_regularizer": activity_regularizer, "W_constraint": W_constraint,
                     "b_constraint": b_constraint, **others},
           ["output_dim", "init", "activation", "bias", "input_dim", "input_shape", "name", "trainable"])
    if output_dim is None:
        raise TypeError("handprop.keras1.Dense: output_dim= (the number of units) is required")
    if input_dim is not None:
        if input_shape is not None:
            raise ValueError(f"handprop.keras1.Dense: input_dim={input_dim} and input_shape={input_shape}: give one")
        input_shape = (input_dim,)
    return mark(_hp.Dense(output_dim, use_bias=bias, kernel_init=init_name("Dense", init), activation=activation,
                          name=name, input_shape=input_shape), trainable=trainable)


def Activation(activation, name=None, input_shape=None, trainable=True, **others):
    """Keras 1's ``Activation("relu")``: handprop's layer of that name (``hp.layers.Activation``).
    A final ``Activation("softmax")`` before ``loss='categorical_crossentropy'`` is taken into the
    loss by :meth:`handprop.keras1.models.Sequential.compile`."""
    reject("Activation", others, ["activation", "name", "input_shape", "trainable"])
    return mark(_hp.Activation(activation, name=name, input_shape=input_shape), trainable=trainable)


def Flatten(name=None, input_shape=None, trainable=True, **others):
    """Keras 1's ``Flatten()``: ``hp.layers.Flatten()`` (on channels-last models: the module docstring)."""
    reject("Flatten", others, ["name", "input_shape", "trainable"])
    return mark(_hp.Flatten(name=name, input_shape=input_shape), trainable=trainable)


def Dropout(p, name=None, input_shape=None, trainable=True, **others):
    """Keras 1's ``Dropout(p)``: ``hp.layers.Dropout(rate=p)``. Both mean the probability of
    dropping a unit, and both are inverted dropout (survivors scaled by 1 / (1 - p) in training)."""
    reject("Dropout", others, ["p", "name", "input_shape", "trainable"])
    return mark(_hp.Dropout(p, name=name, input_shape=input_shape), trainable=trainable)
