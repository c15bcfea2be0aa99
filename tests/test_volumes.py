"""Volumes (N, C, D, H, W): the 3-D kernels on every engine and the Conv3D / MaxPool3D / AvgPool3D
layers -- PyTorch parity (conv3d, max_pool3d, avg_pool3d with stride, padding, dilation), central
differences, every engine against the reference loops (ids name the geometry, as in
test_engines.py: ``s121`` is stride (1, 2, 1)), float64 gradient checks of the layers."""

from __future__ import annotations

import numpy as np
import pytest

import handprop as hp
from engines import (
    DTYPE_PARAMS,
    ENGINE_PARAMS,
    FAST_ENGINE_PARAMS,
    assert_close,
    conv_configs,
    conv_data,
    kernels,
    on,
    pool_configs,
)
from handprop.backend import to_numpy
from handprop.gradcheck import check_layer, numeric_gradient
from handprop.kernels import reference
from handprop.kernels.geometry import ConvGeometry, PoolGeometry
from handprop.layers import AvgPool3D, Conv3D, MaxPool3D

REFERENCE_CONV3D = conv_configs(8, 11, 6, 3, max_k=3, dims=3)  # the loops are slow: small volumes
FAST_CONV3D = conv_configs(12, 12, 8, 4, max_k=3, dims=3)
REFERENCE_POOL3D = pool_configs(8, 13, 6, 2, dims=3)
FAST_POOL3D = pool_configs(10, 14, 8, 3, dims=3)


# ----------------------------------------------------------------------------- the definition vs torch
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("cfg", REFERENCE_CONV3D)
def test_reference_conv3d_matches_torch(cfg, dtype, torch):
    x, W, b, dy = conv_data(cfg, dtype, seed=1)
    tx, tW, tb = (torch.tensor(a.astype(np.float64), requires_grad=True) for a in (x, W, b))
    ty = torch.nn.functional.conv3d(tx, tW, tb, *cfg["geometry"])
    ty.backward(torch.tensor(dy.astype(np.float64)))
    x0, W0, dy0 = x.copy(), W.copy(), dy.copy()
    y, cache = reference.conv3d_forward(x, W, b, cfg["geometry"])
    dx, dW, db = reference.conv3d_backward(dy, cache)
    for name, ours, theirs in (("y", y, ty), ("dx", dx, tx.grad), ("dW", dW, tW.grad), ("db", db, tb.grad)):
        assert_close(ours, theirs.detach().numpy(), dtype, name)
    for before, after in ((x0, x), (W0, W), (dy0, dy)):
        np.testing.assert_array_equal(before, after)  # kernels never write into their inputs


@pytest.mark.parametrize("cfg", conv_configs(3, 15, 5, 2, max_k=2, dims=3))
def test_reference_conv3d_gradients_are_central_differences(cfg):
    x, W, b, dy = conv_data(cfg, np.float64, seed=3)
    loss = lambda: float(np.sum(reference.conv3d(x, W, b, cfg["geometry"]) * dy))
    num_dx = numeric_gradient(loss, x, np.arange(x.size))
    num_dW = numeric_gradient(loss, W, np.arange(W.size))
    dx, dW, _ = reference.conv3d_backward(dy, reference.conv3d_forward(x, W, b, cfg["geometry"])[1])
    np.testing.assert_allclose(dx.ravel(), num_dx, atol=1e-7)
    np.testing.assert_allclose(dW.ravel(), num_dW, atol=1e-7)


@pytest.mark.parametrize("cfg", conv_configs(4, 16, 7, 3))
def test_the_nd_loops_on_images_are_the_2d_loops(cfg):
    """One definition: the N-D loops the 3-D kernels use give conv2d's numbers on images."""
    x, W, b, dy = conv_data(cfg, np.float64, seed=4)
    g = cfg["geometry"]
    np.testing.assert_allclose(reference.conv_nd(x, W, b, g), reference.conv2d(x, W, b, g), atol=1e-12)
    np.testing.assert_allclose(reference.conv_nd_input_grad(dy, W, x.shape, g),
                               reference.conv2d_input_grad(dy, W, x.shape, g), atol=1e-12)
    np.testing.assert_allclose(reference.conv_nd_weight_grad(dy, x, W.shape, g),
                               reference.conv2d_weight_grad(dy, x, W.shape, g), atol=1e-12)
    pool = PoolGeometry((2, 3), (2, 1), (1, 1))
    y2, (a2, _) = reference.maxpool2d_forward(x, pool)
    yn, (an, _) = reference.maxpool_nd_forward(x, pool)
    np.testing.assert_array_equal(yn, y2)
    np.testing.assert_array_equal(an, a2)
    np.testing.assert_allclose(reference.avgpool_nd_forward(x, pool)[0], reference.avgpool2d_forward(x, pool)[0])


