"""Property-based fuzzing (hypothesis) of the model file format: whatever is changed in a model
file -- any value anywhere in its header, in the architecture and training JSON inside it, a
tensor's dtype, shape or byte range, or the tensor bytes themselves -- ``load_model`` and
``load_weights`` either give back exactly the saved weights or refuse with a
:class:`handprop.ModelFileError` that names the file. Never another exception type (TypeError,
IndexError, RecursionError, MemoryError, ...), never a silently different weight.

Bounded like tests/test_fuzz.py: fixed seeds, no deadline, no example database;
``HANDPROP_FUZZ_SCALE=20`` runs 20x the examples with fresh random seeds.
"""

import json
import os
import warnings

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import handprop as hp  # noqa: E402

L = hp.layers
SCALE = int(os.environ.get("HANDPROP_FUZZ_SCALE", "1"))
FUZZ = settings(deadline=None, database=None, derandomize=SCALE == 1,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
NESTED = ("architecture", "training", "metadata")  # metadata entries that hold JSON themselves

# values a crafted file might hold anywhere: right, wrong, absurd and hostile
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 40), st.integers(-2**70, 2**70), st.floats(allow_nan=False),
    st.text(max_size=6), st.sampled_from(["F32", "F64", "I32", "F16", "float32", "float64", "int8", "float16",
                                          "Dense", "ReLU", "Tanh", "Optimizer", "Loss", "Adam", "SGD", "relu",
                                          "same", "PCG64", "weights/0.Dense/W", "abc", "model", "weights"]),
)
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                             st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                           max_leaves=8)


def mlp():
    model = hp.Sequential([L.Dense(6, activation="relu", input_shape=(4,)), L.BatchNorm(), L.Dropout(0.2),
                           L.Dense(3)], seed=0)
    model.compile(hp.losses.SoftmaxCrossEntropy(), hp.optimizers.Adam(lr=0.01), metrics=["accuracy"])
    rng = np.random.default_rng(0)
    model.fit(rng.standard_normal((8, 4)).astype(np.float32), rng.integers(0, 3, 8), epochs=1, verbose=0)
    model.metadata = {"threshold": 0.5, "recipe": {"patch": [16, 16]}}
    return model


def small_unet():
    inp = hp.Input((1, None, None))
    e1 = L.Conv2D(2, 3, padding="same", activation="relu")(inp)
    e2 = L.Conv2D(3, 3, padding="same")(L.MaxPool2D(2)(e1))
    up = L.Conv2DTranspose(2, 2, stride=2)(e2)
    out = L.Conv2D(1, 1)(L.PReLU()(L.Concatenate()([up, e1])))
    model = hp.Model(inp, out, seed=0, name="unet")
    model.compile("mse", hp.optimizers.SGD(lr=0.01, momentum=0.9))
    x = np.random.default_rng(0).standard_normal((2, 1, 4, 4)).astype(np.float32)
    model.fit(x, x, epochs=1, verbose=0)
    return model


class Saved(dict):
    def __repr__(self):  # hypothesis prints the arguments of a failing example: not the whole files
        return f"Saved({sorted(self)})"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """``{name: (model, file bytes)}`` for a Sequential and a graph model, both with optimizer state."""
    folder = tmp_path_factory.mktemp("fuzz_files")
    out = Saved()
    for name, make in (("mlp", mlp), ("unet", small_unet)):
        model = make()
        model.save(folder / f"{name}.safetensors")
        out[name] = (model, (folder / f"{name}.safetensors").read_bytes())
    return out


def decode(raw):
    """The header of a file as one nested structure (the JSON inside the metadata decoded too),
    and the tensor bytes."""
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    for key in NESTED:
        if key in header["__metadata__"]:
            header["__metadata__"][key] = json.loads(header["__metadata__"][key])
    return header, raw[8 + n:]


def encode(header, data):
    meta = header.get("__metadata__")
    if isinstance(meta, dict):
        header = dict(header, __metadata__={k: json.dumps(v) if k in NESTED else v for k, v in meta.items()})
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + data


