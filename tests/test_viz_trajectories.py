"""The trajectory lab and training-curve plots: simulation, figure contents, divergence, gallery."""

import importlib.util
import io

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.animation import FuncAnimation  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from handprop import viz  # noqa: E402
from handprop.callbacks import History  # noqa: E402
from handprop.optimizers import SGD, Adam, RMSprop  # noqa: E402
from handprop.surfaces import get_surface  # noqa: E402
from handprop.viz import animate_trajectories, plot_history, plot_trajectories, simulate_trajectory  # noqa: E402
from handprop.viz.gallery import GALLERY, make_gallery  # noqa: E402


def render(fig):
    """Draw the whole figure to PNG bytes (a bare Figure's canvas.draw() renders nothing)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=40)
    assert buffer.getvalue()[:4] == b"\x89PNG"


def legend_labels(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


# -- simulate_trajectory ---------------------------------------------------------------------------
def test_simulation_is_the_optimizer_loop():
    surface = get_surface("rosenbrock")
    opt = SGD(lr=1e-3, momentum=0.9)
    path, losses = simulate_trajectory(opt, "rosenbrock", start=(-1.5, 2.0), steps=50)
    assert path.shape == (51, 2) and losses.shape == (51,) and path.dtype == np.float64
    # the same walk, by hand
    p, twin = np.array([-1.5, 2.0]), SGD(lr=1e-3, momentum=0.9)
    for t in range(50):
        np.testing.assert_array_equal(path[t], p)
        twin.step({"xy": p}, {"xy": np.array(surface.gradient(*p))})
    np.testing.assert_array_equal(path[50], p)
    np.testing.assert_allclose(losses, surface.value(path[:, 0], path[:, 1]))
    assert opt.state == {}, "the caller's optimizer is not touched"


def test_simulation_can_continue_with_the_callers_optimizer():
    opt = Adam(lr=0.05)
    first, _ = simulate_trajectory(opt, "beale", (1.0, 1.5), 10, copy_optimizer=False)
    assert opt.state["xy"]["step"] == 10
    second, _ = simulate_trajectory(opt, "beale", tuple(first[-1]), 10, copy_optimizer=False)
    assert opt.state["xy"]["step"] == 20
    whole, _ = simulate_trajectory(Adam(lr=0.05), "beale", (1.0, 1.5), 20)
    np.testing.assert_allclose(second[-1], whole[-1])


@pytest.mark.parametrize(("surface", "lr"), [("quadratic", 1.1), ("rosenbrock", 0.05), ("beale", 10.0)])
def test_divergence_stops_quietly(surface, lr):
    """Overflow is expected and silenced (pytest turns warnings into errors); the rest is NaN."""
    path, losses = simulate_trajectory(SGD(lr=lr), surface, get_surface(surface).start, steps=300)
    finite = np.isfinite(path).all(axis=1)
    stop = int(finite.sum())
    assert 1 < stop < 301
    assert finite[:stop].all() and not finite[stop:].any(), "a walk, then NaN"
    assert np.isfinite(losses[:stop]).all() and np.isnan(losses[stop:]).all()


# -- plot_trajectories ------------------------------------------------------------------------------
def test_plot_trajectories_content():
    opts = {"SGD": SGD(lr=1e-3), "momentum": SGD(lr=1e-3, momentum=0.9), "Adam": Adam(lr=0.05)}
    fig = plot_trajectories(opts, surface="rosenbrock", start=(-1.5, 2.0), steps=100)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    ax, ax_loss = fig.axes
    assert len(ax.lines) == 3 and len(ax_loss.lines) == 3
    assert [line.get_label() for line in ax.lines] == ["SGD", "momentum", "Adam"]
    assert legend_labels(ax) == ["SGD", "momentum", "Adam", "start", "minimum"]
    assert all(len(line.get_xdata()) == 101 for line in ax.lines)
    assert ax.lines[0].get_xdata()[0] == -1.5 and ax.lines[0].get_ydata()[0] == 2.0
    assert ax.collections, "contour lines and markers are drawn"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x", "y")
    assert ax.get_xlim() == (-2.0, 2.0) and ax.get_ylim() == (-1.0, 3.0)
    assert "rosenbrock" in ax.get_title()
    assert ax_loss.get_yscale() == "log" and ax_loss.get_xlabel() == "step"
    assert all(o.state == {} for o in opts.values()), "the caller's optimizers are not touched"
    render(fig)  # headless, without warnings


def test_plot_trajectories_marks_a_diverging_optimizer():
    fig = plot_trajectories({"lr=0.9": SGD(lr=0.9), "lr=1.2": SGD(lr=1.2)}, "quadratic", (-7.0, 2.0), 60)
    ax, ax_loss = fig.axes
    labels = legend_labels(ax)
    assert labels[0] == "lr=0.9"
    assert labels[1].startswith("lr=1.2 (diverged at step ")
    diverged = ax.lines[1].get_ydata()
    assert np.isnan(diverged[-1]) and np.isfinite(diverged[:5]).all()
    assert ax_loss.get_ylim()[1] < 1e6, "the diverging loss leaves the panel instead of squashing it"
    render(fig)


def test_plot_trajectories_on_the_saddle_uses_symlog():
    fig = plot_trajectories({"SGD": SGD(lr=0.1), "RMSprop": RMSprop(lr=0.05)}, "saddle", (-1.5, 0.01), 150)
    ax, ax_loss = fig.axes
    assert ax_loss.get_yscale() == "symlog"
    assert "saddle point (no minimum)" in legend_labels(ax)
    assert any("escaped at step" in label for label in legend_labels(ax))
    render(fig)


def test_every_run_on_the_saddle_says_when_it_left_the_view():
    """Not only the runs that blew up: a slow optimizer that walks out of the picture escaped too."""
    fig = plot_trajectories({"SGD": SGD(lr=0.05), "RMSprop": RMSprop(lr=0.05), "tiny": SGD(lr=1e-6)},
                            "saddle", (-1.5, 0.01), 80)
    labels = [label for label in legend_labels(fig.axes[0]) if label.startswith(("SGD", "RMSprop", "tiny"))]
    assert labels[0].startswith("SGD (escaped at step ") and labels[1].startswith("RMSprop (escaped at step ")
    assert labels[2] == "tiny (still in view)"


def test_plot_trajectories_wants_a_dict():
    with pytest.raises(TypeError, match="dict"):
        plot_trajectories([SGD()])
    with pytest.raises(ValueError, match="unknown surface"):
        plot_trajectories({"SGD": SGD()}, surface="himmelblau")


def test_animation_saves_a_gif(tmp_path):
    target = tmp_path / "walk.gif"
    anim = animate_trajectories({"SGD": SGD(lr=0.5), "Adam": Adam(lr=0.3)}, "quadratic", (-7.0, 2.0), steps=20,
                                frames=4, save_to=target, dpi=30, figsize=(6, 2.5))
    assert isinstance(anim, FuncAnimation)
    assert target.read_bytes()[:6] in (b"GIF87a", b"GIF89a")
    from PIL import Image

    with Image.open(target) as gif:
        assert gif.n_frames == 4
    ax = anim._fig.axes[0]
    assert len(ax.lines) == 2 and len(ax.lines[0].get_xdata()) == 21  # left at the last frame


# -- plot_history -------------------------------------------------------------------------------------
def test_plot_history_panels():
    history = History()
    history.on_train_begin()
    for epoch in range(5):
        logs = {"lr": 0.1 * 0.5**epoch, "loss": 1 / (epoch + 1), "accuracy": epoch / 5}
        history.on_epoch_end(epoch, {**logs, "val_loss": 1.2 / (epoch + 1), "val_accuracy": epoch / 6})
    fig = plot_history(history)
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss", "accuracy", "lr"]
    loss_ax, acc_ax, lr_ax = fig.axes
    assert legend_labels(loss_ax) == ["training loss", "validation loss"]
    assert legend_labels(acc_ax) == ["training accuracy", "validation accuracy"]
    assert list(loss_ax.lines[0].get_xdata()) == [1, 2, 3, 4, 5] and loss_ax.get_xlabel() == "epoch"
    assert lr_ax.get_yscale() == "log" and loss_ax.get_yscale() == "linear"
    assert legend_labels(lr_ax) == ["learning rate"]
    render(fig)
    fig = plot_history({"loss": [3.0, 2.0]})  # a plain dict works too
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 1
    with pytest.raises(ValueError, match="empty"):
        plot_history(History())


# -- the package and the gallery ---------------------------------------------------------------------
def test_viz_exports():
    for name in ["plot_trajectories", "animate_trajectories", "simulate_trajectory", "plot_history"]:
        assert name in viz.__all__ and callable(getattr(viz, name))
    if importlib.util.find_spec("handprop.viz.filters") is None:
        assert not hasattr(viz, "plot_filters")  # lazy: an AttributeError until filters.py exists
    with pytest.raises(AttributeError):
        viz.no_such_plot  # noqa: B018


def test_gallery(tmp_path):
    paths = make_gallery(tmp_path / "gallery")
    assert [p.name for p in paths] == [f"{name}.png" for name in GALLERY]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size < 200_000
