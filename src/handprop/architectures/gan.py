"""A small GAN (Goodfellow et al., 2014) trained with the public model API only.

Two models play against each other. The discriminator ``D`` outputs a logit "real or fake?";
the generator ``G`` turns noise ``z`` into images and learns to make ``D`` say "real". One
training step is two optimizer steps, each an ordinary ``train_on_batch``::

    d_loss = D.train_on_batch(concat(real, G.predict(z)), [1, ..., 1, 0, ..., 0])   # D learns
    D.trainable = False                               # G learns *through* D, D's weights frozen
    g_loss = GD.train_on_batch(z, [1, ..., 1])        # GD = stack(G, D): G's layers then D's
    D.trainable = True

``GD`` is a ``Sequential`` of the *same layer objects* as ``G`` and ``D`` (:func:`stack`), so
its optimizer step moves G's weights, and the frozen D layers pass the gradient on without
being updated. The gradient G receives is D's **input gradient** at the fake images --
``D.input_gradient(fake, ones)`` computes exactly that, which the tests use to check that the
two routes agree.
"""

from __future__ import annotations

import numpy as np

from .. import losses, optimizers
from ..layers import Conv2D, Dense, Flatten, LeakyReLU, Reshape, Sigmoid, UpSampling2D
from ..model import Sequential


def gan(latent_dim=16, image_shape=(1, 8, 8), width=32, seed=0):
    """``(generator, discriminator)`` for small images (the 8 x 8 digits of ``hp.data.load_digits``).

    generator ``(N, latent_dim) -> (N, C, H, W)`` in [0, 1]::

        Dense(width H/2 W/2) -> LeakyReLU(0.2) -> Reshape((width, H/2, W/2)) -> UpSampling2D(2)
        -> Conv2D(width, 3, "same") -> LeakyReLU(0.2) -> Conv2D(C, 3, "same") -> Sigmoid

    discriminator ``(N, C, H, W) -> (N, 1)`` logits (for ``BinaryCrossEntropy(from_logits=True)``)::

        Conv2D(width, 3, stride 2, "same") -> LeakyReLU(0.2) -> Conv2D(2 width, 3, stride 2, "same")
        -> LeakyReLU(0.2) -> Flatten -> Dense(1)

    ``H`` and ``W`` must be even. Both are ``Sequential`` models, built (their input shapes are known).
    """
    C, H, W = image_shape
    if H % 2 or W % 2:
        raise ValueError(f"gan: image height and width must be even, got {image_shape}")
    generator = Sequential([
        Dense(width * (H // 2) * (W // 2)), LeakyReLU(0.2), Reshape((width, H // 2, W // 2)), UpSampling2D(2),
        Conv2D(width, 3, padding="same"), LeakyReLU(0.2), Conv2D(C, 3, padding="same"), Sigmoid(),
    ], seed=seed, input_shape=(latent_dim,), name="generator")
    discriminator = Sequential([
        Conv2D(width, 3, stride=2, padding="same"), LeakyReLU(0.2), Conv2D(2 * width, 3, stride=2, padding="same"),
        LeakyReLU(0.2), Flatten(), Dense(1),
    ], seed=seed + 1, input_shape=tuple(image_shape), name="discriminator")
    return generator, discriminator


def stack(generator, discriminator, optimizer=None):
    """``GD``: one ``Sequential`` of the generator's layers followed by the discriminator's (the
    same objects: nothing is copied or re-initialized), compiled with
    ``BinaryCrossEntropy(from_logits=True)`` and ``optimizer`` (default ``Adam(lr=2e-4,
    betas=(0.5, 0.999))``, the DCGAN setting)."""
    combined = Sequential(generator.layers + discriminator.layers, input_shape=generator.input_shape,
                          name="generator+discriminator")
    combined.compile(loss=losses.BinaryCrossEntropy(from_logits=True),
                     optimizer=optimizer or optimizers.Adam(lr=2e-4, betas=(0.5, 0.999)))
    if generator.device == "gpu":  # its layers are on the GPU already: so must its inputs be
        combined.to_gpu()
    return combined


def discriminator_step(discriminator, real, fake):
    """One optimizer step of the discriminator: real images labelled 1, fakes 0. -> its loss."""
    x = np.concatenate([real, fake])
    y = np.concatenate([np.ones((len(real), 1)), np.zeros((len(fake), 1))])
    return discriminator.train_on_batch(x, y)


def generator_step(combined, discriminator, z):
    """One optimizer step of the generator through the frozen discriminator: ``combined``
    (:func:`stack`) is trained to output "real" (1) for ``G(z)``. The discriminator's layers are
    frozen for the step (``trainable = False``) and given back their own flags after. -> the loss."""
    flags = [layer.trainable for layer in discriminator.layers]
    discriminator.trainable = False
    try:
        return combined.train_on_batch(z, np.ones((len(z), 1)))
    finally:
        for layer, flag in zip(discriminator.layers, flags):
            layer.trainable = flag


def train_gan(generator, discriminator, data, steps=500, batch_size=32, lr=2e-4, seed=0, verbose=False):
    """Train a GAN for ``steps`` steps (each: one discriminator step, one generator step).

    ``data`` (N, C, H, W) real images in [0, 1]; the discriminator is compiled here (when it is
    not already) with ``BinaryCrossEntropy(from_logits=True)`` and ``Adam(lr, betas=(0.5, 0.999))``;
    the generator learns through :func:`stack`. Noise ``z ~ N(0, 1)``, seeded.

    Returns ``{"d_loss": array (steps,), "g_loss": array (steps,)}``: the losses of every step
    (``log 2 = 0.69`` for D is a coin toss; a D loss near 0 means G has lost the game).
    """
    rng = np.random.default_rng(seed)
    latent_dim = generator.input_shape[0]
    if discriminator.loss is None:
        discriminator.compile(loss=losses.BinaryCrossEntropy(from_logits=True),
                              optimizer=optimizers.Adam(lr=lr, betas=(0.5, 0.999)))
    combined = stack(generator, discriminator, optimizers.Adam(lr=lr, betas=(0.5, 0.999)))
    data = np.asarray(data, dtype=np.float32)
    d_losses, g_losses = np.empty(steps), np.empty(steps)
    for step in range(steps):
        real = data[rng.choice(len(data), size=batch_size, replace=False)]
        fake = generator.predict(rng.standard_normal((batch_size, latent_dim)))
        d_losses[step] = discriminator_step(discriminator, real, fake)
        g_losses[step] = generator_step(combined, discriminator, rng.standard_normal((batch_size, latent_dim)))
        if verbose and (step % 50 == 0 or step == steps - 1):
            print(f"step {step:4d}  d_loss {d_losses[step]:.3f}  g_loss {g_losses[step]:.3f}")
    return {"d_loss": d_losses, "g_loss": g_losses}
