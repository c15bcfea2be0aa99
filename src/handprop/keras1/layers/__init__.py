"""Keras 1's ``keras.layers``: every translated layer (by module: :mod:`.core`,
:mod:`.convolutional`, :mod:`.pooling`, :mod:`.advanced_activations`)."""

from .advanced_activations import ELU, LeakyReLU, PReLU
from .convolutional import AtrousConvolution2D, AveragePooling2D, Convolution2D, MaxPooling2D
from .core import Activation, Dense, Dropout, Flatten

__all__ = ["Dense", "Activation", "Flatten", "Dropout", "Convolution2D", "AtrousConvolution2D", "MaxPooling2D",
           "AveragePooling2D", "PReLU", "LeakyReLU", "ELU"]
