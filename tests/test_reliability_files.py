"""The third reliability pass (issue 21), model files: each test reproduces one probe of the issue's
break-it pass (cases 5, 10, 12, 13, 15, 16, 20) and checks the refusal or the right result."""

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import handprop as hp
from handprop import saving

L = hp.layers
SRC = os.path.dirname(os.path.dirname(os.path.abspath(hp.__file__)))  # the children import this handprop

# a child process's peak memory: VmHWM (Linux) is its own, from its exec on; ru_maxrss also counts the
# parent's pages at fork time (the pytest process), so it is only the fallback
MEMORY = """
import resource
def rss_mb(field="VmHWM"):
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform != "darwin" else 2**20)
"""


def small_model(activation="relu", seed=0):
    model = hp.Sequential([L.Dense(8, input_shape=(5,)), getattr(L, {"relu": "ReLU", "tanh": "Tanh"}[activation])(),
                           L.BatchNorm(), L.Dense(3)], seed=seed)
    model.compile(hp.losses.SoftmaxCrossEntropy(), hp.optimizers.Adam(lr=0.01), metrics=["accuracy"])
    return model


def trained(path, **kwargs):
    model = small_model(**kwargs)
    rng = np.random.default_rng(0)
    model.fit(rng.standard_normal((16, 5)).astype(np.float32), rng.integers(0, 3, 16), epochs=1, verbose=0)
    model.save(path)
    return model


def read_parts(path):
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def write_parts(path, header, data=b""):
    text = (header if isinstance(header, str) else json.dumps(header)).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + data)


def edit_json_entry(header, key, change):
    """Apply ``change`` to the JSON held in ``__metadata__[key]``."""
    value = json.loads(header["__metadata__"][key])
    change(value)
    header["__metadata__"][key] = json.dumps(value)


def refused(path, call=hp.load_model, match=None):
    """The load is refused with a ModelFileError (a ValueError) that names the file."""
    with pytest.raises(hp.ModelFileError) as info:
        call(path)
    message = str(info.value)
    assert type(info.value) is hp.ModelFileError and isinstance(info.value, ValueError)
    assert repr(str(path)) in message, message
    if match is not None:
        assert any(m in message for m in ([match] if isinstance(match, str) else match)), message
    return message


def run_python(code, timeout=120, **kwargs):
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run([sys.executable, "-c", "import sys\n" + MEMORY + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=timeout, env=env, **kwargs)


# ----------------------------------------------------------------------------- case 5
def test_case05_dtype_changed_refused(tmp_path):
    """A weight's header dtype changed F32 -> I32 (same size) loaded weights of ~1e9; integer and
    float64 tensors were cast silently; an architecture of dtype int8 / float16 loaded."""
    path = tmp_path / "m.safetensors"
    model = trained(path)
    header, data = read_parts(path)
    for code in ("I32", "U32", "F16", "BF16", "I64", "BOOL", "int", 3):
        bad = dict(header, **{"weights/0.Dense/W": dict(header["weights/0.Dense/W"], dtype=code)})
        write_parts(tmp_path / "bad.safetensors", bad, data)
        message = refused(tmp_path / "bad.safetensors", match="not converted silently")
        assert "weights/0.Dense/W" in message and str(code) in message
        refused(tmp_path / "bad.safetensors", lambda p: small_model().load_weights(p))
    # float64 tensors (a consistent file, checksum and all) in a float32 architecture
    import safetensors.numpy

    tensors = {k: v.astype(np.float64) for k, v in safetensors.numpy.load_file(str(path)).items()}
    as64 = tmp_path / "as64.safetensors"
    meta = {k: v for k, v in header["__metadata__"].items() if k != saving.CHECKSUM_KEY}
    safetensors.numpy.save_file(tensors, str(as64), metadata=meta)
    message = refused(as64, match="computes in float32")
    assert "weights/0.Dense/W is float64" in message
    # the architecture's dtype: only float32 and float64
    for dtype in ("int8", "float16", "complex64", "bool", None, 32):
        bad = json.loads(json.dumps(header))
        edit_json_entry(bad, "architecture", lambda a, d=dtype: a.update(dtype=d))
        write_parts(tmp_path / "dtype.safetensors", bad, data)
        refused(tmp_path / "dtype.safetensors", match="'dtype' must be one of ('float32', 'float64')")
    # the real file still loads, bit for bit
    x = np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32)
    np.testing.assert_array_equal(hp.load_model(path).predict(x), model.predict(x))


