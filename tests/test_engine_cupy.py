"""What only the ``cupy`` engine does: whole models on the GPU (training, evaluation, tiled and
whole-image prediction, gradient checks, the GAN and vessel pipelines), float64 gradient checks of
every layer and loss on GPU arrays. Agreement with the reference, kernel by kernel, is in
``test_engines.py``.

The ``gpu`` tests run on CuPy with a CUDA GPU, else on the strict NumPy stand-in tests/fake_cupy,
which refuses every implicit host/device conversion as CuPy does (conftest.py chooses;
``benchmarks/gpu_check.sh`` runs them on a real card). They skip only when neither is there.
"""

from __future__ import annotations

import numpy as np
import pytest

import handprop as hp
from engines import NO_CUPY, on, on_engine
from handprop.backend import gpu_available, is_gpu_array, to_numpy
from handprop.gradcheck import check_layer, check_loss, check_model
from handprop.kernels import cupy_gpu, im2col, reference
from handprop.kernels.geometry import ConvGeometry

requires_gpu = pytest.mark.skipif(not gpu_available(), reason=NO_CUPY)
L = hp.layers


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


# The same model on the CPU (numpy engine) and on the GPU: the GPU's sums run in another order, so
# float32 results agree to these tolerances, not bit for bit.
F32 = dict(rtol=2e-3, atol=2e-4)


def _on(device, model):
    return model.to_gpu() if device == "gpu" else model


def _engine(device):
    return hp.engine("cupy" if device == "gpu" else "numpy")


