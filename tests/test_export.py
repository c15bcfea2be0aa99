"""hp.export.to_torch: the same function in PyTorch, for the tutorial ConvNet, a U-Net and every layer
(volumes, depthwise and dilated pooling included)."""

import sys

import numpy as np
import pytest

import handprop as hp
from test_tutorial_convnet import tutorial_convnet

L = hp.layers


def as_numpy(t):
    return t.detach().numpy()


def test_tutorial_convnet_matches(torch):
    model = tutorial_convnet()
    x = np.random.default_rng(0).standard_normal((4, 3, 29, 29)).astype(np.float32)
    model.compile(hp.losses.SoftmaxCrossEntropy(), hp.optimizers.SGD(lr=0.01))
    model.fit(x, np.arange(4), epochs=1, verbose=0)  # PReLU slopes move away from 0.25
    net = hp.export.to_torch(model)
    assert isinstance(net, torch.nn.Sequential) and not net.training
    assert isinstance(net[0], torch.nn.Conv2d) and isinstance(net[7], torch.nn.Linear)
    np.testing.assert_allclose(as_numpy(net[7].weight), model.layers[7].params["W"].T)  # Linear stores W.T
    np.testing.assert_allclose(as_numpy(net(torch.from_numpy(x))), model.predict(x), rtol=1e-4, atol=1e-5)


def small_unet(seed=0):
    """Encoder (even "same" kernels, strided "same" conv), decoder (transposed conv, upsampling,
    concatenation skips), BatchNorm, PReLU per channel, an Add, a sigmoid head."""
    inp = hp.Input((2, None, None))
    e1 = L.Conv2D(4, 3, padding="same", activation="relu")(inp)
    e2 = L.Conv2D(6, 4, stride=2, padding="same")(e1)
    e2 = L.PReLU()(L.BatchNorm()(e2))
    bottom = L.MaxPool2D(3, stride=1, padding=1)(e2)
    bottom = L.Add()([bottom, L.AvgPool2D(3, stride=1, padding=1)(e2)])
    up = L.Conv2DTranspose(4, 2, stride=2, activation="elu")(bottom)
    skip = L.Concatenate()([up, e1, L.UpSampling2D(2)(L.Conv2D(2, 1)(e2))])
    out = L.Conv2D(1, (2, 3), padding="same", dilation=(2, 1))(L.LeakyReLU(0.1)(skip))
    model = hp.Model(inp, L.Sigmoid()(out), seed=seed, name="unet")
    model.compile(hp.losses.BinaryCrossEntropy(), hp.optimizers.Adam(lr=0.01))
    return model


@pytest.mark.parametrize("size", [(16, 16), (13, 22)])
def test_unet_matches_on_any_image_size(torch, size):
    rng = np.random.default_rng(1)
    model = small_unet()
    x = rng.standard_normal((3, 2, 16, 16)).astype(np.float32)
    model.fit(x, (rng.random((3, 1, 16, 16)) > 0.5).astype(np.float32), epochs=2, batch_size=3, verbose=0)
    net = hp.export.to_torch(model)
    if size == (13, 22):  # odd sizes: the stride-2 "same" conv pads asymmetrically, per size
        x = rng.standard_normal((2, 2, 14, 22)).astype(np.float32)
    np.testing.assert_allclose(as_numpy(net(torch.from_numpy(x))), model.predict(x), rtol=1e-4, atol=1e-5)


