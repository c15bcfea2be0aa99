"""Layers: each a small class with ``build``, ``forward`` and a hand-written ``backward``."""

from .activations import ELU, Linear, LeakyReLU, PReLU, ReLU, Sigmoid, Softmax, Tanh
from .base import Layer
from .dense import Dense
from .dropout import Dropout
from .merge import Add, Concatenate
from .normalization import BatchNorm, BatchNormalization
from .shape import Flatten

__all__ = [
    "Layer", "Dense", "Concatenate", "Add", "Flatten", "Dropout", "BatchNorm", "BatchNormalization",
    "Sigmoid", "Tanh", "Linear", "ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax",
]
