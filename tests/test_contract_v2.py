"""Core contract v2: models that take any image size, frozen layers, reuse without silent
re-initialization, shared weights, ``backward(dy, need_dx)``."""

from __future__ import annotations

import re

import numpy as np
import pytest

import handprop as hp
from engines import ENGINE_PARAMS, on
from handprop.backend import to_numpy

L = hp.layers


# ----------------------------------------------------------------------------- any image size
def valid_convnet(seed=0):
    """Stride-1 "valid" convolutions: output pixel (i, j) sees exactly x[i : i + 7, j : j + 7]."""
    return hp.Sequential([L.Conv2D(4, 3), L.BatchNorm(), L.ReLU(), L.Conv2D(3, 3, dilation=2), L.PReLU(),
                          L.Conv2D(2, 1)], seed=seed, input_shape=(2, None, None))


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
def test_whole_image_prediction_equals_patchwise_at_every_pixel(engine):
    """The fully convolutional promise: one pass over a whole image gives, at every pixel, what
    the same model gives on the 7 x 7 crop around it (inference mode)."""
    model = valid_convnet()
    rng = np.random.default_rng(0)
    model.layers[1].state["running_mean"][:] = rng.standard_normal(4)  # make BatchNorm do something
    model.layers[1].state["running_var"][:] = rng.uniform(0.5, 2, 4)
    x = rng.standard_normal((1, 2, 13, 11)).astype(np.float32)
    if engine == "cupy":
        model.to_gpu()
    with hp.engine(engine):
        whole = model.predict(x)
        crops = np.concatenate([x[:, :, i:i + 7, j:j + 7] for i in range(7) for j in range(5)])
        patchwise = model.predict(crops)
    assert whole.shape == (1, 2, 7, 5) and patchwise.shape == (35, 2, 1, 1)
    np.testing.assert_allclose(whole[0].transpose(1, 2, 0).reshape(35, 2), patchwise[:, :, 0, 0],
                               rtol=1e-5, atol=1e-5)  # fmt: skip


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
def test_graph_model_with_pooling_runs_on_any_size_and_matches_crops(engine):
    """A graph with a skip and 2 x 2 pooling: output (i, j) of a whole image is the model on the
    crop at (2 i, 2 j); sizes the pooling cannot split evenly still run."""
    inp = hp.Input((1, None, None))
    a = L.ReLU()(L.Conv2D(3, 3)(inp))
    b = L.Conv2D(3, 3, padding="same")(a)
    c = L.MaxPool2D(2)(L.Add()([a, b]))
    model = hp.Model(inp, L.Conv2D(1, 2)(c), seed=1)
    assert model.layers_list()[0].input_spec == (1, None, None)
    rng = np.random.default_rng(1)
    if engine == "cupy":
        model.to_gpu()
    with hp.engine(engine):
        for shape in ((1, 1, 8, 8), (2, 1, 21, 17)):  # any size: both run
            assert model.predict(rng.standard_normal(shape)).shape[:2] == (shape[0], 1)
        # without "same" padding in the crop's way: a valid-only chain gives exact crop equality
        valid = hp.Model(inp, L.Conv2D(1, 2)(L.MaxPool2D(2)(a)), seed=2)
        if engine == "cupy":
            valid.to_gpu()
        x = rng.standard_normal((1, 1, 16, 12))
        whole = valid.predict(x)
        for i, j in ((0, 0), (2, 3), (5, 3)):
            crop = valid.predict(x[:, :, 2 * i:2 * i + 6, 2 * j:2 * j + 6])
            np.testing.assert_allclose(whole[0, :, i, j], crop[0, :, 0, 0], rtol=1e-5, atol=1e-5)


def test_free_sizes_in_input_shape_and_summary():
    model = hp.Sequential([L.Conv2D(8, 3, padding="same"), L.MaxPool2D(2), L.UpSampling2D(2),
                           L.Conv2D(1, 1)], input_shape=(3, None, None))
    text = model.summary(print_fn=None)
    assert "(None, 8, None, None)" in text and "Trainable params: 233" in text
    inp = hp.Input((3, None, None))
    assert repr(inp) == "Node(input, shape=(N, 3, None, None))"
    out = L.Concatenate()([L.Conv2D(2, 3, padding="same")(inp), inp])
    assert out.shape == (5, None, None)
    with pytest.raises(ValueError, match="positive ints or None"):
        hp.Input((3, 0, 4))