@pytest.mark.gpu
@requires_gpu
def test_unet_with_sample_weights_trains_and_predicts_like_the_cpu():
    """fit with per-pixel sample weights and validation data, evaluate, predict and predict_tiled of a
    U-Net with BatchNorm and Dropout on the GPU give what the CPU gives (predictions: NumPy arrays)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 1, 16, 16)).astype(np.float32)
    y = (rng.random((6, 1, 16, 16)) > 0.7).astype(np.float32)
    w = rng.random((6, 1, 16, 16)).astype(np.float32)
    runs = {}
    for device in ("cpu", "gpu"):
        model = hp.architectures.unet(1, 1, depth=2, width=4, batchnorm=True, dropout=0.1, seed=0)
        model.compile(loss=hp.losses.BinaryCrossEntropy(from_logits=True), optimizer=hp.optimizers.Adam(1e-3),
                      metrics=["accuracy"])
        with _engine(device):
            _on(device, model)
            hist = model.fit(x, y, sample_weight=w, epochs=2, batch_size=3, verbose=0, validation_data=(x[:2], y[:2]))
            scores = model.evaluate(x, y, sample_weight=w, return_dict=True)
            pred = model.predict(x)
            tiled = hp.inference.predict_tiled(model, x[:2], tile=(8, 8))
        assert isinstance(pred, np.ndarray) and isinstance(tiled, np.ndarray)
        model.to_cpu()
        runs[device] = (model.get_weights(), pred, tiled, scores, hist.history["val_loss"])
    (w_cpu, *cpu), (w_gpu, *gpu) = runs["cpu"], runs["gpu"]
    for k, v in w_cpu.items():
        np.testing.assert_allclose(w_gpu[k], v, err_msg=k, **F32)
    for a, b in ((cpu[0], gpu[0]), (cpu[1], gpu[1]), (cpu[3], gpu[3])):
        np.testing.assert_allclose(b, a, **F32)
    assert cpu[2].keys() == gpu[2].keys() and all(np.isclose(gpu[2][k], cpu[2][k], **F32) for k in cpu[2])


@pytest.mark.gpu
@requires_gpu
def test_whole_image_helpers_take_gpu_images():
    """predict_tiled, predict_padded, predict_dense and sliding_window_predict take CuPy images as
    model.predict does (they used to call np.asarray on them) and give what they give for the same
    images on the host."""
    from handprop.inference import (
        predict_dense,
        predict_padded,
        predict_tiled,
        sliding_window_predict,
        to_fully_convolutional,
    )

    rng = np.random.default_rng(0)
    images = rng.standard_normal((1, 1, 12, 10)).astype(np.float32)
    unet = hp.architectures.unet(1, 1, depth=1, width=2, seed=0).to_gpu()
    classifier = hp.Sequential([L.Conv2D(2, 3), L.MaxPool2D(2), L.Flatten(), L.Dense(2)], seed=0,
                               input_shape=(1, 7, 7))
    fcn = to_fully_convolutional(classifier).to_gpu()
    classifier.to_gpu()
    with hp.engine("cupy"):
        for run in (lambda im: predict_tiled(unet, im, tile=(8, 8)), lambda im: predict_padded(unet, im, multiple=2),
                    lambda im: predict_dense(fcn, im, 7), lambda im: sliding_window_predict(classifier, im)):
            on_gpu, on_host = run(on("cupy", images)), run(images)
            assert isinstance(on_gpu, np.ndarray)
            np.testing.assert_array_equal(on_gpu, on_host)


GRAD_LAYERS = {
    "conv-same-dilated": (lambda: L.Conv2D(3, 3, padding="same", dilation=2), (2, 2, 7, 6)),
    "convT-stride2": (lambda: L.Conv2DTranspose(2, 3, stride=2, padding=1, output_padding=1), (2, 3, 3, 4)),
    "depthwise": (lambda: L.DepthwiseConv2D(3, depth_multiplier=2, padding=1), (2, 2, 5, 5)),
    "conv3d": (lambda: L.Conv3D(2, 3, padding=1), (1, 2, 4, 4, 3)),
    "maxpool-overlap-pad": (lambda: L.MaxPool2D(3, stride=2, padding=1), (2, 2, 7, 6)),
    "avgpool": (lambda: L.AvgPool2D(2), (2, 2, 6, 6)),
    "maxpool3d": (lambda: L.MaxPool3D(2), (1, 2, 4, 4, 4)),
    "avgpool3d": (lambda: L.AvgPool3D(2), (1, 2, 4, 4, 4)),
    "global-avg": (lambda: L.GlobalAvgPool2D(), (2, 3, 4, 5)),
    "upsample": (lambda: L.UpSampling2D(), (2, 2, 3, 3)),
    "batchnorm": (lambda: L.BatchNorm(), (3, 2, 4, 4)),
    "dense": (lambda: L.Dense(3), (2, 5)),
    "dropout": (lambda: L.Dropout(0.3), (4, 6)),
    "relu": (lambda: L.ReLU(), (2, 5)),
    "prelu": (lambda: L.PReLU(), (2, 3, 3, 3)),
    "leaky-relu": (lambda: L.LeakyReLU(), (2, 5)),
    "elu": (lambda: L.ELU(), (2, 5)),
    "sigmoid": (lambda: L.Sigmoid(), (2, 5)),
    "tanh": (lambda: L.Tanh(), (2, 5)),
    "softmax": (lambda: L.Softmax(), (2, 5)),
}


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("which", GRAD_LAYERS)
def test_layer_gradient_check_on_gpu_arrays(which):
    """The float64 gradient check of every kind of layer, with its parameters and input on the GPU."""
    make, shape = GRAD_LAYERS[which]
    layer = on_engine("cupy", make(), shape)
    x = on("cupy", np.random.default_rng(0).standard_normal(shape))
    with hp.engine("cupy"):
        report = check_layer(layer, x)
    assert report.passed, report.table()
    assert all(is_gpu_array(v) for v in layer.params.values())


@pytest.mark.gpu
@requires_gpu
def test_loss_gradient_checks_on_gpu_arrays():
    rng = np.random.default_rng(0)
    pred = on("cupy", rng.standard_normal((4, 3)))
    labels, target, weight = on("cupy", rng.integers(0, 3, 4), (rng.random((4, 3)) > 0.5) * 1.0, rng.random((4, 3)))
    for loss, t, w in ((hp.losses.SoftmaxCrossEntropy(), labels, None),
                       (hp.losses.BinaryCrossEntropy(from_logits=True), target, weight),
                       (hp.losses.MeanSquaredError(), target, weight)):
        report = check_loss(loss, pred, t, weight=w)
        assert report.passed, report.table()


@pytest.mark.gpu
@requires_gpu
def test_check_model_takes_gpu_inputs():
    """check_model on a model on the GPU with GPU inputs (it used to copy x with ``np.array``, an
    implicit device-to-host conversion CuPy refuses), a graph with a concatenation and a skip."""
    inp = hp.Input((2, 6, 6))
    a = L.Conv2D(2, 3, padding="same")(inp)
    b = L.Add()([L.Conv2D(2, 1)(L.Concatenate()([a, inp])), a])
    model = hp.Model(inp, L.Dense(2)(L.Flatten()(L.ELU()(L.BatchNorm()(b)))), seed=0)
    model.compile(loss=hp.losses.SoftmaxCrossEntropy(), optimizer="sgd")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((3, 2, 6, 6)), rng.integers(0, 2, 3)
    model.ensure_built(x)
    model.to_gpu()
    with hp.engine("cupy"):
        report = check_model(model, on("cupy", x), on("cupy", y))
    assert report.passed, report.table()


@pytest.mark.gpu
@requires_gpu
def test_gan_trains_on_the_gpu_like_on_the_cpu():
    """train_gan with both networks on the GPU (the stacked generator+discriminator used to stay a
    CPU model and feed NumPy noise to GPU layers)."""
    gan = __import__("handprop.architectures.gan", fromlist=["gan"])
    data = np.random.default_rng(0).random((8, 1, 8, 8)).astype(np.float32)
    losses = {}
    for device in ("cpu", "gpu"):
        generator, discriminator = gan.gan(latent_dim=4, image_shape=(1, 8, 8), width=4, seed=0)
        with _engine(device):
            _on(device, generator)
            _on(device, discriminator)
            losses[device] = gan.train_gan(generator, discriminator, data, steps=3, batch_size=4)
    for k in ("d_loss", "g_loss"):
        np.testing.assert_allclose(losses["gpu"][k], losses["cpu"][k], rtol=1e-4, err_msg=k)


@pytest.mark.gpu
@requires_gpu
def test_vessel_pipeline_on_the_gpu_matches_the_cpu():
    """train_segmenter (augmented tiles, cosine schedule, best epoch on validation, threshold) and
    predict_probabilities of the course's vessel U-Net, on the GPU and on the CPU."""
    from handprop import segmentation as seg

    data = hp.data.synthetic_retina(4, seed=0, size=(40, 36))
    train, val = data[[0, 1]], data[[2, 3]]
    x_train, x_val = seg.normalize_images(train), seg.normalize_images(val)
    runs = {}
    for device in ("cpu", "gpu"):
        model = _on(device, seg.vessel_unet(in_channels=x_train.shape[1], width=4, seed=0))
        with _engine(device):
            seg.train_segmenter(model, x_train, train, x_val, val, epochs=2, steps=2, tile=16, batch_size=2, verbose=0)
            runs[device] = (seg.predict_probabilities(model, x_val), model.threshold, model.best_epoch)
    assert isinstance(runs["gpu"][0], np.ndarray)
    np.testing.assert_allclose(runs["gpu"][0], runs["cpu"][0], **F32)
    assert runs["gpu"][1:] == runs["cpu"][1:]


@pytest.mark.gpu
@requires_gpu
def test_export_of_a_gpu_model_matches_it(torch):
    model = hp.Sequential([L.Conv2D(3, 3, padding="same"), L.BatchNorm(), L.PReLU(), L.MaxPool2D(2), L.Flatten(),
                           L.Dense(2)], seed=0, input_shape=(1, 6, 6))
    model.cast(np.float64)
    model.to_gpu()
    x = np.random.default_rng(0).standard_normal((2, 1, 6, 6))
    with hp.engine("cupy"):
        expected = model.predict(x)
    module = hp.export.to_torch(model)
    np.testing.assert_allclose(module(torch.tensor(x)).detach().numpy(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.gpu
@requires_gpu
def test_warmup_and_engine_choice():
    assert cupy_gpu.warmup() >= 0.0
    with hp.engine("cupy"):  # a model left on the CPU: the message says how to move it
        with pytest.raises(RuntimeError, match="to_gpu"):
            hp.Sequential([L.Conv2D(2, 3)], input_shape=(1, 5, 5)).predict(np.ones((1, 1, 5, 5)))
    assert to_numpy(hp.backend.to_device(np.ones(2), "gpu")).tolist() == [1.0, 1.0]