def test_case05_bit_flip_in_tensor_data_refused_by_the_checksum(tmp_path):
    """No checksum: 200 of 200 random bit flips in tensor data loaded silently."""
    path = tmp_path / "m.safetensors"
    trained(path)
    header, data = read_parts(path)
    assert len(header["__metadata__"][saving.CHECKSUM_KEY]) == 64  # SHA-256, hex
    prefix = path.read_bytes()[:-len(data)]
    rng = np.random.default_rng(0)
    for trial in range(40):
        flipped = bytearray(data)
        i = int(rng.integers(len(data)))
        flipped[i] ^= 1 << int(rng.integers(8))
        bad = tmp_path / f"flip{trial}.safetensors"
        bad.write_bytes(prefix + bytes(flipped))
        refused(bad, match="is corrupt: the SHA-256 of its tensor data differs")
        refused(bad, lambda p: small_model().load_weights(p), match="is corrupt")
        refused(bad, lambda p: hp.load_model(p, compile=False), match="is corrupt")  # predict's way


def test_case05_files_without_checksum_still_load(tmp_path):
    """Decision: a file written before the checksum existed (same format version, no
    ``tensors_sha256``) loads as before, unchecked; everything else about it is checked."""
    import safetensors.numpy

    path = tmp_path / "m.safetensors"
    model = trained(path)
    header, _ = read_parts(path)
    old = tmp_path / "old.safetensors"  # what handprop wrote before: safetensors.numpy.save, no checksum
    meta = {k: v for k, v in header["__metadata__"].items() if k != saving.CHECKSUM_KEY}
    safetensors.numpy.save_file(safetensors.numpy.load_file(str(path)), str(old), metadata=meta)
    loaded = hp.load_model(old)
    x = np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert sorted(loaded.optimizer.state) == sorted(model.optimizer.state)
    # and a file of this version is still an ordinary safetensors file for other readers
    np.testing.assert_array_equal(safetensors.numpy.load_file(str(path))["weights/0.Dense/W"],
                                  model.get_weights()["0.Dense/W"])


# ----------------------------------------------------------------------------- case 10
def test_case10_load_weights_from_another_architecture_refused(tmp_path):
    """Weights of a Tanh network were accepted by a ReLU one (same keys, same shapes)."""
    path = tmp_path / "tanh.safetensors"
    small_model("tanh").save_weights(path)
    relu = small_model("relu", seed=3)
    before = relu.get_weights()
    message = refused(path, relu.load_weights, match="holds the weights of another architecture")
    assert "Tanh" in message and "ReLU" in message and "strict=False" in message
    for k, v in before.items():  # nothing was changed
        np.testing.assert_array_equal(relu.get_weights()[k], v)
    # a model file (save) too, and an activation given as an argument
    dense_tanh = hp.Sequential([L.Dense(4, activation="tanh", input_shape=(5,)), L.Dense(2)])
    dense_tanh.save(tmp_path / "d.safetensors")
    dense_relu = hp.Sequential([L.Dense(4, activation="relu", input_shape=(5,)), L.Dense(2)])
    refused(tmp_path / "d.safetensors", dense_relu.load_weights, match="another architecture")
    # the same architecture loads, whatever its names, seed or dtype; strict=False loads the other
    same = hp.Sequential([L.Dense(8, input_shape=(5,)), L.Tanh(), L.BatchNorm(), L.Dense(3)], seed=7)
    same.cast(np.float64).load_weights(path)
    relu.load_weights(path, strict=False)
    for k, v in same.get_weights().items():
        np.testing.assert_array_equal(relu.get_weights()[k], v.astype(np.float32))


# ----------------------------------------------------------------------------- case 12
def crafted_dense(path, units, features, extra_layers=()):
    """A model file with an architecture and no weights at all (~360 bytes for one Dense)."""
    arch = {"class_name": "Sequential", "name": "m", "seed": 0, "dtype": "float32", "built": True,
            "layers": [{"class_name": "Dense", "config": {"units": units}}, *extra_layers],
            "calls": list(range(1 + len(extra_layers))), "input_shape": [features]}
    meta = {"format": "handprop", "format_version": "1", "kind": "model", "architecture": json.dumps(arch),
            "training": json.dumps({"loss": None, "optimizer": None, "metrics": []})}
    write_parts(path, {"__metadata__": meta})