def test_batchnorm_training_mode_and_running_statistics_match(torch):
    model = hp.Sequential([L.Conv2D(3, 3), L.BatchNorm(momentum=0.2), L.Flatten(), L.Dense(4), L.BatchNorm(),
                           L.Softmax()], input_shape=(2, 6, 6), seed=0)
    x = np.random.default_rng(2).standard_normal((5, 2, 6, 6)).astype(np.float32)
    net = hp.export.to_torch(model).train()
    y_torch = net(torch.from_numpy(x))
    y_hp = model.forward(x, training=True)
    np.testing.assert_allclose(as_numpy(y_torch), y_hp, rtol=1e-4, atol=1e-5)
    for bn_torch, bn_hp in ((net[1], model.layers[1]), (net[4], model.layers[4])):
        np.testing.assert_allclose(as_numpy(bn_torch.running_mean), bn_hp.state["running_mean"], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(as_numpy(bn_torch.running_var), bn_hp.state["running_var"], rtol=1e-4, atol=1e-6)


def test_every_layer_type_and_dropout_in_eval(torch):
    model = hp.Sequential([
        L.Conv2D(4, 3, padding=1, use_bias=False), L.ELU(), L.Dropout(0.5), L.AvgPool2D(2), L.Tanh(),
        L.Conv2D(4, 1), L.PReLU(shared=True), L.GlobalAvgPool2D(), L.Dense(5, activation="sigmoid"), L.Linear(),
        L.Dense(3, activation="softmax"),
    ], input_shape=(1, 8, 8), seed=0)
    x = np.random.default_rng(3).standard_normal((4, 1, 8, 8)).astype(np.float32)
    net = hp.export.to_torch(model)
    np.testing.assert_allclose(as_numpy(net(torch.from_numpy(x))), model.predict(x), rtol=1e-4, atol=1e-6)


def test_volumes_depthwise_dilated_pooling_reshape_and_pixel_softmax(torch):
    """The layers of the architectures branch, and dilated pooling (an AvgPool that PyTorch has no
    module for becomes a depthwise convolution with equal weights)."""
    rng = np.random.default_rng(4)
    volume = hp.Sequential([
        L.Conv3D(3, (2, 3, 3), padding="same", activation="relu"), L.BatchNorm(), L.MaxPool3D(2, stride=1, dilation=2),
        L.Conv3D(4, 2, stride=(1, 2, 1), padding=(1, 0, 1), dilation=(2, 1, 1)), L.AvgPool3D((1, 2, 2)),
        L.AvgPool3D(2, stride=1, padding=1, dilation=(2, 1, 2)), L.Flatten(), L.Dense(6), L.Reshape((2, 3)),
        L.Softmax(axis=1),
    ], input_shape=(2, 7, 9, 8), seed=0)
    volume.compile("mse", "adam")
    x = rng.standard_normal((3, 2, 7, 9, 8)).astype(np.float32)
    volume.fit(x, rng.random((3, 2, 3)).astype(np.float32), epochs=1, verbose=0)  # running statistics move
    net = hp.export.to_torch(volume)
    assert isinstance(net[0][0], torch.nn.Conv3d) and isinstance(net[1], torch.nn.BatchNorm3d)
    np.testing.assert_allclose(as_numpy(net(torch.from_numpy(x))), volume.predict(x), rtol=1e-4, atol=1e-6)

    images = hp.Sequential([
        L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", stride=2), L.ReLU(),
        L.DepthwiseConv2D((1, 3), padding=(0, 1), use_bias=False), L.Conv2D(3, 1),
        L.MaxPool2D(2, stride=1, padding=1, dilation=(2, 1)), L.AvgPool2D(3, stride=1, dilation=2),
        L.Softmax(axis=1),
    ], input_shape=(2, 13, 12), seed=1)
    x = rng.standard_normal((2, 2, 13, 12)).astype(np.float32)
    net = hp.export.to_torch(images)
    assert net[0].groups == 2 and tuple(net[0].weight.shape) == (4, 1, 3, 3)
    np.testing.assert_allclose(as_numpy(net(torch.from_numpy(x))), images.predict(x), rtol=1e-4, atol=1e-6)


def test_shared_layers_and_several_inputs_and_float64(torch):
    a, b = hp.Input((3,), name="a"), hp.Input((3,), name="b")
    shared = L.Dense(4, activation="tanh")
    out = L.Dense(1)(L.Concatenate()([shared(a), shared(b)]))
    model = hp.Model([a, b], out, seed=0)
    model.cast(np.float64)
    xs = [np.random.default_rng(i).standard_normal((2, 3)) for i in range(2)]
    net = hp.export.to_torch(model)
    assert len(net.layers) == 3  # the shared Dense is one module, called twice
    y = net(torch.from_numpy(xs[0]), torch.from_numpy(xs[1]))
    assert y.dtype == torch.float64
    np.testing.assert_allclose(as_numpy(y), model.predict(xs), rtol=1e-10)

    seq_shared = L.Dense(3)
    seq = hp.Sequential([seq_shared, L.ReLU(), seq_shared], input_shape=(3,))
    x = xs[0].astype(np.float32)
    np.testing.assert_allclose(as_numpy(hp.export.to_torch(seq)(torch.from_numpy(x))), seq.predict(x), rtol=1e-5)


class Twice(L.Layer):
    def forward(self, x, training=True):
        self._cache = x.shape
        return 2 * x


def test_layers_without_equivalent_are_named_and_converters_export_them(torch):
    model = hp.Sequential([L.Dense(2), Twice(name="double")], input_shape=(3,))
    with pytest.raises(ValueError, match=r"no PyTorch equivalent for double \(Twice\).*converters="):
        hp.export.to_torch(model)

    class TorchTwice(torch.nn.Module):
        def forward(self, x):
            return 2 * x

    net = hp.export.to_torch(model, converters={Twice: lambda layer: TorchTwice()})
    x = np.ones((2, 3), np.float32)
    np.testing.assert_allclose(as_numpy(net(torch.from_numpy(x))), model.predict(x), rtol=1e-6)
    with pytest.raises(RuntimeError, match="not built"):
        hp.export.to_torch(hp.Sequential([L.Dense(2)]))


def test_missing_torch_is_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    hp.export._modules.cache_clear()
    try:
        with pytest.raises(ImportError, match="needs PyTorch: pip install torch"):
            hp.export.to_torch(hp.Sequential([L.Dense(2)], input_shape=(3,)))
    finally:
        hp.export._modules.cache_clear()
