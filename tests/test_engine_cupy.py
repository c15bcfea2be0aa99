"""The ``cupy`` engine against the ``reference`` engine (on host copies) and float64 gradient checks.

Every test but the first needs CuPy and a CUDA GPU; without them they are skipped (``-m gpu``
selects them, ``benchmarks/gpu_check.sh`` runs them on a GPU machine).
"""

from __future__ import annotations

import numpy as np
import pytest

import handprop as hp
from handprop.backend import gpu_available, to_numpy
from handprop.kernels import cupy_gpu, reference
from handprop.kernels.reference import output_size

requires_gpu = pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a CUDA GPU")
TOL = {np.float64: dict(rtol=1e-10, atol=1e-10), np.float32: dict(rtol=1e-4, atol=1e-4)}
CONV = [  # x shape, W shape, (stride, padding, dilation)
    ((2, 3, 9, 8), (4, 3, 3, 3), ((1, 1), (0, 0), (1, 1))),
    ((3, 2, 11, 10), (5, 2, 2, 3), ((2, 1), (1, 2), (1, 2))),
    ((1, 4, 12, 9), (3, 4, 3, 1), ((3, 2), (2, 0), (2, 1))),
    ((2, 1, 7, 7), (2, 1, 5, 5), ((1, 1), (2, 2), (1, 1))),
    ((1, 8, 16, 15), (6, 8, 3, 3), ((1, 1), (4, 4), (4, 4))),
]
POOL = [  # x shape, (pool, stride, padding)
    ((2, 3, 8, 8), ((2, 2), (2, 2), (0, 0))),
    ((1, 2, 9, 7), ((3, 3), (2, 2), (1, 1))),
    ((2, 1, 6, 10), ((2, 4), (1, 3), (1, 2))),
]


def assert_close(actual, expected, dtype, what):
    actual = to_numpy(actual)
    assert actual.dtype == dtype, f"{what}: dtype {actual.dtype}"
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=TOL[dtype]["rtol"], atol=TOL[dtype]["atol"] * scale,
                               err_msg=what)  # fmt: skip


