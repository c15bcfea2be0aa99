"""Every engine against the definition: the kernel API, run on reference, numpy, numba and cupy.

The reference engine (the loops) is checked against PyTorch and central differences; every other
engine against the reference on many seeded geometries, float64 and float32 (test ids name each
geometry: ``x2x3x9x8-W4x3x3x3-s12-p01-d11`` is x (2, 3, 9, 8), W (4, 3, 3, 3), stride (1, 2),
padding (0, 1), dilation (1, 1)). Volumes run through the same tests: an ``x`` of five sizes
(``x1x2x5x6x4-W3x2x2x3x1-s121-...``) is a 3-D geometry, checked with the ``conv3d``/``maxpool3d``/
``avgpool3d`` kernels against ``F.conv3d``, ``F.max_pool3d``... The cupy cases run only with CuPy
and a GPU (``-m gpu``).
"""

from __future__ import annotations

import numpy as np
import pytest

import handprop as hp
from engines import (
    DTYPE_PARAMS,
    ENGINE_PARAMS,
    FAST_ENGINE_PARAMS,
    GEMM_CONV,
    WINOGRAD_CONV,
    assert_close,
    conv_configs,
    conv_data,
    kernels,
    on,
    pool_configs,
)
from handprop.backend import to_numpy
from handprop.gradcheck import numeric_gradient
from handprop.kernels import API, reference
from handprop.kernels.geometry import ConvGeometry, PoolGeometry

# the loops are slow: small shapes; volumes (dims=3) smaller still
REFERENCE_CONV = conv_configs(16, 1, 9, 4) + conv_configs(8, 11, 6, 3, max_k=3, dims=3)
FAST_CONV = (conv_configs(40, 2, 16, 8, max_k=5) + conv_configs(12, 12, 8, 4, max_k=3, dims=3) + WINOGRAD_CONV
             + GEMM_CONV)
REFERENCE_POOL = pool_configs(16, 3, 9, 3) + pool_configs(8, 13, 6, 2, dims=3)
FAST_POOL = pool_configs(30, 4, 16, 6) + pool_configs(10, 14, 8, 3, dims=3)


def nd(cfg):
    """``"2d"`` for images, ``"3d"`` for volumes: the suffix of the kernels (and torch functions)."""
    return f"{len(cfg['x']) - 2}d"


def torch_has_avgpool(cfg):
    """Does PyTorch's average pooling compute this geometry? It has no dilation, and its 3-D version
    refuses an input smaller than the window even when padding makes room (2-D takes it)."""
    pool, _, _, dilation = cfg["geometry"]
    return set(dilation) == {1} and (len(pool) == 2 or all(n >= k for n, k in zip(cfg["x"][2:], pool)))


def spatial_axes(cfg):
    return (0, *range(2, len(cfg["x"])))


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
def test_every_engine_implements_the_whole_api(engine):
    module = kernels(engine)
    missing = [op for op in API if not callable(getattr(module, op, None))]
    assert not missing, f"engine {engine} lacks {missing}"


# ----------------------------------------------------------------------------- the definition vs torch
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("cfg", REFERENCE_CONV)
def test_reference_conv_matches_torch(cfg, dtype, torch):
    F = torch.nn.functional
    x, W, b, dy = conv_data(cfg, dtype, seed=1)
    # the truth: torch in float64 on the very same (possibly float32-rounded) numbers
    tx, tW, tb = (torch.tensor(a.astype(np.float64), requires_grad=True) for a in (x, W, b))
    ty = getattr(F, f"conv{nd(cfg)}")(tx, tW, tb, *cfg["geometry"])
    ty.backward(torch.tensor(dy.astype(np.float64)))
    x0, W0, dy0 = x.copy(), W.copy(), dy.copy()
    y, cache = getattr(reference, f"conv{nd(cfg)}_forward")(x, W, b, cfg["geometry"])
    dx, dW, db = getattr(reference, f"conv{nd(cfg)}_backward")(dy, cache)
    for name, ours, theirs in (("y", y, ty), ("dx", dx, tx.grad), ("dW", dW, tW.grad), ("db", db, tb.grad)):
        assert_close(ours, theirs.detach().numpy(), dtype, name)
    for before, after in ((x0, x), (W0, W), (dy0, dy)):
        np.testing.assert_array_equal(before, after)  # kernels never write into their inputs


