"""Property-based fuzzing (hypothesis): whatever a learner types, handprop answers with a result or
with a ValueError / TypeError whose message names the layer, call or argument -- never a NumPy,
Numba or attribute error from deep inside, and never NaN without an error.

Bounded: a fixed number of examples per property, no deadline (the first call of a Numba kernel
compiles), no example database, a fixed seed; the whole file takes ~10 s on two cores.
``HANDPROP_FUZZ_SCALE=20 pytest tests/test_fuzz.py`` runs 20x the examples with fresh random seeds.
"""

import json
import math
import os
import warnings

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import handprop as hp  # noqa: E402
from handprop import saving  # noqa: E402

L = hp.layers
SCALE = int(os.environ.get("HANDPROP_FUZZ_SCALE", "1"))
FUZZ = settings(deadline=None, database=None, derandomize=SCALE == 1,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

# values a learner might pass for any hyper-parameter: right, wrong and absurd
ANY_VALUE = st.one_of(
    st.integers(-3, 40), st.floats(allow_nan=True, allow_infinity=True, width=32), st.booleans(), st.none(),
    st.sampled_from(["same", "valid", "relu", "", "3", "glorot_uniform", "nope"]),
    st.tuples(st.integers(-1, 5), st.integers(-1, 5)), st.lists(st.integers(0, 4), max_size=3),
)

LAYER_ARGS = {
    L.Dense: (["units"], ["use_bias", "kernel_init", "bias_init", "activation", "name", "input_shape"]),
    L.Conv2D: (["filters", "kernel_size"], ["stride", "padding", "dilation", "use_bias", "activation", "kernel_init"]),
    L.Conv2DTranspose: (["filters", "kernel_size"], ["stride", "padding", "output_padding", "dilation"]),
    L.Conv3D: (["filters", "kernel_size"], ["stride", "padding", "dilation", "use_bias", "activation"]),
    L.DepthwiseConv2D: (["kernel_size"], ["depth_multiplier", "stride", "padding", "dilation", "activation"]),
    L.MaxPool2D: ([], ["pool_size", "stride", "padding", "dilation"]),
    L.AvgPool2D: ([], ["pool_size", "stride", "padding", "dilation"]),
    L.MaxPool3D: ([], ["pool_size", "stride", "padding", "dilation"]),
    L.AvgPool3D: ([], ["pool_size", "stride", "padding", "dilation"]),
    L.Reshape: (["target_shape"], ["input_shape"]),
    L.UpSampling2D: ([], ["size"]),
    L.BatchNorm: ([], ["momentum", "eps"]),
    L.Dropout: (["rate"], []),
    L.LeakyReLU: ([], ["alpha"]),
    L.ELU: ([], ["alpha"]),
    L.PReLU: ([], ["shared", "alpha_init"]),
    L.Concatenate: ([], ["axis"]),
}


def names_something(message, *names):
    return any(str(n) in message for n in names if n)


@st.composite
def layer_calls(draw):
    cls = draw(st.sampled_from(sorted(LAYER_ARGS, key=lambda c: c.__name__)))
    required, optional = LAYER_ARGS[cls]
    kwargs = {k: draw(ANY_VALUE) for k in required}
    for k in draw(st.lists(st.sampled_from(optional), unique=True, max_size=3)) if optional else []:
        kwargs[k] = draw(ANY_VALUE)
    return cls, kwargs


@settings(FUZZ, max_examples=400 * SCALE)
@given(layer_calls())
def test_layer_construction_succeeds_or_names_the_problem(call):
    cls, kwargs = call
    try:
        layer = cls(**kwargs)
    except (ValueError, TypeError) as e:
        assert names_something(str(e), cls.__name__, *kwargs), f"{cls.__name__}({kwargs}): {e}"
        return
    # a layer that constructs can be described, saved and rebuilt
    spec = json.loads(json.dumps(saving.layer_spec(layer, "fuzz")))
    assert saving.layer_from_spec(spec).get_config() == layer.get_config()
    repr(layer)


def image_layers(draw):
    k = draw(st.integers(1, 4))
    choice = draw(st.sampled_from(["conv", "convT", "dw", "max", "avg", "gap", "up", "bn", "drop", "act", "prelu",
                                   "flat"]))
    if choice == "conv":
        return L.Conv2D(draw(st.integers(1, 3)), k, stride=draw(st.integers(1, 3)),
                        padding=draw(st.sampled_from(["valid", "same", 0, 1, 2])), dilation=draw(st.integers(1, 2)),
                        activation=draw(st.sampled_from([None, "relu", "tanh"])))
    if choice == "convT":
        s = draw(st.integers(1, 3))
        return L.Conv2DTranspose(draw(st.integers(1, 3)), k, stride=s, padding=draw(st.integers(0, 1)),
                                 output_padding=draw(st.integers(0, s - 1)))
    if choice == "dw":
        return L.DepthwiseConv2D(k, depth_multiplier=draw(st.integers(1, 2)), stride=draw(st.integers(1, 2)),
                                 padding=draw(st.sampled_from(["valid", "same", 1])), dilation=draw(st.integers(1, 2)))
    if choice in ("max", "avg"):
        cls = L.MaxPool2D if choice == "max" else L.AvgPool2D
        return cls(k, stride=draw(st.integers(1, 3)), padding=draw(st.integers(0, k // 2)),
                   dilation=draw(st.integers(1, 2)))
    if choice == "act":
        return draw(st.sampled_from([L.ReLU, L.Sigmoid, L.Tanh, L.ELU, L.LeakyReLU, L.Linear, L.Softmax]))()
    return {"gap": L.GlobalAvgPool2D, "up": lambda: L.UpSampling2D(draw(st.integers(1, 3))),
            "bn": L.BatchNorm, "drop": lambda: L.Dropout(0.5), "prelu": L.PReLU, "flat": L.Flatten}[choice]()


def volume_layers(draw):
    k = draw(st.integers(1, 3))
    choice = draw(st.sampled_from(["conv", "max", "avg", "bn"]))
    if choice == "conv":
        return L.Conv3D(draw(st.integers(1, 3)), k, stride=draw(st.integers(1, 2)),
                        padding=draw(st.sampled_from(["valid", "same", 1])), dilation=draw(st.integers(1, 2)),
                        activation=draw(st.sampled_from([None, "relu"])))
    if choice in ("max", "avg"):
        cls = L.MaxPool3D if choice == "max" else L.AvgPool3D
        return cls(k, stride=draw(st.integers(1, 2)), padding=draw(st.integers(0, k // 2)),
                   dilation=draw(st.integers(1, 2)))
    return L.BatchNorm()


@settings(FUZZ, max_examples=160 * SCALE)
@given(st.data())
def test_forward_backward_on_random_shapes_and_dtypes(data):
    draw = data.draw
    volume = draw(st.integers(0, 3)) == 0  # a quarter of the examples: volumes (N, C, D, H, W)
    layer = volume_layers(draw) if volume else image_layers(draw)
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    sizes = [draw(st.integers(1, 6 if volume else 9)) for _ in range(3 if volume else 2)]
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), *sizes)
    training = draw(st.booleans())
    x = np.random.default_rng(draw(st.integers(0, 99))).standard_normal(shape).astype(dtype) * 3
    try:
        y = layer.forward(x, training=training)
    except ValueError as e:  # an image too small for the window, or one BatchNorm value per channel
        assert layer.name in str(e), e
        return
    assert y.dtype == dtype and np.isfinite(y).all(), layer
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    dx = layer.backward(dy)
    assert dx.shape == x.shape and dx.dtype == dtype and np.isfinite(dx).all(), layer
    for k, p in layer.params.items():
        assert layer.grads[k].shape == p.shape and np.isfinite(layer.grads[k]).all(), (layer, k)
    with pytest.raises(ValueError, match=layer.name):  # a gradient of the wrong shape is named
        layer.backward(np.zeros((y.shape[0] + 1, *y.shape[1:]), dtype))


def make_model():
    model = hp.Sequential([L.Dense(4), L.ReLU(), L.Dense(3)], seed=0)
    model.compile(hp.losses.SoftmaxCrossEntropy(), hp.optimizers.SGD(lr=0.01), metrics="accuracy")
    return model


ARRAY_LIKE = st.one_of(
    st.builds(lambda n, f: np.random.default_rng(0).standard_normal((n, f)).astype(np.float32),
              st.integers(0, 6), st.integers(1, 7)),
    st.builds(lambda n: np.random.default_rng(1).standard_normal(n), st.integers(1, 6)),
    st.builds(lambda n, f, v: np.full((n, f), v), st.integers(1, 6), st.just(5), st.sampled_from(
        [np.nan, np.inf, -np.inf, 1e39, 1e3, 0])),
    st.builds(lambda n: np.zeros((n, 5), dtype=np.int64), st.integers(1, 6)),
    st.builds(lambda n: np.array([["a"] * 5] * n), st.integers(1, 3)),
    st.just([[1.0, 2.0], [3.0]]), st.just(None), st.just(3.0), st.just("x"), st.just([]),
    st.builds(lambda n: np.zeros((n, 5), dtype=bool), st.integers(1, 4)),
    st.builds(lambda n: np.ones((n, 5), dtype=np.complex64), st.integers(1, 3)),
)
LABELS = st.one_of(
    st.builds(lambda n, k: np.random.default_rng(2).integers(-1, k, n), st.integers(0, 6), st.integers(1, 5)),
    st.builds(lambda n, v: np.full(n, v), st.integers(1, 6), st.sampled_from([np.nan, 0.5, 1.0, 7.0, -2.0])),
    st.builds(lambda n, k: np.eye(k)[np.zeros(n, int)], st.integers(1, 6), st.integers(1, 5)),
    st.just(None), st.just("labels"), st.builds(lambda n: np.array(["a"] * n), st.integers(1, 4)),
)
NUMBERS = st.one_of(st.integers(-2, 40), st.floats(-2, 40), st.just(math.nan), st.none(), st.just("8"), st.booleans())


@settings(FUZZ, max_examples=150 * SCALE)
@given(x=ARRAY_LIKE, y=LABELS, batch_size=NUMBERS, epochs=NUMBERS, call=st.sampled_from(["fit", "predict",
                                                                                          "evaluate"]))
def test_model_calls_with_bad_inputs_answer_in_words(x, y, batch_size, epochs, call):
    model = make_model()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            if call == "fit":
                model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0)
            elif call == "predict":
                out = model.predict(x, batch_size=batch_size)
                assert np.isfinite(out).all()
            else:
                scores = model.evaluate(x, y, batch_size=batch_size)
                assert all(math.isfinite(s) for s in scores)
    except (ValueError, TypeError) as e:
        message = str(e)
        assert names_something(message, call, "Dense", "SoftmaxCrossEntropy", "accuracy"), f"{call}: {e!r}"
        assert type(e).__module__ == "builtins"
        return
    if call == "fit" and model.built:
        assert all(np.isfinite(w).all() for w in model.get_weights().values())


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    model = hp.Sequential([L.Dense(4, activation="relu"), L.BatchNorm(), L.Dropout(0.2), L.Dense(2)], seed=0,
                          input_shape=(3,))
    model.compile(hp.losses.SoftmaxCrossEntropy(), hp.optimizers.Adam(lr=0.01), metrics=["accuracy"])
    model.fit(np.random.default_rng(0).standard_normal((8, 3)), np.arange(8) % 2, epochs=1, verbose=0)
    path = tmp_path_factory.mktemp("fuzz") / "model.safetensors"
    model.save(path)
    return path.read_bytes()


@settings(FUZZ, max_examples=120 * SCALE)
@given(data=st.data())
def test_loading_damaged_or_foreign_files_is_a_value_error(saved_model, tmp_path_factory, data):
    kind = data.draw(st.sampled_from(["random", "truncate", "flip", "header"]))
    raw = bytearray(saved_model)
    if kind == "random":
        raw = bytearray(data.draw(st.binary(max_size=300)))
    elif kind == "truncate":
        raw = raw[:data.draw(st.integers(0, len(raw) - 1))]
    elif kind == "flip":  # anywhere: header JSON, metadata, tensor bytes
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] = data.draw(st.integers(0, 255))
    else:  # inside the JSON header only, where structure matters most
        n = int.from_bytes(saved_model[:8], "little")
        i = data.draw(st.integers(8, 8 + n - 1))
        raw[i] = ord(data.draw(st.sampled_from(list('0123456789[]{}",:-.eE nulltruefalse'))))
    path = tmp_path_factory.mktemp("bad") / "model.safetensors"
    path.write_bytes(bytes(raw))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", hp.HandpropWarning)  # e.g. a metric name flipped to an unknown one
            model = hp.load_model(path)
    except ValueError as e:
        assert "load" in str(e) or "set_weights" in str(e), repr(e)
        return
    # a change that still loads (a tensor byte) gives a usable model or a clear error, not silent NaN
    x = np.ones((2, 3), np.float32)
    try:
        out = model.predict(x)
    except ValueError as e:
        assert "predict" in str(e) or "layer" in str(e), repr(e)
        return
    assert out.shape == (2, 2)
