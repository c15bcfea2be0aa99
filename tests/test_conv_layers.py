"""Convolution, pooling and upsampling layers: float64 gradient checks on every engine,
PyTorch parity (forward, input grad, param grads), output-size formulas and error messages."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from engines import ENGINE_PARAMS, on, on_engine
from handprop.backend import engine, to_numpy
from handprop.gradcheck import check_layer
from handprop.layers.conv import Conv2D, Conv2DTranspose
from handprop.layers.pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from handprop.layers.upsampling import UpSampling2D

ENGINES = ENGINE_PARAMS  # cupy: on GPU arrays (real CuPy, or the stand-in tests/fake_cupy)

# (factory, input shape): small, so the reference engine stays quick
LAYERS = {
    "conv-valid": (lambda: Conv2D(3, 3), (2, 2, 6, 5)),
    "conv-same-dilated": (lambda: Conv2D(2, 3, padding="same", dilation=2), (2, 2, 7, 6)),
    "conv-strided-nonsquare": (lambda: Conv2D(3, (2, 3), stride=(2, 1), padding=(1, 0)), (2, 3, 7, 6)),
    "conv-no-bias": (lambda: Conv2D(2, 1, use_bias=False), (2, 3, 4, 4)),
    "convT-stride2": (lambda: Conv2DTranspose(2, 3, stride=2, padding=1, output_padding=1), (2, 3, 3, 4)),
    "convT-dilated": (lambda: Conv2DTranspose(3, (2, 3), stride=(1, 2), dilation=2), (1, 2, 3, 3)),
    "maxpool-2": (lambda: MaxPool2D(), (2, 2, 6, 6)),
    "maxpool-overlap-pad": (lambda: MaxPool2D(3, stride=2, padding=1), (2, 2, 7, 6)),
    "avgpool-2": (lambda: AvgPool2D((2, 3)), (2, 2, 6, 7)),
    "avgpool-overlap-pad": (lambda: AvgPool2D(3, stride=1, padding=1), (2, 2, 5, 5)),
    "global-avg": (lambda: GlobalAvgPool2D(), (2, 3, 4, 5)),
    "upsample-2": (lambda: UpSampling2D(), (2, 2, 3, 3)),
    "upsample-2x3": (lambda: UpSampling2D((2, 3)), (2, 2, 3, 2)),
}


@pytest.mark.parametrize("eng", ENGINES)
@pytest.mark.parametrize("which", LAYERS)
def test_gradient_check(which, eng):
    make, shape = LAYERS[which]
    x = on(eng, np.random.default_rng(0).standard_normal(shape))
    with engine(eng):
        report = check_layer(on_engine(eng, make(), shape), x)
    assert report.passed, report.table()


# ----------------------------------------------------------------------------- PyTorch parity
def run_layer(layer, x, dy, eng):
    """Forward and backward on engine ``eng`` (on the GPU for cupy); the layer is left on the CPU."""
    with engine(eng):
        layer.build(x.shape[1:], rng=0, dtype=x.dtype)
        layer.to("gpu" if eng == "cupy" else "cpu")
        y = layer.forward(on(eng, x))
        dx = layer.backward(on(eng, dy))
    layer.to("cpu")
    return to_numpy(y), to_numpy(dx)


def torch_grads(fn, x, params, dy):
    torch = pytest.importorskip("torch")
    tx = torch.tensor(x, requires_grad=True)
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    ty = fn(tx, **tp)
    ty.backward(torch.tensor(dy))
    return ty.detach().numpy(), tx.grad.numpy(), {k: v.grad.numpy() for k, v in tp.items()}


def close(a, b, dtype):
    assert a.dtype == dtype
    tol = 1e-10 if dtype == np.float64 else 2e-4
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1.0, float(np.abs(b).max())))


CONV_PARITY = [
    dict(filters=4, kernel_size=3, padding="same"),
    dict(filters=3, kernel_size=(3, 2), stride=2, padding=(1, 0), dilation=(1, 2)),
    dict(filters=2, kernel_size=5, padding=4, dilation=2),
    dict(filters=5, kernel_size=1, use_bias=False),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("eng", ENGINES)
@pytest.mark.parametrize("cfg", range(len(CONV_PARITY)))
def test_conv2d_matches_torch(cfg, eng, dtype):
    torch = pytest.importorskip("torch")
    kw = CONV_PARITY[cfg]
    rng = np.random.default_rng(cfg)
    x = rng.standard_normal((2, 3, 9, 8)).astype(dtype)
    layer = Conv2D(**kw)
    out_shape = layer.build(x.shape[1:], rng=0, dtype=dtype)
    dy = rng.standard_normal((2, *out_shape)).astype(dtype)
    y, dx = run_layer(layer, x, dy, eng)
    pad = "same" if kw.get("padding") == "same" else layer.geometry(9, 8)[0].padding

    def fn(x, W, b=None):
        return torch.nn.functional.conv2d(x, W, b, layer.stride, pad, layer.dilation)

    ty, tdx, tgrads = torch_grads(fn, x, layer.params, dy)
    assert y.shape == ty.shape  # the output-size formula
    close(y, ty, dtype)
    close(dx, tdx, dtype)
    for k in layer.params:
        close(layer.grads[k], tgrads[k], dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("eng", ENGINES)
def test_conv2d_transpose_matches_torch(eng, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    for kw in [
        dict(filters=3, kernel_size=3, stride=2, padding=1, output_padding=1),
        dict(filters=2, kernel_size=(2, 3), stride=(3, 1), padding=(0, 1), dilation=(1, 2)),
        dict(filters=4, kernel_size=4, stride=2, padding=1),  # U-Net style exact 2x upsampling
    ]:
        x = rng.standard_normal((2, 3, 4, 5)).astype(dtype)
        layer = Conv2DTranspose(**kw)
        out_shape = layer.build(x.shape[1:], rng=0, dtype=dtype)
        assert layer.params["W"].shape == (3, kw["filters"], *layer.kernel_size)  # (C_in, K, R, S)
        dy = rng.standard_normal((2, *out_shape)).astype(dtype)
        y, dx = run_layer(layer, x, dy, eng)

        def fn(x, W, b, layer=layer):
            F = torch.nn.functional
            return F.conv_transpose2d(x, W, b, layer.stride, layer.padding, layer.output_padding, 1, layer.dilation)

        ty, tdx, tgrads = torch_grads(fn, x, layer.params, dy)
        assert y.shape == ty.shape, kw
        close(y, ty, dtype)
        close(dx, tdx, dtype)
        for k in layer.params:
            close(layer.grads[k], tgrads[k], dtype)


@pytest.mark.parametrize("eng", ENGINES)
def test_pooling_and_upsampling_match_torch(eng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 7, 8)).astype(np.float32)
    cases = [
        (MaxPool2D(), lambda t: F.max_pool2d(t, 2)),
        (MaxPool2D((3, 2), stride=(2, 1), padding=(1, 0)), lambda t: F.max_pool2d(t, (3, 2), (2, 1), (1, 0))),
        (AvgPool2D(), lambda t: F.avg_pool2d(t, 2)),
        (AvgPool2D(3, stride=2, padding=1), lambda t: F.avg_pool2d(t, 3, 2, 1)),
        (GlobalAvgPool2D(), lambda t: t.mean(dim=(2, 3))),
        (UpSampling2D(), lambda t: F.interpolate(t, scale_factor=2, mode="nearest")),
        (UpSampling2D((3, 2)), lambda t: F.interpolate(t, scale_factor=(3, 2), mode="nearest")),
    ]
    for layer, fn in cases:
        out_shape = layer.compute_output_shape(x.shape[1:])
        dy = rng.standard_normal((2, *out_shape)).astype(np.float32)
        y, dx = run_layer(layer, x, dy, eng)
        ty, tdx, _ = torch_grads(fn, x, {}, dy)
        assert y.shape == ty.shape, layer
        close(y, ty, np.float32)
        close(dx, tdx, np.float32)


@pytest.mark.parametrize("eng", ENGINES)
def test_maxpool_tie_goes_to_first_pixel_as_torch(eng):
    torch = pytest.importorskip("torch")
    x = np.ones((1, 1, 4, 4), dtype=np.float32)
    x[0, 0, 2:, 2:] = 0.0
    dy = np.arange(1, 5, dtype=np.float32).reshape(1, 1, 2, 2)
    _, dx = run_layer(MaxPool2D(2), x, dy, eng)
    _, tdx, _ = torch_grads(lambda t: torch.nn.functional.max_pool2d(t, 2), x, {}, dy)
    np.testing.assert_array_equal(dx, tdx)
    assert dx[0, 0, 0, 0] == 1 and dx[0, 0, 2, 2] == 4  # the top-left pixel of each window


# ----------------------------------------------------------------------------- shapes and errors
def test_output_size_formulas():
    assert Conv2D(8, 3).compute_output_shape((3, 32, 30)) == (8, 30, 28)
    assert Conv2D(8, 3, padding="same").compute_output_shape((3, 32, 30)) == (8, 32, 30)
    assert Conv2D(8, 3, padding="same", dilation=4).compute_output_shape((3, 32, 30)) == (8, 32, 30)
    assert Conv2D(8, (5, 3), stride=2, padding=(2, 1)).compute_output_shape((1, 9, 10)) == (8, 5, 5)
    assert Conv2D(2, 3, dilation=2).compute_output_shape((1, 9, 9)) == (2, 5, 5)  # effective size 5
    assert Conv2DTranspose(4, 2, stride=2).compute_output_shape((3, 5, 6)) == (4, 10, 12)
    assert Conv2DTranspose(4, 3, stride=2, padding=1, output_padding=1).compute_output_shape((3, 5, 6)) == (
        4,
        10,
        12,
    )
    assert MaxPool2D().compute_output_shape((3, 7, 8)) == (3, 3, 4)
    assert AvgPool2D(3, stride=1, padding=1).compute_output_shape((3, 7, 8)) == (3, 7, 8)
    assert GlobalAvgPool2D().compute_output_shape((5, 7, 8)) == (5,)
    assert UpSampling2D((2, 3)).compute_output_shape((5, 7, 8)) == (5, 14, 24)


def test_same_padding_asymmetric_cases_match_explicit_padding(torch):
    """Even kernels and strides: output ceil(H / s), the odd pixel of padding at the bottom/right
    (PyTorch's padding="same" for stride 1, Keras/TensorFlow's for strides)."""
    F = torch.nn.functional
    rng = np.random.default_rng(5)
    for kernel, stride, dilation, size in [((2, 3), 1, 1, (7, 6)), (3, 2, 1, (8, 7)), (4, 2, 1, (9, 9)),
                                           (2, 1, 3, (6, 6)), (5, 3, 1, (10, 11))]:
        layer = Conv2D(3, kernel, stride=stride, padding="same", dilation=dilation)
        x = rng.standard_normal((2, 2, *size))
        layer.build(x.shape[1:], rng=0, dtype=np.float64)
        with engine("numpy"):
            y = layer.forward(x)
            dy = rng.standard_normal(y.shape)
            dx = layer.backward(dy)
        s = layer.stride
        assert y.shape[2:] == (-(-size[0] // s[0]), -(-size[1] // s[1]))
        xt = torch.tensor(x, requires_grad=True)
        geometry, (bottom, right) = layer.geometry(*size)
        top, left = geometry.padding
        xp_ = F.pad(xt, (left, left + right, top, top + bottom))
        yt = F.conv2d(xp_, torch.tensor(layer.params["W"]), torch.tensor(layer.params["b"]),
                      stride=layer.stride, dilation=layer.dilation)
        yt.backward(torch.tensor(dy))
        np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-12)
        np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-12)
        if stride == 1:  # PyTorch's own "same" agrees (it warns that it pads a copy, as we do)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                yt2 = F.conv2d(torch.tensor(x), torch.tensor(layer.params["W"]), torch.tensor(layer.params["b"]),
                               padding="same", dilation=layer.dilation)
            np.testing.assert_allclose(y, yt2.numpy(), atol=1e-12)
        report = check_layer(Conv2D(2, kernel, stride=stride, padding="same", dilation=dilation), x[:1, :, :6, :6])
        assert report.passed, report.table()
    with pytest.raises(ValueError, match="padding must be"):
        Conv2D(4, 3, padding="full")


@pytest.mark.parametrize(
    "layer,shape",
    [
        (Conv2D(4, 5, name="conv1"), (3, 4, 10)),
        (Conv2D(4, 3, dilation=3, name="conv1"), (3, 6, 10)),
        (MaxPool2D(4, name="pool1"), (3, 3, 10)),
        (AvgPool2D(4, name="pool1"), (3, 10, 2)),
        (Conv2DTranspose(4, 1, padding=1, name="up1"), (3, 2, 5)),
    ],
)
def test_empty_output_error_names_layer_and_shapes(layer, shape):
    with pytest.raises(ValueError, match=rf"{layer.name}: .*{tuple(shape)}.*output would be"):
        layer.build(shape)


@pytest.mark.parametrize(
    "layer",
    [Conv2D(2, 3), Conv2DTranspose(2, 3), MaxPool2D(), AvgPool2D(), GlobalAvgPool2D(), UpSampling2D()],
)
def test_non_image_input_is_rejected(layer):
    with pytest.raises(ValueError, match=rf"{type(layer).__name__}: expects images \(N, C, H, W\)"):
        layer.build((3, 8))


def test_bad_hyper_parameters():
    with pytest.raises(ValueError, match="filters"):
        Conv2D(0, 3)
    with pytest.raises(ValueError, match="kernel_size"):
        Conv2D(2, (3, 0))
    with pytest.raises(ValueError, match="at most half"):
        MaxPool2D(2, padding=2)
    with pytest.raises(ValueError, match="output_padding"):
        Conv2DTranspose(2, 3, stride=2, output_padding=2)


def test_built_layer_rejects_other_input_shape():
    layer = Conv2D(2, 3)
    layer.build((3, 8, 8))
    with engine("numpy"), pytest.raises(ValueError, match="Conv2D"):
        layer.forward(np.zeros((1, 2, 8, 8), np.float32))


def test_params_dtype_init_and_config():
    conv = Conv2D(8, (3, 5), kernel_init="glorot_uniform")
    conv.build((4, 16, 16), rng=0)
    W = conv.params["W"]
    assert W.shape == (8, 4, 3, 5) and conv.params["b"].shape == (8,) and W.dtype == np.float32
    assert np.abs(W).max() <= np.sqrt(6 / (4 * 15 + 8 * 15))  # fan_in = C R S, fan_out = K R S
    with engine("numpy"):
        y = conv.forward(np.zeros((1, 4, 16, 16), np.float32))
    assert y.dtype == np.float32
    convT = Conv2DTranspose(2, 3)
    convT.build((6, 5, 5), rng=0)
    assert convT.params["W"].shape == (6, 2, 3, 3)
    assert np.abs(convT.params["W"]).max() <= np.sqrt(6 / (2 * 9 + 6 * 9))
    assert repr(Conv2D(8, 3, padding="same")) == (
        "Conv2D(filters=8, kernel_size=(3, 3), stride=(1, 1), padding='same', dilation=(1, 1), use_bias=True)"
    )
    assert repr(MaxPool2D(3)) == "MaxPool2D(pool_size=(3, 3), stride=(3, 3), padding=(0, 0))"
    assert repr(UpSampling2D()) == "UpSampling2D(size=(2, 2))"


def test_layer_uses_params_dict_as_source_of_truth():
    conv = Conv2D(1, 1, use_bias=False)
    conv.build((1, 2, 2), rng=0)
    conv.params["W"] = np.full((1, 1, 1, 1), 2.0, np.float32)
    x = np.ones((1, 1, 2, 2), np.float32)
    with engine("numpy"):
        np.testing.assert_array_equal(conv.forward(x), 2 * x)