def paths(value, prefix=()):
    """Every place in a nested structure, as a tuple of keys."""
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += paths(v, (*prefix, i))
    return out


def replace(value, path, new, delete=False):
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    if len(path) == 1 and delete:
        del copy[path[0]]
    else:
        copy[path[0]] = replace(copy[path[0]], path[1:], new, delete)
    return copy


def load_or_refuse(path, model, compile):
    """Load ``path`` both ways; each either gives back exactly ``model``'s weights or is a
    ModelFileError naming the file."""
    for call in ("load_model", "load_weights"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", hp.HandpropWarning)  # e.g. a metric name changed to an unknown one
                if call == "load_model":
                    loaded = hp.load_model(path, compile=compile)
                else:
                    loaded = hp.saving.model_from_config(hp.saving.model_config(model))
                    loaded.load_weights(path)
        except hp.ModelFileError as e:
            assert repr(str(path)) in str(e), f"{call}: {e}"
            continue
        if loaded.built:  # whatever was changed, a file that loads holds exactly the saved weights
            expected, got = model.get_weights(), loaded.get_weights()
            assert sorted(got) == sorted(expected), call
            for k in expected:
                np.testing.assert_array_equal(got[k], expected[k].astype(got[k].dtype), err_msg=f"{call}: {k}")


@settings(FUZZ, max_examples=200 * SCALE)
@given(data=st.data())
def test_any_value_changed_in_the_header_loads_exactly_or_is_refused(saved, tmp_path_factory, data):
    name = data.draw(st.sampled_from(sorted(saved)))
    model, raw = saved[name]
    header, tensors = decode(raw)
    where = data.draw(st.sampled_from(paths(header)[1:]))
    delete = data.draw(st.integers(0, 5)) == 0 and not isinstance(where[-1], int)
    header = replace(header, where, None if delete else data.draw(JSON_VALUES), delete=delete)
    path = tmp_path_factory.mktemp("header") / "model.safetensors"
    path.write_bytes(encode(header, tensors))
    load_or_refuse(path, model, compile=data.draw(st.booleans()))


@settings(FUZZ, max_examples=60 * SCALE)
@given(data=st.data())
def test_raw_header_bytes_changed_load_exactly_or_are_refused(saved, tmp_path_factory, data):
    """Bytes of the header text itself replaced by JSON punctuation, digits and letters."""
    name = data.draw(st.sampled_from(sorted(saved)))
    model, raw = saved[name]
    raw = bytearray(raw)
    n = int.from_bytes(raw[:8], "little")
    for _ in range(data.draw(st.integers(1, 3))):
        raw[data.draw(st.integers(8, 8 + n - 1))] = ord(data.draw(st.sampled_from(list('0123456789[]{}",:-.eE '
                                                                                     'nulltruefalseFI\\'))))
    path = tmp_path_factory.mktemp("raw") / "model.safetensors"
    path.write_bytes(bytes(raw))
    load_or_refuse(path, model, compile=True)


@settings(FUZZ, max_examples=60 * SCALE)
@given(data=st.data())
def test_tensor_bytes_changed_are_always_refused(saved, tmp_path_factory, data):
    """Any change to the tensor data is caught by the checksum, whether or not the numbers
    it makes would look plausible."""
    name = data.draw(st.sampled_from(sorted(saved)))
    _, raw = saved[name]
    n = int.from_bytes(raw[:8], "little")
    raw = bytearray(raw)
    for i in data.draw(st.sets(st.integers(8 + n, len(raw) - 1), min_size=1, max_size=4)):
        raw[i] ^= data.draw(st.integers(1, 255))  # each a different byte, each changed
    path = tmp_path_factory.mktemp("flip") / "model.safetensors"
    path.write_bytes(bytes(raw))
    for compile in (True, False):
        with pytest.raises(hp.ModelFileError, match="is corrupt"):
            hp.load_model(path, compile=compile)