@pytest.mark.parametrize("cfg", conv_configs(4, 8, 6, 3) + conv_configs(2, 15, 5, 2, max_k=2, dims=3))
def test_reference_conv_gradients_are_central_differences(cfg):
    """Independent of torch: dx and dW are the gradients of L = sum(conv(x, W) * dy)."""
    x, W, b, dy = conv_data(cfg, np.float64, seed=3)
    conv, forward, backward = (getattr(reference, f"conv{nd(cfg)}{s}") for s in ("", "_forward", "_backward"))
    loss = lambda: float(np.sum(conv(x, W, b, cfg["geometry"]) * dy))
    num_dx = numeric_gradient(loss, x, np.arange(x.size))
    num_dW = numeric_gradient(loss, W, np.arange(W.size))
    dx, dW, db = backward(dy, forward(x, W, b, cfg["geometry"])[1])
    np.testing.assert_allclose(dx.ravel(), num_dx, atol=1e-7)
    np.testing.assert_allclose(dW.ravel(), num_dW, atol=1e-7)


@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("cfg", REFERENCE_POOL)
def test_reference_pooling_matches_torch(cfg, dtype, torch):
    F = torch.nn.functional
    rng = np.random.default_rng(4)
    x = np.round(rng.standard_normal(cfg["x"])).astype(dtype)  # few distinct values: many ties
    pool, stride, padding, dilation = cfg["geometry"]
    tx = torch.tensor(x, requires_grad=True)
    ty, tidx = getattr(F, f"max_pool{nd(cfg)}")(tx, pool, stride, padding, dilation, return_indices=True)
    dy = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    ty.backward(torch.tensor(dy))
    max_forward, max_backward, avg_forward, avg_backward = (
        getattr(reference, f"{kind}pool{nd(cfg)}_{way}") for kind in ("max", "avg") for way in ("forward", "backward"))
    y, cache = max_forward(x, cfg["geometry"])
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_array_equal(cache[0], tidx.numpy())  # the same winner, ties included
    assert_close(max_backward(dy, cache), tx.grad.numpy(), dtype, "max dx")
    if not torch_has_avgpool(cfg):
        return  # checked against central differences instead (the next test)
    tx = torch.tensor(x.astype(np.float64), requires_grad=True)
    ta = getattr(F, f"avg_pool{nd(cfg)}")(tx, pool, stride, padding)  # count_include_pad=True, ceil_mode=False
    ta.backward(torch.tensor(dy.astype(np.float64)))
    y, cache = avg_forward(x, cfg["geometry"])
    assert_close(y, ta.detach().numpy(), dtype, "avg y")
    assert_close(avg_backward(dy, cache), tx.grad.numpy(), dtype, "avg dx")


# ----------------------------------------------------------------------------- every engine vs the definition
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("cfg", FAST_CONV)
@pytest.mark.parametrize("engine", FAST_ENGINE_PARAMS)
def test_conv_matches_reference(engine, cfg, dtype):
    k, d = kernels(engine), nd(cfg)
    x, W, b, dy = conv_data(cfg, dtype, seed=5)
    g = cfg["geometry"]
    ref_y = getattr(reference, f"conv{d}")(x, W, b, g)
    ref_dx = getattr(reference, f"conv{d}_input_grad")(dy, W, x.shape, g)
    ref_dW = getattr(reference, f"conv{d}_weight_grad")(dy, x, W.shape, g)
    forward, backward = getattr(k, f"conv{d}_forward"), getattr(k, f"conv{d}_backward")
    x0, W0, dy0 = x.copy(), W.copy(), dy.copy()
    xd, Wd, bd, dyd = on(engine, x, W, b, dy)
    for training in (True, False):  # the numba engine keeps its columns only in training
        y, cache = forward(xd, Wd, bd, g, training)
        dx, dW, db = backward(dyd, cache, need_dx=True)
        assert_close(y, ref_y, dtype, f"y training={training}")
        assert_close(dx, ref_dx, dtype, "dx")
        assert_close(dW, ref_dW, dtype, "dW")
        assert_close(db, dy.sum(axis=spatial_axes(cfg)), dtype, "db")
    y, cache = forward(xd, Wd, None, g, True)
    dx, dW, db = backward(dyd, cache, need_dx=False)
    assert dx is None and db is None
    assert_close(y, getattr(reference, f"conv{d}")(x, W, None, g), dtype, "y without bias")
    assert_close(dW, ref_dW, dtype, "dW without dx")
    for before, after in ((x0, x), (W0, W), (dy0, dy)):
        np.testing.assert_array_equal(before, to_numpy(after))  # kernels never write into their inputs


