"""Convolution and pooling kernels: reference and numpy engines vs each other, central
differences and PyTorch, on many seeded random configurations (float64 and float32)."""

from __future__ import annotations

import numpy as np
import pytest

from configs import pool_configs
from handprop.gradcheck import numeric_gradient
from handprop.kernels import im2col, reference
from handprop.kernels.reference import output_size

ENGINES = {"reference": reference, "numpy": im2col}
DTYPES = [np.float64, np.float32]
TOL = {np.float64: dict(rtol=1e-10, atol=1e-10), np.float32: dict(rtol=1e-4, atol=2e-4)}


# ----------------------------------------------------------------------------- configurations
def conv_configs(count, seed, max_hw, max_ch):
    """Seeded random conv geometries: channels, sizes, (non-)square kernels, strides, paddings,
    dilations; only those with a non-empty output."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        N, C, K = (int(v) for v in rng.integers(1, [4, max_ch + 1, max_ch + 1]))
        H, W = (int(v) for v in rng.integers(3, max_hw + 1, 2))
        R, S = (int(v) for v in rng.integers(1, 5, 2))
        stride = tuple(int(v) for v in rng.integers(1, 4, 2))
        padding = tuple(int(v) for v in rng.integers(0, 3, 2))
        dilation = tuple(int(v) for v in rng.integers(1, 3, 2))
        if output_size(H, R, stride[0], padding[0], dilation[0]) < 1:
            continue
        if output_size(W, S, stride[1], padding[1], dilation[1]) < 1:
            continue
        out.append(dict(x=(N, C, H, W), W=(K, C, R, S), stride=stride, padding=padding, dilation=dilation))
    return out


# the reference engine is slow: small shapes; the numpy engine gets more and bigger ones
CONV = {"reference": conv_configs(24, 1, 9, 4), "numpy": conv_configs(80, 2, 16, 8)}
POOL = {"reference": pool_configs(24, 3, 9, 3), "numpy": pool_configs(80, 4, 16, 6)}
CONV_CASES = [(e, i) for e in ENGINES for i in range(len(CONV[e]))]
POOL_CASES = [(e, i) for e in ENGINES for i in range(len(POOL[e]))]


def geometry(cfg):
    return cfg["stride"], cfg["padding"], cfg["dilation"]


def conv_data(cfg, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(cfg["x"]).astype(dtype)
    W = rng.standard_normal(cfg["W"]).astype(dtype)
    b = rng.standard_normal(cfg["W"][0]).astype(dtype)
    (sh, sw), (ph, pw), (dh, dw) = geometry(cfg)
    N, _, H, Wd = cfg["x"]
    K, _, R, S = cfg["W"]
    y_shape = (N, K, output_size(H, R, sh, ph, dh), output_size(Wd, S, sw, pw, dw))
    dy = rng.standard_normal(y_shape).astype(dtype)
    return x, W, b, dy


def assert_close(actual, expected, dtype, what):
    assert actual.dtype == dtype, f"{what}: dtype {actual.dtype}, expected {np.dtype(dtype)}"
    scale = max(1.0, float(np.abs(expected).max()) if expected.size else 1.0)
    tol = TOL[dtype]
    np.testing.assert_allclose(actual, expected, rtol=tol["rtol"], atol=tol["atol"] * scale, err_msg=what)


# ----------------------------------------------------------------------------- convolution vs torch
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("engine,case", CONV_CASES)
def test_conv2d_matches_torch(engine, case, dtype):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    k, cfg = ENGINES[engine], CONV[engine][case]
    x, W, b, dy = conv_data(cfg, dtype, seed=case)
    # the truth: torch in float64 on the very same (possibly float32-rounded) numbers
    tx, tW, tb = (torch.tensor(a.astype(np.float64), requires_grad=True) for a in (x, W, b))
    ty = F.conv2d(tx, tW, tb, *geometry(cfg))
    ty.backward(torch.tensor(dy.astype(np.float64)))

    x0, W0, dy0 = x.copy(), W.copy(), dy.copy()
    y = k.conv2d_forward(x, W, b, *geometry(cfg))
    dx = k.conv2d_backward_input(dy, W, x.shape, *geometry(cfg))
    dW = k.conv2d_backward_weight(dy, x, W.shape, *geometry(cfg))
    assert_close(y, ty.detach().numpy(), dtype, f"{engine} y {cfg}")
    assert_close(dx, tx.grad.numpy(), dtype, f"{engine} dx {cfg}")
    assert_close(dW, tW.grad.numpy(), dtype, f"{engine} dW {cfg}")
    assert_close(dy.sum(axis=(0, 2, 3)), tb.grad.numpy(), dtype, f"{engine} db {cfg}")
    for before, after in ((x0, x), (W0, W), (dy0, dy)):
        np.testing.assert_array_equal(before, after)  # kernels never write into their inputs


@pytest.mark.parametrize("engine", ENGINES)
def test_conv_transpose2d_is_conv_input_gradient(engine):
    """``conv2d_backward_input`` applied forward is PyTorch's ``conv_transpose2d``."""
    torch = pytest.importorskip("torch")
    k = ENGINES[engine]
    rng = np.random.default_rng(5)
    for cfg in conv_configs(8, 6, 7, 3):
        (sh, sw), (ph, pw), (dh, dw) = geometry(cfg)
        N, C_in, H, Wd = cfg["x"][0], cfg["W"][0], *cfg["x"][2:]  # x of the transposed conv
        K, R, S = cfg["W"][1:]
        op = (int(rng.integers(0, sh)), int(rng.integers(0, sw)))
        Ho = (H - 1) * sh - 2 * ph + dh * (R - 1) + op[0] + 1
        Wo = (Wd - 1) * sw - 2 * pw + dw * (S - 1) + op[1] + 1
        if Ho < 1 or Wo < 1:
            continue
        x = rng.standard_normal((N, C_in, H, Wd))
        W = rng.standard_normal((C_in, K, R, S))
        expected = torch.nn.functional.conv_transpose2d(
            torch.tensor(x), torch.tensor(W), None, (sh, sw), (ph, pw), op, 1, (dh, dw)
        ).numpy()
        y = k.conv2d_backward_input(x, W, (N, K, Ho, Wo), *geometry(cfg))
        assert_close(y, expected, np.float64, f"{engine} transposed {cfg} output_padding={op}")


