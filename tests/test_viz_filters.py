"""Figures of first-layer filters and feature maps render headless and show every channel."""

import numpy as np
import pytest

import handprop as hp

L = hp.layers


def test_plot_filters_rgb_and_grey():
    model = hp.Sequential([L.Conv2D(6, 5), L.ReLU(), L.Conv2D(4, 3)], input_shape=(3, 16, 16))
    fig = hp.viz.plot_filters(model.layers[0])
    assert len(fig.axes) == 6
    assert fig.axes[0].images[0].get_array().shape == (5, 5, 3)  # colour filters
    fig = hp.viz.plot_filters(model.layers[2].params["W"], channel=1)
    assert len(fig.axes) == 5 and fig.axes[0].images[0].get_array().shape == (3, 3)  # 4 filters + a colorbar
    assert fig.axes[-1].get_ylabel() == "weight"  # grey filters share one symmetric scale, shown by its colorbar
    lo, hi = fig.axes[0].images[0].get_clim()
    assert hi > 0 and lo == pytest.approx(-hi)
    with pytest.raises(ValueError, match="conv weights"):
        hp.viz.plot_filters(np.zeros((3, 3)))


def test_plot_feature_maps():
    model = hp.Sequential([L.Conv2D(5, 3, padding="same"), L.ReLU(), L.Flatten()], input_shape=(1, 10, 10))
    x = np.random.default_rng(0).random((2, 1, 10, 10))
    fig = hp.viz.plot_feature_maps(model, x, layer=1)
    assert len(fig.axes) == 6  # five maps and their shared colorbar
    assert fig.axes[-1].get_ylabel() == "activation"
    assert [ax.get_title() for ax in fig.axes[:5]] == [f"map {i}" for i in range(5)]
    assert "5 channels of 10×10" in fig._suptitle.get_text()
    named = hp.viz.plot_feature_maps(model, x, layer=1, names=list("abcde"))
    assert [ax.get_title() for ax in named.axes[:5]] == list("abcde")
    with pytest.raises(ValueError, match="layer output"):
        hp.viz.plot_feature_maps(model, x, layer=2)
