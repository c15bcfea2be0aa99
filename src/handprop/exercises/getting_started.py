"""Checkers for chapter 5 (getting started): counting parameters, and translating Keras code to handprop.

The student's functions::

    conv_params(in_channels, filters, kernel_size) -> int     a Conv2D with a bias
    dense_params(in_features, units) -> int                   a Dense layer with a bias
    build_vessel_convnet() -> a compiled hp.Sequential        the Keras 1 code of the exercise, in handprop

The counts are compared with ``Conv2D`` / ``Dense``'s own ``count_params()``; the network with
``hp.architectures.patch_cnn`` built with the same layers (:data:`KERAS_EXERCISE`), layer by layer,
and its compiled loss and optimizer with the Keras call.
"""

from __future__ import annotations

import numpy as np

from ..layers import Conv2D, Dense, Dropout, PReLU, Softmax
from ..layers.activations import activation_config
from ..losses import SoftmaxCrossEntropy
from ..optimizers import SGD
from .result import CheckResult, StudentError, call_student

__all__ = ["check_parameter_counts", "check_keras_translation", "KERAS_EXERCISE"]

KERAS_EXERCISE = """\
model = Sequential()
model.add(Convolution2D(32, 3, 3, input_shape=(3, 25, 25)))
model.add(PReLU())
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Convolution2D(64, 3, 3))
model.add(PReLU())
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Flatten())
model.add(Dense(256))
model.add(PReLU())
model.add(Dropout(0.5))
model.add(Dense(2))
model.add(Activation('softmax'))
model.compile(loss='categorical_crossentropy', optimizer=SGD(lr=0.01, momentum=0.9, nesterov=True))"""
"""The Keras 1 code (Theano channel order) that :func:`check_keras_translation` asks for in handprop: a
vessel classifier on 25 x 25 RGB patches in the style of the tutorial's ConvNet."""


def _library_conv(c, f, k):
    layer = Conv2D(f, k)
    layer.build((c, 32, 32), rng=0)
    return layer.count_params()


def _library_dense(d, u):
    layer = Dense(u)
    layer.build((d,), rng=0)
    return layer.count_params()


CONV_CASES = [(3, 20, 5), (20, 50, 3), (1, 8, 3), (16, 32, 1)]
DENSE_CASES = [(1250, 2000), (2000, 135), (64, 10), (3, 1)]


def check_parameter_counts(conv_params, dense_params):
    """Grade ``conv_params(in_channels, filters, kernel_size)`` and ``dense_params(in_features, units)``.

    Expected: ``filters * in_channels * k * k + filters`` (one k x k kernel per pair of input and
    output channels, one bias per filter) and ``in_features * units + units`` -- what
    ``Conv2D(filters, k).count_params()`` and ``Dense(units).count_params()`` give. The cases
    include the tutorial's four layers (1,520, 9,050, 2,502,000 and 270,135 parameters).
    """
    name = "parameter counts of Conv2D and Dense"
    findings, problems = [], []
    conv_mistakes = [
        (lambda c, f, k: f * c * k * k, "each filter also has a bias: + filters"),
        (lambda c, f, k: f * k * k + f, "each filter has one k x k kernel per *input channel*: "
                                        "filters * in_channels * k * k weights"),
        (lambda c, f, k: f * c * k + f, "a k x k kernel has k * k weights, not k"),
        (lambda c, f, k: c * k * k + f, "there are filters * in_channels kernels (one per pair of channels)"),
    ]
    dense_mistakes = [
        (lambda d, u: d * u, "each unit also has a bias: + units"),
        (lambda d, u: d * u + d, "one bias per output unit: + units, not + in_features"),
        (lambda d, u: d + u, "W has one weight per (input, unit) pair: in_features * units"),
    ]
    hints = []
    for function, cases, library, label, mistakes in (
            (conv_params, CONV_CASES, _library_conv, "conv_params", conv_mistakes),
            (dense_params, DENSE_CASES, _library_dense, "dense_params", dense_mistakes)):
        wrong = []
        for args in cases:
            expected = library(*args)
            try:
                got = call_student(function, *args, what=label)
            except StudentError as error:
                return CheckResult(name, False, findings + problems + [str(error)])
            if not isinstance(got, (int, np.integer, float, np.floating)) or got != expected:
                wrong.append((args, got))
                problems.append(f"{label}{args}: you return {got!r}, the layer's count_params() gives {expected:,}")
        if not wrong:
            findings.append(f"{label}: all {len(cases)} cases agree with count_params()")
        else:
            hint = next((text for formula, text in mistakes
                         if all(formula(*args) == got for args, got in wrong)), None)
            if hint:
                hints.append(f"{label}: {hint}")
    if problems:
        return CheckResult(name, False, findings + problems[:4] + ([f"... and {len(problems) - 4} more"]
                                                                   if len(problems) > 4 else []),
                           " / ".join(hints) or "count W and b separately: W's shape, multiplied out, plus b's")
    conv1, conv2 = conv_params(3, 20, 5), conv_params(20, 50, 3)
    dense1, dense2 = dense_params(1250, 2000), dense_params(2000, 135)
    total = conv1 + conv2 + dense1 + dense2 + 20 + 50 + 2000
    findings.append(f"the tutorial's ConvNet: {conv1:,} + {conv2:,} + {dense1:,} + {dense2:,} + 2,070 PReLU slopes "
                    f"= {total:,} parameters")
    return CheckResult(name, True, findings)


