"""handprop's pure-Python safetensors reader and writer (handprop/safetensors_io.py) against the
compiled ``safetensors`` package: each reads what the other writes, tensor for tensor."""

import numpy as np
import pytest

from handprop import safetensors_io

safetensors_numpy = pytest.importorskip("safetensors.numpy")

DTYPES = [np.float32, np.float64, np.float16, np.int64, np.int32, np.int16, np.int8, np.uint8, np.uint16, np.uint32,
          np.uint64, np.bool_]


def _tensors():
    rng = np.random.default_rng(0)
    out = {f"t{i}/{np.dtype(t).name}": (rng.standard_normal((3, i + 1)) * 50).astype(t) for i, t in enumerate(DTYPES)}
    out["scalar"] = np.array(2.5, np.float32)
    out["empty"] = np.zeros((0, 4), np.float32)
    out["weights/0.Conv2D/W"] = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    return out


def _same(a, b):
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_the_compiled_package_reads_what_handprop_writes(tmp_path):
    tensors, meta = _tensors(), {"format": "handprop", "architecture": '{"layers": []}'}
    path = tmp_path / "ours.safetensors"
    path.write_bytes(safetensors_io.save(tensors, metadata=meta))
    _same(safetensors_numpy.load_file(str(path)), tensors)
    import safetensors

    with safetensors.safe_open(str(path), "np") as f:
        assert f.metadata() == meta


def test_handprop_reads_what_the_compiled_package_writes(tmp_path):
    tensors, meta = _tensors(), {"note": "from safetensors"}
    data = safetensors_numpy.save(tensors, metadata=meta)
    _same(safetensors_io.load(data), tensors)
    assert safetensors_io.load_metadata(data) == meta
    loaded = safetensors_io.load(data)["weights/0.Conv2D/W"]
    loaded[0, 0, 0, 0] = 1.0  # a writable copy, not a view of the file's bytes


def test_broken_files_and_unstorable_tensors_are_named():
    data = safetensors_io.save({"w": np.ones(4, np.float32)})
    with pytest.raises(ValueError, match="tensor 'w': offsets"):
        safetensors_io.load(data[:-4])
    with pytest.raises(ValueError, match="fewer than the 8"):
        safetensors_io.load(b"abc")
    with pytest.raises(TypeError, match="tensor 'c' has dtype complex64"):
        safetensors_io.save({"c": np.ones(2, np.complex64)})
    with pytest.raises(TypeError, match="metadata must map str to str"):
        safetensors_io.save({}, metadata={"n": 1})
