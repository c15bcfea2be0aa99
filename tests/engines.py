"""Shared helpers for the engine tests: the engines to run, seeded geometries with readable ids,
data, and comparisons that move CuPy results to the host.

The ``cupy`` engine runs on CuPy with a CUDA GPU, else on the strict NumPy stand-in tests/fake_cupy
(conftest.py chooses); it skips only when neither is there (``HANDPROP_FAKE_CUPY=0`` on a machine
without a GPU)."""

from __future__ import annotations

import numpy as np
import pytest

from handprop.backend import gpu_available, numba_available, to_numpy
from handprop.kernels import engine_module
from handprop.kernels.geometry import ConvGeometry, PoolGeometry, output_size

NO_CUPY = "needs CuPy and a GPU (the stand-in is off: HANDPROP_FAKE_CUPY=0)"
ENGINE_NAMES = ["reference", "numpy", "numba", "cupy"]
ENGINE_PARAMS = [
    pytest.param("reference", id="reference"),
    pytest.param("numpy", id="numpy"),
    pytest.param("numba", id="numba", marks=pytest.mark.skipif(not numba_available(), reason="needs numba")),
    pytest.param("cupy", id="cupy", marks=[pytest.mark.gpu,
                                           pytest.mark.skipif(not gpu_available(), reason=NO_CUPY)]),
]
FAST_ENGINE_PARAMS = ENGINE_PARAMS[1:]
TOL = {np.float64: dict(rtol=1e-10, atol=1e-10), np.float32: dict(rtol=1e-4, atol=2e-4)}
DTYPE_PARAMS = [pytest.param(np.float64, id="f64"), pytest.param(np.float32, id="f32")]


def kernels(engine):
    return engine_module(engine)


def on_engine(engine, layer, input_shape):
    """``layer`` built in float64 for ``input_shape`` (N, ...) and moved to the engine's device."""
    layer.build(input_shape[1:], rng=0, dtype=np.float64)
    return layer.to("gpu") if engine == "cupy" else layer


def on(engine, *arrays):
    """The arrays on the device the engine runs on (CuPy for ``cupy``, else unchanged)."""
    if engine != "cupy":
        return arrays if len(arrays) > 1 else arrays[0]
    import cupy as cp

    moved = tuple(None if a is None else cp.asarray(a) for a in arrays)
    return moved if len(moved) > 1 else moved[0]


def _digits(t):
    return "".join(map(str, t))


def conv_id(cfg):
    stride, padding, dilation = cfg["geometry"]
    return (f"x{'x'.join(map(str, cfg['x']))}-W{'x'.join(map(str, cfg['W']))}"
            f"-s{_digits(stride)}-p{_digits(padding)}-d{_digits(dilation)}")


def pool_id(cfg):
    pool, stride, padding, dilation = cfg["geometry"]
    return (f"x{'x'.join(map(str, cfg['x']))}-k{_digits(pool)}-s{_digits(stride)}-p{_digits(padding)}"
            f"-d{_digits(dilation)}")