@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("cfg", REFERENCE_POOL3D)
def test_reference_pool3d_matches_torch(cfg, dtype, torch):
    F = torch.nn.functional
    rng = np.random.default_rng(5)
    x = np.round(rng.standard_normal(cfg["x"])).astype(dtype)  # few distinct values: many ties
    pool, stride, padding = cfg["geometry"]
    tx = torch.tensor(x, requires_grad=True)
    ty, tidx = F.max_pool3d(tx, pool, stride, padding, return_indices=True)
    dy = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    ty.backward(torch.tensor(dy))
    y, cache = reference.maxpool3d_forward(x, cfg["geometry"])
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_array_equal(cache[0], tidx.numpy())  # the same winner, ties included
    assert_close(reference.maxpool3d_backward(dy, cache), tx.grad.numpy(), dtype, "max dx")
    tx = torch.tensor(x.astype(np.float64), requires_grad=True)
    ta = F.avg_pool3d(tx, pool, stride, padding)  # count_include_pad=True
    ta.backward(torch.tensor(dy.astype(np.float64)))
    y, cache = reference.avgpool3d_forward(x, cfg["geometry"])
    assert_close(y, ta.detach().numpy(), dtype, "avg y")
    assert_close(reference.avgpool3d_backward(dy, cache), tx.grad.numpy(), dtype, "avg dx")


# ----------------------------------------------------------------------------- every engine vs the definition
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("cfg", FAST_CONV3D)
@pytest.mark.parametrize("engine", FAST_ENGINE_PARAMS)
def test_conv3d_matches_reference(engine, cfg, dtype):
    k = kernels(engine)
    x, W, b, dy = conv_data(cfg, dtype, seed=6)
    g = cfg["geometry"]
    y, cache = k.conv3d_forward(*on(engine, x, W, b), g, True)
    dx, dW, db = k.conv3d_backward(on(engine, dy), cache, need_dx=True)
    assert_close(y, reference.conv3d(x, W, b, g), dtype, "y")
    assert_close(dx, reference.conv3d_input_grad(dy, W, x.shape, g), dtype, "dx")
    assert_close(dW, reference.conv3d_weight_grad(dy, x, W.shape, g), dtype, "dW")
    assert_close(db, dy.sum(axis=(0, 2, 3, 4)), dtype, "db")
    y, cache = k.conv3d_forward(*on(engine, x, W), None, g, True)
    dx, _, db = k.conv3d_backward(on(engine, dy), cache, need_dx=False)
    assert dx is None and db is None


@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("cfg", FAST_POOL3D)
@pytest.mark.parametrize("engine", FAST_ENGINE_PARAMS)
def test_pool3d_matches_reference(engine, cfg, dtype):
    k = kernels(engine)
    rng = np.random.default_rng(7)
    x = rng.standard_normal(cfg["x"]).astype(dtype)
    x[0, 0] = np.round(x[0, 0])  # ties: the first maximum in window order must win
    g = cfg["geometry"]
    y_ref, cache_ref = reference.maxpool3d_forward(x, g)
    y, cache = k.maxpool3d_forward(on(engine, x), g)
    np.testing.assert_array_equal(to_numpy(y), y_ref)
    np.testing.assert_array_equal(to_numpy(cache[0]), cache_ref[0])
    dy = rng.standard_normal(y_ref.shape).astype(dtype)
    assert_close(k.maxpool3d_backward(on(engine, dy), cache), reference.maxpool3d_backward(dy, cache_ref), dtype,
                 "max dx")  # fmt: skip
    y_ref, cache_ref = reference.avgpool3d_forward(x, g)
    y, cache = k.avgpool3d_forward(on(engine, x), g)
    assert_close(y, y_ref, dtype, "avg y")
    assert_close(k.avgpool3d_backward(on(engine, dy), cache), reference.avgpool3d_backward(dy, cache_ref), dtype,
                 "avg dx")  # fmt: skip


def test_numpy_engine_cuts_a_big_volume_into_depth_bands(monkeypatch):
    """A volume whose columns exceed the chunk budget is cut into slabs of output depth; the
    result does not change (the bands overlap by their halo)."""
    from handprop.kernels import im2col

    x, W, b, dy = conv_data(dict(x=(1, 2, 9, 6, 5), W=(3, 2, 3, 2, 3),
                                 geometry=ConvGeometry((2, 1, 1), (1, 0, 1), (2, 1, 1))), np.float64, seed=8)
    g = ConvGeometry((2, 1, 1), (1, 0, 1), (2, 1, 1))
    whole = (im2col.conv3d(x, W, b, g), im2col.conv3d_input_grad(dy, W, x.shape, g),
             im2col.conv3d_weight_grad(dy, x, W.shape, g))
    monkeypatch.setattr(im2col, "CHUNK_BYTES", 2 * 3 * 2 * 3 * 5 * 6 * 8)  # about one output slice
    assert len(list(im2col._chunks(1, dy.shape[2], 2 * 18 * 30 * 8))) > 1
    banded = (im2col.conv3d(x, W, b, g), im2col.conv3d_input_grad(dy, W, x.shape, g),
              im2col.conv3d_weight_grad(dy, x, W.shape, g))
    for a, c in zip(whole, banded):
        np.testing.assert_allclose(a, c, atol=1e-12)


