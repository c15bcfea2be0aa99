"""What a GAN needs from the public model API -- ``train_on_batch``, ``input_gradient``,
``model.trainable`` -- and the GAN of ``handprop.architectures`` trained with it on the digits."""

from __future__ import annotations

import numpy as np
import pytest

import handprop as hp
from handprop import architectures as arch
from handprop.gradcheck import numeric_gradient


def small_classifier(seed=0):
    model = hp.Sequential([hp.layers.Conv2D(3, 3, padding="same"), hp.layers.Tanh(), hp.layers.Flatten(),
                           hp.layers.Dense(2)], seed=seed, input_shape=(1, 4, 4))
    model.compile(loss=hp.losses.SoftmaxCrossEntropy(), optimizer=hp.optimizers.SGD(lr=0.1))
    return model


def test_train_on_batch_is_one_optimizer_step():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((6, 1, 4, 4)), rng.integers(0, 2, 6)
    model, twin = small_classifier(), small_classifier()
    loss = model.train_on_batch(x, y)
    assert isinstance(loss, float) and loss == pytest.approx(twin.evaluate(x, y), rel=1e-6)
    twin.fit(x, y, epochs=1, batch_size=6, shuffle=False, verbose=0)  # the same single step
    for k, v in model.get_weights().items():
        np.testing.assert_allclose(v, twin.get_weights()[k], rtol=1e-6)
    with pytest.raises(RuntimeError, match="train_on_batch: call model.compile"):
        hp.Sequential([hp.layers.Dense(1)]).train_on_batch(x.reshape(6, -1), y)


def test_input_gradient_is_the_derivative_of_the_loss_and_changes_no_weight():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((3, 1, 4, 4)), rng.integers(0, 2, 3)
    model = small_classifier().cast(np.float64)
    before = model.get_weights()
    loss, dx = model.input_gradient(x, y)
    assert dx.shape == x.shape and loss == pytest.approx(model.evaluate(x, y))
    numeric = numeric_gradient(lambda: model.evaluate(x, y), x, np.arange(x.size))
    np.testing.assert_allclose(dx.ravel(), numeric, rtol=1e-6, atol=1e-9)
    for k, v in model.get_weights().items():
        np.testing.assert_array_equal(v, before[k])


def test_model_trainable_freezes_every_layer_and_restores():
    model = small_classifier()
    model.trainable = False
    assert not model.trainable and model.count_trainable_params() == 0 and not model.trainable_params()
    before = model.get_weights()
    model.train_on_batch(np.ones((2, 1, 4, 4)), [0, 1])
    for k, v in model.get_weights().items():
        np.testing.assert_array_equal(v, before[k])
    model.trainable = True
    assert all(layer.trainable for layer in model.layers)


@pytest.fixture(scope="module")
def digits():
    (x, _), _ = hp.data.load_digits(flatten=False)
    return x[:256]


def test_gan_shapes():
    generator, discriminator = arch.gan(latent_dim=8, width=4)
    z = np.random.default_rng(0).standard_normal((5, 8))
    fake = generator.predict(z)
    assert fake.shape == (5, 1, 8, 8) and fake.min() >= 0 and fake.max() <= 1
    assert discriminator.predict(fake).shape == (5, 1)
    with pytest.raises(ValueError, match="must be even"):
        arch.gan(image_shape=(1, 7, 8))


def test_generator_step_moves_only_the_generator_and_follows_ds_input_gradient(digits):
    generator, discriminator = arch.gan(latent_dim=8, width=4, seed=3)
    discriminator.compile(loss=hp.losses.BinaryCrossEntropy(from_logits=True), optimizer="adam")
    combined = arch.stack(generator, discriminator, hp.optimizers.SGD(lr=0.05))
    z = np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32)

    # the gradient the generator gets is D's input gradient at its fakes, pushed back through G
    fake = generator.forward(z, training=True)
    _, dfake = discriminator.input_gradient(fake, np.ones((16, 1)), training=True)
    generator.backward(dfake)
    via_input_gradient = {k: v.copy() for k, v in generator.named_grads().items()}

    g_before, d_before = generator.get_weights(), discriminator.get_weights()
    loss = arch.generator_step(combined, discriminator, z)
    assert np.isfinite(loss)
    for k, v in discriminator.get_weights().items():  # frozen during the step
        np.testing.assert_array_equal(v, d_before[k])
    assert all(layer.trainable for layer in discriminator.layers)  # and given back its flags
    g_after = generator.get_weights()
    for (k, v), step in zip(g_before.items(), via_input_gradient.values()):
        np.testing.assert_allclose(v - g_after[k], 0.05 * step, rtol=1e-3, atol=1e-7)  # SGD: w -= lr g

    d_loss = arch.discriminator_step(discriminator, digits[:16], generator.predict(z))
    assert np.isfinite(d_loss)
    assert any(not np.array_equal(v, d_before[k]) for k, v in discriminator.get_weights().items())
    for k, v in generator.get_weights().items():
        np.testing.assert_array_equal(v, g_after[k])


def test_train_gan_returns_finite_losses_per_step(digits):
    generator, discriminator = arch.gan(latent_dim=8, width=8)
    losses = arch.train_gan(generator, discriminator, digits, steps=6, batch_size=16, seed=0)
    assert losses["d_loss"].shape == losses["g_loss"].shape == (6,)
    assert np.isfinite(losses["d_loss"]).all() and np.isfinite(losses["g_loss"]).all()
    assert 0.3 < losses["d_loss"][0] < 1.5  # near log 2 = 0.69 at the start: D is guessing
