"""Two-dimensional test functions for watching optimizers move.

A loss surface of a real network has millions of dimensions; these have two, so a contour plot
shows everything an optimizer does. Each surface knows::

    value(x, y)      f(x, y), elementwise over arrays of any (matching) shape: f(X, Y) on a meshgrid
    gradient(x, y)   (df/dx, df/dy), written out by hand, same shapes
    minima           the known minimizers [(x*, y*), ...] (empty for the saddle, which has none)
    xlim, ylim       suggested plot bounds;  start: a suggested starting point

The four surfaces and what each teaches:

* ``"quadratic"``  ``f = x²/20 + y²``: a bowl 20 times steeper in y than in x (condition
  number 20). Plain gradient descent zig-zags across the valley while crawling along it; this
  is the picture behind momentum and adaptive learning rates.
* ``"rosenbrock"`` ``f = (a - x)² + b (y - x²)²`` with a = 1, b = 100: a curved, flat-bottomed
  banana-shaped valley with the minimum (a, a²) = (1, 1) at its end.
* ``"beale"``      ``f = (1.5 - x + xy)² + (2.25 - x + xy²)² + (2.625 - x + xy³)²``: steep walls,
  flat plateaus and sharp corners; minimum (3, 0.5).
* ``"saddle"``     ``f = x² - y²``: a saddle point at (0, 0), where the gradient is zero but which
  is not a minimum; f has no minimum at all (it goes to -inf along y). Starting near y = 0, an
  optimizer must find the way off the saddle.

Look one up with :func:`get_surface`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Surface", "Quadratic", "Rosenbrock", "Beale", "Saddle", "SURFACES", "get_surface"]


@dataclass(frozen=True)
class Surface:
    """Base class for a function f(x, y); subclasses define ``value`` and ``gradient``.

    Attributes
    ----------
    name : str
    minima : tuple of (float, float)
        Known global minimizers; empty when f has no minimum.
    xlim, ylim : (float, float)
        Suggested plot bounds.
    start : (float, float)
        A starting point that makes an instructive trajectory.
    log_levels : bool
        Whether contour levels should be log-spaced (f >= 0 with its minimum at 0).
    formula : str
        f written out, for plot titles.
    """

    name: str = "surface"
    minima: tuple = ()
    xlim: tuple = (-2.0, 2.0)
    ylim: tuple = (-2.0, 2.0)
    start: tuple = (-1.5, 1.5)
    log_levels: bool = True
    formula: str = ""

    def value(self, x, y):
        """f(x, y), elementwise. x, y: floats or arrays of the same shape -> same shape."""
        raise NotImplementedError

    def gradient(self, x, y):
        """``(df/dx, df/dy)``, elementwise; each has the shape of x and y."""
        raise NotImplementedError

    def __call__(self, x, y):
        return self.value(x, y)

    @property
    def minimum(self):
        """The (first) known minimizer ``(x*, y*)``, or None when f has no minimum."""
        return self.minima[0] if self.minima else None

    @property
    def min_value(self):
        """f at its minimum (None when there is none)."""
        return None if self.minimum is None else float(self.value(*self.minimum))

    def grid(self, n=200):
        """``(X, Y, Z)``: an n x n meshgrid over (xlim, ylim) and f on it, for contour plots."""
        X, Y = np.meshgrid(np.linspace(*self.xlim, n), np.linspace(*self.ylim, n))
        return X, Y, self.value(X, Y)


@dataclass(frozen=True)
class Quadratic(Surface):
    """``f = x²/20 + y²``, gradient ``(x/10, 2y)``; minimum f(0, 0) = 0.

    The curvature is 1/10 along x and 2 along y. Gradient descent is stable for ``lr < 2/2 = 1``
    (set by the steep y direction) but then moves along x by only a factor (1 - lr/10) per step.
    """

    name: str = "quadratic"
    formula: str = "x²/20 + y²"
    minima: tuple = ((0.0, 0.0),)
    xlim: tuple = (-10.0, 10.0)
    ylim: tuple = (-5.0, 5.0)
    start: tuple = (-7.0, 2.0)

    def value(self, x, y):
        return x**2 / 20.0 + y**2

    def gradient(self, x, y):
        return x / 10.0, 2.0 * y


@dataclass(frozen=True)
class Rosenbrock(Surface):
    """``f = (a - x)² + b (y - x²)²`` (a = 1, b = 100); minimum f(a, a²) = 0.

    Gradient::

        df/dx = -2 (a - x) - 4 b x (y - x²)
        df/dy =  2 b (y - x²)
    """

    name: str = "rosenbrock"
    formula: str = "(1 - x)² + 100 (y - x²)²"
    minima: tuple = ((1.0, 1.0),)
    xlim: tuple = (-2.0, 2.0)
    ylim: tuple = (-1.0, 3.0)
    start: tuple = (-1.5, 2.0)
    a = 1.0  # class constants, not fields: minima and formula above assume these values
    b = 100.0

    def value(self, x, y):
        return (self.a - x) ** 2 + self.b * (y - x**2) ** 2

    def gradient(self, x, y):
        valley = y - x**2
        return -2.0 * (self.a - x) - 4.0 * self.b * x * valley, 2.0 * self.b * valley


@dataclass(frozen=True)
class Beale(Surface):
    """``f = t1² + t2² + t3²`` with ``t_k = c_k - x + x y^k``, c = (1.5, 2.25, 2.625); minimum f(3, 0.5) = 0.

    Gradient (chain rule through each term, ``dt_k/dx = y^k - 1``, ``dt_k/dy = k x y^(k-1)``)::

        df/dx = 2 t1 (y - 1)  + 2 t2 (y² - 1) + 2 t3 (y³ - 1)
        df/dy = 2 t1 x        + 2 t2 (2 x y)  + 2 t3 (3 x y²)
    """

    name: str = "beale"
    formula: str = "(1.5 - x + xy)² + (2.25 - x + xy²)² + (2.625 - x + xy³)²"
    minima: tuple = ((3.0, 0.5),)
    xlim: tuple = (-4.5, 4.5)
    ylim: tuple = (-4.5, 4.5)
    start: tuple = (1.0, 1.5)

    def value(self, x, y):
        t1, t2, t3 = self._terms(x, y)
        return t1**2 + t2**2 + t3**2

    def gradient(self, x, y):
        t1, t2, t3 = self._terms(x, y)
        dx = 2.0 * t1 * (y - 1.0) + 2.0 * t2 * (y**2 - 1.0) + 2.0 * t3 * (y**3 - 1.0)
        dy = 2.0 * t1 * x + 2.0 * t2 * (2.0 * x * y) + 2.0 * t3 * (3.0 * x * y**2)
        return dx, dy

    @staticmethod
    def _terms(x, y):
        return 1.5 - x + x * y, 2.25 - x + x * y**2, 2.625 - x + x * y**3


@dataclass(frozen=True)
class Saddle(Surface):
    """``f = x² - y²``, gradient ``(2x, -2y)``; a saddle point at (0, 0) and **no minimum**.

    ``minima`` is empty; ``saddle_point`` is (0, 0), where f = 0 and the gradient vanishes. An
    optimizer started exactly on the x axis (y = 0) walks into the saddle point and stays: the
    gradient gives it no reason to leave. Started slightly off it, it escapes along y, slowly at
    first, since the gradient near the saddle point is tiny.
    """

    name: str = "saddle"
    formula: str = "x² - y²"
    minima: tuple = ()
    xlim: tuple = (-2.0, 2.0)
    ylim: tuple = (-2.0, 2.0)
    start: tuple = (-1.5, 0.01)
    log_levels: bool = False
    saddle_point: tuple = (0.0, 0.0)

    def value(self, x, y):
        return x**2 - y**2

    def gradient(self, x, y):
        return 2.0 * x, -2.0 * y


SURFACES = {s.name: s for s in (Quadratic(), Rosenbrock(), Beale(), Saddle())}


def get_surface(surface) -> Surface:
    """A surface by name (``"quadratic"``, ``"rosenbrock"``, ``"beale"``, ``"saddle"``); a Surface passes through."""
    if isinstance(surface, Surface):
        return surface
    try:
        return SURFACES[str(surface).lower()]
    except KeyError:
        raise ValueError(f"unknown surface {surface!r}; choose one of {sorted(SURFACES)}") from None
