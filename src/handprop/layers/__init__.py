"""Layers: each a small class with ``build``, ``forward`` and a hand-written ``backward``.

The layers with math and no engine kernel are thin objects over pure pairs
``*_forward(x, ...) -> (y, cache)`` / ``*_backward(dy, cache) -> dx`` (CS231n style), exported here:

=====================  ==============================================  =================================
pair                   computes                                        lives in
=====================  ==============================================  =================================
``dense_*``            y = x W + b                                     :mod:`handprop.layers.dense`
``sigmoid_*``          y = 1 / (1 + e^-x)                              :mod:`handprop.layers.activations`
``tanh_*``             y = tanh x                                      :mod:`handprop.layers.activations`
``relu_*``             y = max(0, x)                                   :mod:`handprop.layers.activations`
``leaky_relu_*``       y = x or αx                                     :mod:`handprop.layers.activations`
``elu_*``              y = x or α(e^x - 1)                             :mod:`handprop.layers.activations`
``prelu_*``            y = x or a x, a learnt (backward -> dx, da)     :mod:`handprop.layers.activations`
``softmax_*``          y = e^x / Σ e^x                                 :mod:`handprop.layers.activations`
``log_softmax_*``      y = x - log Σ e^x                               :mod:`handprop.layers.activations`
``dropout_*``          y = x m / (1 - rate)                            :mod:`handprop.layers.dropout`
=====================  ==============================================  =================================

(``dense_backward(dy, x, W, use_bias, need_dx)`` predates the cache convention.) The losses'
pairs are in :mod:`handprop.losses`; convolution, pooling and upsampling pairs in
:mod:`handprop.kernels.reference` (each engine has its own).
"""

from .activations import (
    ELU,
    Activation,
    LeakyReLU,
    Linear,
    LogSoftmax,
    PReLU,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
    elu_backward,
    elu_forward,
    leaky_relu_backward,
    leaky_relu_forward,
    log_softmax_backward,
    log_softmax_forward,
    prelu_backward,
    prelu_forward,
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    softmax_backward,
    softmax_forward,
    tanh_backward,
    tanh_forward,
)
from .base import Layer, get_layer_class, register_layer
from .conv import Conv2D, Conv2DTranspose, Conv3D, Convolution2D, DepthwiseConv2D
from .dense import Dense, dense_backward, dense_forward
from .dropout import Dropout, dropout_backward, dropout_forward
from .merge import Add, Concatenate
from .normalization import BatchNorm, BatchNormalization
from .pooling import (
    AveragePooling2D,
    AveragePooling3D,
    AvgPool2D,
    AvgPool3D,
    GlobalAvgPool2D,
    MaxPool2D,
    MaxPool3D,
    MaxPooling2D,
    MaxPooling3D,
)
from .shape import Flatten, Reshape
from .upsampling import UpSampling2D

__all__ = [
    "Layer", "Dense", "Conv2D", "Conv2DTranspose", "Conv3D", "DepthwiseConv2D", "MaxPool2D", "AvgPool2D",
    "MaxPool3D", "AvgPool3D", "GlobalAvgPool2D", "UpSampling2D", "Concatenate", "Add", "Flatten", "Reshape",
    "Dropout", "BatchNorm", "BatchNormalization",
    "Sigmoid", "Tanh", "Linear", "ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax", "LogSoftmax", "Activation",
    "Convolution2D", "MaxPooling2D", "AveragePooling2D", "MaxPooling3D", "AveragePooling3D",
    "register_layer", "get_layer_class",
    # the pure pairs (module docstring)
    "dense_forward", "dense_backward", "sigmoid_forward", "sigmoid_backward", "tanh_forward", "tanh_backward",
    "relu_forward", "relu_backward", "leaky_relu_forward", "leaky_relu_backward", "elu_forward", "elu_backward",
    "prelu_forward", "prelu_backward", "softmax_forward", "softmax_backward", "log_softmax_forward",
    "log_softmax_backward", "dropout_forward", "dropout_backward",
]
