"""The ``numba`` engine against the ``reference`` engine, PyTorch and central differences.

Many seeded random geometries (channels, sizes, square and non-square kernels, strides, paddings,
dilations), float64 and float32. The first test to run pays Numba's compile time (~25 s on two
cores from a clean clone; the disk cache makes later runs fast), so cases are grouped in a few
tests that loop over configurations rather than many small ones.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

import handprop as hp  # noqa: E402
from configs import pool_configs  # noqa: E402
from handprop.kernels import engine_module, numba_cpu, reference  # noqa: E402
from handprop.kernels.reference import output_size  # noqa: E402

DTYPES = [np.float64, np.float32]
TOL = {np.float64: dict(rtol=1e-10, atol=1e-10), np.float32: dict(rtol=1e-4, atol=1e-4)}
OPS = [
    "conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight", "maxpool2d_forward",
    "maxpool2d_backward", "avgpool2d_forward", "avgpool2d_backward",
]  # fmt: skip


def conv_configs(count, seed, max_hw, max_ch):
    """Seeded random conv geometries with a non-empty output."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        N, C, K = (int(v) for v in rng.integers(1, [4, max_ch + 1, max_ch + 1]))
        H, W = (int(v) for v in rng.integers(3, max_hw + 1, 2))
        R, S = (int(v) for v in rng.integers(1, 6, 2))
        stride = tuple(int(v) for v in rng.integers(1, 4, 2))
        padding = tuple(int(v) for v in rng.integers(0, 4, 2))
        dilation = tuple(int(v) for v in rng.integers(1, 4, 2))
        if min(output_size(H, R, stride[0], padding[0], dilation[0]),
               output_size(W, S, stride[1], padding[1], dilation[1])) < 1:  # fmt: skip
            continue
        out.append(dict(x=(N, C, H, W), W=(K, C, R, S), geometry=(stride, padding, dilation)))
    return out


def conv_data(cfg, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(cfg["x"]).astype(dtype)
    W = rng.standard_normal(cfg["W"]).astype(dtype)
    b = rng.standard_normal(cfg["W"][0]).astype(dtype)
    (sh, sw), (ph, pw), (dh, dw) = cfg["geometry"]
    N, _, H, Wd = cfg["x"]
    K, _, R, S = cfg["W"]
    dy = rng.standard_normal((N, K, output_size(H, R, sh, ph, dh), output_size(Wd, S, sw, pw, dw)))
    return x, W, b, dy.astype(dtype)


def assert_close(actual, expected, dtype, what):
    assert actual.dtype == dtype, f"{what}: dtype {actual.dtype}, expected {np.dtype(dtype)}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(1.0, float(np.abs(expected).max()) if expected.size else 1.0)
    tol = TOL[dtype]
    np.testing.assert_allclose(actual, expected, rtol=tol["rtol"], atol=tol["atol"] * scale, err_msg=what)


def test_engine_module_has_the_kernel_api():
    assert engine_module("numba") is numba_cpu
    for op in OPS:
        assert callable(getattr(numba_cpu, op)), op
    assert numba_cpu.warmup() >= 0.0  # compiles (or loads from cache) every kernel, both dtypes


# ----------------------------------------------------------------------------- vs the reference
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_conv_kernels_match_reference(dtype):
    for i, cfg in enumerate(conv_configs(40, 11, 12, 6)):
        x, W, b, dy = conv_data(cfg, dtype, seed=i)
        g = cfg["geometry"]
        x0, W0, dy0 = x.copy(), W.copy(), dy.copy()
        assert_close(numba_cpu.conv2d_forward(x, W, b, *g), reference.conv2d_forward(x, W, b, *g), dtype,
                     f"y {cfg}")  # fmt: skip
        assert_close(numba_cpu.conv2d_forward(x, W, None, *g), reference.conv2d_forward(x, W, None, *g),
                     dtype, f"y (no bias) {cfg}")  # fmt: skip
        assert_close(numba_cpu.conv2d_backward_input(dy, W, x.shape, *g),
                     reference.conv2d_backward_input(dy, W, x.shape, *g), dtype, f"dx {cfg}")  # fmt: skip
        assert_close(numba_cpu.conv2d_backward_weight(dy, x, W.shape, *g),
                     reference.conv2d_backward_weight(dy, x, W.shape, *g), dtype, f"dW {cfg}")  # fmt: skip
        assert_close(numba_cpu.conv2d_backward_bias(dy), dy.sum(axis=(0, 2, 3)), dtype, f"db {cfg}")
        for before, after in ((x0, x), (W0, W), (dy0, dy)):
            np.testing.assert_array_equal(before, after)  # kernels never write into their inputs


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_pool_kernels_match_reference(dtype):
    for i, cfg in enumerate(pool_configs(30, 12, 12, 4)):
        cfg["geometry"] = (cfg["pool"], cfg["stride"], cfg["padding"])
        rng = np.random.default_rng(i)
        x = rng.standard_normal(cfg["x"]).astype(dtype)
        if i % 3 == 0:  # ties: the first maximum in window order must win, as in the reference
            x = np.round(x).astype(dtype)
        g = cfg["geometry"]
        y, arg = numba_cpu.maxpool2d_forward(x, *g)
        y_ref, arg_ref = reference.maxpool2d_forward(x, *g)
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(arg, arg_ref)
        assert y.dtype == dtype and arg.dtype == np.int64
        dy = rng.standard_normal(y.shape).astype(dtype)
        assert_close(numba_cpu.maxpool2d_backward(dy, arg, x.shape),
                     reference.maxpool2d_backward(dy, arg_ref, x.shape), dtype, f"max dx {cfg}")  # fmt: skip
        assert_close(numba_cpu.avgpool2d_forward(x, *g), reference.avgpool2d_forward(x, *g), dtype, f"avg {cfg}")
        assert_close(numba_cpu.avgpool2d_backward(dy, x.shape, *g),
                     reference.avgpool2d_backward(dy, x.shape, *g), dtype, f"avg dx {cfg}")  # fmt: skip


def test_maxpool_nan_propagates_like_the_reference():
    x = np.arange(32, dtype=np.float32).reshape(1, 2, 4, 4)
    x[0, 0, 1, 1] = np.nan
    y, arg = numba_cpu.maxpool2d_forward(x, (2, 2), (2, 2), (0, 0))
    y_ref, arg_ref = reference.maxpool2d_forward(x, (2, 2), (2, 2), (0, 0))
    np.testing.assert_array_equal(y, y_ref)  # NaN == NaN for assert_array_equal
    np.testing.assert_array_equal(arg, arg_ref)
    assert np.isnan(y[0, 0, 0, 0])


def test_non_contiguous_and_mixed_dtype_inputs():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6, 9, 8)).astype(np.float32)[:, ::2]  # a strided view
    W = rng.standard_normal((4, 3, 3, 2))  # float64 weights with float32 data: output stays float32
    g = ((1, 2), (1, 0), (1, 1))
    y = numba_cpu.conv2d_forward(x, W, None, *g)
    assert y.dtype == np.float32
    assert_close(y, reference.conv2d_forward(x, W.astype(np.float32), None, *g), np.float32, "y")
    dy = rng.standard_normal(y.shape).astype(np.float32).transpose(0, 1, 3, 2).copy().transpose(0, 1, 3, 2)
    assert_close(numba_cpu.conv2d_backward_weight(dy, x, W.shape, *g),
                 reference.conv2d_backward_weight(dy, x, W.shape, *g).astype(np.float32), np.float32, "dW")  # fmt: skip


