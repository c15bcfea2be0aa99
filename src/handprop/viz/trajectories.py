"""The optimizer-trajectory lab: watch optimizers walk across a 2-D surface.

The optimizers of :mod:`handprop.optimizers` update any dict of named arrays, so a point
``p = [x, y]`` on a surface f(x, y) is trained exactly like a network::

    p = np.array(start, dtype=np.float64)
    for t in range(steps):
        gx, gy = surface.gradient(*p)
        opt.step({"xy": p}, {"xy": np.array([gx, gy])})     # p moves in place

:func:`simulate_trajectory` runs that loop and records the path; :func:`plot_trajectories`
draws several optimizers' paths over the contour lines of the surface, with a second panel of
f against the step; :func:`animate_trajectories` makes the same picture move.

A learning rate that is too high makes the walk diverge: the point shoots off to infinity. The
simulation stops when the point leaves a box ten times the plot's size or f stops being finite,
fills the rest of the path with NaN, and the plot draws the path up to where it leaves, with
"diverged at step k" in the legend ("escaped" on the saddle, which has no minimum to diverge
from); no exception, no overflow warnings.

The figures are ``matplotlib.figure.Figure`` objects (:class:`handprop.viz.figure.Figure`), not
registered with pyplot: they display in Jupyter when returned from a cell, ``fig.savefig("x.png")``
writes them, and nothing has to be closed. The optimizers passed in are copied
(``copy.deepcopy``) and the copies reset, so the caller's objects are neither moved nor given
state, and each path starts from fresh state.
"""

from __future__ import annotations

import copy

import numpy as np
from matplotlib.colors import LogNorm

from ..surfaces import get_surface
from .figure import Figure, TrajectoryAnimation

__all__ = ["simulate_trajectory", "plot_trajectories", "animate_trajectories"]

ESCAPE_FACTOR = 10.0  # a walk has "diverged" once it leaves the plot box scaled this many times about its centre


def simulate_trajectory(optimizer, surface="rosenbrock", start=(-1.5, 2.0), steps=200, copy_optimizer=True):
    """Walk ``steps`` optimizer steps from ``start`` on ``surface``; return the path and the losses.

    Parameters
    ----------
    optimizer : handprop.optimizers.Optimizer
        Used through ``optimizer.step({"xy": p}, {"xy": grad})``. By default a reset deep copy
        walks, so ``optimizer`` itself is untouched; ``copy_optimizer=False`` walks with the
        object itself, keeping whatever state it has (to continue a walk, say).
    surface : str or handprop.surfaces.Surface
    start : (float, float)
    steps : int

    Returns
    -------
    path : ndarray, shape (steps + 1, 2), float64
        ``path[0] = start``; ``path[t]`` is the point after t steps. A walk that diverges stops
        at the first point outside a box ``ESCAPE_FACTOR`` times the plot bounds (kept, so a plot
        shows it leaving) or before the first point where f is not finite; the rows after the
        stop are NaN.
    losses : ndarray, shape (steps + 1,)
        f at each point of the path (NaN where the path is).
    """
    path, losses, _ = _simulate(optimizer, surface, start, steps, copy_optimizer)
    return path, losses


def _simulate(optimizer, surface, start, steps, copy_optimizer=True):
    """:func:`simulate_trajectory` plus the step at which the walk diverged (None if it did not)."""
    surface = get_surface(surface)
    if copy_optimizer:
        optimizer = copy.deepcopy(optimizer)
        optimizer.reset()
    path = np.full((steps + 1, 2), np.nan)
    losses = np.full(steps + 1, np.nan)
    p = np.array(start, dtype=np.float64)
    lo, hi = _escape_box(surface)
    with np.errstate(all="ignore"):  # overflow on the way out is expected: we stop right after it
        for t in range(steps + 1):
            loss = surface.value(p[0], p[1])
            if not (np.isfinite(loss) and np.isfinite(p).all()):
                return path, losses, t
            path[t], losses[t] = p, loss
            if not np.all((lo <= p) & (p <= hi)):
                return path, losses, t
            if t < steps:
                grad = np.array(surface.gradient(p[0], p[1]), dtype=np.float64)
                optimizer.step({"xy": p}, {"xy": grad})
    return path, losses, None


def _escape_box(surface):
    centre = np.array([np.mean(surface.xlim), np.mean(surface.ylim)])
    half = ESCAPE_FACTOR * np.array([np.ptp(surface.xlim), np.ptp(surface.ylim)]) / 2.0
    return centre - half, centre + half


