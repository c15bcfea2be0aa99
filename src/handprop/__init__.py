"""handprop: neural-network primitives with hand-written backprop, for teaching.

>>> import handprop as hp
>>> model = hp.Sequential([hp.layers.Dense(32), hp.layers.ReLU(), hp.layers.Dense(10)], seed=0)
>>> model.compile(loss=hp.losses.SoftmaxCrossEntropy(), optimizer=hp.optimizers.SGD(lr=0.1),
...               metrics=["accuracy"])
"""

from . import backend, callbacks, gradcheck, init, layers, losses, metrics, optimizers
from .backend import engine, get_engine, set_engine
from .model import Sequential

__version__ = "0.1.0"

__all__ = [
    "backend", "callbacks", "gradcheck", "init", "layers", "losses", "metrics", "optimizers",
    "engine", "get_engine", "set_engine", "Sequential",
]