def test_case12_negative_units_refused_before_anything_is_built(tmp_path, monkeypatch):
    def no_building(*args, **kwargs):
        raise AssertionError("a layer was built")

    monkeypatch.setattr(L.Layer, "build", no_building)
    for units in (-5, 0, 2.5, "8", None, True):
        crafted_dense(tmp_path / "neg.safetensors", units, 4)
        refused(tmp_path / "neg.safetensors", match="units must be a positive int")
    for shape in ([-4], [0], ["4"], [], [2.5], None, 4):
        path = tmp_path / "shape.safetensors"
        crafted_dense(path, 4, 1)
        header, _ = read_parts(path)
        edit_json_entry(header, "architecture", lambda a, s=shape: a.update(input_shape=s))
        write_parts(path, header)
        if shape is None:  # a Sequential saved without an input shape is not built: loads, unbuilt
            assert not hp.load_model(path).built
        else:
            refused(path, match="'input_shape' must be a list of sizes")


def test_case12_crafted_dense_15000_refused_within_600_mb(tmp_path):
    """A 360-byte file declaring Dense(15000) on a 15000-wide input allocated 2.6 GB (weights drawn
    in float64 first) before failing on the missing weights. Now the architecture is built shapes
    only and compared with the file's (absent) tensors: the whole process stays small."""
    path = tmp_path / "crafted.safetensors"
    crafted_dense(path, 15000, 15000, extra_layers=[{"class_name": "BatchNorm", "config": {}},
                                                    {"class_name": "PReLU", "config": {}}])
    assert path.stat().st_size < 600
    result = run_python(f"""
        import json
        import handprop as hp
        try:
            hp.load_model({str(path)!r})
            outcome = "loaded"
        except hp.ModelFileError as e:
            outcome = str(e)
        print(json.dumps({{"outcome": outcome, "peak_mb": rss_mb()}}))
    """)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"crafted Dense(15000) on 15000 features: whole process peaked at {report['peak_mb']:.0f} MB")
    assert "missing ['weights/0.Dense/W'" in report["outcome"], report
    assert report["peak_mb"] <= 600, report


# ----------------------------------------------------------------------------- case 13
def test_case13_dev_zero_and_a_fifo_refused_quickly(tmp_path):
    """`load_model("/dev/zero")` or a FIFO read forever (in a child process capped at 2 GB of
    address space and 60 s, so that the old behaviour fails the test instead of the machine)."""
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    for target in ("/dev/zero", str(fifo)):
        start = time.perf_counter()
        result = run_python(f"""
            import resource
            resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))
            import handprop as hp
            for call in (hp.load_model, hp.Sequential([hp.layers.Dense(2, input_shape=(3,))]).load_weights):
                try:
                    call({target!r})
                except hp.ModelFileError as e:
                    print(e)
        """, timeout=60)
        assert time.perf_counter() - start < 60
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.count("is not a regular file") == 2, result.stdout
        assert repr(target) in result.stdout


def test_case13_file_read_once_straight_into_its_arrays(tmp_path):
    """The whole file was read into memory, then copied into arrays (and those copied again by
    set_weights, after weights drawn in float64): loading a 64 MB model took ~6x its size."""
    model = hp.Sequential([L.Dense(4000, input_shape=(4000,))], seed=0)
    path = tmp_path / "big.safetensors"
    model.save(path)
    size_mb = path.stat().st_size / 2**20
    result = run_python(f"""
        import json
        import handprop as hp
        before = rss_mb("VmRSS")
        model = hp.load_model({str(path)!r})
        after = rss_mb()
        print(json.dumps({{"added_mb": after - before, "sum": float(model.get_weights()["0.Dense/W"].sum())}}))
    """)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"loading a {size_mb:.0f} MB model file added {report['added_mb']:.0f} MB to the peak")
    assert report["sum"] == pytest.approx(float(model.get_weights()["0.Dense/W"].sum()), rel=1e-6)
    assert report["added_mb"] <= 1.5 * size_mb, report


# ----------------------------------------------------------------------------- case 15
def test_case15_new_files_respect_the_umask(tmp_path):
    """New model files were 0644 under `umask 077` (world-readable on a shared hub)."""
    model = small_model()
    old = os.umask(0o077)
    try:
        model.save(tmp_path / "private.safetensors")
        model.save_weights(tmp_path / "w.safetensors")
        os.umask(0o022)
        model.save(tmp_path / "shared.safetensors")
        os.umask(0o077)
        (tmp_path / "kept.safetensors").touch(mode=0o640)
        os.chmod(tmp_path / "kept.safetensors", 0o640)
        model.save(tmp_path / "kept.safetensors")  # an existing file keeps its own mode
    finally:
        os.umask(old)
    mode = lambda name: stat.S_IMODE((tmp_path / name).stat().st_mode)  # noqa: E731
    assert mode("private.safetensors") == 0o600 and mode("w.safetensors") == 0o600
    assert mode("shared.safetensors") == 0o644
    assert mode("kept.safetensors") == 0o640