# ----------------------------------------------------------------------------- engines agree
def assert_numpy_engine_matches_reference(x, W, b, dy, g):
    for op, args in [
        ("conv2d_forward", (x, W, b)),
        ("conv2d_backward_input", (dy, W, x.shape)),
        ("conv2d_backward_weight", (dy, x, W.shape)),
    ]:
        fast, slow = getattr(im2col, op)(*args, *g), getattr(reference, op)(*args, *g)
        np.testing.assert_allclose(fast, slow, err_msg=op)


@pytest.mark.parametrize("case", range(len(CONV["reference"])))
def test_numpy_engine_matches_reference(case):
    cfg = CONV["reference"][case]
    assert_numpy_engine_matches_reference(*conv_data(cfg, np.float64, seed=100 + case), geometry(cfg))


@pytest.mark.parametrize("budget", [1, 700, 5000])
def test_numpy_engine_chunking_changes_nothing(monkeypatch, budget):
    """Tiny chunk budgets force row bands (1 row each, or a few) and image groups."""
    monkeypatch.setattr(im2col, "CHUNK_BYTES", budget)
    for i, cfg in enumerate(conv_configs(12, 7, 12, 4)):
        assert_numpy_engine_matches_reference(*conv_data(cfg, np.float64, seed=200 + i), geometry(cfg))


def test_chunk_plan_keeps_column_buffer_bounded():
    """A 584 x 565 retina image with 64 channels, 3 x 3 kernel: every chunk <= CHUNK_BYTES."""
    C, R, S, Ho, Wo, itemsize = 64, 3, 3, 584, 565, 4
    row_bytes = C * R * S * Wo * itemsize
    chunks = list(im2col._chunks(1, Ho, row_bytes))
    assert len(chunks) > 1
    assert all((n1 - n0) * (i1 - i0) * row_bytes <= im2col.CHUNK_BYTES for n0, n1, i0, i1 in chunks)
    covered = [i for _, _, i0, i1 in chunks for i in range(i0, i1)]
    assert covered == list(range(Ho))
    many = list(im2col._chunks(10, 8, 1000))  # small images are grouped, every image once
    assert [n for n0, n1, _, _ in many for n in range(n0, n1)] == list(range(10))


# ----------------------------------------------------------------------------- central differences
@pytest.mark.parametrize("case", range(4))
@pytest.mark.parametrize("engine", ENGINES)
def test_conv2d_gradients_match_central_differences(engine, case):
    """Independent of torch: dx and dW are the gradients of L = sum(conv(x, W) * dy)."""
    k, cfg = ENGINES[engine], conv_configs(4, 8, 6, 3)[case]
    x, W, b, dy = conv_data(cfg, np.float64, seed=300 + case)
    g = geometry(cfg)
    loss = lambda: float(np.sum(k.conv2d_forward(x, W, b, *g) * dy))
    num_dx = numeric_gradient(loss, x, np.arange(x.size))
    num_dW = numeric_gradient(loss, W, np.arange(W.size))
    np.testing.assert_allclose(k.conv2d_backward_input(dy, W, x.shape, *g).ravel(), num_dx, atol=1e-7)
    np.testing.assert_allclose(k.conv2d_backward_weight(dy, x, W.shape, *g).ravel(), num_dW, atol=1e-7)