def _run_all(optimizers, surface, start, steps):
    """Simulate each optimizer; a list of ``(label, path, losses, diverged_step or None)``."""
    if not isinstance(optimizers, dict) or not optimizers:
        raise TypeError("optimizers must be a non-empty dict: label -> Optimizer, e.g. {'SGD': SGD(lr=0.1)}")
    return [(str(label), *_simulate(optimizer, surface, start, steps)) for label, optimizer in optimizers.items()]


def _left_view(path, surface):
    """The first step at which ``path`` is outside the plotted box (``xlim`` x ``ylim``), or None."""
    finite = np.isfinite(path).all(axis=1)
    outside = ~((surface.xlim[0] <= path[:, 0]) & (path[:, 0] <= surface.xlim[1])
                & (surface.ylim[0] <= path[:, 1]) & (path[:, 1] <= surface.ylim[1]))
    steps = np.flatnonzero(outside & finite)
    return int(steps[0]) if len(steps) else None


def _legend_label(label, diverged, surface, path=None):
    if not surface.minima and path is not None:
        # on a surface without a minimum (the saddle), running off to f = -inf is the right thing
        # to do: every run says when it left the plotted view, or that it did not
        left = _left_view(path, surface)
        if left is None and diverged is not None:
            left = diverged
        return f"{label} (escaped at step {left})" if left is not None else f"{label} (still in view)"
    if diverged is None:
        return label
    return f"{label} ({'diverged' if surface.minima else 'escaped'} at step {diverged})"


def _contour_levels(surface, Z, n=30):
    """Log-spaced levels for f >= 0 (so the flat valley floor gets contours too), else linear."""
    if surface.log_levels:
        low = max(Z[Z > 0].min(), Z.max() * 1e-6)
        return np.logspace(np.log10(low), np.log10(Z.max()), n)
    return np.linspace(Z.min(), Z.max(), n)


def draw_paths(ax, surface, runs, start, title=None, colors=None):
    """Contour lines of the surface, one line per run (``ax.lines``, in order), start and minimum marked.

    ``runs`` is a list of ``(label, path, losses, diverged_step)``; returns the path lines.
    """
    X, Y, Z = surface.grid(300)
    levels = _contour_levels(surface, Z)
    norm = LogNorm(levels[0], levels[-1]) if surface.log_levels else None
    ax.contour(X, Y, Z, levels=levels, cmap="Greys_r", norm=norm, linewidths=0.6, alpha=0.7)
    colors = colors or [f"C{i}" for i in range(len(runs))]
    lines = []
    for (label, path, _, diverged), color in zip(runs, colors, strict=True):
        (line,) = ax.plot(path[:, 0], path[:, 1], "-o", color=color, markersize=2, linewidth=1.2,
                          label=_legend_label(label, diverged, surface, path))
        lines.append(line)
    # markers are scatter collections, not lines, so ax.lines holds exactly the paths
    ax.scatter([start[0]], [start[1]], marker="o", s=50, facecolors="white", edgecolors="black", zorder=5,
               label="start")
    if surface.minima:
        mx, my = zip(*surface.minima, strict=True)
        ax.scatter(mx, my, marker="*", s=180, color="gold", edgecolors="black", zorder=5, label="minimum")
    elif getattr(surface, "saddle_point", None) is not None:
        ax.scatter(*surface.saddle_point, marker="X", s=90, color="gold", edgecolors="black", zorder=5,
                   label="saddle point (no minimum)")
    ax.set_xlim(*surface.xlim)
    ax.set_ylim(*surface.ylim)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(f"{surface.name}: f = {surface.formula}" if title is None else title)
    ax.legend(loc="best")
    return lines


def draw_losses(ax, surface, runs, steps, colors=None):
    """f against the step for each run (log scale; symlog where f can be negative); returns the lines."""
    colors = colors or [f"C{i}" for i in range(len(runs))]
    lines = []
    for (label, path, losses, diverged), color in zip(runs, colors, strict=True):
        (line,) = ax.plot(np.arange(len(losses)), losses, color=color, linewidth=1.2,
                          label=_legend_label(label, diverged, surface, path))
        lines.append(line)
    ax.set_xlabel("step")
    ax.set_ylabel("f(x, y)")
    ax.set_xlim(0, steps)
    if surface.log_levels:
        ax.set_yscale("log")
        if any(diverged is not None for *_, diverged in runs):
            # keep the panel readable: a diverging run's loss leaves through the top
            Z = surface.grid(100)[2]
            top = max([Z.max()] + [np.nanmax(losses) for _, _, losses, diverged in runs if diverged is None])
            ax.set_ylim(top=3.0 * top)
    else:
        ax.set_yscale("symlog", linthresh=1e-2)  # f goes negative on the saddle
        ax.axhline(0.0, color="grey", linewidth=0.6)
    ax.set_title("loss against step")
    ax.grid(True, which="major", alpha=0.3)
    return lines


