"""hp.viz figures display in Jupyter without magic: each carries its own PNG (or GIF) representation.

The real-kernel check (exactly one image/png per cell, before and after the inline backend is
active) is in tests/test_notebooks.py; here the representations themselves are tested headless.
"""

import base64
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

import handprop as hp  # noqa: E402
from handprop.optimizers import SGD, Adam  # noqa: E402
from handprop.viz.figure import Figure, TrajectoryAnimation, figure_png  # noqa: E402

PNG = b"\x89PNG"


def small_model():
    model = hp.Sequential([hp.layers.Conv2D(4, 3), hp.layers.ReLU()], seed=0)
    model.build((1, 8, 8))
    return model


def every_figure():
    x = np.random.default_rng(0).random((1, 1, 8, 8)).astype(np.float32)
    return {
        "plot_history": hp.viz.plot_history({"loss": [2.0, 1.0], "val_loss": [2.5, 1.5]}),
        "plot_trajectories": hp.viz.plot_trajectories({"SGD": SGD(lr=0.1)}, "quadratic", (-7.0, 2.0), 10),
        "plot_filters": hp.viz.plot_filters(small_model().layers_list()[0]),
        "plot_feature_maps": hp.viz.plot_feature_maps(small_model(), x, 0),
    }


def test_every_viz_figure_has_a_png_repr():
    for name, fig in every_figure().items():
        assert isinstance(fig, Figure) and isinstance(fig, matplotlib.figure.Figure), name
        png = fig._repr_png_()
        assert png[:4] == PNG, name


def test_png_is_the_inline_backends_picture():
    """Tight bounding box (0.1 in padding) at the figure's dpi: an 8 x 4 in figure at 100 dpi is ~800 x 400 px."""
    fig = hp.viz.plot_history({"loss": [2.0, 1.0]})
    import io

    from PIL import Image

    with Image.open(io.BytesIO(fig._repr_png_())) as image:
        width, height = image.size
    assert fig.dpi == 100 and abs(width - 800) < 40 and abs(height - 400) < 40, (width, height)
    assert figure_png(Figure()) is None  # an empty figure shows its text repr, not a blank image


def test_savefig_still_works_headless(tmp_path):
    fig = hp.viz.plot_history({"loss": [2.0, 1.0]})
    fig.savefig(tmp_path / "h.png", dpi=50)
    assert (tmp_path / "h.png").read_bytes()[:4] == PNG


def test_animation_shows_as_a_gif():
    anim = hp.viz.animate_trajectories({"SGD": SGD(lr=0.5), "Adam": Adam(lr=0.3)}, "quadratic", (-7.0, 2.0),
                                       steps=10, frames=3, dpi=30, figsize=(5, 2))
    assert isinstance(anim, TrajectoryAnimation)
    bundle = anim._repr_mimebundle_()
    gif = base64.b64decode(bundle["image/gif"])
    assert gif[:6] in (b"GIF87a", b"GIF89a")
    assert anim.gif() is anim.gif()  # rendered once
    assert "2 optimizers, 3 frames" in bundle["text/plain"]


def test_no_viz_module_builds_a_bare_matplotlib_figure():
    """A new plot function must use handprop.viz.figure.Figure, or it would print <Figure ...> in Jupyter."""
    viz = Path(hp.viz.__file__).parent
    for path in viz.glob("*.py"):
        if path.name == "figure.py":
            continue
        text = path.read_text()
        assert not re.search(r"from matplotlib\.figure import .*\bFigure\b", text), path.name
        assert "matplotlib.figure.Figure(" not in text and "plt.figure(" not in text and "plt.subplots(" not in text, \
            path.name


def test_figure_png_is_stored_with_a_palette():
    """Lecture-sized figures at 100 dpi stay small in the committed notebooks: an adaptive palette."""
    import io

    from PIL import Image

    fig = hp.viz.plot_trajectories({"SGD": SGD(lr=0.05), "Adam": Adam(lr=0.05)}, "rosenbrock", (-1.5, 2.0), 100)
    compact, full = figure_png(fig), figure_png(fig, colors=None)
    with Image.open(io.BytesIO(compact)) as a, Image.open(io.BytesIO(full)) as b:
        assert a.mode == "P" and b.mode == "RGBA" and a.size == b.size
    assert len(compact) < 0.6 * len(full)