# ----------------------------------------------------------------------------- vs PyTorch
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_conv_kernels_match_torch(dtype, torch):
    F = torch.nn.functional
    for i, cfg in enumerate(conv_configs(12, 13, 14, 8)):
        x, W, b, dy = conv_data(cfg, dtype, seed=100 + i)
        g = cfg["geometry"]
        tx, tW, tb = (torch.tensor(a.astype(np.float64), requires_grad=True) for a in (x, W, b))
        ty = F.conv2d(tx, tW, tb, *g)
        ty.backward(torch.tensor(dy.astype(np.float64)))
        assert_close(numba_cpu.conv2d_forward(x, W, b, *g), ty.detach().numpy(), dtype, f"y {cfg}")
        assert_close(numba_cpu.conv2d_backward_input(dy, W, x.shape, *g), tx.grad.numpy(), dtype, f"dx {cfg}")
        assert_close(numba_cpu.conv2d_backward_weight(dy, x, W.shape, *g), tW.grad.numpy(), dtype, f"dW {cfg}")
        assert_close(numba_cpu.conv2d_backward_bias(dy), tb.grad.numpy(), dtype, f"db {cfg}")


def test_pool_kernels_match_torch(torch):
    F = torch.nn.functional
    for i, cfg in enumerate(pool_configs(10, 14, 12, 3)):
        pool, stride, padding = cfg["pool"], cfg["stride"], cfg["padding"]
        x = np.random.default_rng(i).standard_normal(cfg["x"])
        tx = torch.tensor(x, requires_grad=True)
        ty, tidx = F.max_pool2d(tx, pool, stride, padding, return_indices=True)
        dy = np.random.default_rng(50 + i).standard_normal(tuple(ty.shape))
        ty.backward(torch.tensor(dy))
        y, arg = numba_cpu.maxpool2d_forward(x, pool, stride, padding)
        assert_close(y, ty.detach().numpy(), np.float64, f"max {cfg}")
        np.testing.assert_array_equal(arg, tidx.numpy())
        assert_close(numba_cpu.maxpool2d_backward(dy, arg, x.shape), tx.grad.numpy(), np.float64, f"max dx {cfg}")
        tx.grad = None
        ta = F.avg_pool2d(tx, pool, stride, padding)  # count_include_pad=True is PyTorch's default
        ta.backward(torch.tensor(dy))
        assert_close(numba_cpu.avgpool2d_forward(x, pool, stride, padding), ta.detach().numpy(), np.float64, "avg")
        assert_close(numba_cpu.avgpool2d_backward(dy, x.shape, pool, stride, padding), tx.grad.numpy(),
                     np.float64, f"avg dx {cfg}")  # fmt: skip