def _figure(surface, runs, start, steps, title, figsize):
    fig = Figure(figsize=figsize, layout="constrained")
    ax, ax_loss = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.25, 1.0]})
    path_lines = draw_paths(ax, surface, runs, start, title)
    loss_lines = draw_losses(ax_loss, surface, runs, steps)
    return fig, path_lines, loss_lines


def plot_trajectories(optimizers, surface="rosenbrock", start=(-1.5, 2.0), steps=200, *, title=None,
                      figsize=(11.0, 4.6)):
    """Paths of several optimizers on one surface, and their losses against the step.

    Parameters
    ----------
    optimizers : dict[str, Optimizer]
        Legend label -> optimizer, e.g. ``{"SGD": SGD(lr=1e-3), "Adam": Adam(lr=0.05)}``. Each
        walks as a reset deep copy; the objects passed in are not changed.
    surface : str or Surface, default "rosenbrock"
        ``"quadratic"``, ``"rosenbrock"``, ``"beale"``, ``"saddle"`` (see :mod:`handprop.surfaces`).
    start : (float, float), default (-1.5, 2.0)
    steps : int, default 200
    title : str, optional
        Title of the contour panel (default: the surface's formula).

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.axes[0]``: contour lines of f (log-spaced levels when f >= 0), one line per
        optimizer (in ``axes[0].lines``, in the order given), the start and the minimum marked.
        ``fig.axes[1]``: f against the step, log scale (symlog on the saddle, where f < 0).
    """
    surface = get_surface(surface)
    runs = _run_all(optimizers, surface, start, steps)
    fig, _, _ = _figure(surface, runs, start, steps, title, figsize)
    return fig


def animate_trajectories(optimizers, surface="rosenbrock", start=(-1.5, 2.0), steps=200, *, frames=100,
                         interval=50, save_to=None, fps=20, title=None, figsize=(11.0, 4.6), dpi=80):
    """The picture of :func:`plot_trajectories`, drawn step by step.

    Parameters
    ----------
    optimizers, surface, start, steps, title, figsize
        As :func:`plot_trajectories`.
    frames : int, default 100
        Number of frames; each shows the walks up to an evenly spaced step (at most steps + 1).
    interval : int, default 50
        Milliseconds between frames when shown interactively.
    save_to : str or Path, optional
        Also write the animation as a GIF there (matplotlib's ``PillowWriter`` at ``fps``, ``dpi``).

    Returns
    -------
    handprop.viz.figure.TrajectoryAnimation
        A ``matplotlib.animation.FuncAnimation`` that, as the last value of a Jupyter cell, plays
        as an animated GIF (``fps``, ``dpi``); ``anim.gif()`` gives its bytes. Its figure is
        ``anim._fig`` (not registered with pyplot).
    """
    from matplotlib.animation import PillowWriter

    surface = get_surface(surface)
    runs = _run_all(optimizers, surface, start, steps)
    fig, path_lines, loss_lines = _figure(surface, runs, start, steps, title, figsize)
    # Constrained layout is solved again at every draw, yet the axes never move between frames:
    # solve it once and keep it (each frame then renders about 40% faster).
    fig.draw_without_rendering()
    fig.set_layout_engine("none")
    shown_steps = np.unique(np.linspace(0, steps, min(int(frames), steps + 1)).round().astype(int))

    def update(t):
        for (_, path, losses, _), line, loss_line in zip(runs, path_lines, loss_lines, strict=True):
            line.set_data(path[: t + 1, 0], path[: t + 1, 1])
            loss_line.set_data(np.arange(t + 1), losses[: t + 1])
        return path_lines + loss_lines

    anim = TrajectoryAnimation(fig, update, frames=shown_steps, init_func=lambda: update(0), interval=interval,
                               blit=False, fps=fps, dpi=dpi)
    if save_to is not None:
        anim.save(str(save_to), writer=PillowWriter(fps=fps), dpi=dpi)
    return anim
