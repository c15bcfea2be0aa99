"""No silent wrong results: each test here reproduces a mistake that used to train on silently
(or fail with an unrelated traceback), and checks the clear error or warning that replaced it.
Also the Keras spellings of the tutorial's code."""

import warnings

import numpy as np
import pytest

import handprop as hp
from handprop.gradcheck import check_layer, check_model
from handprop.layers.conv import looks_channels_last

L = hp.layers


def classifier_data(n=32, features=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, features)).astype(np.float32), rng.integers(0, classes, n)


def compiled_mlp(**compile_kwargs):
    model = hp.Sequential([L.Dense(8), L.ReLU(), L.Dense(3)], seed=0)
    model.compile(**{"loss": hp.losses.SoftmaxCrossEntropy(), "optimizer": hp.optimizers.SGD(lr=0.1),
                     **compile_kwargs})
    return model


# ----------------------------------------------------------------------------- channels-last images
@pytest.mark.parametrize("shape", [(32, 32, 3), (29, 29, 3), (28, 28, 1), (64, 48, 4)])
def test_channels_last_batches_are_refused_with_the_transpose(shape):
    x = np.zeros((2, *shape), np.float32)
    H, W, C = shape
    hint = rf"looks channels-last.*x.transpose\(0, 3, 1, 2\) gives \(N, {C}, {H}, {W}\)"
    model = hp.Sequential([L.Conv2D(4, 3), L.ReLU(), L.Flatten(), L.Dense(2)])
    model.compile(hp.losses.SoftmaxCrossEntropy(), "sgd")
    with pytest.raises(ValueError, match=hint):  # built lazily from the data
        model.fit(x, np.zeros(2, int), verbose=0)
    with pytest.raises(ValueError, match=hint):  # a Keras-style declared input shape
        hp.Sequential([L.BatchNorm(), L.Conv2D(4, 3)], input_shape=shape)
    with pytest.raises(ValueError, match=hint):  # Keras-style on the first layer
        hp.Sequential([L.Conv2D(4, 3, input_shape=shape)])
    with pytest.raises(ValueError, match=hint):  # a graph model's Input
        hp.Model(inp := hp.Input(shape), L.Conv2D(2, 3)(inp))
    with pytest.raises(ValueError, match=hint):  # a layer used on its own
        L.Conv2D(4, 3).forward(x)
    # the right layout trains
    model.fit(x.transpose(0, 3, 1, 2), np.zeros(2, int), verbose=0)
    assert model.layers[0].params["W"].shape == (4, C, 3, 3)


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28), (4, 29, 29), (64, 8, 4), (16, 100, 1), (8, 5, 3),
                                   (3, None, None), (32, None, 3)])
def test_legitimate_nchw_inputs_are_not_flagged(shape):
    assert not looks_channels_last(shape)


def test_channels_last_check_leaves_later_layers_and_prebuilt_layers_alone():
    # an intermediate (16, 26, 3) map after a valid conv is the model's business, not the data's
    model = hp.Sequential([L.Conv2D(16, (5, 3)), L.Conv2D(2, 3)], input_shape=(1, 30, 5))
    assert model.layers[1].input_shape == (16, 26, 3)
    # the documented way out for a real (N, 32, 32, 3) NCHW input: build the layer yourself
    conv = L.Conv2D(4, 3, padding="same")
    conv.build((32, 32, 3))
    assert conv.forward(np.zeros((1, 32, 32, 3), np.float32)).shape == (1, 4, 32, 3)


# ----------------------------------------------------------------------------- Conv2D(20, 5, 5)
@pytest.mark.parametrize("cls", [L.Conv2D, L.Conv2DTranspose, L.Convolution2D])
def test_keras1_conv_spelling_says_what_to_write(cls):
    name = cls.__name__
    with pytest.raises(TypeError, match=rf"keyword-only.*write {name}\(20, \(5, 5\)\).*stride=5"):
        cls(20, 5, 5)


