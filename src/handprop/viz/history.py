"""Training curves: the loss and each metric against the epoch, training and validation together.

The gap between a training curve and its validation curve is the picture of overfitting: the
training loss keeps falling while the validation loss turns up. That is where early stopping
would stop.
"""

from __future__ import annotations

import numpy as np
from matplotlib.ticker import MaxNLocator

from .figure import Figure

__all__ = ["plot_history"]


def _panels(keys):
    """Group history keys into panels: all losses together, then one panel per other metric.

    ``["lr", "loss", "val_loss", "accuracy", "val_accuracy"]`` ->
    ``[("loss", ["loss", "val_loss"]), ("accuracy", ["accuracy", "val_accuracy"]), ("lr", ["lr"])]``
    (the learning rate, if recorded, comes last).
    """
    losses = [k for k in keys if "loss" in k]
    panels = [("loss", losses)] if losses else []
    for key in keys:
        if "loss" in key:
            continue
        base = key[4:] if key.startswith("val_") else key
        if base not in [name for name, _ in panels]:
            panels.append((base, [k for k in (base, "val_" + base) if k in keys]))
    return sorted(panels, key=lambda panel: panel[0] == "lr")  # stable: only moves "lr" to the end


def plot_history(history, *, figsize=None, title=None):
    """Plot a training history, one panel for the losses and one for each other metric.

    Parameters
    ----------
    history : handprop.callbacks.History or dict[str, list[float]]
        ``model.fit``'s return value, or its ``.history`` dict, e.g.
        ``{"loss": [...], "val_loss": [...], "accuracy": [...], "val_accuracy": [...]}``:
        one value per epoch for each key.
    figsize : (float, float), optional
        Default: 4.5 inches wide per panel, 3.5 high.
    title : str, optional
        A title over all panels.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per panel, in the order: losses (``"loss"``, ``"val_loss"``, any other key
        containing "loss"), then each metric ``m`` with ``val_m`` beside it, then ``"lr"`` (written
        by ``LearningRateScheduler``) on a log scale. The x axis is the epoch, counted from 1.
    """
    curves = getattr(history, "history", history)
    if not isinstance(curves, dict) or not curves:
        raise ValueError("plot_history: the history is empty; train with model.fit(...) first")
    keys = list(curves)
    panels = _panels(keys)
    rows = 1 if len(panels) <= 3 else 2  # four or more panels in two rows: each stays large enough to read
    cols = -(-len(panels) // rows)
    fig = Figure(figsize=figsize or (max(5.0 * cols, 8.0), 4.0 * rows), layout="constrained")
    grid = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in grid[len(panels):]:
        ax.set_axis_off()  # an odd number of panels in two rows
    for ax, (name, panel_keys) in zip(grid[:len(panels)], panels, strict=True):
        for key in panel_keys:
            values = np.asarray(curves[key], dtype=float)
            epochs = np.arange(1, len(values) + 1)
            style = "--" if key.startswith("val_") else "-"
            if key == "lr":
                label = "learning rate"
            else:
                label = f"validation {key[4:]}" if key.startswith("val_") else f"training {key}"
            ax.plot(epochs, values, style, marker="o" if len(values) < 30 else None, markersize=3, label=label)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(name)
        if name == "lr":
            ax.set_yscale("log")
        ax.set_title(name)
        ax.grid(True, alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return fig
