"""Initializers: fans for dense and conv weights, Glorot / He limits and spreads, torch agreement."""

from __future__ import annotations

import numpy as np
import pytest

from handprop import init
from handprop import layers as L

DENSE = (400, 300)  # (in, out); torch's Linear stores it as (out, in)
CONV = (32, 16, 5, 5)  # (K, C, R, S), the same layout in torch


def torch_layout(shape):
    return shape[::-1] if len(shape) == 2 else shape


def expected_spread(name, shape):
    """``(kind, value)``: the uniform limit ``a`` or the normal std ``s`` from the formulas."""
    if len(shape) == 2:
        fan_in, fan_out = shape
    else:
        k, c, r, s = shape
        fan_in, fan_out = c * r * s, k * r * s
    return {
        "glorot_uniform": ("uniform", np.sqrt(6 / (fan_in + fan_out))),
        "glorot_normal": ("normal", np.sqrt(2 / (fan_in + fan_out))),
        "he_uniform": ("uniform", np.sqrt(6 / fan_in)),
        "he_normal": ("normal", np.sqrt(2 / fan_in)),
    }[name]


NAMES = ["glorot_uniform", "glorot_normal", "he_uniform", "he_normal"]
SHAPES = {"dense": DENSE, "conv": CONV}


def test_compute_fans():
    assert init.compute_fans((7, 3)) == (7, 3)
    assert init.compute_fans((8, 4, 3, 5)) == (4 * 15, 8 * 15)
    assert init.compute_fans((6,)) == (6, 6)


@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
def test_fans_agree_with_torch(shape, torch):
    t = torch.empty(torch_layout(shape))
    assert init.compute_fans(shape) == torch.nn.init._calculate_fan_in_and_fan_out(t)


@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
@pytest.mark.parametrize("name", NAMES)
def test_limits_and_spread(name, shape):
    w = init.get(name)(shape, np.random.default_rng(0))
    assert w.shape == shape and w.dtype == np.float32
    kind, value = expected_spread(name, shape)
    assert abs(w.mean()) < 0.02 * value
    if kind == "uniform":
        assert np.abs(w).max() <= value
        assert np.abs(w).max() > 0.99 * value
        np.testing.assert_allclose(w.std(), value / np.sqrt(3), rtol=0.03)
    else:
        np.testing.assert_allclose(w.std(), value, rtol=0.03)
        assert np.abs(w).max() > 3 * value  # a plain normal, not truncated at 2 std


TORCH_INIT = {
    "glorot_uniform": lambda nn, t: nn.init.xavier_uniform_(t),
    "glorot_normal": lambda nn, t: nn.init.xavier_normal_(t),
    "he_uniform": lambda nn, t: nn.init.kaiming_uniform_(t, mode="fan_in", nonlinearity="relu"),
    "he_normal": lambda nn, t: nn.init.kaiming_normal_(t, mode="fan_in", nonlinearity="relu"),
}


@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
@pytest.mark.parametrize("name", NAMES)
def test_same_distribution_as_torch(name, shape, torch):
    """torch.nn.init with the same fans (torch's Linear weight is (out, in)) gives the same spread."""
    torch.manual_seed(0)
    t = TORCH_INIT[name](torch.nn, torch.empty(torch_layout(shape), dtype=torch.float64)).numpy()
    w = init.get(name)(shape, np.random.default_rng(0), dtype=np.float64)
    np.testing.assert_allclose(w.std(), t.std(), rtol=0.04)
    kind, value = expected_spread(name, shape)
    if kind == "uniform":  # torch's bound is the same formula value
        assert 0.99 * value < np.abs(t).max() <= value
        np.testing.assert_allclose(np.abs(w).max(), np.abs(t).max(), rtol=0.01)


@pytest.mark.parametrize("name", NAMES)
def test_dtype_seed_and_explicit_fans(name):
    a = init.get(name)((20, 10), np.random.default_rng(3), dtype=np.float64)
    b = init.get(name)((20, 10), np.random.default_rng(3), dtype=np.float64)
    c = init.get(name)((20, 10), np.random.default_rng(4), dtype=np.float64)
    assert a.dtype == np.float64
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # fans= overrides the shape's (transposed convolutions pass them explicitly)
    big = init.get(name)((400, 400), np.random.default_rng(0), fans=(4, 4))
    kind, value = expected_spread(name, (4, 4))
    np.testing.assert_allclose(big.std(), value / np.sqrt(3) if kind == "uniform" else value, rtol=0.03)


def test_zeros_ones_and_aliases():
    z = init.get("zeros")((3, 2), None)
    o = init.get("ones")((4,), None, dtype=np.float64)
    assert z.dtype == np.float32 and not z.any() and z.shape == (3, 2)
    assert o.dtype == np.float64 and np.all(o == 1)
    assert init.get("xavier_uniform") is init.glorot_uniform
    assert init.get("xavier_normal") is init.glorot_normal


def test_unknown_name_raises():
    with pytest.raises(ValueError, match="unknown initializer 'glorot'.*glorot_uniform"):
        init.get("glorot")
    with pytest.raises(ValueError, match="unknown initializer"):
        L.Dense(3, kernel_init="nope").build((4,))


def test_dense_defaults_to_glorot_uniform_and_zero_bias():
    layer = L.Dense(300)
    layer.build((500,), rng=0)
    W, b = layer.params["W"], layer.params["b"]
    limit = np.sqrt(6 / (500 + 300))
    assert W.shape == (500, 300) and W.dtype == np.float32
    assert 0.99 * limit < np.abs(W).max() <= limit
    np.testing.assert_allclose(W.std(), limit / np.sqrt(3), rtol=0.03)
    assert b.shape == (300,) and b.dtype == np.float32 and not b.any()


def test_dense_accepts_other_initializers():
    he = L.Dense(300, kernel_init="he_normal")
    he.build((500,), rng=0)
    np.testing.assert_allclose(he.params["W"].std(), np.sqrt(2 / 500), rtol=0.03)
    custom = L.Dense(2, kernel_init=lambda shape, rng, dtype: np.full(shape, 0.5, dtype), bias_init="ones")
    custom.build((3,), dtype=np.float64)
    np.testing.assert_array_equal(custom.params["W"], np.full((3, 2), 0.5))
    np.testing.assert_array_equal(custom.params["b"], np.ones(2))
    assert custom.params["W"].dtype == np.float64


def test_make_rng():
    g = np.random.default_rng(0)
    assert init.make_rng(g) is g
    assert init.make_rng(5).integers(1000) == np.random.default_rng(5).integers(1000)