# ----------------------------------------------------------------------------- layers
LAYERS = {
    "conv3d-valid": (lambda: Conv3D(2, 2), (2, 2, 3, 4, 3)),
    "conv3d-same-dilated": (lambda: Conv3D(2, (2, 3, 1), padding="same", dilation=(2, 1, 1)), (1, 2, 4, 3, 3)),
    "conv3d-strided-padded": (lambda: Conv3D(2, 2, stride=(1, 2, 2), padding=1, use_bias=False), (2, 1, 3, 4, 4)),
    "maxpool3d-2": (lambda: MaxPool3D(), (2, 2, 4, 4, 4)),
    "maxpool3d-overlap-pad": (lambda: MaxPool3D(3, stride=(1, 2, 2), padding=1), (1, 2, 3, 4, 5)),
    "avgpool3d-2": (lambda: AvgPool3D((1, 2, 2)), (2, 2, 3, 4, 4)),
}


@pytest.mark.parametrize("engine", ENGINE_PARAMS[:3])
@pytest.mark.parametrize("which", LAYERS)
def test_layer_gradient_check(which, engine):
    make, shape = LAYERS[which]
    x = np.random.default_rng(0).standard_normal(shape)
    with hp.engine(engine):
        report = check_layer(make(), x, max_elements=60)
    assert report.passed, report.table()


CONV3D_PARITY = [
    dict(filters=3, kernel_size=3, padding="same"),
    dict(filters=2, kernel_size=(2, 3, 2), stride=(2, 1, 2), padding=(1, 0, 1), dilation=(1, 2, 1)),
]


@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("engine", ENGINE_PARAMS[:3])
@pytest.mark.parametrize("cfg", range(len(CONV3D_PARITY)), ids=["same", "strided-dilated"])
def test_conv3d_layer_matches_torch(cfg, engine, dtype, torch):
    kw = CONV3D_PARITY[cfg]
    rng = np.random.default_rng(cfg)
    x = rng.standard_normal((2, 2, 5, 6, 5)).astype(dtype)
    layer = Conv3D(**kw)
    out_shape = layer.build(x.shape[1:], rng=0, dtype=dtype)
    dy = rng.standard_normal((2, *out_shape)).astype(dtype)
    with hp.engine(engine):
        y = layer.forward(x)
        dx = layer.backward(dy)
    tx = torch.tensor(x, requires_grad=True)
    tW, tb = (torch.tensor(layer.params[k], requires_grad=True) for k in ("W", "b"))
    pad = "same" if kw.get("padding") == "same" else layer.padding
    ty = torch.nn.functional.conv3d(tx, tW, tb, layer.stride, pad, layer.dilation)
    ty.backward(torch.tensor(dy))
    assert y.shape == tuple(ty.shape)
    for name, ours, theirs in (("y", y, ty), ("dx", dx, tx.grad), ("dW", layer.grads["W"], tW.grad),
                               ("db", layer.grads["b"], tb.grad)):
        assert_close(ours, theirs.detach().numpy(), dtype, name)


def test_conv3d_shapes_free_sizes_and_errors():
    layer = Conv3D(4, 3, padding="same", stride=2)
    assert layer.build((2, None, None, None), rng=0) == (4, None, None, None)
    assert layer.params["W"].shape == (4, 2, 3, 3, 3)
    assert layer.forward(np.zeros((1, 2, 7, 8, 9), np.float32)).shape == (1, 4, 4, 4, 5)  # any volume size
    with pytest.raises(ValueError, match=r"Conv3D: expected input of shape \(N, 2, None, None, None\)"):
        layer.forward(np.zeros((1, 2, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"Conv3D: expects volumes \(N, C, D, H, W\)"):
        Conv3D(1, 3).forward(np.zeros((1, 2, 8, 8), np.float32))
    with pytest.raises(ValueError, match="Conv3D: input .* is too small for kernel"):
        Conv3D(1, 3).build((1, 2, 5, 5))
    with pytest.raises(ValueError, match="kernel_size must be an int or 3 ints"):
        Conv3D(1, (3, 3))
    with pytest.raises(ValueError, match="MaxPool3D: .*at most half"):
        MaxPool3D(2, padding=(0, 2, 0))
    assert MaxPool3D().build((3, 8, 9, 10)) == (3, 4, 4, 5)


def test_a_3d_cnn_in_a_model_summary_and_receptive_field():
    model = hp.Sequential([Conv3D(4, 3), hp.layers.ReLU(), MaxPool3D(2), Conv3D(8, (1, 3, 3), dilation=2),
                           hp.layers.Flatten(), hp.layers.Dense(2)], input_shape=(1, 12, 12, 12))
    text = model.summary(print_fn=None)
    assert "(None, 4, 10, 10, 10)" in text and f"{4 * 27 + 4:,}" in text and f"{8 * 4 * 9 + 8:,}" in text
    # 3, 3, then pooling 2 -> 4 (jump 2), then (1, 3, 3) dilated 2: + (1 - 1, 4, 4) * 2
    assert hp.receptive_field(model)[:4] == [3, 3, 4, (4, 12, 12)]
    assert model.predict(np.zeros((2, 1, 12, 12, 12))).shape == (2, 2)