@pytest.mark.parametrize("cfg", conv_configs(8, 6, 7, 3))
@pytest.mark.parametrize("engine", ENGINE_PARAMS)
def test_conv_transpose_matches_torch(engine, cfg, torch):
    """The transposed pair: PyTorch's ``conv_transpose2d`` and its gradients."""
    k = kernels(engine)
    (sh, sw), (ph, pw), (dh, dw) = cfg["geometry"]
    rng = np.random.default_rng(6)
    N, (C_in, K, R, S), (H, Wd) = cfg["x"][0], cfg["W"], cfg["x"][2:]  # x of the transposed conv has C_in = K
    op = (int(rng.integers(0, sh)), int(rng.integers(0, sw)))
    Ho, Wo = (H - 1) * sh - 2 * ph + dh * (R - 1) + op[0] + 1, (Wd - 1) * sw - 2 * pw + dw * (S - 1) + op[1] + 1
    if Ho < 1 or Wo < 1:
        pytest.skip("empty output")
    x, W, b = rng.standard_normal((N, C_in, H, Wd)), rng.standard_normal((C_in, K, R, S)), rng.standard_normal(K)
    dy = rng.standard_normal((N, K, Ho, Wo))
    tx, tW, tb = (torch.tensor(a, requires_grad=True) for a in (x, W, b))
    ty = torch.nn.functional.conv_transpose2d(tx, tW, tb, (sh, sw), (ph, pw), op, 1, (dh, dw))
    ty.backward(torch.tensor(dy))
    y, cache = k.conv2d_transpose_forward(*on(engine, x, W, b), cfg["geometry"], (N, K, Ho, Wo))
    dx, dW, db = k.conv2d_transpose_backward(on(engine, dy), cache)
    for name, ours, theirs in (("y", y, ty), ("dx", dx, tx.grad), ("dW", dW, tW.grad), ("db", db, tb.grad)):
        assert_close(ours, theirs.detach().numpy(), np.float64, name)


@pytest.mark.parametrize("cfg", [c for c in REFERENCE_POOL if not torch_has_avgpool(c.values[0])])
def test_reference_avgpool_gradient_is_central_differences(cfg):
    """Average pooling where PyTorch has none to compare with (dilated windows; 3-D windows larger
    than the unpadded input): the gradient is the one of the forward pass."""
    forward, backward = (getattr(reference, f"avgpool{nd(cfg)}_{way}") for way in ("forward", "backward"))
    x = np.random.default_rng(8).standard_normal(cfg["x"])
    y, cache = forward(x, cfg["geometry"])
    dy = np.random.default_rng(9).standard_normal(y.shape)
    num = numeric_gradient(lambda: float(np.sum(forward(x, cfg["geometry"])[0] * dy)), x, np.arange(x.size))
    np.testing.assert_allclose(backward(dy, cache).ravel(), num, atol=1e-8)


