"""What only the ``cupy`` engine does: whole-model training on the GPU. (Agreement with the
reference, kernel by kernel, is in ``test_engines.py``; layer gradient checks on every engine in
``test_layer_engines.py``.)

Every test but the first needs CuPy and a CUDA GPU; without them they are skipped (``-m gpu``
selects them, ``benchmarks/gpu_check.sh`` runs them on a GPU machine).
"""

from __future__ import annotations

import numpy as np
import pytest

import handprop as hp
from handprop.backend import gpu_available
from handprop.kernels import cupy_gpu, im2col, reference
from handprop.kernels.geometry import ConvGeometry

requires_gpu = pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a CUDA GPU")


def test_engine_functions_are_the_array_module_kernels():
    """Runs without a GPU: the engine's functions are the im2col kernels (NumPy arrays work too);
    CuPy arrays get the larger GPU chunk budget inside them."""
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 6))
    W = np.random.default_rng(1).standard_normal((4, 3, 3, 2))
    g = ConvGeometry((1, 2), (1, 0), (2, 1))
    np.testing.assert_allclose(cupy_gpu.conv2d_forward(x, W, None, g)[0], reference.conv2d(x, W, None, g))
    assert cupy_gpu.conv2d_forward is im2col.conv2d_forward
    assert cupy_gpu.GPU_CHUNK_BYTES > im2col.CHUNK_BYTES


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
