"""Keras 1's ``keras.layers.pooling`` (the same translations as :mod:`handprop.keras1.layers.convolutional`,
which also exported them)."""

from .convolutional import AveragePooling2D, MaxPooling2D

__all__ = ["MaxPooling2D", "AveragePooling2D"]
