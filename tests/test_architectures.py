"""The builders of ``handprop.architectures``: a float64 gradient check of every one at a small size
on every CPU engine, and what each promises (shapes on any size, parameter counts, receptive
fields, weight sharing, frozen encoders)."""

from __future__ import annotations

import numpy as np
import pytest

import handprop as hp
from engines import ENGINE_PARAMS
from handprop import architectures as arch
from handprop.gradcheck import check_model

CPU_ENGINES = ENGINE_PARAMS[:3]
MSE, XENT = hp.losses.MeanSquaredError, hp.losses.SoftmaxCrossEntropy


def _images(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _classes(n, k=2, seed=0):
    return np.random.default_rng(seed).integers(0, k, n)


def _maps(model, x, seed=0):
    """Random regression targets of the model's output shape."""
    return np.random.default_rng(seed).standard_normal(model.predict(x).shape)


# builder -> (model, x, y, loss): tiny widths and sizes, so the reference loops stay quick
CASES = {
    "unet-nearest-bn-dropout": lambda: _seg(arch.unet(2, depth=2, width=2, batchnorm=True, dropout=0.2), (2, 2, 4, 4)),
    "unet-transpose": lambda: _seg(arch.unet(1, out_channels=2, depth=1, width=2, upsampling="transpose"),
                                   (2, 1, 4, 6)),
    "dilated_context_net": lambda: _seg(arch.dilated_context_net(1, width=2, dilations=(1, 2, 4)), (1, 1, 6, 5)),
    "patch_cnn": lambda: _clf(arch.patch_cnn(7, in_channels=2, filters=(2, 3), kernel_sizes=(3, 2), dense_units=4),
                              _images(3, 2, 7, 7)),
    "multiscale_patch_net": lambda: _clf(arch.multiscale_patch_net((3, 7), in_channels=1, filters=(2,),
                                                                   kernel_sizes=(3,), dense_units=3),
                                         arch.multiscale_crops(_images(3, 1, 9, 9), (3, 7))),
    "triplanar_net-shared": lambda: _clf(arch.triplanar_net(5, filters=(2,), kernel_sizes=(3,), dense_units=3,
                                                            shared_weights=True),
                                         [_images(2, 1, 5, 5, seed=s) for s in range(3)]),
    "cnn3d": lambda: _clf(arch.cnn3d(5, filters=(2,), kernel_sizes=(2,), dense_units=3), _images(2, 1, 5, 5, 5)),
    "classifier_from_encoder": lambda: _clf(arch.classifier_from_encoder(arch.conv_autoencoder(1, filters=(2,))[1],
                                                                         3, dense_units=3, input_shape=(1, 4, 4)),
                                            _images(3, 1, 4, 4), k=3),
    "conv_autoencoder": lambda: _autoencoder(arch.conv_autoencoder(2, filters=(2, 3))[0], _images(2, 2, 4, 4)),
    "separable-block": lambda: _seg(arch.parameter_reduction_net("separable", filters=2, kernel_size=3), (1, 1, 5, 4)),
    "shared-block": lambda: _seg(arch.parameter_reduction_net("shared", filters=2, kernel_size=5), (1, 1, 4, 5)),
    "factorized-block": lambda: _seg(arch.parameter_reduction_net("factorized", filters=2, kernel_size=3),
                                     (1, 1, 4, 4)),
}


def _seg(model, shape):
    x = _images(*shape)
    return model, x, _maps(model, x), MSE()


def _clf(model, x, k=2):
    n = len(x[0]) if isinstance(x, list) else len(x)
    return model, x, _classes(n, k), XENT()


def _autoencoder(model, x):
    return model, x, x.copy(), MSE()


@pytest.mark.parametrize("engine", CPU_ENGINES)
@pytest.mark.parametrize("which", CASES)
def test_gradient_check(which, engine):
    with hp.engine(engine):
        model, x, y, loss = CASES[which]()
        model.compile(loss=loss)
        rng = np.random.default_rng(1)
        for name, p in model.named_params().items():
            if name.endswith("/b"):  # zero biases on a zero input sit exactly on a ReLU kink
                p += rng.uniform(0.05, 0.2, p.shape).astype(p.dtype)
        report = check_model(model, x, y, max_elements=6)
    assert report.passed, report.table()
    assert len(report.rows) == len(model.named_params()) + (len(x) if isinstance(x, list) else 1)


# ----------------------------------------------------------------------------- what each builder promises
def test_unet_runs_on_any_size_divisible_by_2_to_the_depth():
    model = arch.unet(3, out_channels=2, depth=2, width=4)
    assert model.predict(np.zeros((1, 3, 12, 20))).shape == (1, 2, 12, 20)
    assert model.predict(np.zeros((1, 3, 8, 8))).shape == (1, 2, 8, 8)
    with pytest.raises(ValueError, match="Concatenate"):  # 10 -> 5 -> 2 -> 4 != 5: the skip does not fit
        model.predict(np.zeros((1, 3, 10, 8)))
    names = [type(layer).__name__ for layer in arch.unet(1, depth=1, width=2, upsampling="transpose").layers_list()]
    assert "Conv2DTranspose" in names and "UpSampling2D" not in names
    with pytest.raises(ValueError, match="upsampling must be"):
        arch.unet(1, upsampling="bilinear")


def test_dilated_context_net_has_the_tutorials_receptive_fields():
    model = arch.dilated_context_net(3)
    convs = [r for layer, r in zip(model.layers, hp.receptive_field(model)) if type(layer).__name__ == "Conv2D"]
    assert convs == [3, 5, 9, 17, 33, 65, 129, 131, 131, 131]
    assert model.predict(np.zeros((1, 3, 9, 7))).shape == (1, 1, 9, 7)  # "same": any size
    valid = arch.dilated_context_net(1, width=2, padding="valid")
    assert valid.predict(np.zeros((1, 1, 131, 132))).shape == (1, 1, 1, 2)  # a pixel classifier


def test_patch_cnn_is_the_tutorials_convnet_and_small_patches_fit():
    model = arch.patch_cnn(29, dense_units=2000, n_classes=135)
    assert model.count_params() == 1520 + 20 + 9050 + 50 + 2_502_000 + 2000 + 270_135
    assert "(None, 50, 5, 5)" in model.summary(print_fn=None)
    small = arch.patch_cnn(5, kernel_sizes=(3, 3), padding="same")
    assert small.predict(np.zeros((2, 3, 5, 5))).shape == (2, 2)
    with pytest.raises(ValueError, match="patch_cnn: a 3-wide kernel does not fit the 1-wide map of a 5-wide patch"):
        arch.patch_cnn(5)


def test_multiscale_crops_share_the_centre_pixel():
    patches = np.arange(2 * 1 * 9 * 9, dtype=float).reshape(2, 1, 9, 9)
    small, large = arch.multiscale_crops(patches, (3, 7))
    assert small.shape == (2, 1, 3, 3) and large.shape == (2, 1, 7, 7)
    assert small[0, 0, 1, 1] == large[0, 0, 3, 3] == patches[0, 0, 4, 4]
    model = arch.multiscale_patch_net((3, 7), in_channels=1, filters=(2,), kernel_sizes=(3,), dense_units=3)
    assert model.predict([small, large]).shape == (2, 2)


def test_triplanar_sharing_divides_the_branch_parameters_by_three():
    separate = arch.triplanar_net(7, filters=(4,), kernel_sizes=(3,), dense_units=8)
    shared = arch.triplanar_net(7, filters=(4,), kernel_sizes=(3,), dense_units=8, shared_weights=True)
    branch = 4 * 9 + 4 + 4  # conv weights + bias + PReLU slopes
    assert separate.count_params() - shared.count_params() == 2 * branch
    volume, mask = hp.data.synthetic_vessel_volume((12, 12, 12), n_tubes=2, seed=1)
    centres = hp.data.sample_voxel_centres(mask, 6, seed=0)
    planes, labels = hp.data.extract_triplanar_patches(volume, mask, centres, 7)
    assert shared.predict(planes).shape == (6, 2)
    cubes, _ = hp.data.extract_cubes(volume, mask, centres, 7)
    cnn = arch.cnn3d(7, filters=(4,), kernel_sizes=(3,), dense_units=8)
    assert cnn.predict(cubes).shape == (6, 2)
    assert cnn.layers[0].params["W"].shape == (4, 1, 3, 3, 3)


def test_encoder_is_reused_frozen_then_fine_tuned():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(16, 1, 8, 8)).astype(np.float32)
    autoencoder, encoder = arch.conv_autoencoder(1, filters=(4,))
    assert autoencoder.layers[: len(encoder.layers)] == encoder.layers  # the same objects
    autoencoder.compile(loss="mse", optimizer=hp.optimizers.Adam(lr=0.01))
    history = autoencoder.fit(x, x, epochs=3, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    trained = {k: v.copy() for k, v in encoder.named_params().items()}
    clf = arch.classifier_from_encoder(encoder, 2, dense_units=8)
    clf.compile(loss=XENT(), optimizer=hp.optimizers.Adam(lr=0.01))
    y = rng.integers(0, 2, 16)
    clf.fit(x, y, epochs=2, batch_size=8, verbose=0)
    for k, v in encoder.named_params().items():  # frozen: the pre-trained weights did not move
        np.testing.assert_array_equal(v, trained[k])
    assert "[frozen]" in clf.summary(print_fn=None)
    assert clf.count_trainable_params() == clf.count_params() - encoder.count_params()
    encoder.trainable = True  # fine-tune everything
    clf.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert any(not np.array_equal(v, trained[k]) for k, v in encoder.named_params().items())


def test_parameter_reduction_blocks_counts_and_receptive_fields():
    F = 16
    expected = {"full": F * F * 49 + F, "factorized": 2 * (F * F * 7 + F), "dilated": F * F * 9 + F,
                "shared": F * F * 9 + F, "separable": F * 49 + F + F * F + F}
    stem_and_head = (1 * 9 * F + F) + (F + 1)
    for kind in arch.REDUCTIONS:
        model = arch.parameter_reduction_net(kind, filters=F, kernel_size=7)
        assert model.count_params() - stem_and_head == expected[kind], kind
        assert hp.receptive_field(model)[-1] == 9, kind  # the 3 x 3 stem + a 7 x 7 context
        assert f"Total params: {model.count_params():,}" in model.summary(print_fn=None)
        assert model.predict(np.zeros((1, 1, 10, 11))).shape == (1, 1, 10, 11)
    with pytest.raises(ValueError, match="kind must be one of"):
        arch.context_block("sparse", 4)


def test_reachable_as_hp_architectures():
    assert hp.architectures is arch and "architectures" in hp.__all__  # imported on first use


@pytest.mark.parametrize("which", CASES)
def test_every_builder_saves_loads_and_exports(which, tmp_path, torch):
    """Each architecture is made of layers that save (config and weights) and have a PyTorch
    equivalent: the loaded model and the exported module compute the same outputs."""
    model, x, _, _ = CASES[which]()
    path = tmp_path / f"{which}.safetensors"
    model.save(path)
    loaded = hp.load_model(path)
    xs = [a.astype(np.float32) for a in x] if isinstance(x, list) else x.astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(xs), model.predict(xs))
    net = hp.export.to_torch(model)
    inputs = [torch.from_numpy(a) for a in xs] if isinstance(xs, list) else [torch.from_numpy(xs)]
    np.testing.assert_allclose(net(*inputs).detach().numpy(), model.predict(xs), rtol=1e-4, atol=1e-5)
