"""Keras 1's ``keras.layers.convolutional``: ``Convolution2D``, ``AtrousConvolution2D`` and the
pooling layers it also exported (``MaxPooling2D``, ``AveragePooling2D``).

``Convolution2D(nb_filter, nb_row, nb_col, ...)`` -- *in this module only* the two numbers after
the filter count are the kernel's rows and columns (Keras 1), where ``hp.layers.Conv2D(20, 5, 5)``
refuses the third positional argument (it would be a stride in Keras 2 and PyTorch)::

    Convolution2D(20, 5, 5, dim_ordering='tf', border_mode='valid', input_shape=(29, 29, 3))
        -> hp.layers.Conv2D(20, (5, 5), padding="valid", input_shape=(3, 29, 29))

``border_mode`` -> ``padding`` ('valid' or 'same'), ``subsample`` -> ``stride``, ``init`` ->
``kernel_init``, ``bias`` -> ``use_bias``. ``dim_ordering='tf'`` declares channels-last data:
``input_shape=(rows, cols, channels)`` and batches (N, rows, cols, channels), which the model
(:class:`handprop.keras1.models.Sequential`) transposes to handprop's (N, C, H, W) on the way in.
Without ``dim_ordering`` (Keras 1's 'default'), the model's ordering applies: channels-first
unless one of its layers declared 'tf'; a channels-last-looking ``input_shape`` is then an error
that asks for ``dim_ordering='tf'``.
"""

from __future__ import annotations

from ... import layers as _hp
from .._translate import image_input_shape, init_name, mark, ordering, reject

__all__ = ["Convolution2D", "AtrousConvolution2D", "MaxPooling2D", "AveragePooling2D"]

_ACCEPTED = ["nb_filter", "nb_row", "nb_col", "init", "activation", "border_mode", "subsample", "dim_ordering",
             "bias", "input_shape", "name", "trainable"]


def _conv(owner, nb_filter, nb_row, nb_col, init, activation, border_mode, subsample, dim_ordering, bias,
          input_shape, name, trainable, dilation, unsupported):
    reject(owner, unsupported, _ACCEPTED + (["atrous_rate"] if owner.startswith("Atrous") else []))
    if border_mode not in ("valid", "same"):
        raise ValueError(f"handprop.keras1.{owner}: border_mode must be 'valid' or 'same', got {border_mode!r} "
                         "(Keras 1's 'full' was Theano only; Keras 2: padding=)")
    order = ordering(owner, dim_ordering)
    layer = _hp.Conv2D(nb_filter, (nb_row, nb_col), stride=subsample, padding=border_mode, dilation=dilation,
                       use_bias=bias, kernel_init=init_name(owner, init), activation=activation, name=name,
                       input_shape=image_input_shape(owner, input_shape, order))
    return mark(layer, order, trainable)


def Convolution2D(nb_filter, nb_row, nb_col, init="glorot_uniform", activation=None, weights=None,
                  border_mode="valid", subsample=(1, 1), dim_ordering="default", W_regularizer=None,
                  b_regularizer=None, activity_regularizer=None, W_constraint=None, b_constraint=None, bias=True,
                  input_shape=None, name=None, trainable=True, **others):
    """Keras 1's ``Convolution2D``: ``nb_filter`` filters of ``nb_row x nb_col`` (module docstring)."""
    return _conv("Convolution2D", nb_filter, nb_row, nb_col, init, activation, border_mode, subsample, dim_ordering,
                 bias, input_shape, name, trainable, 1,
                 {"weights": weights, "W_regularizer": W_regularizer, "b_regularizer": b_regularizer,
                  "activity_regularizer": activity_regularizer, "W_constraint": W_constraint,
                  "b_constraint": b_constraint, **others})


def AtrousConvolution2D(nb_filter, nb_row, nb_col, init="glorot_uniform", activation=None, weights=None,
                        border_mode="valid", subsample=(1, 1), atrous_rate=(1, 1), dim_ordering="default",
                        W_regularizer=None, b_regularizer=None, activity_regularizer=None, W_constraint=None,
                        b_constraint=None, bias=True, input_shape=None, name=None, trainable=True, **others):
    """Keras 1's dilated convolution: ``hp.layers.Conv2D(nb_filter, (nb_row, nb_col), dilation=atrous_rate)``
    (Keras 2: ``Conv2D(..., dilation_rate=)``)."""
    return _conv("AtrousConvolution2D", nb_filter, nb_row, nb_col, init, activation, border_mode, subsample,
                 dim_ordering, bias, input_shape, name, trainable, atrous_rate,
                 {"weights": weights, "W_regularizer": W_regularizer, "b_regularizer": b_regularizer,
                  "activity_regularizer": activity_regularizer, "W_constraint": W_constraint,
                  "b_constraint": b_constraint, **others})


def _pool(owner, cls, pool_size, strides, border_mode, dim_ordering, input_shape, name, trainable, others):
    reject(owner, others, ["pool_size", "strides", "border_mode", "dim_ordering", "input_shape", "name", "trainable"])
    if border_mode != "valid":
        raise ValueError(f"handprop.keras1.{owner}: border_mode={border_mode!r} is not supported, only 'valid' "
                         "(handprop pads pooling symmetrically: hp.layers.MaxPool2D(..., padding=1); "
                         "Keras 2: padding=)")
    order = ordering(owner, dim_ordering)
    layer = cls(pool_size, stride=strides, name=name, input_shape=image_input_shape(owner, input_shape, order))
    return mark(layer, order, trainable)


def MaxPooling2D(pool_size=(2, 2), strides=None, border_mode="valid", dim_ordering="default", input_shape=None,
                 name=None, trainable=True, **others):
    """Keras 1's ``MaxPooling2D``: ``hp.layers.MaxPool2D(pool_size, stride=strides)`` (stride: the pool size)."""
    return _pool("MaxPooling2D", _hp.MaxPool2D, pool_size, strides, border_mode, dim_ordering, input_shape, name,
                 trainable, others)


def AveragePooling2D(pool_size=(2, 2), strides=None, border_mode="valid", dim_ordering="default", input_shape=None,
                     name=None, trainable=True, **others):
    """Keras 1's ``AveragePooling2D``: ``hp.layers.AvgPool2D(pool_size, stride=strides)``."""
    return _pool("AveragePooling2D", _hp.AvgPool2D, pool_size, strides, border_mode, dim_ordering, input_shape,
                 name, trainable, others)