# ----------------------------------------------------------------------------- softmax twice
def test_softmax_before_softmax_cross_entropy_is_refused():
    for last in (L.Softmax(), L.Dense(3, activation="softmax")):
        model = hp.Sequential([L.Dense(8), L.ReLU(), last])
        with pytest.raises(ValueError, match="applies softmax and SoftmaxCrossEntropy applies it again"):
            model.compile(loss=hp.losses.SoftmaxCrossEntropy(), optimizer="sgd")
        with pytest.raises(ValueError, match="applies softmax"):
            model.compile(loss="categorical_crossentropy")
    inp = hp.Input((4,))
    graph = hp.Model(inp, L.Softmax()(L.Dense(3)(inp)))
    with pytest.raises(ValueError, match="applies softmax"):
        graph.compile(hp.losses.SoftmaxCrossEntropy(), "sgd")
    # added after compile: caught when fit starts
    model = compiled_mlp()
    model.add(L.Softmax())
    with pytest.raises(ValueError, match="applies softmax"):
        model.fit(*classifier_data(), verbose=0)
    sig = hp.Sequential([L.Dense(1), L.Sigmoid()])
    with pytest.raises(ValueError, match=r"applies a sigmoid and BinaryCrossEntropy\(from_logits=True\)"):
        sig.compile(hp.losses.BinaryCrossEntropy(from_logits=True), "sgd")
    sig.compile(hp.losses.BinaryCrossEntropy(), "sgd")  # probabilities into the probability loss: right


# ----------------------------------------------------------------------------- fit arguments
@pytest.mark.parametrize("kwargs, error, match", [
    (dict(batch_size=-1), ValueError, "batch_size must be an int >= 1, got -1"),
    (dict(batch_size=0), ValueError, "batch_size must be an int >= 1, got 0"),
    (dict(batch_size=2.7), TypeError, r"batch_size must be an int >= 1, got 2.7"),
    (dict(batch_size="32"), TypeError, "batch_size"),
    (dict(batch_size=True), TypeError, "batch_size"),
    (dict(batch_size=None), TypeError, "batch_size"),
    (dict(epochs=-1), ValueError, "epochs must be an int >= 0, got -1"),
    (dict(epochs=1.5), TypeError, "epochs"),
    (dict(validation_split=1.0), ValueError, "validation_split"),
    (dict(validation_split=-0.1), ValueError, "validation_split"),
    (dict(validation_split="0.1"), TypeError, "validation_split"),
    (dict(verbose=3), ValueError, "verbose"),
    (dict(shuffle="yes"), TypeError, "shuffle"),
    (dict(callbacks=hp.callbacks.History()), TypeError, "callbacks must be a list"),
])
def test_fit_arguments_are_validated(kwargs, error, match):
    model = compiled_mlp()
    with pytest.raises(error, match=match):
        model.fit(*classifier_data(), **{"verbose": 0, **kwargs})
    assert not model.built  # refused before anything happened


def test_predict_and_evaluate_batch_size_and_numpy_ints():
    model = compiled_mlp()
    x, y = classifier_data()
    model.fit(x, y, epochs=np.int64(1), batch_size=np.int32(8), verbose=0)
    for call in (lambda b: model.predict(x, batch_size=b), lambda b: model.evaluate(x, y, batch_size=b)):
        with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
            call(0)
        with pytest.raises(TypeError, match="batch_size"):
            call(2.5)
    assert model.fit(x, y, epochs=0, verbose=0).history == {}  # zero epochs: allowed, nothing happens