# ----------------------------------------------------------------------------- pooling
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("engine,case", POOL_CASES)
def test_pooling_matches_torch(engine, case, dtype):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    k, cfg = ENGINES[engine], POOL[engine][case]
    rng = np.random.default_rng(400 + case)
    x = rng.standard_normal(cfg["x"]).astype(dtype)
    if case % 3 == 0:  # few distinct values: many ties inside windows
        x = np.round(x).astype(dtype)
    pool, stride, padding = cfg["pool"], cfg["stride"], cfg["padding"]

    tx = torch.tensor(x, requires_grad=True)
    ty, tidx = F.max_pool2d(tx, pool, stride, padding, return_indices=True)
    dy = rng.standard_normal(ty.shape).astype(dtype)
    ty.backward(torch.tensor(dy))
    y, argmax = k.maxpool2d_forward(x, pool, stride, padding)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_array_equal(argmax, tidx.numpy())  # same winner, ties included
    dx = k.maxpool2d_backward(dy, argmax, x.shape)
    assert_close(dx, tx.grad.numpy(), dtype, f"{engine} maxpool dx {cfg}")

    tx = torch.tensor(x.astype(np.float64), requires_grad=True)
    ty = F.avg_pool2d(tx, pool, stride, padding)  # count_include_pad=True, ceil_mode=False
    ty.backward(torch.tensor(dy.astype(np.float64)))
    assert_close(k.avgpool2d_forward(x, pool, stride, padding), ty.detach().numpy(), dtype, f"avg y {cfg}")
    dx = k.avgpool2d_backward(dy, x.shape, pool, stride, padding)
    assert_close(dx, tx.grad.numpy(), dtype, f"{engine} avgpool dx {cfg}")


@pytest.mark.parametrize("engine", ENGINES)
def test_maxpool_tie_rule_and_padding(engine):
    k = ENGINES[engine]
    x = np.zeros((1, 1, 4, 4))  # every window is a tie: the first pixel in row-major order wins
    y, argmax = k.maxpool2d_forward(x, (2, 2), (2, 2), (0, 0))
    np.testing.assert_array_equal(argmax[0, 0], [[0, 2], [8, 10]])
    # with padding, the first *real* pixel wins a tie; -inf padding never does, even against -inf
    x = np.full((1, 1, 3, 3), -np.inf)
    y, argmax = k.maxpool2d_forward(x, (3, 3), (2, 2), (1, 1))
    np.testing.assert_array_equal(argmax[0, 0], [[0, 1], [3, 4]])
    dx = k.maxpool2d_backward(np.ones((1, 1, 2, 2)), argmax, x.shape)
    assert dx.sum() == 4 and dx[0, 0, 0, 0] == 1
    # overlapping windows sharing one winner add their gradients
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 5.0
    y, argmax = k.maxpool2d_forward(x, (2, 2), (1, 1), (0, 0))
    assert (argmax == 4).all()
    dx = k.maxpool2d_backward(np.full((1, 1, 2, 2), 0.5), argmax, x.shape)
    assert dx[0, 0, 1, 1] == 2.0 and dx.sum() == 2.0


@pytest.mark.parametrize("engine", ENGINES)
def test_pool_padding_larger_than_half_window_is_rejected(engine):
    k = ENGINES[engine]
    with pytest.raises(ValueError, match="at most half"):
        k.maxpool2d_forward(np.zeros((1, 1, 4, 4)), (2, 2), (1, 1), (2, 0))
    with pytest.raises(ValueError, match="at most half"):
        k.avgpool2d_forward(np.zeros((1, 1, 4, 4)), (3, 3), (1, 1), (0, 2))


def test_float32_stays_float32_in_every_kernel():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 3, 8, 7)).astype(np.float32)
    W = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = np.zeros(4, np.float32)
    g = ((1, 1), (1, 1), (1, 1))
    for k in ENGINES.values():
        y = k.conv2d_forward(x, W, b, *g)
        assert y.dtype == np.float32
        assert k.conv2d_backward_input(y, W, x.shape, *g).dtype == np.float32
        assert k.conv2d_backward_weight(y, x, W.shape, *g).dtype == np.float32
        ym, am = k.maxpool2d_forward(x, (2, 2), (2, 2), (0, 0))
        assert ym.dtype == np.float32 and np.issubdtype(am.dtype, np.integer)
        assert k.maxpool2d_backward(ym, am, x.shape).dtype == np.float32
        ya = k.avgpool2d_forward(x, (2, 2), (2, 2), (0, 0))
        assert ya.dtype == np.float32
        assert k.avgpool2d_backward(ya, x.shape, (2, 2), (2, 2), (0, 0)).dtype == np.float32
