"""Saving and loading: one safetensors file, exact resume across processes, clear errors,
all-or-nothing set_weights, ModelCheckpoint, and layer configs complete enough to rebuild."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import handprop as hp
from engines import ENGINE_PARAMS
from handprop import saving
from handprop.backend import to_numpy

L = hp.layers


def mlp(seed=1):
    model = hp.Sequential([L.Dense(16, activation="relu", input_shape=(10,)), L.BatchNorm(), L.Dropout(0.3),
                           L.Dense(3)], seed=seed)
    model.compile(hp.losses.SoftmaxCrossEntropy(), hp.optimizers.Adam(lr=0.01), metrics=["accuracy"])
    return model


def convnet(seed=2):
    model = hp.Sequential([L.Conv2D(4, 3, padding="same"), L.PReLU(), L.MaxPool2D(2), L.Dropout(0.2),
                           L.Flatten(), L.Dense(3)], seed=seed)
    model.compile(hp.losses.SoftmaxCrossEntropy(), hp.optimizers.SGD(lr=0.05, momentum=0.9))
    return model


def unet(seed=0):
    inp = hp.Input((1, None, None))
    e1 = L.Conv2D(4, 3, padding="same", activation="relu")(inp)
    e2 = L.Conv2D(8, 3, padding="same")(L.MaxPool2D(2)(e1))
    up = L.Conv2DTranspose(4, 2, stride=2)(e2)
    d1 = L.Concatenate()([up, e1])
    out = L.Conv2D(1, 1)(L.PReLU()(L.BatchNorm()(d1)))
    model = hp.Model(inp, out, seed=seed, name="unet")
    model.compile("mse", hp.optimizers.RMSprop(lr=0.01, momentum=0.5))
    return model


def data(shape, n=32, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *shape)).astype(np.float32), rng.integers(0, classes, n)


def assert_same_weights(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    assert sorted(wa) == sorted(wb)
    for k in wa:
        assert wa[k].dtype == wb[k].dtype, k
        np.testing.assert_array_equal(to_numpy(wa[k]), to_numpy(wb[k]), err_msg=k)


def assert_same_optimizer(a, b):
    assert type(a.optimizer) is type(b.optimizer)
    assert a.optimizer.get_config() == b.optimizer.get_config()
    assert sorted(a.optimizer.state) == sorted(b.optimizer.state)
    for key, state in a.optimizer.state.items():
        assert sorted(state) == sorted(b.optimizer.state[key])
        for buf, value in state.items():
            np.testing.assert_array_equal(to_numpy(value), to_numpy(b.optimizer.state[key][buf]),
                                          err_msg=f"{key}/{buf}")


# ----------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("engine", ENGINE_PARAMS)
def test_save_load_predict_identical_on_every_engine(engine, tmp_path):
    x, y = data((1, 8, 8), n=8)
    with hp.engine(engine):
        for model, target in ((convnet(), y), (unet(), x)):
            if engine == "cupy":
                model.to_gpu()
            model.fit(x, target, epochs=1, batch_size=4, verbose=0)
            path = tmp_path / f"{model.name}.safetensors"
            model.save(path)
            loaded = hp.load_model(path)
            if engine == "cupy":  # loaded on the CPU; moved with its optimizer state
                loaded.to_gpu()
            assert type(loaded) is type(model) and loaded.name == model.name
            np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
            assert_same_weights(model, loaded)
            assert_same_optimizer(model, loaded)
            if isinstance(model, hp.Model):  # any image size still works after loading
                big = np.random.default_rng(1).standard_normal((1, 1, 12, 20)).astype(np.float32)
                np.testing.assert_array_equal(loaded.predict(big), model.predict(big))


def test_file_is_safetensors_with_versioned_metadata_and_no_pickle(tmp_path):
    model = mlp()
    model.fit(*data((10,)), epochs=1, verbose=0)
    path = tmp_path / "m.safetensors"
    model.save(path)
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    meta = header["__metadata__"]
    assert meta["format"] == "handprop" and meta["format_version"] == str(saving.FORMAT_VERSION)
    arch = json.loads(meta["architecture"])
    assert arch["class_name"] == "Sequential" and [s["class_name"] for s in arch["layers"]] == [
        "Dense", "BatchNorm", "Dropout", "Dense"]
    assert arch["layers"][0]["config"]["activation"] == "relu"
    assert "weights/0.Dense/W" in header and "weights/1.BatchNorm/running_var" in header
    assert "optimizer/0.Dense/W/exp_avg" in header
    assert b"\x80\x04" not in raw[:8 + n]  # no pickle protocol marker in the header
    training = json.loads(meta["training"])
    assert training["optimizer"]["steps"]["0.Dense/W"] == 1
    assert training["rng"]["layers"]["2"]["bit_generator"] == "PCG64"  # the Dropout's mask stream


def test_shared_frozen_float64_and_unbuilt_models_round_trip(tmp_path):
    shared = L.Dense(5, name="shared")
    model = hp.Sequential([L.Dense(5, name="first"), shared, L.Tanh(), shared], seed=0)
    model.layers[0].trainable = False
    model.build((5,), dtype=np.float64)
    model.compile("mse", "sgd")
    path = tmp_path / "shared.safetensors"
    model.save(path)
    loaded = hp.load_model(path)
    assert loaded.dtype == np.float64 and loaded.layers[1] is loaded.layers[3]  # shared once
    assert loaded.layers[0].trainable is False and loaded.layers[1].trainable is True
    x = np.random.default_rng(0).standard_normal((3, 5))
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))

    lazy = hp.Sequential([L.Dense(4), L.ReLU()])
    lazy.save(path)
    again = hp.load_model(path)
    assert not again.built and [type(la) for la in again.layers] == [L.Dense, L.ReLU]


def test_every_layer_config_rebuilds_the_layer():
    layers = [
        L.Dense(3, use_bias=False, kernel_init="he_normal", bias_init="ones", name="d", activation="tanh"),
        L.Dense(2, activation=L.LeakyReLU(0.2)),
        L.Conv2D(4, (3, 2), stride=2, padding="same", dilation=(1, 2), use_bias=False, kernel_init="he_uniform",
                 activation="relu", name="c"),
        L.Conv2D(4, 3, padding=(1, 0)),
        L.Conv2DTranspose(2, 3, stride=2, padding=1, output_padding=1, dilation=1, activation="sigmoid"),
        L.MaxPool2D(3, stride=2, padding=1), L.AvgPool2D((2, 3)), L.GlobalAvgPool2D(), L.UpSampling2D((2, 3)),
        L.BatchNorm(momentum=0.3, eps=1e-3), L.Dropout(0.25, name="drop"), L.Flatten(), L.Concatenate(axis=-1),
        L.Add(), L.Sigmoid(), L.Tanh(), L.Linear(), L.ReLU(), L.LeakyReLU(0.3), L.ELU(0.5),
        L.PReLU(shared=True, alpha_init=0.1), L.Softmax(), L.Softmax(axis=1), L.LogSoftmax(), L.LogSoftmax(axis=1),
        L.MaxPool2D(2, stride=1, dilation=(2, 3)), L.AvgPool2D(3, padding=1, dilation=2, input_shape=(2, 9, 9)),
        L.Conv3D(3, (2, 3, 1), stride=(1, 2, 1), padding="same", dilation=(2, 1, 1), activation="elu", name="v"),
        L.Conv3D(2, 3, padding=(1, 0, 1), use_bias=False, kernel_init="he_normal"),
        L.DepthwiseConv2D((3, 1), depth_multiplier=2, stride=2, padding="same", activation="relu", name="dw"),
        L.DepthwiseConv2D(3, padding=1, use_bias=False, bias_init="ones"),
        L.MaxPool3D((1, 2, 2), stride=(1, 2, 1), padding=(0, 1, 0)), L.AvgPool3D(2, dilation=(1, 2, 2), name="a3"),
        L.Reshape((4, -1), name="r"), L.Reshape((2, 3, 4)),
    ]
    from handprop.layers.base import _REGISTRY

    builtin = {name for name, cls in _REGISTRY.items() if cls.__module__.startswith("handprop.")}
    assert builtin <= {type(layer).__name__ for layer in layers}, "a layer class is missing from this test"
    for layer in layers:
        config = layer.get_config()
        assert "name" in config
        spec = json.loads(json.dumps(saving.layer_spec(layer, "test")))
        rebuilt = saving.layer_from_spec(spec)
        assert type(rebuilt) is type(layer)
        assert rebuilt.get_config() == config, type(layer).__name__
        assert repr(rebuilt) == repr(layer)


def test_a_custom_initializer_function_is_a_clear_error(tmp_path):
    model = hp.Sequential([L.Dense(2, kernel_init=lambda shape, rng, dtype, fans=None: np.zeros(shape, dtype))],
                          input_shape=(3,))
    with pytest.raises(ValueError, match="kernel_init='he_normal' rather than a function"):
        model.save(tmp_path / "m.safetensors")
    named = hp.Sequential([L.Dense(2, kernel_init=hp.init.he_normal)], input_shape=(3,))
    named.save(tmp_path / "m.safetensors")
    assert hp.load_model(tmp_path / "m.safetensors").layers[0].kernel_init == "he_normal"


class Scale(L.Layer):
    def __init__(self, factor=2.0, name=None):
        super().__init__(name)
        self.factor = factor

    def forward(self, x, training=True):
        x = self._ensure_built(x)
        self._cache = x.shape
        return x * self.factor

    def backward(self, dy, need_dx=True):
        return dy * self.factor if need_dx else None

    def get_config(self):
        return {"factor": self.factor, **super().get_config()}


def test_user_layers_need_registering_and_say_so(tmp_path):
    model = hp.Sequential([L.Dense(2), Scale(3.0)], input_shape=(4,))
    path = tmp_path / "custom.safetensors"
    model.save(path)
    with pytest.raises(ValueError, match=r"load: unknown layer class 'Scale'.*register_layer.*custom_layers"):
        hp.load_model(path)
    loaded = hp.load_model(path, custom_layers={"Scale": Scale})
    assert loaded.layers[1].factor == 3.0
    L.register_layer(Scale)
    try:
        x = np.ones((2, 4), np.float32)
        np.testing.assert_array_equal(hp.load_model(path).predict(x), model.predict(x))
    finally:
        from handprop.layers.base import _REGISTRY

        _REGISTRY.pop("Scale")
    with pytest.raises(TypeError, match="subclass of hp.layers.Layer"):
        L.register_layer(int)


# ----------------------------------------------------------------------------- exact resume
RESUME_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import handprop as hp
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    model = hp.load_model(sys.argv[1])
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    model.save(sys.argv[2])
""")