def test_engine_functions_are_the_array_module_kernels():
    """Runs without a GPU: the engine's functions are the im2col kernels (NumPy arrays work too);
    CuPy arrays get the larger GPU chunk budget inside them."""
    from handprop.kernels import im2col

    x = np.random.default_rng(0).standard_normal((2, 3, 7, 6))
    W = np.random.default_rng(1).standard_normal((4, 3, 3, 2))
    g = ((1, 2), (1, 0), (2, 1))
    np.testing.assert_allclose(cupy_gpu.conv2d_forward(x, W, None, *g), reference.conv2d_forward(x, W, None, *g))
    assert cupy_gpu.conv2d_forward is im2col.conv2d_forward
    assert cupy_gpu.GPU_CHUNK_BYTES > im2col.CHUNK_BYTES


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", range(len(CONV)))
def test_cupy_conv_matches_reference(case, dtype):
    import cupy as cp

    x_shape, W_shape, g = CONV[case]
    rng = np.random.default_rng(case)
    x = rng.standard_normal(x_shape).astype(dtype)
    W = rng.standard_normal(W_shape).astype(dtype)
    b = rng.standard_normal(W_shape[0]).astype(dtype)
    (sh, sw), (ph, pw), (dh, dw) = g
    Ho = output_size(x_shape[2], W_shape[2], sh, ph, dh)
    Wo = output_size(x_shape[3], W_shape[3], sw, pw, dw)
    dy = rng.standard_normal((x_shape[0], W_shape[0], Ho, Wo)).astype(dtype)
    gx, gW, gb, gdy = (cp.asarray(a) for a in (x, W, b, dy))
    assert_close(cupy_gpu.conv2d_forward(gx, gW, gb, *g), reference.conv2d_forward(x, W, b, *g), dtype, "y")
    assert_close(cupy_gpu.conv2d_backward_input(gdy, gW, x.shape, *g),
                 reference.conv2d_backward_input(dy, W, x.shape, *g), dtype, "dx")  # fmt: skip
    assert_close(cupy_gpu.conv2d_backward_weight(gdy, gx, W.shape, *g),
                 reference.conv2d_backward_weight(dy, x, W.shape, *g), dtype, "dW")  # fmt: skip
    assert_close(cupy_gpu.conv2d_backward_bias(gdy), dy.sum(axis=(0, 2, 3)), dtype, "db")


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", range(len(POOL)))
def test_cupy_pooling_matches_reference(case, dtype):
    import cupy as cp

    x_shape, g = POOL[case]
    rng = np.random.default_rng(10 + case)
    x = np.round(rng.standard_normal(x_shape) * 2).astype(dtype)  # rounded: ties must break alike
    gx = cp.asarray(x)
    y, arg = cupy_gpu.maxpool2d_forward(gx, *g)
    y_ref, arg_ref = reference.maxpool2d_forward(x, *g)
    np.testing.assert_array_equal(to_numpy(y), y_ref)
    np.testing.assert_array_equal(to_numpy(arg), arg_ref)
    dy = rng.standard_normal(y_ref.shape).astype(dtype)
    assert_close(cupy_gpu.maxpool2d_backward(cp.asarray(dy), arg, x.shape),
                 reference.maxpool2d_backward(dy, arg_ref, x.shape), dtype, "max dx")  # fmt: skip
    assert_close(cupy_gpu.avgpool2d_forward(gx, *g), reference.avgpool2d_forward(x, *g), dtype, "avg")
    assert_close(cupy_gpu.avgpool2d_backward(cp.asarray(dy), x.shape, *g),
                 reference.avgpool2d_backward(dy, x.shape, *g), dtype, "avg dx")  # fmt: skip


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: hp.layers.Conv2D(3, 3, padding="same"), (2, 2, 6, 5)),
        (lambda: hp.layers.Conv2D(2, (2, 3), stride=2, padding=1, dilation=(2, 1)), (2, 3, 7, 8)),
        (lambda: hp.layers.MaxPool2D(3, stride=2, padding=1), (1, 2, 7, 6)),
        (lambda: hp.layers.AvgPool2D(2), (1, 2, 6, 6)),
    ],
    ids=["conv-same", "conv-strided-dilated", "maxpool-pad", "avgpool"],
)
def test_cupy_layers_pass_gradient_check(make, shape):
    import cupy as cp

    x = cp.asarray(np.random.default_rng(1).standard_normal(shape))
    layer = make()
    layer.build(shape[1:], rng=0, dtype=np.float64)
    layer.to("gpu")
    with hp.engine("cupy"):
        report = hp.gradcheck.check_layer(layer, x)
    assert report.passed, report.table()


def _small_convnet(seed=0):
    L = hp.layers
    return hp.Sequential([
        L.Conv2D(4, 3, padding="same"), L.BatchNorm(), L.PReLU(), L.MaxPool2D(2),
        L.Conv2D(6, 3), L.ReLU(), L.Flatten(), L.Dropout(0.2), L.Dense(3),
    ], seed=seed, input_shape=(2, 10, 10))


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("optimizer", ["sgd-momentum", "adam"])
def test_model_to_gpu_trains_like_the_cpu(optimizer):
    """The whole training loop on the GPU (layers, loss, metrics, optimizers on CuPy arrays) gives
    the weights the CPU gives, and to_cpu() hands back NumPy arrays."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((24, 2, 10, 10)).astype(np.float32)
    y = rng.integers(0, 3, 24)
    weights = {}
    for device in ("cpu", "gpu"):
        model = _small_convnet()
        opt = (hp.optimizers.SGD(lr=0.05, momentum=0.9) if optimizer == "sgd-momentum"
               else hp.optimizers.Adam(lr=1e-3))
        model.compile(loss=hp.losses.SoftmaxCrossEntropy(), optimizer=opt, metrics=["accuracy"])
        if device == "gpu":
            model.to_gpu()
        with hp.engine("numpy") if device == "cpu" else hp.engine("cupy"):
            hist = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
            pred = model.predict(x)
        assert isinstance(pred, np.ndarray) and np.isfinite(hist.history["loss"]).all()
        model.to_cpu()
        weights[device] = model.get_weights()
        assert all(isinstance(v, np.ndarray) for v in weights[device].values())
    for k, v in weights["cpu"].items():
        np.testing.assert_allclose(weights["gpu"][k], v, rtol=2e-3, atol=2e-4, err_msg=k)
