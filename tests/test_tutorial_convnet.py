"""The tutorial's Keras ConvNet written with handprop: parameter counts and a few training steps."""

import numpy as np

import handprop as hp

L = hp.layers


def tutorial_convnet(seed=0):
    """29×29×3 patches -> Conv 20 5×5 -> PReLU -> MaxPool 2 -> Conv 50 3×3 -> PReLU -> MaxPool 2
    -> Flatten -> Dense 2000 -> PReLU -> Dense 135 -> softmax (fused into the loss)."""
    return hp.Sequential([
        L.Conv2D(20, 5), L.PReLU(), L.MaxPool2D(2),
        L.Conv2D(50, 3), L.PReLU(), L.MaxPool2D(2),
        L.Flatten(), L.Dense(2000), L.PReLU(), L.Dense(135),
    ], seed=seed, input_shape=(3, 29, 29), name="tutorial_convnet")


def test_summary_parameter_counts():
    model = tutorial_convnet()
    text = model.summary(print_fn=None)
    # conv1: 20*3*5*5 + 20 = 1520; conv2: 50*20*3*3 + 50 = 9050; 25x25 -> 12x12 -> 10x10 -> 5x5
    # dense1: 50*5*5*2000 + 2000 = 2,502,000; dense2: 2000*135 + 135 = 270,135; PReLU slopes 20+50+2000
    for count in ("1,520", "9,050", "2,502,000", "270,135", "2,000"):
        assert count in text
    assert "(None, 50, 5, 5)" in text and "(None, 1250)" in text
    expected = 1520 + 20 + 9050 + 50 + 2_502_000 + 2000 + 270_135
    assert model.count_params() == expected
    assert f"Total params: {expected:,}" in text


def test_trains_on_random_patches_with_decreasing_loss():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3, 29, 29)).astype(np.float32)
    y = rng.integers(0, 135, size=64)
    model = tutorial_convnet()
    model.compile(loss=hp.losses.SoftmaxCrossEntropy(), optimizer=hp.optimizers.SGD(lr=0.01),
                  metrics=["accuracy"])
    hist = model.fit(x, y, epochs=4, batch_size=32, verbose=0)
    losses = hist.history["loss"]
    assert all(b < a for a, b in zip(losses, losses[1:])), losses  # decreases every epoch
    assert losses[-1] < losses[0] * 0.95, losses
    assert model.predict(x[:5]).dtype == np.float32
