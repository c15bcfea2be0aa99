"""Whole-image inference: a patch classifier made fully convolutional equals the sliding-window
classifier on every pixel (every engine); tiled inference blends without seams."""

from __future__ import annotations

import time

import numpy as np
import pytest

import handprop as hp
from engines import ENGINE_PARAMS
from handprop.inference import (
    blending_window,
    predict_dense,
    predict_padded,
    predict_tiled,
    sliding_window_predict,
    to_fully_convolutional,
)

L = hp.layers


def patch_classifier(P=15, seed=0, softmax=True):
    """The tutorial's shape of network: conv, PReLU, pooling (stride 2), conv, pooling, Dense head."""
    layers = [L.Conv2D(4, 3), L.PReLU(), L.MaxPool2D(2), L.Conv2D(6, 3, dilation=1), L.BatchNorm(), L.ReLU(),
              L.AvgPool2D(2), L.Flatten(), L.Dropout(0.3), L.Dense(8), L.PReLU(), L.Dense(3)]
    if softmax:
        layers.append(L.Softmax())
    model = hp.Sequential(layers, seed=seed, input_shape=(2, P, P))
    rng = np.random.default_rng(seed)
    bn = model.layers[4]
    bn.state["running_mean"][:] = rng.standard_normal(6)
    bn.state["running_var"][:] = rng.uniform(0.5, 2.0, 6)
    return model


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
def test_fully_convolutional_equals_sliding_window_on_every_pixel(engine):
    model = patch_classifier()
    fcn = to_fully_convolutional(model)
    if engine == "cupy":
        model.to_gpu()
        fcn.to_gpu()
    assert "Flatten" not in [type(la).__name__ for la in fcn.layers]
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 2, 20, 17)).astype(np.float32)
    with hp.engine(engine):
        dense = predict_dense(fcn, x, 15)
        slow = sliding_window_predict(model, x, batch_size=256)
    assert dense.shape == slow.shape == (2, 3, 20, 17)
    np.testing.assert_allclose(dense, slow, rtol=2e-5, atol=2e-6)
    # and unpadded: output (i, j) is the classifier on the patch whose top-left corner is (i, j)
    with hp.engine(engine):
        raw = fcn.predict(x)
        for i, j in ((0, 0), (3, 2), (5, 2)):
            np.testing.assert_allclose(raw[:, :, i, j], model.predict(x[:, :, i:i + 15, j:j + 15]), rtol=2e-5,
                                       atol=2e-6)  # fmt: skip


def test_activation_arguments_survive_the_conversion():
    """``Conv2D(..., activation="relu")`` and ``Dense(..., activation="softmax")`` (Keras spellings)
    keep their activations; the Dense softmax becomes a softmax over the channel axis."""
    model = hp.Sequential([L.Conv2D(4, 3, activation="relu"), L.MaxPool2D(2), L.Conv2D(4, 2, activation=L.ELU(0.5)),
                           L.Flatten(), L.Dense(6, activation="tanh"), L.Dense(3, activation="softmax")],
                          input_shape=(1, 9, 9), seed=2)
    fcn = to_fully_convolutional(model)
    x = np.random.default_rng(3).standard_normal((1, 1, 13, 12)).astype(np.float32)
    raw = fcn.predict(x)
    for i, j in ((0, 0), (2, 3), (4, 1)):
        np.testing.assert_allclose(raw[:, :, i, j], model.predict(x[:, :, i:i + 9, j:j + 9]), rtol=2e-5, atol=2e-6)
    spatial_softmax = hp.Sequential([L.Conv2D(2, 3, activation="softmax"), L.Flatten(), L.Dense(2)],
                                    input_shape=(1, 5, 5))
    with pytest.raises(ValueError, match="softmax over axis -1"):
        to_fully_convolutional(spatial_softmax)


def test_conversion_refuses_what_it_cannot_do_exactly():
    padded = hp.Sequential([L.Conv2D(2, 3, padding="same"), L.Flatten(), L.Dense(2)], input_shape=(1, 5, 5))
    with pytest.raises(ValueError, match="pads its input"):
        to_fully_convolutional(padded)
    with pytest.raises(TypeError, match="built Sequential"):
        to_fully_convolutional(hp.Sequential([L.Dense(2)]))


def test_fully_convolutional_is_much_faster_than_sliding_windows():
    """The point of the conversion; the 20x on a whole retina is measured in benchmarks/bench_fcn.py."""
    model = patch_classifier(softmax=False)
    fcn = to_fully_convolutional(model)
    x = np.random.default_rng(2).standard_normal((1, 2, 40, 40)).astype(np.float32)
    predict_dense(fcn, x[:, :, :16, :16], 15)  # warm-up (compilation)
    sliding_window_predict(model, x[:, :, :4, :4])
    t0 = time.perf_counter()
    predict_dense(fcn, x, 15)
    t1 = time.perf_counter()
    sliding_window_predict(model, x, batch_size=400)
    t2 = time.perf_counter()
    assert (t2 - t1) > 2 * (t1 - t0), (t1 - t0, t2 - t1)  # loose: shared machines are noisy


