"""Reshape: shapes, -1 inference, errors naming the layer, a gradient check (dx is dy reshaped back)."""

from __future__ import annotations

import numpy as np
import pytest

import handprop as hp
from handprop.gradcheck import check_layer
from handprop.layers import Dense, Reshape


def test_reshape_forward_backward_and_inference():
    layer = Reshape((2, -1, 3))
    assert layer.build((24,)) == (2, 4, 3)
    x = np.arange(48, dtype=np.float32).reshape(2, 24)
    y = layer.forward(x)
    np.testing.assert_array_equal(y, x.reshape(2, 2, 4, 3))
    dy = np.ones_like(y)
    dx = layer.backward(dy)
    assert dx.shape == (2, 24) and not np.shares_memory(dx, dy)
    assert layer.backward(dy, need_dx=False) is None


def test_reshape_gradient_check_inside_a_model():
    report = check_layer(Reshape((1, 3, 4)), np.random.default_rng(0).standard_normal((2, 12)))
    assert report.passed, report.table()
    model = hp.Sequential([Dense(16), Reshape((1, 4, 4)), hp.layers.Conv2D(2, 3, padding="same"),
                           hp.layers.Flatten(), Dense(1)], input_shape=(5,))
    model.compile(loss=hp.losses.MeanSquaredError())
    rng = np.random.default_rng(1)
    report = hp.gradcheck.check_model(model, rng.standard_normal((3, 5)), rng.standard_normal((3, 1)),
                                      max_elements=20)
    assert report.passed, report.table()


def test_reshape_errors_name_the_layer():
    with pytest.raises(ValueError, match=r"Reshape: cannot reshape \(N, 10\) \(10 values\) into \(N, 3, 3\)"):
        Reshape((3, 3)).build((10,))
    with pytest.raises(ValueError, match="at most one -1"):
        Reshape((-1, -1))
    with pytest.raises(ValueError, match="Reshape: needs a fixed input size"):
        Reshape((4, -1)).build((None, 4))
    layer = Reshape((2, 2))
    layer.build((4,))
    with pytest.raises(ValueError, match=r"Reshape: built for inputs \(N, 4\)"):
        layer.forward(np.zeros((1, 8), np.float32))


def test_reshape_takes_input_shape_and_its_config_rebuilds_it():
    model = hp.Sequential([Reshape((1, 4, 3), input_shape=(12,), name="to_image"), hp.layers.Conv2D(2, 3)])
    assert model.built and model.layers[1].params["W"].shape == (2, 1, 3, 3)
    config = model.layers[0].get_config()
    assert config == {"target_shape": (1, 4, 3), "name": "to_image"}
    assert Reshape(**config).get_config() == config
