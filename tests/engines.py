"""Shared helpers for the engine tests: the engines to run, seeded geometries with readable ids,
data, and comparisons that move CuPy results to the host."""

from __future__ import annotations

import numpy as np
import pytest

from handprop.backend import gpu_available, numba_available, to_numpy
from handprop.kernels import engine_module
from handprop.kernels.geometry import ConvGeometry, PoolGeometry, output_size

ENGINE_NAMES = ["reference", "numpy", "numba", "cupy"]
ENGINE_PARAMS = [
    pytest.param("reference", id="reference"),
    pytest.param("numpy", id="numpy"),
    pytest.param("numba", id="numba", marks=pytest.mark.skipif(not numba_available(), reason="needs numba")),
    pytest.param("cupy", id="cupy", marks=[pytest.mark.gpu,
                                           pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a GPU")]),
]
FAST_ENGINE_PARAMS = ENGINE_PARAMS[1:]
TOL = {np.float64: dict(rtol=1e-10, atol=1e-10), np.float32: dict(rtol=1e-4, atol=2e-4)}
DTYPE_PARAMS = [pytest.param(np.float64, id="f64"), pytest.param(np.float32, id="f32")]


def kernels(engine):
    return engine_module(engine)


def on(engine, *arrays):
    """The arrays on the device the engine runs on (CuPy for ``cupy``, else unchanged)."""
    if engine != "cupy":
        return arrays if len(arrays) > 1 else arrays[0]
    import cupy as cp

    moved = tuple(None if a is None else cp.asarray(a) for a in arrays)
    return moved if len(moved) > 1 else moved[0]


def conv_id(cfg):
    (sh, sw), (ph, pw), (dh, dw) = cfg["geometry"]
    return (f"x{'x'.join(map(str, cfg['x']))}-W{'x'.join(map(str, cfg['W']))}"
            f"-s{sh}{sw}-p{ph}{pw}-d{dh}{dw}")


def pool_id(cfg):
    (R, S), (sh, sw), (ph, pw), (dh, dw) = cfg["geometry"]
    return f"x{'x'.join(map(str, cfg['x']))}-k{R}{S}-s{sh}{sw}-p{ph}{pw}-d{dh}{dw}"


def conv_configs(count, seed, max_hw, max_ch, max_k=4):
    """Seeded random conv geometries (channels, sizes, non-square kernels, strides, paddings,
    dilations) with a non-empty output, as pytest params whose ids name the geometry."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        N, C, K = (int(v) for v in rng.integers(1, [4, max_ch + 1, max_ch + 1]))
        H, W = (int(v) for v in rng.integers(3, max_hw + 1, 2))
        R, S = (int(v) for v in rng.integers(1, max_k + 1, 2))
        stride = tuple(int(v) for v in rng.integers(1, 4, 2))
        padding = tuple(int(v) for v in rng.integers(0, 3, 2))
        dilation = tuple(int(v) for v in rng.integers(1, 3, 2))
        if min(output_size(H, R, stride[0], padding[0], dilation[0]),
               output_size(W, S, stride[1], padding[1], dilation[1])) < 1:  # fmt: skip
            continue
        cfg = dict(x=(N, C, H, W), W=(K, C, R, S), geometry=ConvGeometry(stride, padding, dilation))
        out.append(pytest.param(cfg, id=conv_id(cfg)))
    return out


def pool_configs(count, seed, max_hw, max_ch, dilate=True):
    """Seeded pooling geometries (padding at most half the window, as PyTorch; every third one
    dilated when ``dilate``), as params."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        N, C = (int(v) for v in rng.integers(1, [4, max_ch + 1]))
        H, W = (int(v) for v in rng.integers(2, max_hw + 1, 2))
        pool = tuple(int(v) for v in rng.integers(1, 5, 2))
        stride = tuple(int(v) for v in rng.integers(1, 4, 2))
        padding = tuple(int(rng.integers(0, p // 2 + 1)) for p in pool)
        dilation = tuple(int(v) for v in rng.integers(1, 3, 2)) if dilate and len(out) % 3 == 2 else (1, 1)
        if min(output_size(n, p, s, q, d) for n, p, s, q, d in zip((H, W), pool, stride, padding, dilation)) < 1:
            continue
        cfg = dict(x=(N, C, H, W), geometry=PoolGeometry(pool, stride, padding, dilation))
        out.append(pytest.param(cfg, id=pool_id(cfg)))
    return out


def conv_data(cfg, dtype, seed):
    """x, W, b and an upstream gradient dy for a conv geometry."""
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
    """Same dtype, same shape, equal to the dtype's tolerance (scaled by the largest value)."""
    actual, expected = to_numpy(actual), to_numpy(expected)
    assert actual.dtype == dtype, f"{what}: dtype {actual.dtype}, expected {np.dtype(dtype)}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(1.0, float(np.abs(expected).max()) if expected.size else 1.0)
    tol = TOL[np.dtype(dtype).type]
    np.testing.assert_allclose(actual, expected, rtol=tol["rtol"], atol=tol["atol"] * scale, err_msg=what)