def _reference():
    from ..architectures import patch_cnn

    return patch_cnn(25, n_classes=2, filters=(32, 64), kernel_sizes=(3, 3), dense_units=256, dropout=0.5)


def _describe(layers):
    return " -> ".join(type(layer).__name__ for layer in layers)


def _layer_hint(layers, expected):
    """Name the first difference between the student's layers and the expected ones."""
    fused = [f"{type(layer).__name__}(..., activation={activation_config(layer.activation)!r})" for layer in layers
             if getattr(layer, "activation", None) is not None]
    if fused:
        return (f"{fused[0]} applies its activation inside the layer; the Keras code has a separate "
                "PReLU() layer after each Conv2D and the hidden Dense (learned slopes): leave out activation= "
                "and add hp.layers.PReLU()")
    if len(layers) == len(expected):
        swaps = [(i, type(got).__name__) for i, (got, want) in enumerate(zip(layers, expected))
                 if type(got) is not type(want) and isinstance(want, PReLU)]
        if swaps and all(type(got) is type(want) or isinstance(want, PReLU) for got, want in zip(layers, expected)):
            used = " or ".join(sorted({cls for _, cls in swaps}))
            where = ", ".join(f"{i + 1} ({cls})" for i, cls in swaps)
            return (f"layer{'s' if len(swaps) > 1 else ''} {where}: the Keras code has PReLU() there, which is "
                    f"hp.layers.PReLU() (a ReLU whose negative slope is learned, one per channel, starting at "
                    f"0.25), not {used}")
        for i, (got, want) in enumerate(zip(layers, expected)):
            if type(got) is not type(want):
                return (f"layer {i + 1} is {type(got).__name__} where the Keras code has {type(want).__name__}: "
                        "compare layer by layer with the Keras code")
        return "the layer types match but an output shape differs: check each layer's kernel and pool sizes"
    if len(layers) < len(expected):
        return "compare layer by layer with the Keras code: a layer is missing"
    return "compare layer by layer with the Keras code: there is a layer too many"