def conv_configs(count, seed, max_hw, max_ch, max_k=4, dims=2):
    """Seeded random conv geometries (channels, sizes, non-square kernels, strides, paddings,
    dilations) with a non-empty output, as pytest params whose ids name the geometry. ``dims=3``:
    volumes (N, C, D, H, W)."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        N, C, K = (int(v) for v in rng.integers(1, [4, max_ch + 1, max_ch + 1]))
        sizes = tuple(int(v) for v in rng.integers(3, max_hw + 1, dims))
        kernel = tuple(int(v) for v in rng.integers(1, max_k + 1, dims))
        stride = tuple(int(v) for v in rng.integers(1, 4, dims))
        padding = tuple(int(v) for v in rng.integers(0, 3, dims))
        dilation = tuple(int(v) for v in rng.integers(1, 3, dims))
        if min(output_size(*a) for a in zip(sizes, kernel, stride, padding, dilation)) < 1:
            continue
        cfg = dict(x=(N, C, *sizes), W=(K, C, *kernel), geometry=ConvGeometry(stride, padding, dilation))
        out.append(pytest.param(cfg, id=conv_id(cfg)))
    return out


def conv_cases(*specs):
    """Hand-picked conv geometries ``(x_shape, W_shape, stride, padding, dilation)`` as params with
    the same ids as :func:`conv_configs`."""
    out = []
    for x, W, stride, padding, dilation in specs:
        cfg = dict(x=x, W=W, geometry=ConvGeometry(stride, padding, dilation))
        out.append(pytest.param(cfg, id=conv_id(cfg)))
    return out


WINOGRAD_CONV = conv_cases(  # 3 x 3, stride 1, >= 4 channels, output >= 16 wide: the numba engine's F(4x4, 3x3)
    ((2, 4, 9, 17), (4, 4, 3, 3), (1, 1), (1, 1), (1, 1)),  # partial tiles at both edges
    ((1, 5, 7, 21), (6, 5, 3, 3), (1, 1), (0, 0), (1, 1)),  # no padding: dx pads dy by 2
    ((3, 4, 6, 16), (5, 4, 3, 3), (1, 1), (2, 2), (1, 1)),  # padding 2: dx pads dy by 0
    ((2, 6, 5, 18), (4, 6, 3, 3), (1, 1), (3, 3), (1, 1)),  # padding 3 > 2: dx crops dy
    ((2, 4, 10, 15), (7, 4, 3, 3), (1, 1), (0, 2), (1, 1)),  # unequal padding
    ((1, 4, 1, 20), (4, 4, 3, 3), (1, 1), (1, 1), (1, 1)),  # one row
    ((2, 9, 12, 33), (8, 9, 3, 3), (1, 1), (1, 1), (1, 1)),  # several tiles each way
)
"""Geometries of the Winograd path (tests/test_engine_numba.py checks that they take it)."""

GEMM_CONV = conv_cases(  # 1 x 1, stride 1, no padding: the numba engine's plain matrix products
    ((2, 3, 5, 7), (4, 3, 1, 1), (1, 1), (0, 0), (1, 1)),
    ((1, 1, 4, 4), (2, 1, 1, 1), (1, 1), (0, 0), (1, 1)),
    ((3, 16, 6, 9), (1, 16, 1, 1), (1, 1), (0, 0), (2, 2)),  # dilation does nothing to a 1 x 1 kernel
)
"""Geometries of the 1 x 1 path (checked likewise)."""


def pool_configs(count, seed, max_hw, max_ch, dims=2, dilate=True):
    """Seeded pooling geometries (padding at most half the window, as PyTorch; every third one
    dilated when ``dilate``), as params. ``dims=3``: volumes (N, C, D, H, W)."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        N, C = (int(v) for v in rng.integers(1, [4, max_ch + 1]))
        sizes = tuple(int(v) for v in rng.integers(2, max_hw + 1, dims))
        pool = tuple(int(v) for v in rng.integers(1, 5, dims))
        stride = tuple(int(v) for v in rng.integers(1, 4, dims))
        padding = tuple(int(rng.integers(0, p // 2 + 1)) for p in pool)
        dilation = (tuple(int(v) for v in rng.integers(1, 3, dims)) if dilate and len(out) % 3 == 2
                    else (1,) * dims)
        if min(output_size(*a) for a in zip(sizes, pool, stride, padding, dilation)) < 1:
            continue
        cfg = dict(x=(N, C, *sizes), geometry=PoolGeometry(pool, stride, padding, dilation))
        out.append(pytest.param(cfg, id=pool_id(cfg)))
    return out


def conv_data(cfg, dtype, seed):
    """x, W, b and an upstream gradient dy for a conv geometry (images or volumes)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(cfg["x"]).astype(dtype)
    W = rng.standard_normal(cfg["W"]).astype(dtype)
    b = rng.standard_normal(cfg["W"][0]).astype(dtype)
    out = [output_size(*a) for a in zip(cfg["x"][2:], cfg["W"][2:], *cfg["geometry"])]
    dy = rng.standard_normal((cfg["x"][0], cfg["W"][0], *out))
    return x, W, b, dy.astype(dtype)


def assert_close(actual, expected, dtype, what):
    """Same dtype, same shape, equal to the dtype's tolerance (scaled by the largest value)."""
    actual, expected = to_numpy(actual), to_numpy(expected)
    assert actual.dtype == dtype, f"{what}: dtype {actual.dtype}, expected {np.dtype(dtype)}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(1.0, float(np.abs(expected).max()) if expected.size else 1.0)
    tol = TOL[np.dtype(dtype).type]
    np.testing.assert_allclose(actual, expected, rtol=tol["rtol"], atol=tol["atol"] * scale, err_msg=what)
