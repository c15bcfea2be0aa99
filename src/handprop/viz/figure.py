"""Figures and animations that show themselves in Jupyter, with no ``%matplotlib`` magic.

Why this module exists. handprop's plots are built on ``matplotlib.figure.Figure`` directly, not
through pyplot, so that scripts, tests and the CLI render them headless and never have to
``plt.close`` anything. But IPython shows a plain ``Figure`` only through a PNG *formatter* that
the inline backend registers when it is activated (``%matplotlib inline``, or the first pyplot
figure of the session). Before that, a Figure returned as a cell's last value prints
``<Figure size 450x350 with 1 Axes>``; and a figure made *through* pyplot is shown a second time
by the inline backend at the end of the cell.

The fix: every ``hp.viz`` function returns a :class:`Figure`, a ``matplotlib.figure.Figure``
with a ``_repr_png_`` method. IPython's display formatter calls ``_repr_png_`` when no formatter
is registered for the type, and uses the inline backend's formatter (it matches this subclass)
when there is one: either way the cell gets exactly one ``image/png`` output. The figure is
still not registered with pyplot, so the inline backend never shows it again, and ``savefig``
works as on any Figure (Agg, headless). The PNG is drawn the way the inline backend draws:
``bbox_inches="tight"`` at the figure's own ``dpi`` (``rcParams["figure.dpi"]``, 100, unless the
figure was made with another).

:class:`TrajectoryAnimation` does the same for an animation: as a cell's last value it shows as an
animated GIF (``image/gif``, a few hundred KB: much smaller than matplotlib's JavaScript player,
which stores every frame as a PNG).
"""

from __future__ import annotations

import base64
import io
import os
import tempfile

import matplotlib.figure
from matplotlib.animation import FuncAnimation, PillowWriter

__all__ = ["Figure", "TrajectoryAnimation", "figure_png"]


def figure_png(fig, dpi=None, colors=256) -> bytes | None:
    """PNG bytes of ``fig`` as Jupyter's inline backend draws it (tight bounding box).

    ``dpi``: default the figure's own. ``colors``: the picture is stored with a palette of at most
    this many colours (an adaptive palette, no dithering: lines, text and colormaps look the same,
    and a lecture-sized figure takes about a fifth of the bytes, which keeps the committed
    notebooks small); ``None`` keeps full RGBA. Returns None for a figure with nothing in it
    (IPython then shows the text repr instead of a blank image, as it does for pyplot figures).
    """
    if not fig.axes and not fig.lines and not fig.images:
        return None
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi or fig.dpi, bbox_inches="tight",
                facecolor=fig.get_facecolor(), edgecolor=fig.get_edgecolor())
    if colors is None:
        return buffer.getvalue()
    from PIL import Image  # Pillow: a dependency of matplotlib

    buffer.seek(0)
    with Image.open(buffer) as image:
        palette = image.convert("RGB").quantize(colors=colors, method=Image.Quantize.FASTOCTREE,
                                                dither=Image.Dither.NONE)
    compact = io.BytesIO()
    palette.save(compact, format="png", optimize=True)
    return compact.getvalue()


class Figure(matplotlib.figure.Figure):
    """A ``matplotlib.figure.Figure`` that displays itself when it is the last value of a cell.

    Everything else is a plain Figure: ``fig.savefig(path)``, ``fig.axes``, ``fig.add_subplot``.
    """

    def _repr_png_(self):
        return figure_png(self)


class TrajectoryAnimation(FuncAnimation):
    """A ``FuncAnimation`` that shows itself in Jupyter as an animated GIF.

    ``anim.gif()`` returns the GIF's bytes (rendered once, then kept); ``anim.save(path,
    writer=PillowWriter(fps))`` writes one. ``fps`` and ``dpi`` are those of the GIF.
    """

    def __init__(self, fig, func, *, fps=20, dpi=80, **kwargs):
        super().__init__(fig, func, **kwargs)
        self.fps = fps
        self.dpi = dpi
        self._gif = None

    def gif(self) -> bytes:
        """The animation as GIF bytes (PillowWriter at ``self.fps`` frames per second, ``self.dpi``)."""
        if self._gif is None:
            # PillowWriter writes to a file name only; a temporary folder is removed afterwards
            with tempfile.TemporaryDirectory() as folder:
                path = os.path.join(folder, "animation.gif")
                self.save(path, writer=PillowWriter(fps=self.fps), dpi=self.dpi)
                with open(path, "rb") as f:
                    self._gif = f.read()
        return self._gif

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"image/gif": base64.b64encode(self.gif()).decode("ascii"),
                "text/plain": repr(self)}

    def __repr__(self):
        n = len(self._fig.axes[0].lines)
        return f"<TrajectoryAnimation: {n} optimizer{'s' if n != 1 else ''}, {self._save_count} frames>"