def resumable(seed=3):
    model = hp.Sequential([L.Conv2D(4, 3, activation="relu"), L.BatchNorm(), L.Dropout(0.3), L.MaxPool2D(2),
                           L.Flatten(), L.Dense(8), L.PReLU(), L.Dropout(0.2), L.Dense(3)], seed=seed)
    model.compile(hp.losses.SoftmaxCrossEntropy(), hp.optimizers.Adam(lr=0.01), metrics=["accuracy"])
    return model


def test_resume_in_a_new_process_is_bit_for_bit(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    straight = resumable()
    straight.fit(x, y, epochs=2, batch_size=8, verbose=0)

    first = resumable()
    first.fit(x, y, epochs=1, batch_size=8, verbose=0)
    first.save(tmp_path / "epoch1.safetensors")
    script = tmp_path / "resume.py"
    script.write_text(RESUME_SCRIPT)
    subprocess.run([sys.executable, "-W", "error", str(script), str(tmp_path / "epoch1.safetensors"),
                    str(tmp_path / "epoch2.safetensors")], check=True, timeout=120)
    resumed = hp.load_model(tmp_path / "epoch2.safetensors")

    assert_same_weights(straight, resumed)  # weights and BatchNorm running statistics
    assert_same_optimizer(straight, resumed)  # Adam's moments and step counts
    # the data order of the next epoch and the next dropout masks
    np.testing.assert_array_equal(straight._shuffle_rng.permutation(40), resumed._shuffle_rng.permutation(40))
    for a, b in zip(straight.layers_list(), resumed.layers_list()):
        if isinstance(a, L.Dropout):
            np.testing.assert_array_equal(a.rng.random(5), b.rng.random(5))


# ----------------------------------------------------------------------------- errors
def test_missing_truncated_and_foreign_files_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        hp.load_model(tmp_path / "nothing.safetensors")
    with pytest.raises(ValueError, match="is a folder"):
        hp.load_model(tmp_path)
    model = mlp()
    path = tmp_path / "m.safetensors"
    model.save(path)
    raw = path.read_bytes()
    for cut in (4, 20, len(raw) // 2, len(raw) - 1):
        bad = tmp_path / f"cut{cut}.safetensors"
        bad.write_bytes(raw[:cut])
        with pytest.raises(ValueError, match="truncated"):
            hp.load_model(bad)
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not a model at all")
    with pytest.raises(ValueError, match="not a handprop model file"):
        hp.load_model(text)
    npz = tmp_path / "w.npz"
    np.savez(npz, W=np.ones(3))
    with pytest.raises(ValueError, match="not a handprop model file"):
        hp.load_model(npz)
    def safetensors_bytes(tensors, metadata=None):  # the format by hand: no compiled package needed
        header, blobs, offset = {"__metadata__": metadata} if metadata else {}, [], 0
        for name, a in tensors.items():
            blob = np.ascontiguousarray(a, "<f4").tobytes()
            header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(blob)]}
            blobs.append(blob)
            offset += len(blob)
        text = json.dumps(header).encode()
        text += b" " * (-len(text) % 8)
        return len(text).to_bytes(8, "little") + text + b"".join(blobs)

    foreign = tmp_path / "foreign.safetensors"
    foreign.write_bytes(safetensors_bytes({"weight": np.ones((2, 2), np.float32)}))
    with pytest.raises(ValueError, match="not one handprop wrote"):
        hp.load_model(foreign)
    newer = tmp_path / "newer.safetensors"
    newer.write_bytes(safetensors_bytes({}, metadata={"format": "handprop", "format_version": "99"}))
    with pytest.raises(ValueError, match="format version 99, newer"):
        hp.load_model(newer)
    with pytest.raises(TypeError, match="path must be a file name"):
        hp.load_model(3.5)