# ----------------------------------------------------------------------------- hyper-parameter ranges
@pytest.mark.parametrize("make, error, match", [
    (lambda: L.BatchNorm(momentum=1.5), ValueError, r"momentum must lie in \[0, 1\]"),
    (lambda: L.BatchNorm(momentum=-0.5), ValueError, "momentum"),
    (lambda: L.BatchNorm(momentum=float("nan")), ValueError, "momentum"),
    (lambda: L.BatchNorm(eps=0), ValueError, "eps must be a positive number"),
    (lambda: L.BatchNorm(eps=-1e-5), ValueError, "eps"),
    (lambda: L.BatchNorm(momentum="0.1"), TypeError, "momentum must be a number"),
    (lambda: hp.optimizers.SGD(momentum=1.5), ValueError, r"momentum=1.5; it must lie in \[0, 1\)"),
    (lambda: hp.optimizers.SGD(momentum=1.0), ValueError, "momentum"),
    (lambda: hp.optimizers.SGD(lr=float("inf")), ValueError, "lr=inf; it must be finite"),
    (lambda: hp.optimizers.SGD(lr="0.1"), TypeError, "lr must be a number"),
    (lambda: hp.optimizers.RMSprop(alpha=1.5), ValueError, r"alpha=1.5; it must lie in \[0, 1\]"),
    (lambda: L.Dense(2.5), ValueError, "units must be a positive int, got 2.5"),
    (lambda: L.Dense(True), ValueError, "units"),
    (lambda: L.Dense(64, "relu"), TypeError, "use_bias must be True or False.*activation='relu'"),
    (lambda: L.Dense(4, activation="prelu"), ValueError, "add hp.layers.PReLU"),
    (lambda: L.Dense(4, activation="swish"), ValueError, "unknown activation 'swish'"),
    (lambda: L.Dropout("0.5"), TypeError, "rate"),
    (lambda: L.LeakyReLU(float("nan")), ValueError, "alpha must be finite"),
    (lambda: L.Conv2D(4, 3, use_bias=1), TypeError, "use_bias"),
])
def test_out_of_range_hyper_parameters_are_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_in_range_edges_are_accepted():
    L.BatchNorm(momentum=0.0), L.BatchNorm(momentum=1), L.BatchNorm(eps=1e-12)
    hp.optimizers.SGD(momentum=0.99), hp.optimizers.RMSprop(alpha=1.0), hp.optimizers.RMSprop(alpha=0)


def test_metrics_as_a_single_string():
    model = compiled_mlp(metrics="accuracy")
    assert [name for name, _ in model.metrics] == ["accuracy"]
    assert len(model.evaluate(*classifier_data())) == 2
    with pytest.raises(ValueError, match="unknown metric 'a'"):
        compiled_mlp(metrics=["a"])


# ----------------------------------------------------------------------------- divergence
def test_exploding_loss_warns_naming_the_learning_rate():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = (x @ rng.standard_normal((4, 1))).astype(np.float32)
    model = hp.Sequential([L.Dense(16), L.Dense(1)], seed=0)
    model.compile("mse", hp.optimizers.SGD(lr=0.3, momentum=0.9))
    with pytest.warns(hp.DivergenceWarning, match=r"learning rate \(0.3\)") as record:
        with pytest.raises(FloatingPointError):  # it ends as inf, as before -- but we were warned first
            model.fit(x, y, epochs=50, batch_size=8, verbose=0)
    assert len([w for w in record if issubclass(w.category, hp.DivergenceWarning)]) == 1  # once per fit
    calm = hp.Sequential([L.Dense(16), L.Dense(1)], seed=0)
    calm.compile("mse", hp.optimizers.SGD(lr=0.01))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        calm.fit(x, y, epochs=5, batch_size=8, verbose=0)


# ----------------------------------------------------------------------------- data checks
def test_nan_targets_are_blamed_on_the_targets():
    model = hp.Sequential([L.Dense(1)])
    model.compile("mse", "sgd")
    x, _ = classifier_data()
    y = np.ones((32, 1), np.float32)
    y[[3, 17]] = np.nan
    with pytest.raises(ValueError, match=r"targets y contain NaN.*2 samples.*\[3, 17\]"):
        model.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match="targets y contain NaN"):
        model.evaluate(x, y)
    with pytest.raises(TypeError, match="targets y must be numeric"):
        model.fit(x, np.array(["a"] * 32), verbose=0)


def test_inputs_that_overflow_float32_are_caught():
    model = compiled_mlp()
    x, y = classifier_data()
    x = x.astype(np.float64)
    x[0, 0] = 1e39  # finite in float64, inf in float32
    for call in (lambda: model.fit(x, y, verbose=0), lambda: model.predict(x), lambda: model.evaluate(x, y)):
        with pytest.raises(ValueError, match="values up to 1e\\+39, beyond the largest float32"):
            call()


