"""Layers: each a small class with ``build``, ``forward`` and a hand-written ``backward``."""

from .activations import ELU, Activation, LeakyReLU, Linear, PReLU, ReLU, Sigmoid, Softmax, Tanh
from .base import Layer, get_layer_class, register_layer
from .conv import Conv2D, Conv2DTranspose, Conv3D, Convolution2D, DepthwiseConv2D
from .dense import Dense
from .dropout import Dropout
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
    "Sigmoid", "Tanh", "Linear", "ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax", "Activation",
    "Convolution2D", "MaxPooling2D", "AveragePooling2D", "MaxPooling3D", "AveragePooling3D",
    "register_layer", "get_layer_class",
]