def test_load_weights_into_another_architecture_names_the_tensors(tmp_path):
    model = mlp()
    path = tmp_path / "w.safetensors"
    model.save_weights(path)
    with pytest.raises(ValueError, match="holds weights only"):
        hp.load_model(path)
    other = hp.Sequential([L.Dense(16, input_shape=(10,)), L.Dense(4)])
    before = other.get_weights()
    with pytest.raises(ValueError) as info:
        other.load_weights(path)
    message = str(info.value)
    assert "1.Dense/W has shape (16, 16)" not in message  # names what the file has vs the model
    assert "missing ['1.Dense/W', '1.Dense/b']" in message
    assert "unexpected" in message and "3.Dense/W" in message and "1.BatchNorm/gamma" in message
    assert "nothing was changed" in message
    for k, v in before.items():
        np.testing.assert_array_equal(other.get_weights()[k], v)  # all-or-nothing
    fresh = mlp(seed=9)
    fresh.load_weights(path)
    assert_same_weights(model, fresh)
    wrong_shape = hp.Sequential([L.Dense(16, activation="relu", input_shape=(11,)), L.BatchNorm(), L.Dropout(0.3),
                                 L.Dense(3)])
    with pytest.raises(ValueError, match=r"0.Dense/W has shape \(10, 16\), the model's is \(11, 16\)"):
        wrong_shape.load_weights(path)