def check_keras_translation(build_vessel_convnet):
    """Grade ``build_vessel_convnet() -> model``: the Keras 1 code of :data:`KERAS_EXERCISE` written with
    handprop, compiled as the Keras code compiles it.

    Expected: a ``Sequential`` (or an ``hp.Model`` chain) on ``(3, 25, 25)`` patches (channels first),
    ``Conv2D(32, 3) -> PReLU -> MaxPool2D(2) -> Conv2D(64, 3) -> PReLU -> MaxPool2D(2) -> Flatten ->
    Dense(256) -> PReLU -> Dropout(0.5) -> Dense(2)`` (282,658 parameters; the softmax lives in the loss), compiled with
    ``SoftmaxCrossEntropy`` (Keras' ``categorical_crossentropy``) and
    ``SGD(lr=0.01, momentum=0.9, nesterov=True)`` -- the layers of
    ``hp.architectures.patch_cnn(25, n_classes=2, filters=(32, 64), kernel_sizes=(3, 3), dense_units=256,
    dropout=0.5)``.
    """
    name = "the Keras code in handprop"
    try:
        model = call_student(build_vessel_convnet, what="build_vessel_convnet")
    except StudentError as error:
        text = str(error)
        hint = None
        if "keyword-only" in text:
            hint = "Keras 1's Convolution2D(32, 3, 3) is Conv2D(32, (3, 3)) or Conv2D(32, 3) here"
        elif "channels-last" in text:
            hint = ("handprop takes images channels first, as the Theano ordering of the Keras code: "
                    "input_shape=(3, 25, 25)")
        elif "applies softmax" in text:
            hint = ("SoftmaxCrossEntropy (categorical_crossentropy) applies the softmax itself: leave out the "
                    "final Activation('softmax')")
        return CheckResult(name, False, [text], hint)
    from ..graph import Model
    from ..model import BaseModel

    if model is None:
        return CheckResult(name, False, ["build_vessel_convnet returned None"],
                           "return the model at the end of the function (return model)")
    if not isinstance(model, BaseModel):
        return CheckResult(name, False, [f"build_vessel_convnet returned {type(model).__name__}, not an "
                                         "hp.Sequential (or hp.Model)"],
                           "build the model from layers, hp.Sequential([...]) or model.add(...), and return it")
    findings = []
    if isinstance(model, Model):
        if len(model.inputs) != 1:
            return CheckResult(name, False, [f"the model has {len(model.inputs)} inputs"],
                               "the Keras code has one input: the (3, 25, 25) patches")
        input_shape = tuple(model.inputs[0].shape)
    elif not model.built:
        return CheckResult(name, False, ["the model is not built: its input shape is unknown"],
                           "give the first layer input_shape=(3, 25, 25), as the Keras code does")
    else:
        input_shape = tuple(model.input_shape)
    if input_shape != (3, 25, 25):
        return CheckResult(name, False, [f"the model takes inputs of shape {input_shape}"],
                           "the patches are 25 x 25 with 3 channels, channels first: input_shape=(3, 25, 25)")
    reference = _reference()
    layers, expected = model.layers, reference.layers
    if layers and isinstance(layers[-1], Softmax):
        return CheckResult(name, False, [f"layers: {_describe(layers)}"],
                           "leave out the final softmax: SoftmaxCrossEntropy takes logits and applies it itself")
    shapes = [None if layer.output_shape is None else tuple(layer.output_shape) for layer in layers]
    want = [tuple(layer.output_shape) for layer in expected]
    if [type(layer) for layer in layers] != [type(layer) for layer in expected] or shapes != want:
        problem = [f"your layers: {_describe(layers)}, output shapes {shapes}",
                   f"expected:    {_describe(expected)}, output shapes {want}"]
        return CheckResult(name, False, problem, _layer_hint(layers, expected))
    count, expected_count = model.count_params(), reference.count_params()
    if count != expected_count:
        return CheckResult(name, False, [f"{count:,} parameters, expected {expected_count:,}"],
                           "check each layer's options (use_bias, PReLU(shared=...)) against the defaults")
    rates = [layer.rate for layer in layers if isinstance(layer, Dropout)]
    if rates != [0.5]:
        return CheckResult(name, False, [f"dropout rates {rates}"],
                           "Keras' Dropout(0.5) drops half of the units: hp.layers.Dropout(0.5), the same meaning")
    findings.append(f"layers and output shapes match: {_describe(layers)}, {count:,} parameters")
    if model.loss is None or model.optimizer is None:
        return CheckResult(name, False, findings + ["the model is not compiled"],
                           "end with model.compile(loss=..., optimizer=SGD(lr=0.01, momentum=0.9, nesterov=True))")
    if not isinstance(model.loss, SoftmaxCrossEntropy):
        return CheckResult(name, False, findings + [f"the loss is {type(model.loss).__name__}"],
                           "Keras' categorical_crossentropy after a softmax is SoftmaxCrossEntropy on logits "
                           "(loss='categorical_crossentropy' gives it too)")
    opt = model.optimizer
    settings = {"type": type(opt).__name__, "lr": getattr(opt, "lr", None), "momentum": getattr(opt, "momentum", None),
                "nesterov": getattr(opt, "nesterov", None)}
    if not (isinstance(opt, SGD) and np.isclose(opt.lr, 0.01) and np.isclose(opt.momentum, 0.9) and opt.nesterov):
        return CheckResult(name, False, findings + [f"the optimizer is {settings}"],
                           "the Keras code's optimizer: SGD(lr=0.01, momentum=0.9, nesterov=True)")
    findings.append("compiled with SoftmaxCrossEntropy and SGD(lr=0.01, momentum=0.9, nesterov=True)")
    return CheckResult(name, True, findings)
