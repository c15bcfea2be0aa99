"""Layers: each a small class with ``build``, ``forward`` and a hand-written ``backward``."""

from .activations import ELU, Activation, LeakyReLU, Linear, PReLU, ReLU, Sigmoid, Softmax, Tanh
from .base import Layer, get_layer_class, register_layer
from .conv import Conv2D, Conv2DTranspose, Convolution2D
from .dense import Dense
from .dropout import Dropout
from .merge import Add, Concatenate
from .normalization import BatchNorm, BatchNormalization
from .pooling import AveragePooling2D, AvgPool2D, GlobalAvgPool2D, MaxPool2D, MaxPooling2D
from .shape import Flatten
from .upsampling import UpSampling2D

__all__ = [
    "Layer", "Dense", "Conv2D", "Conv2DTranspose", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D",
    "UpSampling2D", "Concatenate", "Add", "Flatten", "Dropout", "BatchNorm", "BatchNormalization",
    "Sigmoid", "Tanh", "Linear", "ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax", "Activation",
    "Convolution2D", "MaxPooling2D", "AveragePooling2D", "register_layer", "get_layer_class",
]