def test_a_big_image_is_cut_into_tasks(torch):
    """One image, many channels: the row tasks of one image are shared by the threads."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 16, 70, 61)).astype(np.float32)
    W = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    g = ((1, 1), (2, 2), (2, 2))
    tx, tW = torch.tensor(x, requires_grad=True), torch.tensor(W, requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tW, None, *g)
    dy = rng.standard_normal(tuple(ty.shape)).astype(np.float32)
    ty.backward(torch.tensor(dy))
    assert_close(numba_cpu.conv2d_forward(x, W, None, *g), ty.detach().numpy(), np.float32, "y")
    assert_close(numba_cpu.conv2d_backward_input(dy, W, x.shape, *g), tx.grad.numpy(), np.float32, "dx")
    assert_close(numba_cpu.conv2d_backward_weight(dy, x, W.shape, *g), tW.grad.numpy(), np.float32, "dW")


# ----------------------------------------------------------------------------- through the layers
@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: hp.layers.Conv2D(3, 3, padding="same"), (2, 2, 6, 5)),
        (lambda: hp.layers.Conv2D(2, (2, 3), stride=2, padding=1, dilation=(2, 1)), (2, 3, 7, 8)),
        (lambda: hp.layers.Conv2DTranspose(2, 3, stride=2, padding=1), (2, 3, 4, 3)),
        (lambda: hp.layers.MaxPool2D(2), (2, 2, 6, 6)),
        (lambda: hp.layers.MaxPool2D(3, stride=2, padding=1), (1, 2, 7, 6)),
        (lambda: hp.layers.AvgPool2D(3, stride=2, padding=1), (1, 2, 7, 6)),
    ],
    ids=["conv-same", "conv-strided-dilated", "conv-transpose", "maxpool", "maxpool-pad", "avgpool-pad"],
)
def test_layers_pass_gradient_check_on_numba(make, shape):
    x = np.random.default_rng(1).standard_normal(shape)
    with hp.engine("numba"):
        report = hp.gradcheck.check_layer(make(), x)
    assert report.passed, report.table()


def test_numba_is_the_default_engine_and_layers_use_it():
    assert hp.backend.default_engine() == "numba"
    x = np.random.default_rng(2).standard_normal((2, 3, 8, 8)).astype(np.float32)
    layer = hp.layers.Conv2D(4, 3)
    with hp.engine("numba"):
        y_numba = layer.forward(x)
    with hp.engine("reference"):
        y_ref = layer.forward(x)
    assert y_numba.dtype == np.float32
    assert_close(y_numba, y_ref, np.float32, "Conv2D forward")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("shape, channels", [((3, 4, 5, 6), 4), ((7, 9), 9), ((2, 3, 4, 4), 1)])
def test_prelu_kernels_match_the_formula(shape, channels, dtype):
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    alpha = rng.uniform(0.1, 0.5, channels).astype(dtype)
    a = alpha.reshape((1, -1) + (1,) * (len(shape) - 2)) if channels > 1 else alpha
    axes = tuple(i for i in range(len(shape)) if channels == 1 or i != 1)
    y = numba_cpu.prelu_forward(x, alpha)
    dx, dalpha = numba_cpu.prelu_backward(dy, x, alpha)
    assert_close(y, np.where(x > 0, x, a * x), dtype, "y")
    assert_close(dx, np.where(x > 0, dy, a * dy), dtype, "dx")
    assert_close(dalpha, (dy * np.minimum(x, 0)).sum(axis=axes).reshape(alpha.shape), dtype, "dalpha")


# ----------------------------------------------------------------------------- fast paths
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_unpadded_maxpool_keeps_ties_nan_and_inf_as_the_reference(dtype):
    """The no-padding kernel (every window inside the image) against the reference, including
    overlapping windows, strides past the window, ties, NaN and all -inf windows."""
    rng = np.random.default_rng(21)
    for pool, stride in [((2, 2), (2, 2)), ((3, 2), (2, 1)), ((2, 3), (3, 3)), ((1, 4), (1, 2)), ((3, 3), (1, 1))]:
        x = np.round(rng.standard_normal((2, 3, 9, 10))).astype(dtype)  # many ties
        x[0, 0, rng.integers(0, 9, 6), rng.integers(0, 10, 6)] = np.nan
        x[0, 1, :4, :4] = -np.inf
        x[1, 2, 2:5, 3:6] = np.inf
        y, arg = numba_cpu.maxpool2d_forward(x, pool, stride, (0, 0))
        y_ref, arg_ref = reference.maxpool2d_forward(x, pool, stride, (0, 0))
        np.testing.assert_array_equal(y, y_ref, err_msg=f"{pool} {stride}")
        np.testing.assert_array_equal(arg, arg_ref, err_msg=f"{pool} {stride}")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_conv_columns_kept_for_the_weight_gradient_match_reference(dtype):
    for i, cfg in enumerate(conv_configs(20, 22, 12, 6)):
        x, W, b, dy = conv_data(cfg, dtype, seed=200 + i)
        g = cfg["geometry"]
        for bias in (b, None):
            y, cols = numba_cpu.conv2d_forward_cols(x, W, bias, *g)
            assert_close(y, reference.conv2d_forward(x, W, bias, *g), dtype, f"y {cfg}")
            assert cols is not None and cols.dtype == dtype
            dW, db = numba_cpu.conv2d_backward_weight_cols(dy, cols, W.shape)
            assert_close(dW, reference.conv2d_backward_weight(dy, x, W.shape, *g), dtype, f"dW {cfg}")
            assert_close(db, dy.sum(axis=(0, 2, 3)), dtype, f"db {cfg}")


def test_conv_columns_are_not_kept_when_big_or_not_training(monkeypatch):
    rng = np.random.default_rng(23)
    x = rng.standard_normal((4, 3, 10, 10)).astype(np.float32)
    W = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    g = ((1, 1), (0, 0), (1, 1))
    monkeypatch.setattr(numba_cpu, "CHUNK_BYTES", 1000)  # smaller than the columns (28 x 256 x 4 B)
    y, cols = numba_cpu.conv2d_forward_cols(x, W, None, *g)
    assert cols is None
    assert_close(y, reference.conv2d_forward(x, W, None, *g), np.float32, "y")
    monkeypatch.undo()
    layer = hp.layers.Conv2D(5, 3)
    with hp.engine("numba"):
        layer.forward(x, training=False)
        assert layer._cols is None  # inference keeps nothing
        y = layer.forward(x, training=True)
        assert layer._cols is not None
        layer.backward(np.ones_like(y))
        assert layer._cols is None  # freed once the weight gradient is computed
        dW, db = layer.grads["W"].copy(), layer.grads["b"].copy()
        layer.backward(np.ones_like(y))  # a second backward recomputes the columns
    assert_close(layer.grads["W"], dW, np.float32, "dW again")
    assert_close(layer.grads["b"], db, np.float32, "db again")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize(
    "kwargs",
    [{}, {"momentum": 0.9}, {"momentum": 0.9, "nesterov": True}, {"momentum": 0.8, "dampening": 0.3},
     {"momentum": 0.5, "weight_decay": 0.01}],
    ids=["plain", "momentum", "nesterov", "dampening", "weight-decay"],
)  # fmt: skip
def test_fused_sgd_update_is_bitwise_the_numpy_update(kwargs, dtype):
    """The numba engine's one-pass SGD keeps NumPy's operation order: the same bits."""
    p0 = np.random.default_rng(24).standard_normal((numba_cpu.SGD_MIN_SIZE // 64, 64)).astype(dtype)
    results = []
    for engine in ("numba", "numpy"):
        p = p0.copy()
        opt = hp.optimizers.SGD(lr=0.013, **kwargs)
        with hp.engine(engine):
            for step in range(3):
                opt.step({"p": p}, {"p": np.sin(p * (step + 1))})
        results.append(p)
    np.testing.assert_array_equal(results[0], results[1])


def test_fused_sgd_update_declines_what_it_does_not_handle():
    n = numba_cpu.SGD_MIN_SIZE
    p = np.ones(2 * n, np.float32)
    assert not numba_cpu.sgd_update(p[:10], p[:10], None, 0.1)  # small: left to NumPy
    assert not numba_cpu.sgd_update(p[::2], p[::2], None, 0.1)  # strided
    assert not numba_cpu.sgd_update(p, p.astype(np.float64), None, 0.1)  # mixed dtypes
    assert not numba_cpu.sgd_update(p.astype(np.float16), p.astype(np.float16), None, 0.1)
    assert (p == 1).all()
    assert numba_cpu.sgd_update(p, np.full_like(p, 2), None, 0.25)
    assert (p == 0.5).all()
