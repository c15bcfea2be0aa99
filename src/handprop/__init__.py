"""handprop: neural-network primitives with hand-written backprop, for teaching.

>>> import handprop as hp
>>> model = hp.Sequential([hp.layers.Dense(32), hp.layers.ReLU(), hp.layers.Dense(10)], seed=0)
>>> model.compile(loss=hp.losses.SoftmaxCrossEntropy(), optimizer=hp.optimizers.SGD(lr=0.1),
...               metrics=["accuracy"])
Sequential([
    Dense(units=32, use_bias=True),
    ReLU(),
    Dense(units=10, use_bias=True),
])

``dir(hp)`` lists the public names, including the subpackages loaded on first use (``hp.data``,
``hp.viz``, ...). Modules the library uses internally (``checks``, ``batches``, ``threads``, ...)
are not exported; import them by their full name (``handprop.batches``) to read them.
"""

from importlib import import_module as _import_module

from . import backend, callbacks, export, gradcheck, init, layers, losses, metrics, optimizers, saving, training
from ._version import __version__ as __version__
from .backend import engine, get_engine, set_engine
from .errors import DataError, DataNotFoundError, DivergenceWarning, HandpropWarning, ModelFileError
from .graph import Input, Model
from .model import Sequential
from .receptive_field import receptive_field, receptive_field_table
from .saving import load_model
from .threads import get_num_threads, set_num_threads, thread_settings

# Imported on first use: plotting pulls in matplotlib, the experiments and exercises much more,
# which a training script may not need.
_LAZY = ("viz", "surfaces", "schedules", "data", "kernels", "exercises", "experiments", "architectures", "inference",
         "segmentation", "preprocessing", "lesson")


def __getattr__(name):
    if name in _LAZY:
        return _import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'handprop' has no attribute {name!r}")


__all__ = [
    "backend", "callbacks", "gradcheck", "init", "layers", "losses", "metrics", "optimizers", "training",
    "engine", "get_engine", "set_engine", "Sequential", "Model", "Input", "receptive_field",
    "receptive_field_table", "export", "saving", "load_model", "set_num_threads", "get_num_threads",
    "thread_settings", "DivergenceWarning", "HandpropWarning", "DataError", "DataNotFoundError",
    "ModelFileError", *_LAZY,
]


def __dir__():
    """The public names (``__all__``, with the subpackages loaded on first use) and ``__version__``."""
    return sorted([*__all__, "__version__"])
