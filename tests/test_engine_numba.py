"""What only the ``numba`` engine does: chunking, reusing packed columns, fast paths, the fused
SGD update. (Agreement with the reference on random geometries is in ``test_engines.py``.)

The first test to run pays Numba's compile time (the disk cache makes later runs fast).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

import handprop as hp  # noqa: E402
from engines import DTYPE_PARAMS, assert_close, conv_configs, conv_data  # noqa: E402
from handprop.kernels import engine_module, numba_cpu, reference  # noqa: E402
from handprop.kernels.geometry import ConvGeometry, PoolGeometry  # noqa: E402
from handprop.kernels.numba_cpu import conv as numba_conv  # noqa: E402


def test_engine_module_and_warmup():
    assert engine_module("numba") is numba_cpu
    assert numba_cpu.warmup() >= 0.0  # compiles (or loads from cache) every kernel, both dtypes


def test_non_contiguous_and_mixed_dtype_inputs():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6, 9, 8)).astype(np.float32)[:, ::2]  # a strided view
    W = rng.standard_normal((4, 3, 3, 2))  # float64 weights with float32 data: output stays float32
    g = ConvGeometry((1, 2), (1, 0), (1, 1))
    y = numba_cpu.conv2d(x, W, None, g)
    assert y.dtype == np.float32
    assert_close(y, reference.conv2d(x, W.astype(np.float32), None, g), np.float32, "y")
    dy = rng.standard_normal(y.shape).astype(np.float32).transpose(0, 1, 3, 2).copy().transpose(0, 1, 3, 2)
    assert_close(numba_cpu.conv2d_weight_grad(dy, x, W.shape, g),
                 reference.conv2d_weight_grad(dy, x, W.shape, g).astype(np.float32), np.float32, "dW")  # fmt: skip


def test_a_big_image_is_cut_into_bands(torch, monkeypatch):
    """One image, many channels, a small chunk budget: bands of output rows, shared by the threads."""
    monkeypatch.setattr(numba_conv, "CHUNK_BYTES", 64 * 1024)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 16, 70, 61)).astype(np.float32)
    W = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    g = ConvGeometry((1, 1), (2, 2), (2, 2))
    assert len(list(numba_conv._chunks(1, 70, 61, 16 * 9, 4))) > 4
    tx, tW = torch.tensor(x, requires_grad=True), torch.tensor(W, requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tW, None, *g)
    dy = rng.standard_normal(tuple(ty.shape)).astype(np.float32)
    ty.backward(torch.tensor(dy))
    y, cache = numba_cpu.conv2d_forward(x, W, None, g)
    assert cache.extra is None  # too big to keep the columns with this budget
    dx, dW, _ = numba_cpu.conv2d_backward(dy, cache)
    assert_close(y, ty.detach().numpy(), np.float32, "y")
    assert_close(dx, tx.grad.numpy(), np.float32, "dx")
    assert_close(dW, tW.grad.numpy(), np.float32, "dW")


@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
def test_unpadded_maxpool_keeps_ties_nan_and_inf_as_the_reference(dtype):
    """The no-padding kernel (every window inside the image) against the reference, including
    overlapping windows, strides past the window, ties, NaN and all -inf windows."""
    rng = np.random.default_rng(21)
    for pool, stride, dilation in [((2, 2), (2, 2), (1, 1)), ((3, 2), (2, 1), (1, 1)), ((2, 3), (3, 3), (1, 1)),
                                   ((1, 4), (1, 2), (1, 1)), ((3, 3), (1, 1), (1, 1)), ((2, 2), (1, 1), (2, 3)),
                                   ((3, 2), (2, 1), (2, 2))]:  # fmt: skip
        x = np.round(rng.standard_normal((2, 3, 9, 10))).astype(dtype)  # many ties
        x[0, 0, rng.integers(0, 9, 6), rng.integers(0, 10, 6)] = np.nan
        x[0, 1, :4, :4] = -np.inf
        x[1, 2, 2:5, 3:6] = np.inf
        g = PoolGeometry(pool, stride, (0, 0), dilation)
        y, (arg, _) = numba_cpu.maxpool2d_forward(x, g)
        y_ref, (arg_ref, _) = reference.maxpool2d_forward(x, g)
        np.testing.assert_array_equal(y, y_ref, err_msg=f"{pool} {stride}")
        np.testing.assert_array_equal(arg, arg_ref, err_msg=f"{pool} {stride}")


@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("cfg", conv_configs(12, 22, 12, 6))
def test_columns_kept_for_the_weight_gradient_match_reference(cfg, dtype):
    x, W, b, dy = conv_data(cfg, dtype, seed=200)
    g = cfg["geometry"]
    for bias in (b, None):
        y, cache = numba_cpu.conv2d_forward(x, W, bias, g, training=True)
        assert cache.extra is not None and cache.extra.dtype == dtype  # small: the columns are kept
        assert_close(y, reference.conv2d(x, W, bias, g), dtype, "y")
        _, dW, db = numba_cpu.conv2d_backward(dy, cache, need_dx=False)
        assert_close(dW, reference.conv2d_weight_grad(dy, x, W.shape, g), dtype, "dW")
        if bias is not None:
            assert_close(db, dy.sum(axis=(0, 2, 3)), dtype, "db")


def test_columns_are_not_kept_when_big_or_not_training(monkeypatch):
    rng = np.random.default_rng(23)
    x = rng.standard_normal((4, 3, 10, 10)).astype(np.float32)
    W = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    g = ConvGeometry((1, 1), (0, 0), (1, 1))
    assert numba_cpu.conv2d_forward(x, W, None, g, training=False)[1].extra is None  # inference keeps nothing
    monkeypatch.setattr(numba_conv, "CHUNK_BYTES", 1000)  # smaller than the columns (28 x 256 x 4 B)
    y, cache = numba_cpu.conv2d_forward(x, W, None, g, training=True)
    assert cache.extra is None
    assert_close(y, reference.conv2d(x, W, None, g), np.float32, "y")
    monkeypatch.undo()
    layer = hp.layers.Conv2D(5, 3)
    with hp.engine("numba"):
        y = layer.forward(x, training=True)
        layer.backward(np.ones_like(y))
        dW, db = layer.grads["W"].copy(), layer.grads["b"].copy()
        layer.backward(np.ones_like(y))  # a second backward reads the same cache again
    assert_close(layer.grads["W"], dW, np.float32, "dW again")
    assert_close(layer.grads["b"], db, np.float32, "db again")


def test_a_cache_from_another_engine_works():
    """Caches are engine-built but interchangeable: extras an engine does not know are ignored."""
    rng = np.random.default_rng(25)
    x, W, dy = (rng.standard_normal(s) for s in ((2, 3, 7, 6), (4, 3, 3, 3), (2, 4, 5, 4)))
    g = ConvGeometry((1, 1), (0, 0), (1, 1))
    _, numba_cache = numba_cpu.conv2d_forward(x, W, None, g, training=True)
    _, ref_cache = reference.conv2d_forward(x, W, None, g)
    for a, b in zip(reference.conv2d_backward(dy, numba_cache)[:2], numba_cpu.conv2d_backward(dy, ref_cache)[:2]):
        assert_close(a, b, np.float64, "mixed engines")


@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
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