def test_flatten_dense_names_the_layer_that_fixes_the_size():
    model = hp.Sequential([L.Conv2D(4, 3), L.ReLU(), L.Flatten(), L.Dense(2)], seed=0)
    model.predict(np.zeros((1, 1, 8, 8), np.float32))  # built for 8 x 8
    with pytest.raises(ValueError, match=r"Flatten: built for inputs \(N, 4, 6, 6\) \(144 features.*\(1, 4, 8, 8\)"):
        model.predict(np.zeros((1, 1, 10, 10), np.float32))
    with pytest.raises(ValueError, match=r"building layer 2 \(Flatten\).*needs a fixed input size"):
        hp.Sequential([L.Conv2D(4, 3), L.ReLU(), L.Flatten(), L.Dense(2)], input_shape=(1, None, None))
    with pytest.raises(ValueError, match=r"Conv2D: expected input of shape \(N, 1, None, None\) but got \(1, 2, 8"):
        model.layers[0].forward(np.zeros((1, 2, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"Conv2D: input \(C, H, W\) = \(1, 2, 2\) is too small"):
        model.layers[0].forward(np.zeros((1, 1, 2, 2), np.float32))


# ----------------------------------------------------------------------------- building twice
def test_building_a_built_layer_keeps_its_weights_or_says_why_not():
    conv = L.Conv2D(4, 3)
    conv.build((3, 16, 16), rng=0)
    W = conv.params["W"].copy()
    assert conv.build((3, 40, 9), rng=1) == (4, 38, 7)  # another image size: same weights
    np.testing.assert_array_equal(conv.params["W"], W)
    with pytest.raises(ValueError, match=re.escape("Conv2D: already built for inputs (N, 3, 16, 16); cannot use "
                                                   "it on (N, 5, 16, 16) (its weights fix (N, 3, None, None))")):
        conv.build((5, 16, 16))
    dense = L.Dense(3)
    dense.build((7,))
    with pytest.raises(ValueError, match=r"Dense: already built for inputs \(N, 7\).*\(N, 8\)"):
        dense.build((8,))


def test_reusing_trained_layers_in_a_new_model_keeps_what_they_learned():
    """The bug of contract v1: putting trained layers into a second Sequential re-initialized them."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 4)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + 2 * (x[:, 2] > 0)
    model = hp.Sequential([L.Dense(16), L.Tanh(), L.Dense(4)], seed=0)
    model.compile(loss="categorical_crossentropy", optimizer=hp.optimizers.Adam(0.05), metrics=["accuracy"])
    model.fit(x, y, epochs=30, batch_size=32, verbose=0)
    trained = model.evaluate(x, y)[1]
    assert trained > 0.9
    again = hp.Sequential(model.layers, seed=5, input_shape=(4,))
    again.compile(loss="categorical_crossentropy", metrics=["accuracy"])
    assert again.evaluate(x, y)[1] == trained
    lazy = hp.Sequential(list(model.layers), seed=6)  # built lazily from the first batch: the same
    lazy.compile(loss="categorical_crossentropy", metrics=["accuracy"])
    assert lazy.evaluate(x, y)[1] == trained


# ----------------------------------------------------------------------------- frozen layers
def test_frozen_layers_are_not_updated_but_pass_gradients_on():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((32, 5)).astype(np.float32), rng.integers(0, 3, 32)
    model = hp.Sequential([L.Dense(6), L.ReLU(), L.Dense(6), L.ReLU(), L.Dense(3)], seed=0)
    model.compile(loss="categorical_crossentropy", optimizer=hp.optimizers.SGD(0.1, momentum=0.9))
    model.predict(x[:1])
    model.layers[2].trainable = False
    before = model.get_weights()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    after = model.get_weights()
    for key in before:
        changed = not np.array_equal(before[key], after[key])
        assert changed == (not key.startswith("2.")), key  # the first Dense still learns: gradient flowed
    assert set(model.trainable_params()) == {"0.Dense/W", "0.Dense/b", "4.Dense/W", "4.Dense/b"}
    text = model.summary(print_fn=None)
    assert "Dense (Dense) [frozen]" in text
    assert "Trainable params: 57" in text and "Non-trainable params: 42" in text


def test_backward_stops_where_nothing_before_learns():
    calls = []

    class Spy(L.ReLU):
        def backward(self, dy, need_dx=True):
            calls.append((self.name, need_dx))
            return super().backward(dy, need_dx)

    model = hp.Sequential([Spy(name="a"), L.Dense(3), Spy(name="b"), L.Dense(2)], seed=0, input_shape=(4,))
    model.compile(loss="mse", optimizer="sgd")
    model.train_step(np.ones((2, 4), np.float32), np.zeros((2, 2), np.float32))
    assert calls == [("b", True)]  # nothing before the first Dense learns: the pass stops there
    calls.clear()
    model.layers[1].trainable = False  # now nothing before the last Dense learns: it skips its dx
    model.train_step(np.ones((2, 4), np.float32), np.zeros((2, 2), np.float32))
    assert calls == []


# ----------------------------------------------------------------------------- shared weights
def test_a_layer_used_twice_in_a_graph_shares_weights_and_sums_gradients():
    shared = L.Dense(3, name="shared")
    a, b = hp.Input((4,), name="a"), hp.Input((4,), name="b")
    out = L.Dense(1)(L.Concatenate()([L.Tanh()(shared(a)), L.Tanh()(shared(b))]))
    model = hp.Model([a, b], out, seed=0)
    assert sum(layer is shared for layer in model.layers_list()) == 1
    assert model.count_params() == 4 * 3 + 3 + 6 + 1
    model.compile(loss="mse", optimizer="sgd")
    rng = np.random.default_rng(2)
    x = [rng.standard_normal((5, 4)), rng.standard_normal((5, 4))]
    report = hp.gradcheck.check_model(model, x, rng.standard_normal((5, 1)))
    assert report.passed, report.table()
    assert "0.shared/W" in {r["name"] for r in report.rows}


def test_a_shared_conv_in_a_siamese_graph_passes_a_gradient_check():
    conv = L.Conv2D(2, 3, padding="same")
    inp = hp.Input((1, None, None))
    out = L.Conv2D(1, 1)(L.Add()([conv(inp), conv(L.Tanh()(inp))]))  # one kernel, two inputs
    model = hp.Model(inp, out, seed=0)
    model.compile(loss="mse", optimizer="sgd")
    rng = np.random.default_rng(3)
    report = hp.gradcheck.check_model(model, rng.standard_normal((2, 1, 6, 5)), rng.standard_normal((2, 1, 6, 5)))
    assert report.passed, report.table()


def test_a_layer_used_twice_in_a_sequential_works_the_same_way():
    block = L.Dense(4, name="block")
    model = hp.Sequential([L.Dense(4), L.Tanh(), block, L.Tanh(), block, L.Dense(2)], seed=0, input_shape=(3,))
    assert model.count_params() == 16 + 20 + 10
    model.compile(loss="mse", optimizer="sgd")
    rng = np.random.default_rng(4)
    report = hp.gradcheck.check_model(model, rng.standard_normal((6, 3)), rng.standard_normal((6, 2)))
    assert report.passed, report.table()
    hist = model.fit(rng.standard_normal((16, 3)), rng.standard_normal((16, 2)), epochs=3, verbose=0)
    assert np.isfinite(hist.history["loss"]).all()


# ----------------------------------------------------------------------------- the backward contract
LAYERS = {
    "Dense": (lambda: L.Dense(3), (4,)),
    "Conv2D-same-strided": (lambda: L.Conv2D(2, 2, stride=2, padding="same"), (2, 5, 5)),
    "Conv2DTranspose": (lambda: L.Conv2DTranspose(2, 3, stride=2), (2, 3, 3)),
    "MaxPool2D": (lambda: L.MaxPool2D(2), (2, 4, 4)),
    "AvgPool2D": (lambda: L.AvgPool2D(2), (2, 4, 4)),
    "GlobalAvgPool2D": (lambda: L.GlobalAvgPool2D(), (2, 4, 4)),
    "UpSampling2D": (lambda: L.UpSampling2D(2), (2, 3, 3)),
    "BatchNorm": (lambda: L.BatchNorm(), (2, 3, 3)),
    "Dropout": (lambda: L.Dropout(0.5), (6,)),
    "Flatten": (lambda: L.Flatten(), (2, 3, 3)),
    "ReLU": (lambda: L.ReLU(), (5,)),
    "PReLU": (lambda: L.PReLU(), (2, 3, 3)),
    "Softmax": (lambda: L.Softmax(), (5,)),
}


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
@pytest.mark.parametrize("which", LAYERS)
def test_need_dx_false_returns_none_and_the_same_weight_gradients(which, engine):
    make, shape = LAYERS[which]
    rng = np.random.default_rng(5)
    x = on(engine, rng.standard_normal((2, *shape)))
    layer = make()
    layer.build(shape, rng=0, dtype=np.float64)
    if engine == "cupy":
        layer.to("gpu")
    with hp.engine(engine):
        y = layer.forward(x)
        dy = on(engine, rng.standard_normal(y.shape))
        assert layer.backward(dy, need_dx=True).shape == x.shape
        grads = {k: to_numpy(v).copy() for k, v in layer.grads.items()}
        assert layer.backward(dy, need_dx=False) is None
    for k, g in grads.items():
        np.testing.assert_array_equal(to_numpy(layer.grads[k]), g)


@pytest.mark.parametrize("which", LAYERS)
def test_backward_before_forward_says_so(which):
    make, shape = LAYERS[which]
    layer = make()
    layer.build(shape)
    with pytest.raises(RuntimeError, match=f"{type(layer).__name__}.backward: call forward first"):
        layer.backward(np.ones((1, *shape), np.float32))


def test_keyword_only_arguments_after_kernel_size():
    with pytest.raises(TypeError):
        L.Conv2D(20, 5, 5)  # Keras 1 meant a 5 x 5 kernel; here it would have been stride 5
    with pytest.raises(TypeError):
        L.Conv2DTranspose(2, 3, 2)
