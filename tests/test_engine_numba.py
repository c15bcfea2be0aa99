"""What only the ``numba`` engine does: choosing Winograd / 1 x 1 GEMM / im2col, chunking and
threads, reusing packed columns, fast paths, the one line that says the kernels are compiling.
(Agreement with the reference on random geometries is in ``test_engines.py``.)

The first test to run pays Numba's compile time (the disk cache makes later runs fast).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

import handprop as hp  # noqa: E402
from engines import DTYPE_PARAMS, GEMM_CONV, WINOGRAD_CONV, assert_close, conv_configs, conv_data  # noqa: E402
from handprop.kernels import engine_module, numba_cpu, reference  # noqa: E402
from handprop.kernels.geometry import ConvGeometry, PoolGeometry, output_size  # noqa: E402
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


# ----------------------------------------------------------------------------- the three conv algorithms
@pytest.mark.parametrize("cfg", WINOGRAD_CONV + GEMM_CONV)
def test_the_new_geometries_take_their_algorithm(cfg):
    """``tests/engines.py``'s WINOGRAD_CONV and GEMM_CONV really run Winograd and the 1 x 1 GEMMs
    (their agreement with the reference is in test_engines.py)."""
    out = [output_size(*a) for a in zip(cfg["x"][2:], cfg["W"][2:], *cfg["geometry"])]
    expected = "gemm" if cfg["W"][2:] == (1, 1) else "winograd"
    assert numba_cpu.algorithm(cfg["W"], cfg["geometry"], out[1]) == expected


def test_algorithm_routing():
    same = ConvGeometry((1, 1), (1, 1), (1, 1))
    assert numba_cpu.algorithm((16, 16, 3, 3), same, 256) == "winograd"
    assert numba_cpu.algorithm((16, 1, 3, 3), same, 256) == "im2col"  # one input channel
    assert numba_cpu.algorithm((50, 20, 3, 3), same, 10) == "im2col"  # narrow (the tutorial's 10 x 10)
    assert numba_cpu.algorithm((16, 16, 3, 3), ConvGeometry((2, 2), (1, 1), (1, 1)), 256) == "im2col"
    assert numba_cpu.algorithm((16, 16, 3, 3), ConvGeometry((1, 1), (2, 2), (2, 2)), 256) == "im2col"
    assert numba_cpu.algorithm((16, 16, 5, 5), same, 256) == "im2col"
    assert numba_cpu.algorithm((1, 16, 1, 1), ConvGeometry((1, 1), (0, 0), (1, 1)), 256) == "gemm"
    assert numba_cpu.algorithm((1, 16, 1, 1), ConvGeometry((2, 2), (0, 0), (1, 1)), 256) == "im2col"


def _winograd_case(rng, x_shape=(2, 16, 32, 36), K=16):
    g = ConvGeometry((1, 1), (1, 1), (1, 1))
    x, W = rng.standard_normal(x_shape), rng.standard_normal((K, x_shape[1], 3, 3))
    assert numba_cpu.algorithm(W.shape, g, x_shape[3]) == "winograd"
    return x, W, g


def test_winograd_float32_error_is_a_few_1e_6_of_the_output_scale():
    """winograd.py's docstring: float32 results differ from the exact sum by ~1e-6 to 1e-5 of the
    values' scale (the transforms' intermediates are up to ~100x the inputs); im2col's by ~1e-7."""
    rng = np.random.default_rng(40)
    x, W, g = _winograd_case(rng)
    dy = rng.standard_normal((2, 16, 32, 36))
    exact = (reference.conv2d(x, W, None, g), reference.conv2d_input_grad(dy, W, x.shape, g),
             reference.conv2d_weight_grad(dy, x, W.shape, g))  # float64
    x32, W32, dy32 = (a.astype(np.float32) for a in (x, W, dy))
    ours = (numba_cpu.conv2d(x32, W32, None, g), numba_cpu.conv2d_input_grad(dy32, W32, x.shape, g),
            numba_cpu.conv2d_weight_grad(dy32, x32, W.shape, g))
    im2col = numba_conv._im2col_conv2d(x32, W32, None, g)
    for name, a, e in zip(("y", "dx", "dW"), ours, exact):
        assert a.dtype == np.float32
        error = np.abs(a - e).max() / np.abs(e).max()
        assert 1e-8 < error < 2e-5, (name, error)  # rounding of float32 transforms, and no more
    assert np.abs(im2col - exact[0]).max() < np.abs(ours[0] - exact[0]).max()  # the direct sum: smaller