@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("cfg", FAST_POOL)
@pytest.mark.parametrize("engine", FAST_ENGINE_PARAMS)
def test_pooling_matches_reference(engine, cfg, dtype):
    k, d = kernels(engine), nd(cfg)
    rng = np.random.default_rng(7)
    x = rng.standard_normal(cfg["x"]).astype(dtype)
    x[0, 0] = np.round(x[0, 0])  # ties: the first maximum in window order must win
    g = cfg["geometry"]
    for kind in ("max", "avg"):
        ref_forward, ref_backward = (getattr(reference, f"{kind}pool{d}_{way}") for way in ("forward", "backward"))
        forward, backward = (getattr(k, f"{kind}pool{d}_{way}") for way in ("forward", "backward"))
        y_ref, cache_ref = ref_forward(x, g)
        y, cache = forward(on(engine, x), g)
        if kind == "max":  # the same winners, exactly
            np.testing.assert_array_equal(to_numpy(y), y_ref)
            np.testing.assert_array_equal(to_numpy(cache[0]), cache_ref[0])
        assert_close(y, y_ref, dtype, f"{kind} y")
        dy = np.random.default_rng(8).standard_normal(y_ref.shape).astype(dtype)
        assert_close(backward(on(engine, dy), cache), ref_backward(dy, cache_ref), dtype, f"{kind} dx")


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
def test_maxpool_ties_padding_nan_and_overlaps(engine):
    k = kernels(engine)
    y, (argmax, _) = k.maxpool2d_forward(on(engine, np.zeros((1, 1, 4, 4))), PoolGeometry((2, 2), (2, 2), (0, 0)))
    np.testing.assert_array_equal(to_numpy(argmax)[0, 0], [[0, 2], [8, 10]])  # a tie: the first pixel wins
    # with padding, the first *real* pixel wins a tie; -inf padding never does, even against -inf
    y, cache = k.maxpool2d_forward(on(engine, np.full((1, 1, 3, 3), -np.inf)), PoolGeometry((3, 3), (2, 2), (1, 1)))
    np.testing.assert_array_equal(to_numpy(cache[0])[0, 0], [[0, 1], [3, 4]])
    dx = to_numpy(k.maxpool2d_backward(on(engine, np.ones((1, 1, 2, 2))), cache))
    assert dx.sum() == 4 and dx[0, 0, 0, 0] == 1
    x = np.zeros((1, 1, 3, 3))  # overlapping windows sharing one winner add their gradients
    x[0, 0, 1, 1] = 5.0
    y, cache = k.maxpool2d_forward(on(engine, x), PoolGeometry((2, 2), (1, 1), (0, 0)))
    assert (to_numpy(cache[0]) == 4).all()
    dx = to_numpy(k.maxpool2d_backward(on(engine, np.full((1, 1, 2, 2), 0.5)), cache))
    assert dx[0, 0, 1, 1] == 2.0 and dx.sum() == 2.0
    x = np.arange(32, dtype=np.float32).reshape(1, 2, 4, 4)  # NaN propagates, as in PyTorch
    x[0, 0, 1, 1] = np.nan
    y, _ = k.maxpool2d_forward(on(engine, x), PoolGeometry((2, 2), (2, 2), (0, 0)))
    assert np.isnan(to_numpy(y)[0, 0, 0, 0]) and not np.isnan(to_numpy(y)[0, 1]).any()
    for forward, dims in ((k.maxpool2d_forward, 2), (k.avgpool2d_forward, 2), (k.maxpool3d_forward, 3),
                          (k.avgpool3d_forward, 3)):
        x = on(engine, np.zeros((1, 1, *(4,) * dims)))
        with pytest.raises(ValueError, match="at most half"):
            forward(x, PoolGeometry((2,) * dims, (1,) * dims, (2,) + (0,) * (dims - 1), (1,) * dims))
        # a dilated window that steps over a 1-pixel axis would read padding only (PyTorch: -inf)
        tiny = on(engine, np.zeros((1, 1, *(4,) * (dims - 1), 1)))
        with pytest.raises(ValueError, match="reads only padding"):
            forward(tiny, PoolGeometry((2,) * dims, (1,) * dims, (0,) * (dims - 1) + (1,), (1,) * (dims - 1) + (2,)))
    with pytest.raises(ValueError, match="does not match the 3 spatial axes"):  # dilation left at its 2-D default
        k.maxpool3d_forward(on(engine, np.zeros((1, 1, 4, 4, 4))), PoolGeometry((2, 2, 2), (2, 2, 2), (0, 0, 0)))


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
def test_float32_stays_float32(engine):
    k = kernels(engine)
    rng = np.random.default_rng(9)
    x, W = (rng.standard_normal(s).astype(np.float32) for s in ((2, 3, 8, 7), (4, 3, 3, 3)))
    x, W, b = on(engine, x, W, np.zeros(4, np.float32))
    y, cache = k.conv2d_forward(x, W, b, ConvGeometry((1, 1), (1, 1), (1, 1)))
    assert all(a.dtype == np.float32 for a in (y, *k.conv2d_backward(y, cache)))
    for forward, backward in ((k.maxpool2d_forward, k.maxpool2d_backward), (k.avgpool2d_forward, k.avgpool2d_backward)):
        y, cache = forward(x, PoolGeometry((2, 2), (2, 2), (0, 0)))
        assert y.dtype == np.float32 and backward(y, cache).dtype == np.float32


# ----------------------------------------------------------------------------- PReLU and ReLU layers on every engine
# Their equations are the layers' NumPy lines; the numba engine runs one-pass loops instead
# (handprop.kernels.FAST), which must give the same numbers.
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("shape, channels", [((3, 4, 5, 6), 4), ((7, 9), 9), ((2, 3, 4, 4), 1)],
                         ids=["per-channel-NCHW", "per-feature-NF", "shared"])
