"""DepthwiseConv2D: the reference loops against PyTorch's ``conv2d(groups=C)``, every engine against
the loops, float64 gradient checks of the layer on every CPU engine, and the parameter count of a
depthwise-separable block."""

from __future__ import annotations

import numpy as np
import pytest

import handprop as hp
from engines import DTYPE_PARAMS, ENGINE_PARAMS, FAST_ENGINE_PARAMS, assert_close, conv_id, kernels, on, on_engine
from handprop.gradcheck import check_layer
from handprop.kernels import reference
from handprop.kernels.geometry import ConvGeometry
from handprop.layers import Conv2D, DepthwiseConv2D


def depthwise_configs():
    """(x shape, depth multiplier, kernel, geometry) with ids naming the geometry."""
    cases = [((2, 3, 7, 6), 1, (3, 3), ConvGeometry((1, 1), (1, 1), (1, 1))),
             ((1, 2, 8, 9), 2, (3, 2), ConvGeometry((2, 1), (0, 1), (1, 2))),
             ((3, 4, 6, 6), 3, (1, 1), ConvGeometry((1, 2), (0, 0), (1, 1))),
             ((2, 1, 9, 7), 2, (4, 3), ConvGeometry((3, 2), (2, 1), (2, 1)))]
    params = []
    for x, m, k, g in cases:
        cfg = dict(x=x, W=(x[1] * m, 1, *k), geometry=g)
        params.append(pytest.param(cfg, id=conv_id(cfg)))
    return params


CONFIGS = depthwise_configs()


def data(cfg, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x, W, b = (rng.standard_normal(s).astype(dtype) for s in (cfg["x"], cfg["W"], cfg["W"][0]))
    y = reference.depthwise_conv2d(x, W, b, cfg["geometry"])
    return x, W, b, rng.standard_normal(y.shape).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("cfg", CONFIGS)
def test_reference_matches_torch_grouped_conv(cfg, dtype, torch):
    x, W, b, dy = data(cfg, dtype)
    tx, tW, tb = (torch.tensor(a.astype(np.float64), requires_grad=True) for a in (x, W, b))
    ty = torch.nn.functional.conv2d(tx, tW, tb, *cfg["geometry"], groups=x.shape[1])
    ty.backward(torch.tensor(dy.astype(np.float64)))
    y, cache = reference.depthwise_conv2d_forward(x, W, b, cfg["geometry"])
    dx, dW, db = reference.depthwise_conv2d_backward(dy, cache)
    for name, ours, theirs in (("y", y, ty), ("dx", dx, tx.grad), ("dW", dW, tW.grad), ("db", db, tb.grad)):
        assert_close(ours, theirs.detach().numpy(), dtype, name)


@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("engine", FAST_ENGINE_PARAMS)
def test_engines_match_the_reference(engine, cfg, dtype):
    k = kernels(engine)
    x, W, b, dy = data(cfg, dtype, seed=1)
    ref_y, ref_cache = reference.depthwise_conv2d_forward(x, W, b, cfg["geometry"])
    ref = reference.depthwise_conv2d_backward(dy, ref_cache)
    y, cache = k.depthwise_conv2d_forward(*on(engine, x, W, b), cfg["geometry"])
    assert_close(y, ref_y, dtype, "y")
    for name, ours, theirs in zip(("dx", "dW", "db"), k.depthwise_conv2d_backward(on(engine, dy), cache), ref):
        assert_close(ours, theirs, dtype, name)
    assert k.depthwise_conv2d_backward(on(engine, dy), cache, need_dx=False)[0] is None


LAYERS = {
    "k3-same": (lambda: DepthwiseConv2D(3, padding="same"), (2, 3, 5, 6)),
    "k2x3-m2-strided": (lambda: DepthwiseConv2D((2, 3), depth_multiplier=2, stride=(2, 1), padding=1), (2, 2, 6, 5)),
    "k3-dilated-no-bias": (lambda: DepthwiseConv2D(3, dilation=2, use_bias=False), (1, 2, 6, 6)),
}


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
@pytest.mark.parametrize("which", LAYERS)
def test_layer_gradient_check(which, engine):
    make, shape = LAYERS[which]
    with hp.engine(engine):
        x = on(engine, np.random.default_rng(0).standard_normal(shape))
        report = check_layer(on_engine(engine, make(), shape), x, max_elements=80)
    assert report.passed, report.table()


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
def test_layer_matches_torch_with_same_padding(engine, torch):
    layer = DepthwiseConv2D(3, depth_multiplier=2, padding="same")
    x = np.random.default_rng(2).standard_normal((2, 3, 6, 7))
    assert layer.build(x.shape[1:], rng=0, dtype=np.float64) == (6, 6, 7)
    with hp.engine(engine):
        y = layer.to("gpu" if engine == "cupy" else "cpu").forward(on(engine, x))
        dx = layer.backward(on(engine, np.ones(y.shape)))
    layer.to("cpu")
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, torch.tensor(layer.params["W"]), torch.tensor(layer.params["b"]),
                                    padding="same", groups=3)
    ty.sum().backward()
    assert_close(y, ty.detach().numpy(), np.float64, "y")
    assert_close(dx, tx.grad.numpy(), np.float64, "dx")


def test_separable_block_has_fewer_parameters_and_any_image_size():
    C, K = 16, 32
    full = hp.Sequential([Conv2D(K, 3, padding="same")], input_shape=(C, None, None))
    separable = hp.Sequential([DepthwiseConv2D(3, padding="same"), Conv2D(K, 1)], input_shape=(C, None, None))
    assert full.count_params() == C * K * 9 + K
    assert separable.count_params() == (C * 9 + C) + (C * K + K)
    assert f"{C * 9 + C:,}" in separable.summary(print_fn=None)
    assert separable.predict(np.zeros((1, C, 11, 13))).shape == (1, K, 11, 13)
    with pytest.raises(ValueError, match="DepthwiseConv2D: depth_multiplier must be a positive int"):
        DepthwiseConv2D(3, depth_multiplier=0)


def test_activation_input_shape_and_save_load_round_trip(tmp_path):
    first = DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="relu", input_shape=(3, 9, 9))
    model = hp.Sequential([first, Conv2D(4, 1), hp.layers.GlobalAvgPool2D()], seed=4)
    assert model.built and model.layers[0].params["W"].shape == (6, 1, 3, 3)
    x = np.random.default_rng(2).standard_normal((2, 3, 9, 9)).astype(np.float32)
    assert (model.layers[0].forward(x) >= 0).all()  # the ReLU applies after the convolution
    report = check_layer(DepthwiseConv2D(3, padding=1, activation="tanh"), x[:1, :2, :5, :5].astype(np.float64),
                         max_elements=40)
    assert report.passed, report.table()
    model.compile("mse", "sgd")
    model.save(tmp_path / "dw.safetensors")
    loaded = hp.load_model(tmp_path / "dw.safetensors")
    assert loaded.layers[0].get_config() == model.layers[0].get_config()
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
