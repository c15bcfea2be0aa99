"""Pictures for the lessons: optimizer trajectories, training curves, filters and feature maps,
vessel segmentations (prediction and errors, ROC curves, patches, augmentations).

Every function returns a ``matplotlib.figure.Figure`` (or an animation) that is not registered
with pyplot: it displays exactly once when it is the last value of a Jupyter cell, with no
``%matplotlib`` magic (see :mod:`handprop.viz.figure` for how), ``fig.savefig(path)`` writes it
headless, and scripts and tests need no ``plt.close``.
"""

from __future__ import annotations

import importlib
import importlib.util

from .figure import Figure, TrajectoryAnimation
from .history import plot_history
from .trajectories import animate_trajectories, plot_trajectories, simulate_trajectory

__all__ = [
    "plot_trajectories",
    "animate_trajectories",
    "simulate_trajectory",
    "plot_history",
    "Figure",
    "TrajectoryAnimation",
]

# Names imported on first use, from modules that may not exist yet in every install.
_LAZY = {"plot_filters": ".filters", "plot_feature_maps": ".filters",
         "plot_segmentation": ".segmentation", "plot_roc_curves": ".segmentation", "plot_patches": ".segmentation",
         "plot_augmentations": ".segmentation", "error_map": ".segmentation"}
__all__ += [name for name, module in _LAZY.items() if importlib.util.find_spec(__name__ + module) is not None]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module_name = __name__ + _LAZY[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:  # the module exists but something it imports is missing
            raise
        raise AttributeError(f"{__name__}.{name} is not available: {module_name} is missing") from error
    value = getattr(module, name)
    globals()[name] = value  # cache: __getattr__ is not called again for this name
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
