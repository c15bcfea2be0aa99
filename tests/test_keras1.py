"""handprop.keras1: the slides' two Keras 1 programs run as written (imports rewritten), and each
2016 spelling translates onto handprop's own layers, optimizers and model."""

import re
from pathlib import Path

import numpy as np
import pytest

import handprop as hp
from handprop.keras1 import optimizers as k1_optimizers
from handprop.keras1.layers import (
    Activation,
    AtrousConvolution2D,
    Convolution2D,
    Dense,
    Dropout,
    Flatten,
    MaxPooling2D,
    PReLU,
)
from handprop.keras1.models import Sequential

CHAPTER5 = Path(__file__).resolve().parents[1] / "notebooks" / "source" / "05_getting_started.py"

# the imports the ConvNet slide leaves out, in Keras 1's modules (as chapter 5 adds them)
CONVNET_IMPORTS = """\
from keras.models import Sequential
from keras.layers.convolutional import Convolution2D, MaxPooling2D
from keras.layers.advanced_activations import PReLU
from keras.layers.core import Flatten, Dense, Activation
"""


def _markdown_code_blocks(source):
    """The ```python blocks quoted in the markdown cells of a notebook source (lines behind '# ')."""
    text = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in source.splitlines()
                     if line.startswith("#"))
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def slide_programs():
    """(first program, ConvNet program): the slides' code as chapter 5 quotes it, verbatim."""
    blocks = _markdown_code_blocks(CHAPTER5.read_text())
    first = "\n".join(b for b in blocks if "KERAS_BACKEND" in b or "keras.optimizers" in b or "nb_epoch=5" in b)
    convnet = [b for b in blocks if "Convolution2D(20, 5,5" in b]
    assert first.count("from keras.") == 3 and len(convnet) == 1, "chapter 5 must quote both slide programs"
    return first, convnet[0]


def to_handprop(code):
    """``from keras.X import Y`` -> ``from handprop.keras1.X import Y``; nothing else changes."""
    return re.sub(r"^from keras\.", "from handprop.keras1.", code, flags=re.M)


def _code_cells(source):
    cells = re.split(r"^# %%.*$", source, flags=re.M)
    return [c.strip("\n") for c in cells if c.strip() and not c.lstrip().startswith("#")]


# ------------------------------------------------------------------------------ the slides' programs
def test_chapter5_quotes_and_runs_the_slides_verbatim():
    first, convnet = slide_programs()
    assert "model.add(Dense(output_dim=64, input_dim=100," in first and "predict_classes(X_test" in first
    source = CHAPTER5.read_text()
    cells = _code_cells(source)
    # the run cells are the quotes with only the import lines rewritten
    quoted_first = to_handprop("\n\n".join(b.strip("\n") for b in _markdown_code_blocks(source)[:3]))
    assert any(cell == quoted_first for cell in cells)
    assert any(cell == to_handprop(CONVNET_IMPORTS) + convnet.strip("\n") for cell in cells)
    assert "CC BY-NC-SA 4.0" in source and source.count("quoted unchanged") == 2


def test_first_program_runs_on_synthetic_data():
    first, _ = slide_programs()
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 96)
    X_train = rng.standard_normal((96, 100)).astype(np.float32) + 2.0 * np.eye(10, 100)[labels].astype(np.float32)
    namespace = {"X_train": X_train, "Y_train": np.eye(10)[labels], "X_test": X_train[:40],
                 "Y_test": np.eye(10)[labels[:40]], "os": __import__("os")}
    exec(compile(to_handprop(first), "slide 1", "exec"), namespace)
    model = namespace["model"]
    assert [layer.output_shape for layer in model.layers] == [(64,), (64,), (10,)]
    assert model.count_params() == 100 * 64 + 64 + 64 * 10 + 10
    assert isinstance(model.loss, hp.losses.SoftmaxCrossEntropy) and model.optimizer.nesterov
    assert np.isfinite(namespace["objective_score"])
    assert namespace["classes"].shape == (40,)
    proba = model.predict(X_train[:40])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(namespace["classes"], proba.argmax(axis=1))


def convnet_model():
    _, convnet = slide_programs()
    namespace = {}
    exec(compile(to_handprop(CONVNET_IMPORTS + convnet), "slide 2", "exec"), namespace)
    return namespace["model"]


def test_convnet_program_shapes_and_keras1_parameter_count():
    model = convnet_model()
    assert model.keras1_output_shapes() == [(25, 25, 20), (25, 25, 20), (12, 12, 20), (10, 10, 50), (10, 10, 50),
                                            (5, 5, 50), (1250,), (2000,), (2000,), (135,), (135,)]
    # Keras 1: conv (5*5*3+1)*20, PReLU a slope per position, conv (3*3*20+1)*50, PReLU, Dense, PReLU, Dense
    assert model.count_params() == 1520 + 12500 + 9050 + 5000 + 2502000 + 2000 + 270135 == 2802205
    assert "2,802,205" in model.summary(print_fn=None)
    model.compile(loss="categorical_crossentropy", optimizer=k1_optimizers.SGD(lr=0.01, momentum=0.9, nesterov=True))
    x = np.random.default_rng(0).standard_normal((4, 29, 29, 3)).astype(np.float32)
    y = np.eye(135)[[0, 1, 2, 3]]
    assert np.isfinite(model.train_on_batch(x, y))
    assert model.predict(x).shape == (4, 135) and model.predict_classes(x).shape == (4,)