def test_set_weights_is_all_or_nothing_keeps_dtype_and_refuses_unbuilt():
    model = mlp()
    weights = model.get_weights()
    before = model.get_weights()
    bad = {k: v for k, v in weights.items() if k != "0.Dense/b"}
    bad["9.Extra/W"] = np.zeros(3)
    bad["3.Dense/W"] = np.zeros((16, 4))
    with pytest.raises(ValueError) as info:
        model.set_weights(bad)
    text = str(info.value)
    assert "missing ['0.Dense/b']" in text and "unexpected ['9.Extra/W']" in text
    assert "3.Dense/W has shape (16, 4)" in text
    for k, v in before.items():
        np.testing.assert_array_equal(model.get_weights()[k], v)
    as64 = {k: v.astype(np.float64) + 1 for k, v in weights.items()}
    model.set_weights(as64)
    assert all(v.dtype == np.float32 for v in model.get_weights().values())
    np.testing.assert_allclose(model.get_weights()["0.Dense/W"], weights["0.Dense/W"] + 1)
    nan = dict(weights)
    nan["3.Dense/b"] = np.full(3, np.nan, np.float32)
    with pytest.raises(ValueError, match="3.Dense/b contains NaN"):
        model.set_weights(nan)
    with pytest.raises(TypeError, match="expects a dict"):
        model.set_weights([1, 2])
    unbuilt = hp.Sequential([L.Dense(16), L.Dense(3)])
    with pytest.raises(RuntimeError, match="not built.*input_shape"):
        unbuilt.set_weights({"0.Dense/W": np.zeros((10, 16))})