@pytest.mark.parametrize("engine", ENGINE_PARAMS)
def test_prelu_matches_the_formula(engine, shape, channels, dtype):
    rng = np.random.default_rng(4)
    x, dy = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    alpha = rng.uniform(0.1, 0.5, channels).astype(dtype)
    a = alpha.reshape((1, -1) + (1,) * (len(shape) - 2)) if channels > 1 else alpha
    axes = tuple(i for i in range(len(shape)) if channels == 1 or i != 1)
    layer = hp.layers.PReLU(shared=channels == 1)
    layer.build(shape[1:], dtype=dtype)
    layer.params["alpha"] = on(engine, alpha)
    with hp.engine(engine):
        y = layer.forward(on(engine, x))
        dx = layer.backward(on(engine, dy))
        dalpha = layer.grads["alpha"]
        assert layer.backward(on(engine, dy), need_dx=False) is None
    assert_close(y, np.where(x > 0, x, a * x), dtype, "y")
    assert_close(dx, np.where(x > 0, dy, a * dy), dtype, "dx")
    assert_close(dalpha, (dy * np.minimum(x, 0)).sum(axis=axes).reshape(alpha.shape), dtype, "dalpha")


@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (7, 9), (1, 1, 1, 1)], ids=["NCHW", "NF", "one"])
@pytest.mark.parametrize("engine", ENGINE_PARAMS)
def test_relu_matches_the_formula(engine, shape, dtype):
    """``y = max(x, 0)`` with NaN kept (as PyTorch), ``dx = dy`` where x > 0 -- 0 at x = 0 -- exactly."""
    rng = np.random.default_rng(10)
    x, dy = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    special = np.array([0.0, -0.0, np.nan, np.inf, -np.inf], dtype)
    x.reshape(-1)[: min(x.size, 5)] = special[: min(x.size, 5)]
    x0 = x.copy()
    layer = hp.layers.ReLU()
    with hp.engine(engine):
        y = layer.forward(on(engine, x))
        dx = layer.backward(on(engine, dy))
    assert to_numpy(y).dtype == dtype and to_numpy(dx).dtype == dtype
    np.testing.assert_array_equal(to_numpy(y), np.maximum(x, 0))  # NaN equals NaN here
    np.testing.assert_array_equal(to_numpy(dx), np.where(x > 0, dy, 0))
    np.testing.assert_array_equal(x, x0)


UPSAMPLE_CASES = [((2, 3, 4, 5), (2, 2)), ((1, 2, 3, 3), (3, 2)), ((2, 1, 5, 1), (1, 4)), ((1, 1, 1, 1), (2, 2))]


@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("shape, size", UPSAMPLE_CASES, ids=[f"x{'x'.join(map(str, s))}-up{a}{b}"
                                                            for s, (a, b) in UPSAMPLE_CASES])
@pytest.mark.parametrize("engine", ENGINE_PARAMS)
def test_upsample_matches_the_definition(engine, shape, size, dtype):
    """Forward copies exactly; backward sums each block's gradients (the reference's bits on the
    reference and numba engines, which add in the same order)."""
    k = kernels(engine)
    rng = np.random.default_rng(11)
    x = rng.standard_normal(shape).astype(dtype)
    y, cache = k.upsample2d_forward(on(engine, x), size)
    np.testing.assert_array_equal(to_numpy(y), x.repeat(size[0], axis=2).repeat(size[1], axis=3))
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = k.upsample2d_backward(on(engine, dy), cache)
    expected = reference.upsample2d_backward(dy, reference.upsample2d_forward(x, size)[1])
    if engine in ("reference", "numba"):
        np.testing.assert_array_equal(to_numpy(dx), expected)
    assert_close(dx, dy.reshape(*shape[:3], size[0], shape[3], size[1]).sum(axis=(3, 5)), dtype, "dx")


def test_reference_upsample_matches_torch(torch):
    x = np.random.default_rng(12).standard_normal((2, 3, 4, 5))
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.interpolate(tx, scale_factor=(3, 2), mode="nearest")
    dy = np.random.default_rng(13).standard_normal(tuple(ty.shape))
    ty.backward(torch.tensor(dy))
    y, cache = reference.upsample2d_forward(x, (3, 2))
    np.testing.assert_array_equal(y, ty.detach().numpy())
    assert_close(reference.upsample2d_backward(dy, cache), tx.grad.numpy(), np.float64, "dx")