def test_blending_windows():
    g = blending_window((9, 7))
    assert g.shape == (9, 7) and g.max() == 1.0 and g[4, 3] == 1.0 and g.min() >= 1e-3
    assert g[0, 0] < g[2, 2] < g[4, 3]
    assert (blending_window((4, 4), "constant") == 1).all()
    with pytest.raises(ValueError, match="constant' or 'gaussian"):
        blending_window((3, 3), "cosine")


@pytest.mark.parametrize("blend", ["constant", "gaussian"])
def test_tiles_of_a_pointwise_model_reproduce_the_whole_image_exactly(blend):
    model = hp.Sequential([L.Conv2D(4, 1), L.Tanh(), L.Conv2D(2, 1)], seed=0, input_shape=(3, None, None))
    x = np.random.default_rng(3).standard_normal((2, 3, 50, 37)).astype(np.float32)
    tiled = predict_tiled(model, x, tile=(16, 16), overlap=0.25, blend=blend)
    np.testing.assert_allclose(tiled, model.predict(x), rtol=1e-5, atol=1e-6)
    small = predict_tiled(model, x[:, :, :10, :9], tile=(16, 16))  # smaller than one tile: padded, cropped
    np.testing.assert_allclose(small, model.predict(x[:, :, :10, :9]), rtol=1e-5, atol=1e-6)


def test_gaussian_tiles_of_a_unet_leave_no_seams():
    """Zero padding at a tile's border changes a U-Net's output there; Gaussian blending keeps
    those borders out, so the tiled map stays close to the whole-image one and shows no jumps at
    the tile edges."""
    inp = hp.Input((1, None, None))
    e = L.ReLU()(L.Conv2D(4, 3, padding="same")(inp))
    d = L.ReLU()(L.Conv2D(4, 3, padding="same")(L.UpSampling2D(2)(L.MaxPool2D(2)(e))))
    model = hp.Model(inp, L.Conv2D(1, 3, padding="same")(L.Concatenate()([d, e])), seed=0)
    yy, xx = np.mgrid[0:96, 0:96]
    x = np.sin(xx / 5.0)[None, None].astype(np.float32) + np.cos(yy / 7.0)[None, None].astype(np.float32)
    whole = model.predict(x)[0, 0]
    errors = {}
    for blend in ("constant", "gaussian"):
        tiled = predict_tiled(model, x, tile=(48, 48), overlap=0.5, blend=blend)[0, 0]
        errors[blend] = np.abs(tiled - whole)[8:-8, 8:-8].max()
        # no seams: the jump between neighbouring pixels is never much larger than in the whole-image map
        jump, ref = np.abs(np.diff(tiled, axis=1)).max(), np.abs(np.diff(whole, axis=1)).max()
        assert jump < 1.5 * ref + 1e-6, (blend, jump, ref)
    assert errors["gaussian"] <= errors["constant"] + 1e-7
    assert errors["gaussian"] < 0.05 * np.abs(whole).max()


def test_predict_padded_runs_a_unet_on_sizes_it_cannot_halve():
    inp = hp.Input((1, None, None))
    e = L.Conv2D(2, 3, padding="same")(inp)
    out = L.Conv2D(1, 1)(L.Concatenate()([L.UpSampling2D(2)(L.MaxPool2D(2)(e)), e]))
    model = hp.Model(inp, out, seed=0)
    x = np.random.default_rng(4).standard_normal((1, 1, 13, 10)).astype(np.float32)
    with pytest.raises(ValueError, match="Concatenate"):
        model.predict(x)  # 13 rows pool to 6 and upsample to 12
    y = predict_padded(model, x, multiple=2)
    assert y.shape == (1, 1, 13, 10)
    padded = np.pad(x, ((0, 0), (0, 0), (0, 1), (0, 0)), mode="reflect")
    np.testing.assert_allclose(y, model.predict(padded)[:, :, :13], rtol=1e-6)


def test_inference_and_segmentation_are_attributes_of_the_package():
    """A notebook writes hp.inference.to_fully_convolutional and hp.segmentation.train_segmenter after a plain
    ``import handprop as hp`` (both used to need their own import statement)."""
    import subprocess
    import sys

    code = ("import handprop as hp; "
            "print(hp.inference.to_fully_convolutional.__name__, hp.segmentation.train_segmenter.__name__, "
            "'inference' in dir(hp))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["to_fully_convolutional", "train_segmenter", "True"]


def test_a_final_log_softmax_converts_over_the_channel_axis():
    model = patch_classifier(softmax=False)
    model.add(L.LogSoftmax())
    fcn = to_fully_convolutional(model)
    assert isinstance(fcn.layers[-1], L.LogSoftmax) and fcn.layers[-1].axis == 1
    x = np.random.default_rng(1).standard_normal((1, 2, 18, 16)).astype(np.float32)
    raw = fcn.predict(x)
    for i, j in ((0, 0), (3, 1)):
        np.testing.assert_allclose(raw[:, :, i, j], model.predict(x[:, :, i:i + 15, j:j + 15]), rtol=2e-5, atol=2e-5)