@pytest.mark.skipif(not hp.backend.numba_available(), reason="needs numba")
def test_float16_on_the_numba_engine_is_a_clear_error():
    """The engine's kernels (conv, pooling) refuse float16 clearly; activations are the layers' own
    NumPy lines (their one-pass loops are optional) and compute it
    (tests/test_layers_foundation.py::test_float16_activations_run_their_own_numpy_lines)."""
    x16 = np.ones((1, 1, 6, 6), np.float16)
    with hp.engine("numba"):
        for layer in (L.Conv2D(2, 3), L.MaxPool2D(2), L.AvgPool2D(2), L.Conv2DTranspose(2, 2)):
            with pytest.raises(TypeError, match="numba engine computes in float32 or float64, got float16"):
                layer.forward(x16)
    with hp.engine("numpy"):  # the way out the message offers
        assert L.MaxPool2D(2).forward(x16).dtype == np.float16


def test_backward_before_forward_is_a_runtime_error():
    for layer in (L.Dense(2, activation="relu"), L.Conv2D(2, 3, activation="tanh"), L.ReLU(), L.BatchNorm()):
        with pytest.raises(RuntimeError, match="call forward first"):
            layer.backward(np.ones((1, 2)))


# ----------------------------------------------------------------------------- Keras spellings
def test_keras_spellings_work():
    assert isinstance(L.Activation("relu"), L.ReLU) and isinstance(L.Activation("softmax"), L.Softmax)
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        L.Activation("gelu")
    assert L.Convolution2D is L.Conv2D and L.MaxPooling2D is L.MaxPool2D and L.AveragePooling2D is L.AvgPool2D
    assert hp.optimizers.Adagrad is hp.optimizers.AdaGrad
    model = hp.Sequential()
    model.add(L.Convolution2D(4, (3, 3), activation="relu", input_shape=(1, 10, 10)))
    assert model.built  # input_shape on the first layer builds at once, as Keras
    model.add(L.MaxPooling2D(2))
    model.add(L.Flatten())
    model.add(L.Dense(3, input_shape=(99,)))  # later layers' input_shape is ignored, as Keras
    model.add(L.Activation("softmax"))
    assert model.layers[-2].params["W"].shape == (64, 3)
    with pytest.raises(ValueError, match="declares input_shape"):
        hp.Sequential([L.Dense(2, input_shape=(3,))], input_shape=(4,))
    dense_first = hp.Sequential([L.Dense(64, input_shape=(20,)), L.Dense(2)])
    assert dense_first.built and dense_first.layers[0].params["W"].shape == (20, 64)


def test_nb_epoch_is_accepted_with_a_deprecation_warning():
    x, y = classifier_data()
    a, b = compiled_mlp(), compiled_mlp()
    with pytest.warns(DeprecationWarning, match="write fit\\(epochs=...\\)"):
        history = a.fit(x, y, nb_epoch=2, verbose=0)
    b.fit(x, y, epochs=2, verbose=0)
    assert len(history.epoch) == 2
    np.testing.assert_array_equal(a.get_weights()["2.Dense/W"], b.get_weights()["2.Dense/W"])
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="pass only epochs"):
        a.fit(x, y, epochs=3, nb_epoch=2, verbose=0)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "elu", "softmax", "leaky_relu"])
def test_activation_argument_gradient_checks(activation):
    rng = np.random.default_rng(0)
    report = check_layer(L.Dense(4, activation=activation), rng.standard_normal((3, 5)))
    assert report.passed, report
    report = check_layer(L.Conv2D(3, 3, padding="same", activation=activation), rng.standard_normal((2, 2, 5, 5)))
    assert report.passed, report
    report = check_layer(L.Conv2DTranspose(2, 2, stride=2, activation=activation), rng.standard_normal((2, 3, 3, 3)))
    assert report.passed, report


def test_activation_argument_equals_a_separate_layer_and_works_when_shared():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 5))
    fused = L.Dense(3, activation="tanh")
    fused.build((5,), rng=0, dtype=np.float64)
    plain = L.Dense(3)
    plain.build((5,), rng=0, dtype=np.float64)
    np.testing.assert_array_equal(fused.forward(x), np.tanh(plain.forward(x)))
    # a shared layer with an activation: one cache per call, the activation's included
    a, b = hp.Input((5,)), hp.Input((5,))
    shared = L.Dense(3, activation="sigmoid")
    model = hp.Model([a, b], L.Dense(1)(L.Concatenate()([shared(a), shared(b)])), seed=0)
    model.compile("mse", "sgd")
    report = check_model(model, [x, rng.standard_normal((4, 5))], rng.standard_normal((4, 1)))
    assert report.passed, report
