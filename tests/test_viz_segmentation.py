"""Segmentation figures render headless and show what they claim."""

import io

import numpy as np
import pytest
from matplotlib.figure import Figure

import handprop as hp
from handprop.data import default_augmenter, extract_patches, synthetic_retina
from handprop.viz.segmentation import ERROR_COLOURS, error_map


@pytest.fixture(scope="module")
def data():
    return synthetic_retina(2, seed=0, size=(64, 64))


def _renders(fig):
    assert isinstance(fig, Figure)
    fig.savefig(io.BytesIO(), format="png", dpi=40)


def test_error_map_colours():
    pred = np.array([[1, 1, 0, 0]], bool)
    truth = np.array([[1, 0, 1, 0]])
    fov = np.array([[True, True, True, False]])
    picture = error_map(pred, truth, fov)
    expected = [ERROR_COLOURS[k] for k in ("true_positive", "false_positive", "false_negative", "outside_fov")]
    np.testing.assert_allclose(picture[0], expected)
    assert error_map(np.zeros((1, 1), bool), np.zeros((1, 1)))[0, 0].tolist() == [0, 0, 0]


def test_plot_segmentation(data):
    images, vessels, fov, _ = data
    prob = np.clip(vessels[0] * 0.8 + 0.1, 0, 1).astype(np.float32)
    fig = hp.viz.plot_segmentation(images[0], vessels[0], prob[None], fov[0], title="synthetic_000")
    assert len(fig.axes) == 5  # image, truth, probability (with its colorbar), errors
    assert fig.axes[-1].get_label() == "<colorbar>"
    assert fig.axes[3].get_title().startswith("errors")
    assert "Dice 1.000" in fig._suptitle.get_text() and "in the FOV" in fig._suptitle.get_text()
    _renders(fig)
    assert len(hp.viz.plot_segmentation(images[0]).axes) == 1
    assert len(hp.viz.plot_segmentation(images[0], probabilities=prob).axes) == 3  # with the colorbar
    with pytest.raises(ValueError, match="vessels must be"):
        hp.viz.plot_segmentation(images[0], vessels)


def test_plot_roc_curves(data):
    images, vessels, fov, _ = data
    rng = np.random.default_rng(0)
    good = vessels + rng.random(vessels.shape) * 0.9
    fig = hp.viz.plot_roc_curves({"green threshold": (-images[:, 1], vessels, fov), "model": (good, vessels, fov),
                                  "whole image": (good, vessels)}, max_points=50)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[1].startswith("model (AUC 1.000)") and labels[-1] == "chance"
    assert all(len(line.get_xdata()) <= 51 for line in fig.axes[0].lines)
    _renders(fig)
    with pytest.raises(ValueError, match="scores, vessels"):
        hp.viz.plot_roc_curves({"bad": (good,)})


def test_plot_patches(data):
    images, vessels, fov, _ = data
    patches, labels = extract_patches(images, vessels, fov, 11, 10, balance=0.5)
    fig = hp.viz.plot_patches(patches, labels, n=12, cols=6)
    assert len(fig.axes) == 12
    assert {ax.get_title() for ax in fig.axes} == {"vessel", "background"}
    _renders(fig)
    grey = hp.viz.plot_patches(patches[:, 1:2], n=3, seed=0)
    assert len(grey.axes) == 3 and grey.axes[0].images[0].get_array().ndim == 2


def test_plot_augmentations(data):
    images, vessels, fov, _ = data
    fig = hp.viz.plot_augmentations(images[0], vessels[0], fov[0], default_augmenter(), n=3)
    assert len(fig.axes) == 8
    assert fig.axes[0].get_title() == "original"
    _renders(fig)


def test_exported_lazily():
    assert {"plot_segmentation", "plot_roc_curves", "plot_patches", "plot_augmentations"} <= set(hp.viz.__all__)
    assert {"plot_segmentation", "plot_roc_curves"} <= set(dir(hp.viz))