# ----------------------------------------------------------------------------- case 16
def test_case16_read_only_targets_refused(tmp_path):
    """`save` over a read-only (0444) file silently replaced it, also from ModelCheckpoint."""
    model = small_model()
    path = tmp_path / "frozen.safetensors"
    model.save(path)
    os.chmod(path, 0o444)
    before = path.read_bytes()
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 5)).astype(np.float32), rng.integers(0, 3, 8)
    model.fit(x, y, epochs=1, verbose=0)
    for save in (model.save, model.save_weights):
        with pytest.raises(PermissionError, match=r"read-only \(mode 0444\).*chmod u\+w"):
            save(path)
    with pytest.raises(OSError, match="read-only"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[hp.callbacks.ModelCheckpoint(str(path))])
    assert path.read_bytes() == before and stat.S_IMODE(path.stat().st_mode) == 0o444
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frozen.safetensors"]  # no temporary file


def test_case16_saving_through_a_symlink_updates_its_target(tmp_path):
    model = small_model()
    (tmp_path / "runs").mkdir()
    target = tmp_path / "runs" / "model-v1.safetensors"
    model.save(target)
    link = tmp_path / "latest.safetensors"
    link.symlink_to(target)
    model.fit(np.ones((4, 5), np.float32), np.zeros(4, int), epochs=1, verbose=0)
    model.save(link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    np.testing.assert_array_equal(hp.load_model(target).get_weights()["0.Dense/W"], model.get_weights()["0.Dense/W"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.safetensors", "runs"]


def test_case16_temporary_file_removed_on_any_exception(tmp_path, monkeypatch):
    model = small_model()
    path = tmp_path / "m.safetensors"
    model.save(path)
    good = path.read_bytes()

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        model.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_case16_stale_temporary_of_a_killed_save_removed_by_the_next_save(tmp_path):
    """`kill -9` mid-save left a hidden 36 MB `.tmp` forever. It cannot be cleaned by the killed
    process; its name now says which process wrote it, and the next save to the same path removes
    it once that process is gone (a running saver's temporary file is left alone)."""
    path = tmp_path / "m.safetensors"
    result = run_python(f"""
        import os, signal
        import handprop as hp
        model = hp.Sequential([hp.layers.Dense(300, input_shape=(300,))])
        os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)  # killed mid-save
        model.save({str(path)!r})
    """)
    assert result.returncode == -signal.SIGKILL
    left = sorted(p.name for p in tmp_path.iterdir())
    assert len(left) == 1 and left[0].startswith(".m.safetensors.") and left[0].endswith(".handprop-tmp"), left
    live = tmp_path / f".m.safetensors.{left[0].split('.')[3]}.{os.getpid()}.0000.handprop-tmp"
    live.write_bytes(b"a save in progress in this process")
    small_model().save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["m.safetensors", live.name])
    hp.load_model(path)


# ----------------------------------------------------------------------------- case 20
def test_case20_malformed_headers_are_clear_value_errors(tmp_path):
    """Malformed headers raised TypeError, IndexError, AttributeError, RecursionError."""
    path = tmp_path / "m.safetensors"
    trained(path)
    header, data = read_parts(path)
    name = "weights/0.Dense/W"
    bad = tmp_path / "bad.safetensors"
    cases = {
        "data_offsets abc": (dict(header, **{name: dict(header[name], data_offsets="abc")}), "data_offsets 'abc'"),
        "data_offsets [0]": (dict(header, **{name: dict(header[name], data_offsets=[0])}), "data_offsets [0]"),
        "metadata a list": ({**header, "__metadata__": [1, 2]}, "__metadata__ must be a JSON object of strings"),
        "shape a string": (dict(header, **{name: dict(header[name], shape="8x5")}), "has shape '8x5'"),
        "entry a number": (dict(header, **{name: 3}), "must be an object with dtype, shape and data_offsets"),
        "overlap": (dict(header, **{name: dict(header[name], data_offsets=[0, header[name]["data_offsets"][1]
                                                                           - header[name]["data_offsets"][0]])}),
                    ["without gaps or overlaps", "data_offsets"]),
    }
    for label, (changed, match) in cases.items():
        write_parts(bad, changed, data)
        assert label and refused(bad, match=match)
    deep = "[" * 100_000 + "]" * 100_000
    write_parts(bad, '{"__metadata__": {"format": "handprop"}, "x": ' + deep + "}", data)
    refused(bad, match="nested")
    for key in ("architecture", "training"):
        nested = json.loads(json.dumps(header))
        nested["__metadata__"][key] = "[" * 50_000 + "]" * 50_000
        write_parts(bad, nested, data)
        refused(bad, match="nested")


def test_case20_bad_training_state_is_a_clear_value_error(tmp_path):
    """Optimizer steps -1, class names "Optimizer" / "Loss", I32 optimizer state: raw
    ZeroDivisionError, NotImplementedError, UFuncTypeError on the first fit or evaluate."""
    path = tmp_path / "m.safetensors"
    trained(path)
    header, data = read_parts(path)
    bad = tmp_path / "bad.safetensors"

    def with_training(change, match):
        changed = json.loads(json.dumps(header))
        edit_json_entry(changed, "training", change)
        write_parts(bad, changed, data)
        return refused(bad, match=match)

    with_training(lambda t: t["optimizer"]["steps"].update({"0.Dense/W": -1}), "step counts (ints >= 0)")
    with_training(lambda t: t["optimizer"]["steps"].update({"0.Dense/W": "3"}), "step counts (ints >= 0)")
    with_training(lambda t: t["optimizer"]["steps"].update({"9.Dense/W": 1}), "parameters the model does not have")
    with_training(lambda t: t["optimizer"].update(class_name="Optimizer"), "unknown optimizer class 'Optimizer'")
    with_training(lambda t: t["loss"].update(class_name="Loss"), "unknown loss class 'Loss'")
    with_training(lambda t: t["loss"].update(class_name="__class__"), "unknown loss class")
    with_training(lambda t: t["optimizer"].update(config={"lr": -1}), "does not accept its saved config")
    with_training(lambda t: t["optimizer"].update(config=[1]), "the optimizer must be")
    with_training(lambda t: t.update(metrics="accuracy"), "'metrics' must be a list")
    with_training(lambda t: t["rng"].update(shuffle={"bit_generator": "Nope"}), "unknown random bit generator")
    # I32 optimizer state, and a missing Adam buffer
    changed = json.loads(json.dumps(header))
    changed["optimizer/0.Dense/W/exp_avg"]["dtype"] = "I32"
    write_parts(bad, changed, data)
    refused(bad, match="optimizer/0.Dense/W/exp_avg")
    gone = {k: v for k, v in header.items() if k != "optimizer/3.Dense/b/exp_avg_sq"}
    start, end = header["optimizer/3.Dense/b/exp_avg_sq"]["data_offsets"]
    for k, v in gone.items():
        if k != "__metadata__" and v["data_offsets"][0] >= end:
            gone[k] = dict(v, data_offsets=[v["data_offsets"][0] - (end - start), v["data_offsets"][1] - (end - start)])
    write_parts(bad, gone, data[:start] + data[end:])
    refused(bad, match="missing ['optimizer/3.Dense/b/exp_avg_sq']")
    # loading without compile does not look at the loss or optimizer classes at all
    with_training(lambda t: t["loss"].update(class_name="Loss"), "unknown loss class")
    assert hp.load_model(bad, compile=False).loss is None


def test_case20_file_level_errors_name_the_file_without_a_traceback_type(tmp_path):
    """Each refusal is a ModelFileError, a ValueError that the CLI prints without a traceback."""
    assert issubclass(hp.ModelFileError, hp.DataError) and issubclass(hp.ModelFileError, ValueError)
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    refused(empty, match="only 0 bytes")
    trailing = tmp_path / "trailing.safetensors"
    trained(trailing)
    trailing.write_bytes(trailing.read_bytes() + b"\0" * 16)
    refused(trailing, match="16 bytes after its last tensor")
    huge = tmp_path / "huge.safetensors"
    huge.write_bytes((2**40).to_bytes(8, "little") + b"{}")
    refused(huge, match="header would take")


def test_a_model_checkpoint_keeps_saving_while_another_thread_loads(tmp_path):
    """Saving and loading the same path at once: the reader sees the old file or the new one."""
    path = tmp_path / "m.safetensors"
    model = trained(path)
    errors = []

    def reader():
        for _ in range(20):
            try:
                hp.load_model(path)
            except Exception as e:  # noqa: BLE001 -- collected and reported below
                errors.append(e)

    thread = threading.Thread(target=reader)
    thread.start()
    for _ in range(20):
        model.save(path)
    thread.join()
    assert not errors, errors
