"""Volumes (N, C, D, H, W): the Conv3D / MaxPool3D / AvgPool3D layers (float64 gradient checks on
every CPU engine, PyTorch parity, shapes and errors), the N-D reference loops, the numpy engine's
depth bands, BatchNorm on volumes. The 3-D *kernels* are tested with the 2-D ones in
test_engines.py (PyTorch parity, central differences, every engine against the reference)."""

from __future__ import annotations

import numpy as np
import pytest

import handprop as hp
from engines import (
    DTYPE_PARAMS,
    ENGINE_PARAMS,
    assert_close,
    conv_configs,
    conv_data,
)
from handprop.gradcheck import check_layer
from handprop.kernels import reference
from handprop.kernels.geometry import ConvGeometry, PoolGeometry
from handprop.layers import AvgPool3D, Conv3D, MaxPool3D


# The kernels against PyTorch (conv3d, max_pool3d, avg_pool3d), central differences and every
# engine against the reference: tests/test_engines.py, whose geometries include volumes.
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
    for pool in (PoolGeometry((2, 3), (2, 1), (1, 1)), PoolGeometry((2, 3), (1, 2), (1, 1), (2, 1))):
        y2, (a2, _) = reference.maxpool2d_forward(x, pool)
        yn, (an, _) = reference.maxpool_nd_forward(x, pool)
        np.testing.assert_array_equal(yn, y2)
        np.testing.assert_array_equal(an, a2)
        np.testing.assert_allclose(reference.avgpool_nd_forward(x, pool)[0], reference.avgpool2d_forward(x, pool)[0])


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
    "maxpool3d-dilated": (lambda: MaxPool3D(2, stride=1, padding=(1, 0, 1), dilation=(2, 1, 2)), (1, 2, 4, 3, 5)),
    "avgpool3d-dilated": (lambda: AvgPool3D((2, 2, 1), stride=1, dilation=2), (2, 1, 4, 5, 3)),
    "conv3d-activation": (lambda: Conv3D(2, 2, padding="same", activation="tanh"), (1, 2, 3, 3, 4)),
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


def test_batchnorm_on_volumes_matches_torch_and_passes_a_gradient_check(torch):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 2, 3, 4, 2))
    layer = hp.layers.BatchNorm()
    y = layer.forward(x.copy())
    tbn = torch.nn.BatchNorm3d(2, dtype=torch.float64)
    ty = tbn(torch.tensor(x))
    np.testing.assert_allclose(y, ty.detach().numpy(), atol=1e-10)
    np.testing.assert_allclose(layer.state["running_var"], tbn.running_var.numpy(), atol=1e-12)
    report = check_layer(hp.layers.BatchNorm(), x, max_elements=60)
    assert report.passed, report.table()


def test_pooling_layers_on_volumes_match_torch_with_dilation(torch):
    rng = np.random.default_rng(5)
    x = np.round(rng.standard_normal((2, 3, 6, 7, 5)) * 2)  # ties
    layer = MaxPool3D(2, stride=(1, 2, 1), padding=1, dilation=(2, 1, 2))
    y = layer.forward(x)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.max_pool3d(tx, 2, (1, 2, 1), 1, (2, 1, 2))
    ty.backward(torch.tensor(dy))
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_allclose(dx, tx.grad.numpy(), atol=1e-12)
    with pytest.raises(ValueError, match="MaxPool3D: input .* reads only padding"):
        MaxPool3D(2, stride=1, padding=(0, 0, 1), dilation=(1, 1, 2)).build((1, 4, 4, 1))


def test_volume_layers_take_keras_arguments_refuse_channels_last_and_round_trip(tmp_path):
    with pytest.raises(TypeError, match=r"keyword-only.*write Conv3D\(8, \(3, 3, 3\)\).*stride=3"):
        Conv3D(8, 3, 3, 3)
    with pytest.raises(ValueError, match=r"looks channels-last \(N, D, H, W, C\).*x.transpose\(0, 4, 1, 2, 3\) gives "
                                         r"\(N, 1, 16, 16, 12\)"):
        Conv3D(4, 3).forward(np.zeros((1, 16, 16, 12, 1), np.float32))
    assert Conv3D(4, 3).forward(np.zeros((1, 1, 16, 16, 12), np.float32)).shape == (1, 4, 14, 14, 10)
    model = hp.Sequential([
        Conv3D(4, 3, padding="same", activation="relu", input_shape=(1, 8, 8, 8)), hp.layers.BatchNorm(),
        MaxPool3D(2, dilation=(1, 2, 1), stride=1), AvgPool3D(2), hp.layers.Flatten(), hp.layers.Dense(6),
        hp.layers.Reshape((2, 3)), hp.layers.Softmax(axis=1)], seed=3)
    assert model.built and model.layers[0].activation is not None
    model.compile("mse", hp.optimizers.Adam(lr=0.01))
    x = np.random.default_rng(6).standard_normal((4, 1, 8, 8, 8)).astype(np.float32)
    model.fit(x, np.full((4, 2, 3), 0.5, np.float32), epochs=1, batch_size=2, verbose=0)
    model.save(tmp_path / "volume.safetensors")
    loaded = hp.load_model(tmp_path / "volume.safetensors")
    assert [type(la) for la in loaded.layers] == [type(la) for la in model.layers]
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.train_on_batch(x[:2], np.zeros((2, 2, 3), np.float32)) == pytest.approx(
        model.train_on_batch(x[:2], np.zeros((2, 2, 3), np.float32)))  # the optimizer state came along