def test_translation_uses_handprop_layers_only():
    """No second copy of any math: every layer in a keras1 model is one of handprop's own classes."""
    model = convnet_model()
    for layer in model.layers + [model.layers[-1]]:
        assert type(layer).__module__.startswith("handprop.layers."), type(layer)
    assert type(model).__mro__[1] is hp.Sequential


# ------------------------------------------------------------------------------ each translation
def test_convolution2d_three_numbers_mean_a_kernel_here_only():
    layer = Convolution2D(20, 5, 5)
    assert isinstance(layer, hp.layers.Conv2D)
    assert layer.kernel_size == (5, 5) and layer.stride == (1, 1) and layer.padding == "valid"
    layer.build((3, 29, 29))
    assert layer.params["W"].shape == (20, 3, 5, 5)
    assert Convolution2D(8, 3, 5, subsample=(2, 2)).stride == (2, 2)
    with pytest.raises(TypeError, match=r"keyword-only.*Conv2D\(20, \(5, 5\)\)"):
        hp.layers.Conv2D(20, 5, 5)  # handprop's own API is unchanged


def test_border_mode_same_and_atrous():
    model = Sequential()
    model.add(Convolution2D(4, 3, 3, border_mode="same", dim_ordering="tf", input_shape=(9, 9, 2)))
    model.add(AtrousConvolution2D(4, 3, 3, atrous_rate=(2, 2), dim_ordering="tf"))
    assert model.keras1_output_shapes() == [(9, 9, 4), (5, 5, 4)]
    assert model.layers[1].dilation == (2, 2)


def test_dim_ordering_tf_transposes_channels_last_batches():
    model = Sequential()
    model.add(Convolution2D(6, 3, 3, dim_ordering="tf", input_shape=(12, 10, 3)))
    model.add(PReLU())
    model.add(MaxPooling2D(pool_size=(2, 2), dim_ordering="tf"))
    model.add(Flatten())
    model.add(Dense(4))
    assert model.input_shape == (3, 12, 10)  # handprop's (C, H, W) inside
    x = np.random.default_rng(0).standard_normal((5, 12, 10, 3)).astype(np.float32)
    out = model.predict(x)
    channels_first = hp.Sequential.forward(model, np.ascontiguousarray(x.transpose(0, 3, 1, 2)), training=False)
    np.testing.assert_array_equal(out, channels_first)
    model.compile(loss="mse", optimizer="sgd")
    loss, dx = model.input_gradient(x, np.zeros((5, 4), np.float32))
    assert dx.shape == x.shape  # the input gradient in the data's channels-last order


def test_channels_last_without_dim_ordering_is_refused():
    with pytest.raises(ValueError, match="dim_ordering='tf'"):
        Convolution2D(20, 5, 5, input_shape=(29, 29, 3))
    th = Convolution2D(20, 5, 5, dim_ordering="th", input_shape=(3, 29, 29))
    assert th.declared_input_shape == (3, 29, 29)
    model = Sequential([Convolution2D(2, 3, 3, dim_ordering="tf", input_shape=(8, 8, 1))])
    with pytest.raises(ValueError, match="use one ordering"):
        model.add(Convolution2D(2, 3, 3, dim_ordering="th"))


def test_prelu_has_a_slope_per_position_starting_at_zero():
    model = Sequential([Convolution2D(3, 3, 3, dim_ordering="tf", input_shape=(6, 5, 2)), PReLU()])
    prelu = model.layers[2]
    assert [type(layer).__name__ for layer in model.layers] == ["Conv2D", "Flatten", "PReLU", "Reshape"]
    assert prelu.params["alpha"].shape == (4 * 3 * 3,) and not prelu.params["alpha"].any()
    prelu.params["alpha"] = np.linspace(-1, 1, 36).astype(np.float32)
    x = np.random.default_rng(1).standard_normal((2, 6, 5, 2)).astype(np.float32)
    z = model.layers[0].forward(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), training=False)  # (N, C, H, W)
    alpha = prelu.params["alpha"].reshape(3, 4, 3)  # one slope per (c, i, j)
    np.testing.assert_allclose(model.forward(x, training=False), np.where(z > 0, z, alpha * z), rtol=1e-6)
    shared = Sequential([Convolution2D(3, 3, 3, dim_ordering="tf", input_shape=(6, 5, 2)), PReLU(shared_axes=[1, 2])])
    assert shared.layers[1].params["alpha"].shape == (3,)


