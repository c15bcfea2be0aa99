"""The tutorial's optimizer slides, redrawn by handprop's own optimizers.

:func:`make_gallery` writes one PNG per slide into a folder (``handprop gallery`` calls it)::

    1_sgd_learning_rate.png      SGD with a small, a larger and a too-high learning rate
    2_momentum.png               the zig-zag without momentum, and the smoother walk with it
    3_adaptive.png               per-coordinate learning rates: AdaGrad, RMSprop, AdaDelta
    4_adam_vs_rmsprop.png        Adam is "RMSprop with momentum"
    5_rosenbrock.png             all seven optimizers down the Rosenbrock valley
    6_beale.png                  all seven on Beale's function
    7_saddle.png                 escaping a saddle point

The first four use the ill-conditioned bowl f = x²/20 + y² (20 times steeper in y than in x).
Each figure is a few optimizer runs of a few hundred steps; all together take a few seconds.
"""

from __future__ import annotations

from pathlib import Path

from ..optimizers import SGD, AdaDelta, AdaGrad, Adam, RMSprop
from ..surfaces import get_surface
from .figure import Figure
from .trajectories import _run_all, draw_losses, draw_paths, plot_trajectories

__all__ = ["make_gallery", "GALLERY"]

QUADRATIC_START = (-7.0, 2.0)


def _side_by_side(surface, start, steps, panels, suptitle, with_losses=True):
    """One contour panel per ``(title, {label: optimizer})``, then a loss panel with every run.

    A label keeps its colour across panels.
    """
    surface = get_surface(surface)
    n = len(panels) + int(with_losses)
    fig = Figure(figsize=(4.2 * n, 4.0), layout="constrained")
    axes = fig.subplots(1, n)
    all_runs, all_colors, color_of = [], [], {}
    for ax, (title, optimizers) in zip(axes, panels, strict=False):
        runs = _run_all(optimizers, surface, start, steps)
        colors = [color_of.setdefault(label, f"C{len(color_of)}") for label, *_ in runs]
        draw_paths(ax, surface, runs, start, title=title, colors=colors)
        all_runs += runs
        all_colors += colors
    if with_losses:
        draw_losses(axes[-1], surface, all_runs, steps, colors=all_colors)
        axes[-1].legend()
    fig.suptitle(suptitle)
    return fig


def sgd_learning_rate():
    """SGD on x²/20 + y²: too small crawls, larger is faster, past 1.0 it diverges along y."""
    return _side_by_side(
        "quadratic", QUADRATIC_START, 40,
        [("small learning rate: slow", {"SGD lr=0.1": SGD(lr=0.1)}),
         ("increased: faster, but oscillates in y", {"SGD lr=0.9": SGD(lr=0.9)}),
         ("too high: diverges", {"SGD lr=1.1": SGD(lr=1.1)})],
        "SGD: choosing the learning rate (f = x²/20 + y², stable only for lr < 1)")


def momentum():
    """The same ill-conditioned bowl without and with momentum."""
    return _side_by_side(
        "quadratic", QUADRATIC_START, 40,
        [("without momentum: zig-zag across the valley", {"SGD lr=0.9": SGD(lr=0.9)}),
         ("with momentum: y swings cancel, speed builds along x",
          {"SGD lr=0.3, momentum=0.7": SGD(lr=0.3, momentum=0.7)})],
        "Oscillations without / with momentum")


def adaptive():
    """Per-coordinate step sizes: the steep y direction gets small steps, the flat x direction large ones."""
    return plot_trajectories(
        {"AdaGrad lr=1.5": AdaGrad(lr=1.5), "RMSprop lr=0.15": RMSprop(lr=0.15),
         "AdaDelta lr=1, eps=1e-2": AdaDelta(lr=1.0, eps=1e-2)},
        "quadratic", QUADRATIC_START, 60,
        title="Adaptive learning rates: AdaGrad, RMSprop, AdaDelta")


def adam_vs_rmsprop():
    """Adam = RMSprop's scaling + momentum's running mean of the gradient (+ bias correction).

    In the curved Rosenbrock valley, at the same learning rate, the momentum carries Adam along
    the valley floor while RMSprop's steps rattle across it.
    """
    return plot_trajectories(
        {"RMSprop lr=0.05": RMSprop(lr=0.05), "Adam lr=0.05": Adam(lr=0.05)},
        "rosenbrock", (-1.5, 2.0), 500,
        title='Adam ("RMSprop with momentum") vs RMSprop')


def _all_seven(lr):
    """The seven optimizers of the comparison slides, each with the learning rate ``lr[name]``."""
    return {
        f"SGD lr={lr['sgd']}": SGD(lr=lr["sgd"]),
        "momentum 0.9": SGD(lr=lr["sgd"], momentum=0.9),
        "Nesterov 0.9": SGD(lr=lr["sgd"], momentum=0.9, nesterov=True),
        f"RMSprop lr={lr['rmsprop']}": RMSprop(lr=lr["rmsprop"]),
        f"AdaGrad lr={lr['adagrad']}": AdaGrad(lr=lr["adagrad"]),
        "AdaDelta lr=1": AdaDelta(lr=1.0),
        f"Adam lr={lr['adam']}": Adam(lr=lr["adam"]),
    }


def rosenbrock():
    """All seven optimizers from (-1.5, 2) down the curved Rosenbrock valley."""
    lr = {"sgd": 1e-3, "rmsprop": 0.01, "adagrad": 0.5, "adam": 0.1}
    return plot_trajectories(_all_seven(lr), "rosenbrock", (-1.5, 2.0), 500,
                             title="Comparing optimizers on Rosenbrock's valley (500 steps)")


def beale():
    """All seven optimizers on Beale's function, whose plateaus and steep walls mislead plain SGD."""
    lr = {"sgd": 1e-3, "rmsprop": 0.01, "adagrad": 0.5, "adam": 0.05}
    return plot_trajectories(_all_seven(lr), "beale", (1.0, 1.5), 500,
                             title="Comparing optimizers on Beale's function (500 steps)")


def saddle():
    """Starting just off the ridge of a saddle: SGD needs many steps to leave, adaptive methods fewer."""
    return plot_trajectories(
        {"SGD lr=0.05": SGD(lr=0.05), "momentum 0.9": SGD(lr=0.05, momentum=0.9),
         "RMSprop lr=0.05": RMSprop(lr=0.05), "Adam lr=0.05": Adam(lr=0.05)},
        "saddle", (-1.5, 0.01), 80, title="Escaping a saddle point (f = x² - y² has no minimum)")


GALLERY = {
    "1_sgd_learning_rate": sgd_learning_rate,
    "2_momentum": momentum,
    "3_adaptive": adaptive,
    "4_adam_vs_rmsprop": adam_vs_rmsprop,
    "5_rosenbrock": rosenbrock,
    "6_beale": beale,
    "7_saddle": saddle,
}


def make_gallery(outdir, dpi=90) -> list[Path]:
    """Write every figure of :data:`GALLERY` as ``outdir/<name>.png``; return the paths, in order."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, make_figure in GALLERY.items():
        path = outdir / f"{name}.png"
        make_figure().savefig(path, dpi=dpi)
        paths.append(path)
    return paths