@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
def test_winograd_spreads_inf_and_nan_only_over_the_tiles_that_read_them(dtype):
    """winograd.py's docstring: NaN and inf propagate -- wherever the direct sum is inf or NaN, so is
    Winograd's --, and they may spread (inf - inf = NaN) within the 4 x 4 output tiles whose 6 x 6
    input patch holds the bad pixel, never beyond them."""
    rng = np.random.default_rng(41)
    x, W, g = _winograd_case(rng, (1, 4, 24, 20), K=4)
    x = x.astype(dtype)
    x[0, 1, 9, 6] = np.inf
    x[0, 3, 17, 15] = np.nan
    y = numba_cpu.conv2d(x, W.astype(dtype), None, g)
    ref = reference.conv2d(x, W.astype(dtype), None, g)
    bad = np.zeros(y.shape[2:], bool)  # the tiles whose padded 6 x 6 patch holds a bad pixel
    for h, w in ((9, 6), (17, 15)):
        for ti in range(-(-y.shape[2] // 4)):
            for tj in range(-(-y.shape[3] // 4)):
                if 4 * ti - 1 <= h <= 4 * ti + 4 and 4 * tj - 1 <= w <= 4 * tj + 4:  # padding 1
                    bad[4 * ti : 4 * ti + 4, 4 * tj : 4 * tj + 4] = True
    finite = np.isfinite(y)
    assert (~np.isfinite(ref) <= ~finite).all()  # wherever the direct sum is inf/NaN, so is Winograd's
    assert finite[:, :, ~bad].all()  # nothing outside the tiles that read a bad pixel
    assert (~finite).sum() > (~np.isfinite(ref)).sum()  # it spreads, within those tiles
    assert_close(y[:, :, ~bad], ref[:, :, ~bad], dtype, "finite tiles")


@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
def test_transposed_conv_on_the_winograd_and_gemm_paths_matches_reference(dtype):
    """Conv2DTranspose runs the convolution's maps with the roles swapped: wide 3 x 3 stride-1 and
    1 x 1 ones go through Winograd and the GEMMs too."""
    rng = np.random.default_rng(33)
    cases = (((2, 5, 7, 18), (4, 3), 1), ((1, 4, 6, 20), (6, 3), 0), ((2, 3, 5, 5), (2, 1), 0))
    for (N, C_in, H, Wd), (K, R), p in cases:
        g = ConvGeometry((1, 1), (p, p), (1, 1))
        x, W, b = (rng.standard_normal(s).astype(dtype) for s in ((N, C_in, H, Wd), (C_in, K, R, R), K))
        y_shape = (N, K, H + R - 1 - 2 * p, Wd + R - 1 - 2 * p)
        assert numba_cpu.algorithm(W.shape, g, Wd) == ("gemm" if R == 1 else "winograd")
        y, cache = numba_cpu.conv2d_transpose_forward(x, W, b, g, y_shape)
        y_ref, cache_ref = reference.conv2d_transpose_forward(x, W, b, g, y_shape)
        assert_close(y, y_ref, dtype, "y")
        dy = rng.standard_normal(y_shape).astype(dtype)
        for name, ours, ref in zip(("dx", "dW", "db"), numba_cpu.conv2d_transpose_backward(dy, cache),
                                   reference.conv2d_transpose_backward(dy, cache_ref)):  # fmt: skip
            assert_close(ours, ref, dtype, name)


@pytest.fixture
def many_small_pieces(monkeypatch):
    """Three threads and tiny work units, so that every kernel splits its work (even on one core)."""
    from handprop import threads
    from handprop.kernels.numba_cpu import _pool, winograd

    monkeypatch.setattr(threads, "_engine_threads", 3)
    monkeypatch.setattr(winograd, "CHUNK_BYTES", 4096)
    monkeypatch.setattr(numba_conv, "CHUNK_BYTES", 4096)
    monkeypatch.setattr(_pool, "MIN_WORK", 7)  # pieces of a few numbers: every kernel splits


@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("case", [((2, 5, 13, 21), (6, 5, 3, 3), ConvGeometry((1, 1), (1, 1), (1, 1))),
                                  ((1, 6, 30, 17), (4, 6, 3, 3), ConvGeometry((1, 1), (3, 3), (1, 1))),
                                  ((3, 4, 9, 8), (5, 4, 3, 2), ConvGeometry((2, 1), (1, 0), (1, 2)))],
                         ids=["winograd-images", "winograd-bands", "im2col"])  # fmt: skip
def test_conv_split_over_threads_and_chunks_matches_reference(many_small_pieces, case, dtype):
    from handprop.kernels.numba_cpu import winograd

    x_shape, W_shape, g = case
    rng = np.random.default_rng(30)
    x, W, b = (rng.standard_normal(s).astype(dtype) for s in (x_shape, W_shape, W_shape[0]))
    y, cache = numba_cpu.conv2d_forward(x, W, b, g)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx, dW, db = numba_cpu.conv2d_backward(dy, cache)
    if "winograd" in str(numba_cpu.algorithm(W_shape, g, y.shape[3])):
        Ho, Wo = y.shape[2:]
        assert len(winograd._chunks(x_shape[0], -(-Ho // 4), -(-Wo // 4), 36 * 10 * 4, 3)) >= 3
    assert_close(y, reference.conv2d(x, W, b, g), dtype, "y")
    assert_close(dx, reference.conv2d_input_grad(dy, W, x.shape, g), dtype, "dx")
    assert_close(dW, reference.conv2d_weight_grad(dy, x, W.shape, g), dtype, "dW")
    assert_close(db, dy.sum(axis=(0, 2, 3)), dtype, "db")


@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
def test_elementwise_and_pooling_split_over_threads_match_reference(many_small_pieces, dtype):
    rng = np.random.default_rng(31)
    x = np.round(rng.standard_normal((2, 5, 9, 10)), 1).astype(dtype)  # ties for max pooling
    dy_pool = rng.standard_normal((2, 5, 4, 5)).astype(dtype)
    for geometry in (PoolGeometry((2, 2), (2, 2), (0, 0)), PoolGeometry((3, 3), (2, 2), (1, 1))):
        y, cache = numba_cpu.maxpool2d_forward(x, geometry)
        y_ref, cache_ref = reference.maxpool2d_forward(x, geometry)
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(cache[0], cache_ref[0])
        np.testing.assert_array_equal(numba_cpu.maxpool2d_backward(dy_pool, cache),
                                      reference.maxpool2d_backward(dy_pool, cache_ref))
    y, cache = numba_cpu.relu_forward(x)
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    np.testing.assert_array_equal(numba_cpu.relu_backward(-x, cache), np.where(x > 0, -x, 0))
    y, cache = numba_cpu.upsample2d_forward(x, (2, 3))
    np.testing.assert_array_equal(y, reference.upsample2d_forward(x, (2, 3))[0])
    np.testing.assert_array_equal(numba_cpu.upsample2d_backward(y * y, cache),
                                  reference.upsample2d_backward(y * y, cache))
    alpha = rng.uniform(0.1, 0.3, 5).astype(dtype)
    y, cache = numba_cpu.prelu_forward(x, alpha)
    dx, dalpha = numba_cpu.prelu_backward(x, cache)
    a = alpha.reshape(1, -1, 1, 1)
    np.testing.assert_array_equal(y, np.where(x > 0, x, a * x))  # PReLU's equations (layers/activations.py)
    np.testing.assert_array_equal(dx, np.where(x > 0, x, a * x))
    assert_close(dalpha, (x * np.minimum(x, 0)).sum(axis=(0, 2, 3)), dtype, "dalpha")


# ----------------------------------------------------------------------------- compiling, in the calling thread
def test_compiling_says_so_in_one_line_once_per_dtype(monkeypatch, capsys):
    """Numba fires ``numba:compile`` only for a real compilation (not a disk-cache load): the
    engine's listener prints one line per dtype, and only for the engine's own kernels."""
    import numba

    from handprop.kernels.numba_cpu import _jit

    monkeypatch.setattr(_jit._NOTICE, "told", set())

    def double(a):
        return a + a

    double.__module__ = "handprop.kernels.numba_cpu.conv"  # as if it were one of the engine's kernels
    ours, theirs = numba.njit(double), numba.njit(lambda a: a * 3)  # no cache: these always compile
    theirs(np.ones(3, np.float32))
    assert "compiling" not in capsys.readouterr().err  # someone else's Numba function
    assert ours(np.ones(3, np.float32))[0] == 2
    ours(np.ones(3, np.float64))
    ours(np.ones((2, 2), np.float32))  # a new signature of an announced dtype: compiled silently
    err = capsys.readouterr().err
    assert err.count("handprop: compiling the numba kernels for float32") == 1
    assert err.count("handprop: compiling the numba kernels for float64") == 1
    assert len(err.splitlines()) == 2


# ----------------------------------------------------------------------------- the thread pool under stress
@pytest.fixture
def two_threads():
    from handprop import threads

    before = threads._engine_threads
    hp.set_num_threads(min(2, threads.max_engine_threads()))
    yield
    threads._engine_threads = before
    hp.set_num_threads(threads.engine_threads())


def test_pool_survives_a_ctrl_c_while_waiting_for_a_worker(two_threads):
    """Found by review: a KeyboardInterrupt while the caller waited for a worker left that worker's
    "done" signal to the next run, which then returned before its items were computed."""
    import signal
    import threading
    import time

    from handprop.kernels.numba_cpu import _pool

    if _pool.num_threads() < 2:
        pytest.skip("needs 2 threads")
    main = threading.get_ident()
    threading.Timer(0.1, lambda: signal.pthread_kill(main, signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt):
        _pool.run(lambda i: time.sleep(0.4 if i == 1 else 0.0), [0, 1])
    for _ in range(3):  # every item computed, and nothing hangs
        assert _pool.run(lambda i: (time.sleep(0.05), i * 10)[1], [0, 1]) == [0, 10]


def test_pool_keeps_working_while_another_thread_changes_the_thread_count(two_threads):
    import threading
    import time

    from handprop import threads
    from handprop.kernels.numba_cpu import _pool

    counts = (1, min(2, threads.max_engine_threads()))
    done, failures = [0], []

    def other():
        try:
            while not stop.is_set():
                assert _pool.run(lambda i: i, range(8)) == list(range(8))
                done[0] += 1
        except BaseException as e:  # noqa: B036 -- reported below
            failures.append(e)

    stop = threading.Event()
    worker = threading.Thread(target=other, daemon=True)
    worker.start()
    end = time.time() + 0.5
    while time.time() < end:
        for n in counts:
            hp.set_num_threads(n)
            assert _pool.run(lambda i: -i, range(6)) == [-i for i in range(6)]
    stop.set()
    worker.join(5)
    assert not worker.is_alive() and not failures and done[0] > 0


def test_set_num_threads_during_another_threads_blas_section_is_kept(two_threads):
    """Found by review: the last thread out of a one-thread-BLAS section restored the count it
    saw on entry, undoing a set_num_threads made meanwhile."""
    import threading
    import time

    from handprop.kernels.numba_cpu import _pool

    if _pool.num_threads() < 2 or hp.get_num_threads()["blas"] is None:
        pytest.skip("needs 2 threads and a BLAS that threadpoolctl controls")
    other = threading.Thread(target=lambda: _pool.run(lambda i: time.sleep(0.3), range(2)))
    other.start()
    time.sleep(0.1)
    hp.set_num_threads(1)
    other.join()
    assert hp.get_num_threads() == {"numba": 1, "blas": 1}


@pytest.mark.parametrize("layer", ["Conv2D", "Conv2DTranspose"])
def test_one_by_one_convolutions_take_an_empty_batch(layer):
    """Found by review: the 1 x 1 GEMM path reshaped with -1, which an empty batch cannot do."""
    conv = getattr(hp.layers, layer)(4, 1)
    x = np.zeros((0, 3, 8, 8), np.float32)
    with hp.engine("numba"):
        y = conv.forward(x)
        dx = conv.backward(np.zeros_like(y))
    assert y.shape == (0, 4, 8, 8) and dx.shape == x.shape
    assert not conv.grads["W"].any()