def test_writes_are_atomic(tmp_path, monkeypatch):
    model = mlp()
    path = tmp_path / "m.safetensors"
    model.save(path)
    good = path.read_bytes()

    def crash(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    model.fit(*data((10,)), epochs=1, verbose=0)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == good  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]  # no temporary file left
    hp.load_model(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        model.save(tmp_path / "no" / "such" / "m.safetensors")


def test_model_checkpoint_every_epoch_and_best_only(tmp_path):
    x, y = data((10,), n=48)
    model = mlp()
    every = hp.callbacks.ModelCheckpoint(str(tmp_path / "e{epoch:02d}-{loss:.3f}.safetensors"), save_best_only=False)
    best = hp.callbacks.ModelCheckpoint(tmp_path / "best.safetensors", monitor="val_loss", save_best_only=True)
    weights_only = hp.callbacks.ModelCheckpoint(tmp_path / "w.safetensors", save_weights_only=True)
    history = model.fit(x, y, epochs=3, batch_size=16, validation_split=0.25, callbacks=[every, best, weights_only],
                        verbose=0)
    names = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("e"))
    assert [n[:3] for n in names] == ["e01", "e02", "e03"]
    losses = history.history["val_loss"]
    assert best.best == min(losses) and best.best_epoch == int(np.argmin(losses))
    restored = hp.load_model(tmp_path / "best.safetensors")
    xv, yv = x[36:], y[36:]
    assert restored.evaluate(xv, yv, return_dict=True)["loss"] == pytest.approx(best.best, rel=1e-6)
    with pytest.raises(KeyError, match="'val_acc' is not in the logs"):
        model.fit(x, y, epochs=1, verbose=0,
                  callbacks=[hp.callbacks.ModelCheckpoint(tmp_path / "x.safetensors", monitor="val_acc",
                                                          save_best_only=True)])
    with pytest.raises(ValueError, match="cannot fill in filepath"):
        model.fit(x, y, epochs=1, verbose=0,
                  callbacks=[hp.callbacks.ModelCheckpoint(str(tmp_path / "{nope}.safetensors"))])