def test_keras1_convnet_passes_the_gradient_check():
    model = Sequential()
    model.add(Convolution2D(3, 3, 3, dim_ordering="tf", input_shape=(7, 7, 2)))
    model.add(PReLU())
    model.add(MaxPooling2D(pool_size=(2, 2), dim_ordering="tf"))
    model.add(Flatten())
    model.add(Dense(output_dim=3))
    model.add(Activation("softmax"))
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    for layer in model.layers:
        if "alpha" in layer.params:
            layer.params["alpha"] += np.float32(0.3)  # slopes away from 0, so the check sees them
    x = np.random.default_rng(2).standard_normal((3, 7, 7, 2))
    report = hp.gradcheck.check_model(model, x, np.eye(3)[[0, 2, 1]])
    assert report.passed, report


def test_dense_dropout_and_activation():
    layer = Dense(output_dim=7, input_dim=5, init="zero", bias=False, activation="tanh")
    assert isinstance(layer, hp.layers.Dense) and layer.units == 7 and layer.declared_input_shape == (5,)
    model = Sequential([layer])
    assert not model.layers[0].params["W"].any() and "b" not in model.layers[0].params
    assert Dropout(0.3).rate == 0.3
    assert isinstance(Activation("relu"), hp.layers.ReLU)


def test_fit_nb_epoch_predict_and_classes():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 4)).astype(np.float32)
    y = (x[:, :1] > 0).astype(np.float32)
    model = Sequential([Dense(output_dim=1, input_dim=4), Activation("sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    assert len(model.fit(x, y, nb_epoch=3, verbose=0).history["loss"]) == 3
    assert len(model.fit(x, y, verbose=0).history["loss"]) == 10  # Keras 1's default nb_epoch
    proba = model.predict_proba(x)
    np.testing.assert_array_equal(model.predict_classes(x), (proba > 0.5).astype(np.int32))
    assert len(model.evaluate(x, y, batch_size=32)) == 2


def test_keras1_optimizers_keep_keras1_names_and_defaults():
    adam = k1_optimizers.Adam(beta_1=0.8, beta_2=0.99, epsilon=1e-7)
    assert isinstance(adam, hp.optimizers.Adam) and adam.betas == (0.8, 0.99) and adam.eps == 1e-7
    rms = k1_optimizers.get("rmsprop")
    assert isinstance(rms, hp.optimizers.RMSprop) and (rms.lr, rms.alpha) == (0.001, 0.9)
    assert isinstance(k1_optimizers.Adagrad(), hp.optimizers.AdaGrad)
    delta = k1_optimizers.Adadelta()
    assert (delta.lr, delta.rho, delta.eps) == (1.0, 0.95, 1e-8)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_equals_keras1_velocity_form(nesterov):
    """Keras 1: v <- m v - lr g, w <- w + v (Nesterov: w + m v - lr g). handprop's (PyTorch's)
    buffer form gives the same steps at a constant learning rate."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal(6)
    opt = k1_optimizers.SGD(lr=0.05, momentum=0.9, nesterov=nesterov)
    params, keras_w, v = {"w": w.copy()}, w.copy(), np.zeros(6)
    for _ in range(6):
        g = rng.standard_normal(6)
        opt.step(params, {"w": g})
        v = 0.9 * v - 0.05 * g
        keras_w = keras_w + (0.9 * v - 0.05 * g if nesterov else v)
    np.testing.assert_allclose(params["w"], keras_w, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------ clear errors
@pytest.mark.parametrize("make, match", [
    (lambda: Dense(output_dim=4, W_regularizer="l2"), r"W_regularizer= is not supported.*weight_decay"),
    (lambda: Dense(units=4), r"units= is the modern \(Keras 2\) spelling.*output_dim="),
    (lambda: Dense(4, colour="red"), r"unknown argument colour=.*output_dim"),
    (lambda: Convolution2D(4, 3, 3, padding="same"), r"padding=.*border_mode="),
    (lambda: Convolution2D(4, 3, 3, border_mode="full"), r"border_mode.*'full'"),
    (lambda: Convolution2D(4, 3, 3, dim_ordering="channels_last"), r"dim_ordering.*data_format"),
    (lambda: Dense(4, init="uniform"), r"init='uniform'.*kernel_initializer"),
    (lambda: k1_optimizers.SGD(lr=0.1, decay=1e-6), r"decay= is not supported.*LearningRateScheduler"),
    (lambda: k1_optimizers.Adam(learning_rate=0.1), r"learning_rate=.*lr="),
    (lambda: MaxPooling2D(border_mode="same"), r"border_mode='same' is not supported"),
    (lambda: PReLU(shared_axes=[3]), r"shared_axes"),
])
def test_unsupported_arguments_name_the_argument_and_the_spelling(make, match):
    with pytest.raises((TypeError, ValueError), match=match):
        make()


def test_model_level_errors():
    model = Sequential([Dense(output_dim=3, input_dim=2)])
    with pytest.raises(ValueError, match=r"reads probabilities.*Activation\('softmax'\)"):
        model.compile(optimizer="sgd", loss="categorical_crossentropy")
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(TypeError, match=r"epochs= is the modern.*nb_epoch="):
        model.fit(np.zeros((2, 2)), np.zeros((2, 3)), epochs=2)
    with pytest.raises(ValueError, match="input size must be known"):
        Sequential().add(PReLU())
