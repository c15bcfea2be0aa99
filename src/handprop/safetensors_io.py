"""The safetensors file format, read and written in pure Python (NumPy and ``json`` only).

handprop's model files are safetensors files (:mod:`handprop.saving`). The format is small enough
to write out in full, so handprop needs no compiled extension for it and installs where the
``safetensors`` package has no wheel (Pyodide/JupyterLite in a browser). Files written here are
read by ``safetensors.numpy.load_file`` (and PyTorch's ``safetensors.torch``), and the other way
round (``tests/test_safetensors_io.py`` checks both ways).

A file is three parts::

    8 bytes         n, the header's length: an unsigned 64-bit little-endian integer
    n bytes         the header: a JSON object, padded with spaces to a multiple of 8 bytes;
                    "__metadata__": {str: str} (optional), and for each tensor
                    name: {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}
    the rest        the tensors' bytes, C order, little-endian, at [begin, end) of this part

>>> import numpy as np
>>> data = save({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, metadata={"note": "hi"})
>>> int.from_bytes(data[:8], "little") % 8
0
>>> load(data)["w"]
array([[0., 1., 2.],
       [3., 4., 5.]], dtype=float32)
>>> load_metadata(data)
{'note': 'hi'}
"""

from __future__ import annotations

import json

import numpy as np

DTYPES = {"BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "U16": np.uint16, "I16": np.int16, "F16": np.float16,
          "U32": np.uint32, "I32": np.int32, "F32": np.float32, "U64": np.uint64, "I64": np.int64, "F64": np.float64}
"""The format's dtype names and the NumPy types they are (bfloat16 and float8 have no NumPy type)."""

_NAMES = {np.dtype(t): name for name, t in DTYPES.items()}


def save(tensors, metadata=None) -> bytes:
    """The bytes of a safetensors file holding ``tensors`` (a dict name -> NumPy array) and
    ``metadata`` (a dict str -> str, or None). Tensors are laid out by name."""
    if metadata is not None and not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise TypeError("safetensors metadata must map str to str")
    header, chunks, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = dict(metadata)
    for name in sorted(tensors):
        array = np.asarray(tensors[name])
        if array.dtype not in _NAMES:
            raise TypeError(f"safetensors: tensor {name!r} has dtype {array.dtype}, which the format cannot store; "
                            f"use one of {sorted(str(np.dtype(t)) for t in DTYPES.values())}")
        raw = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": _NAMES[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + b"".join(chunks)


def _header(data):
    if len(data) < 8:
        raise ValueError(f"not a safetensors file: {len(data)} bytes, fewer than the 8 of the header length")
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8:
        raise ValueError(f"the header would take {n} bytes but only {len(data) - 8} follow the length")
    header = json.loads(bytes(data[8:8 + n]).decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    return header, 8 + n


def load_metadata(data) -> dict:
    """The ``__metadata__`` dict of a safetensors file's bytes (empty when it has none)."""
    return dict(_header(data)[0].get("__metadata__") or {})


def load(data) -> dict:
    """The tensors of a safetensors file's bytes: a dict name -> NumPy array (a copy, writable).
    Raises ValueError for a file that breaks the format (the message says where)."""
    header, start = _header(data)
    body = memoryview(data)[start:]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = np.dtype(DTYPES[entry["dtype"]]).newbyteorder("<")
            shape = tuple(int(d) for d in entry["shape"])
            begin, end = (int(o) for o in entry["data_offsets"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"tensor {name!r}: unreadable header entry {entry!r} ({e!r})") from None
        count = int(np.prod(shape, dtype=np.int64))
        if not 0 <= begin <= end <= len(body) or end - begin != count * dtype.itemsize:
            raise ValueError(f"tensor {name!r}: offsets [{begin}, {end}) do not hold {shape} of {entry['dtype']} "
                             f"in a data part of {len(body)} bytes")
        array = np.frombuffer(body[begin:end], dtype=dtype).reshape(shape)
        tensors[name] = array.astype(dtype.newbyteorder("="), copy=True)
    return tensors