def test_saving_without_optimizer_and_loading_without_compile(tmp_path):
    model = mlp()
    model.fit(*data((10,)), epochs=1, verbose=0)
    model.save(tmp_path / "m.safetensors", include_optimizer=False)
    loaded = hp.load_model(tmp_path / "m.safetensors")
    assert loaded.loss is not None and loaded.optimizer is None
    plain = hp.load_model(tmp_path / "m.safetensors", compile=False)
    assert plain.loss is None
    assert [name for name, _ in loaded.metrics] == ["accuracy"]


def test_moving_a_model_keeps_its_optimizer_state():
    """to_cpu()/to_gpu() used to reset the optimizer, so a model loaded on the CPU and moved to the
    GPU restarted Adam from zero moments; now the buffers move with the parameters."""
    model = mlp()
    model.fit(*data((10,)), epochs=1, verbose=0)
    before = {k: {b: np.array(v) for b, v in s.items()} for k, s in model.optimizer.state.items()}
    model.to_cpu()
    assert sorted(model.optimizer.state) == sorted(before)
    for key, state in before.items():
        for buf, value in state.items():
            np.testing.assert_array_equal(model.optimizer.state[key][buf], value)


def test_metadata_round_trips_and_keeps_the_file_layout(tmp_path):
    """An optional JSON dict saved with the model (the demo's preprocessing and threshold): `load_model`
    gives it back as `model.metadata`; the tensors and the architecture entry are as before."""
    safetensors = pytest.importorskip("safetensors")  # the compiled package reads the file as it is

    model = hp.Sequential([hp.layers.Dense(2)], input_shape=(3,), seed=0)
    model.save(tmp_path / "plain.safetensors")
    assert hp.load_model(tmp_path / "plain.safetensors").metadata == {}
    recipe = {"threshold": 0.41, "preprocessing": {"channels": "green", "clahe": {"tiles": 8}}, "ids": ["01_test"],
              "gamma": np.float32(1.25), "shape": (584, 565)}
    model.metadata = recipe
    model.save(tmp_path / "m.safetensors")
    loaded = hp.load_model(tmp_path / "m.safetensors")
    assert loaded.metadata == {**recipe, "gamma": 1.25, "shape": [584, 565]}
    with safetensors.safe_open(str(tmp_path / "m.safetensors"), "np") as f:
        header = f.metadata()
        assert sorted(f.keys()) == ["weights/0.Dense/W", "weights/0.Dense/b"]
    assert json.loads(header["architecture"])["layers"][0]["class_name"] == "Dense"
    assert json.loads(header["metadata"]) == loaded.metadata
    saving.save_model(model, tmp_path / "other.safetensors", metadata={"note": "explicit wins"})
    assert hp.load_model(tmp_path / "other.safetensors").metadata == {"note": "explicit wins"}
    with pytest.raises(TypeError, match="metadata must be a dict"):
        saving.save_model(model, tmp_path / "bad.safetensors", metadata=["a list"])
    model.metadata = {"fn": object()}
    with pytest.raises(ValueError, match="metadata"):
        model.save(tmp_path / "bad.safetensors")


def test_metadata_that_json_would_change_is_refused_naming_the_key(tmp_path):
    """Integer keys would come back as strings and NaN is not JSON: both are refused at save, with
    the path of the offending entry; a fresh model has an empty ``metadata`` as a loaded one does."""
    model = hp.Sequential([hp.layers.Dense(2)], input_shape=(3,), seed=0)
    assert model.metadata == {}
    with pytest.raises(TypeError, match=r"metadata has keys that are not strings \(\[1\]\)"):
        saving.save_model(model, tmp_path / "a.safetensors", metadata={1: "x"})
    with pytest.raises(ValueError, match=r"metadata\['recipe'\]\['gamma'\] holds nan"):
        saving.save_model(model, tmp_path / "b.safetensors", metadata={"recipe": {"gamma": float("nan")}})
    with pytest.raises(ValueError, match=r"metadata\['t'\] holds inf"):
        saving.save_model(model, tmp_path / "c.safetensors", metadata={"t": [1.0, np.inf]})
    assert not any(tmp_path.iterdir())  # nothing written
