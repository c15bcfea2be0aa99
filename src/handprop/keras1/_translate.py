"""What every translation in :mod:`handprop.keras1` shares: the checks of Keras 1 arguments
handprop has no equivalent for, Keras 1's initializer names and its ``dim_ordering``.

Nothing here computes: each function maps a 2016 spelling to handprop's, or raises an error
that names the argument and says what to write instead.
"""

from __future__ import annotations

from ..layers.conv import looks_channels_last

#: Keras 2 (and handprop) spellings that a Keras 1 call may get by mistake -> Keras 1's spelling.
MODERN_TO_KERAS1 = {
    "units": "output_dim", "kernel_initializer": "init", "kernel_size": "nb_row, nb_col", "filters": "nb_filter",
    "padding": "border_mode", "strides": "subsample", "stride": "subsample", "data_format": "dim_ordering",
    "use_bias": "bias", "epochs": "nb_epoch", "rate": "p", "dilation_rate": "atrous_rate",
    "alpha_initializer": "init", "kernel_init": "init", "learning_rate": "lr", "dilation": "atrous_rate",
}

#: Keras 1 arguments that handprop does not translate -> what to write instead.
UNSUPPORTED = {
    "weights": "set them after building: model.set_weights({...}) (Keras 2: layer.set_weights([...]))",
    "W_regularizer": "an L2 penalty on every weight is the optimizer's weight_decay=, e.g. "
                     "hp.optimizers.SGD(lr=0.01, weight_decay=1e-4) (Keras 2: kernel_regularizer=)",
    "b_regularizer": "the optimizer's weight_decay= (Keras 2: bias_regularizer=)",
    "activity_regularizer": "handprop has no activity penalty (Keras 2: activity_regularizer=)",
    "W_constraint": "handprop has no weight constraints (Keras 2: kernel_constraint=)",
    "b_constraint": "handprop has no weight constraints (Keras 2: bias_constraint=)",
    "batch_input_shape": "input_shape= without the batch axis (Keras 2: batch_input_shape= too)",
    "input_length": "input_shape=(...) (Keras 2: input_shape=)",
    "decay": "a learning-rate schedule: fit(..., callbacks=[hp.schedules.LearningRateScheduler(...)]) "
             "(Keras 2: a LearningRateSchedule object as learning_rate=)",
    "clipnorm": "handprop does not clip gradients (Keras 2: clipnorm= too)",
    "clipvalue": "handprop does not clip gradients (Keras 2: clipvalue= too)",
}


def reject(owner, given, accepted):
    """Raise a TypeError for the first argument in ``given`` (a dict of keyword arguments that the
    translation does not take), naming it and what to write instead. ``accepted``: the Keras 1
    arguments ``owner`` takes, listed in the message for an unknown name."""
    for name, value in given.items():
        if name in UNSUPPORTED:
            if value is None or (name == "decay" and value == 0):
                continue  # the Keras 1 default: nothing to translate
            raise TypeError(f"handprop.keras1.{owner}: {name}= is not supported; {UNSUPPORTED[name]}")
        if name in MODERN_TO_KERAS1:
            raise TypeError(f"handprop.keras1.{owner}: {name}= is the modern (Keras 2) spelling; handprop.keras1 takes "
                            f"Keras 1's {MODERN_TO_KERAS1[name]}= (or use handprop's own API, which takes {name}=)")
        raise TypeError(f"handprop.keras1.{owner}: unknown argument {name}=; Keras 1's {owner} takes "
                        f"{', '.join(accepted)}")


#: Keras 1's initializer names -> handprop's (the rest has no handprop equivalent).
INITS = {"glorot_uniform": "glorot_uniform", "glorot_normal": "glorot_normal", "he_uniform": "he_uniform",
         "he_normal": "he_normal", "zero": "zeros", "one": "ones"}


def init_name(owner, init):
    """handprop's name for Keras 1's ``init=`` (``"zero"`` -> ``"zeros"``), or a ValueError."""
    if init not in INITS:
        raise ValueError(f"handprop.keras1.{owner}: init={init!r} has no handprop equivalent; choose one of "
                         f"{sorted(INITS)} (Keras 2: kernel_initializer=)")
    return INITS[init]


def ordering(owner, dim_ordering):
    """``"tf"`` (channels-last, Keras 1 with TensorFlow), ``"th"`` (channels-first, Theano) or None
    for ``"default"`` (the model's ordering; channels-first unless a layer declares ``"tf"``)."""
    if dim_ordering in ("tf", "th"):
        return dim_ordering
    if dim_ordering == "default":
        return None
    raise ValueError(f"handprop.keras1.{owner}: dim_ordering must be 'tf' (channels-last), 'th' (channels-first) "
                     f"or 'default', got {dim_ordering!r} (Keras 2: data_format='channels_last' / 'channels_first')")


def image_input_shape(owner, input_shape, dim_ordering):
    """handprop's ``(C, H, W)`` for Keras 1's ``input_shape``: ``(H, W, C)`` with ``dim_ordering='tf'``,
    ``(C, H, W)`` otherwise. A channels-last-looking shape without ``dim_ordering='tf'`` is an error
    (handprop would read 29 channels of 29 x 3 pixels)."""
    if input_shape is None:
        return None
    shape = tuple(input_shape)
    if len(shape) != 3:
        raise ValueError(f"handprop.keras1.{owner}: input_shape must be (rows, cols, channels) with dim_ordering='tf' "
                         f"or (channels, rows, cols), got {shape}")
    if dim_ordering == "tf":
        return (shape[2], shape[0], shape[1])
    if dim_ordering is None and looks_channels_last(shape):
        raise ValueError(f"handprop.keras1.{owner}: input_shape={shape} looks channels-last (rows, cols, channels); "
                         f"declare it: dim_ordering='tf' (Keras 2: data_format='channels_last'), or give "
                         f"(channels, rows, cols) = {(shape[2], shape[0], shape[1])}")
    return shape


def mark(layer, dim_ordering=None, trainable=True):
    """The handprop layer a translation returns, with the ``dim_ordering`` it declared (read by
    :class:`handprop.keras1.models.Sequential`) and Keras 1's ``trainable=``."""
    layer.keras1_dim_ordering = dim_ordering
    if not isinstance(trainable, bool):
        raise TypeError(f"handprop.keras1: trainable must be True or False, got {trainable!r}")
    layer.trainable = trainable
    return layer
