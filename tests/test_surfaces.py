"""Test surfaces: analytic gradients against central differences, minima, lookup."""

import numpy as np
import pytest

from handprop.surfaces import SURFACES, Surface, get_surface

NAMES = ["quadratic", "rosenbrock", "beale", "saddle"]


@pytest.mark.parametrize("name", NAMES)
def test_gradient_matches_central_differences(name):
    surface = get_surface(name)
    rng = np.random.default_rng(0)
    x = rng.uniform(*surface.xlim, size=50)
    y = rng.uniform(*surface.ylim, size=50)
    h = 1e-6
    gx, gy = surface.gradient(x, y)
    num_x = (surface.value(x + h, y) - surface.value(x - h, y)) / (2 * h)
    num_y = (surface.value(x, y + h) - surface.value(x, y - h)) / (2 * h)
    scale = 1.0 + np.abs(surface.value(x, y))  # central differences lose digits where f is large
    assert np.max(np.abs(gx - num_x) / scale) < 1e-6
    assert np.max(np.abs(gy - num_y) / scale) < 1e-6


@pytest.mark.parametrize("name", NAMES)
def test_value_and_gradient_are_vectorized(name):
    surface = get_surface(name)
    X, Y, Z = surface.grid(n=7)
    assert X.shape == Y.shape == Z.shape == (7, 7)
    gx, gy = surface.gradient(X, Y)
    assert gx.shape == gy.shape == (7, 7)
    assert Z[3, 4] == pytest.approx(surface.value(X[3, 4], Y[3, 4]))
    assert surface(1.0, 0.5) == surface.value(1.0, 0.5)
    assert surface.xlim[0] < surface.xlim[1] and surface.ylim[0] < surface.ylim[1]
    assert surface.formula


@pytest.mark.parametrize(("name", "minimum"), [("quadratic", (0, 0)), ("rosenbrock", (1, 1)), ("beale", (3, 0.5))])
def test_known_minima(name, minimum):
    surface = get_surface(name)
    assert surface.minimum == minimum
    assert surface.min_value == pytest.approx(0.0, abs=1e-15)
    assert np.allclose(surface.gradient(*minimum), 0.0)
    X, Y, Z = surface.grid(n=101)
    assert Z.min() >= 0.0 and surface.log_levels


def test_saddle_has_a_saddle_point_and_no_minimum():
    saddle = get_surface("saddle")
    assert saddle.minima == () and saddle.minimum is None and saddle.min_value is None
    assert np.allclose(saddle.gradient(*saddle.saddle_point), 0.0)
    assert saddle.value(0.0, 1.0) < saddle.value(0.0, 0.0) < saddle.value(1.0, 0.0)
    assert not saddle.log_levels and "no minimum" in saddle.__doc__


def test_lookup():
    assert set(NAMES) == set(SURFACES)
    assert get_surface("Rosenbrock") is SURFACES["rosenbrock"]
    custom = get_surface("beale")
    assert get_surface(custom) is custom and isinstance(custom, Surface)
    with pytest.raises(ValueError, match="unknown surface"):
        get_surface("himmelblau")
