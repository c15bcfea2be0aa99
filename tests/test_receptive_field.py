"""Receptive fields: the tutorial's dilated-network table, pooling and strides."""

import numpy as np
import pytest

import handprop as hp

L = hp.layers


def dilated_network():
    """The tutorial's dilated CNN: eight 3×3 layers (dilations 1, 1, 2, 4, 8, 16, 32, 1) and two 1×1."""
    layers = []
    for d in (1, 1, 2, 4, 8, 16, 32, 1):
        layers += [L.Conv2D(2, 3, dilation=d), L.ReLU()]
    layers += [L.Conv2D(2, 1), L.ReLU(), L.Conv2D(2, 1)]
    return hp.Sequential(layers, input_shape=(1, 140, 140))


def test_tutorial_dilated_table():
    model = dilated_network()
    fields = hp.receptive_field(model)
    conv_fields = [r for r, la in zip(fields, model.layers) if isinstance(la, L.Conv2D)]
    assert conv_fields == [3, 5, 9, 17, 33, 65, 129, 131, 131, 131]
    # a ninth 3x3 layer would give 133, which is why the table must end in two 1x1 layers
    nine = hp.Sequential([L.Conv2D(1, 3, dilation=d) for d in (1, 1, 2, 4, 8, 16, 32, 1, 1)],
                         input_shape=(1, 140, 140))
    assert hp.receptive_field(nine)[-1] == 133
    assert "131" in hp.receptive_field_table(model)


def test_receptive_field_matches_gradient_support():
    """The receptive field is the support of d(one output pixel)/d(input): check it empirically."""
    model = hp.Sequential([L.Conv2D(1, 3), L.MaxPool2D(2), L.Conv2D(1, 3, dilation=2), L.AvgPool2D(2),
                           L.AvgPool2D(2, stride=1, dilation=(2, 3)), L.Conv2D(1, (3, 1))],
                          input_shape=(1, 64, 64), seed=1)
    model.cast(np.float64)
    for la in model.layers:
        if "W" in la.params:
            la.params["W"][...] = 1.0  # positive weights: no accidental cancellation
    x = np.random.default_rng(0).random((1, 1, 64, 64))
    with hp.engine("numpy"):
        y = model.forward(x)
        dy = np.zeros_like(y)
        dy[0, 0, y.shape[2] // 2, y.shape[3] // 2] = 1.0
        dx = model.backward(dy)
    rows, cols = np.nonzero(dx[0, 0])
    extent = (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1)
    assert hp.receptive_field(model)[-1] == extent


@pytest.mark.parametrize("layer,expected", [
    (L.Conv2D(1, 5, stride=2), 5), (L.MaxPool2D(3, stride=2), 3), (L.UpSampling2D(2), 1),
    (L.MaxPool2D(3, stride=1, dilation=(2, 1)), (5, 3)),
])
def test_single_layers(layer, expected):
    model = hp.Sequential([layer], input_shape=(1, 16, 16))
    assert hp.receptive_field(model) == [expected]
