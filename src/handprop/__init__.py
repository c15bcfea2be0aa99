"""handprop: neural-network primitives with hand-written backprop, for teaching.

>>> import handprop as hp
>>> model = hp.Sequential([hp.layers.Dense(32), hp.layers.ReLU(), hp.layers.Dense(10)], seed=0)
>>> model.compile(loss=hp.losses.SoftmaxCrossEntropy(), optimizer=hp.optimizers.SGD(lr=0.1),
...               metrics=["accuracy"])
"""

import importlib

from . import backend, callbacks, export, gradcheck, init, layers, losses, metrics, optimizers, saving
from .backend import engine, get_engine, set_engine
from .errors import DataError, DataNotFoundError, DivergenceWarning, HandpropWarning
from .graph import Input, Model
from .model import Sequential
from .receptive_field import receptive_field, receptive_field_table
from .saving import load_model
from .threads import get_num_threads, set_num_threads, thread_settings

__version__ = "0.1.0"

# Imported on first use: plotting pulls in matplotlib, which a training script may not need.
_LAZY = ("viz", "surfaces", "schedules", "data", "kernels", "exercises", "architectures", "inference", "segmentation",
         "preprocessing")


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'handprop' has no attribute {name!r}")


__all__ = [
    "backend", "callbacks", "gradcheck", "init", "layers", "losses", "metrics", "optimizers",
    "engine", "get_engine", "set_engine", "Sequential", "Model", "Input", "receptive_field",
    "receptive_field_table", "export", "saving", "load_model", "set_num_threads", "get_num_threads",
    "thread_settings", "DivergenceWarning", "HandpropWarning", "DataError", "DataNotFoundError", *_LAZY,
]
