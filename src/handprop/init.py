"""Weight initializers (Glorot / He), with fans computed as Keras and PyTorch do.

Fans of a weight tensor:

* Dense ``W`` of shape ``(in, out)``:          fan_in = in,          fan_out = out
* Conv ``W`` of shape ``(K, C, R, S)``:        fan_in = C * R * S,    fan_out = K * R * S
* Transposed conv ``W`` ``(C_in, K, R, S)``:   the layer passes ``fans=`` explicitly.

Equations (``U`` uniform, ``N`` normal):

* glorot_uniform:  U(-a, a),  a = sqrt(6 / (fan_in + fan_out))        (Glorot & Bengio, 2010)
* glorot_normal:   N(0, s²),  s = sqrt(2 / (fan_in + fan_out))
* he_uniform:      U(-a, a),  a = sqrt(6 / fan_in)                     (He et al., 2015)
* he_normal:       N(0, s²),  s = sqrt(2 / fan_in)

The normal variants are plain (not truncated) normals, as PyTorch's ``xavier_normal_`` and
``kaiming_normal_``; Keras truncates them, which shrinks the spread slightly.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np


def compute_fans(shape):
    """Return ``(fan_in, fan_out)`` for a dense ``(in, out)`` or conv ``(K, C, R, S)`` weight."""
    shape = tuple(shape)
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = int(np.prod(shape[2:]))
    return shape[1] * receptive, shape[0] * receptive


def glorot_uniform(shape, rng, dtype=np.float32, fans=None):
    fan_in, fan_out = fans or compute_fans(shape)
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def glorot_normal(shape, rng, dtype=np.float32, fans=None):
    fan_in, fan_out = fans or compute_fans(shape)
    return (rng.standard_normal(shape) * np.sqrt(2.0 / (fan_in + fan_out))).astype(dtype)


def he_uniform(shape, rng, dtype=np.float32, fans=None):
    fan_in, _ = fans or compute_fans(shape)
    limit = np.sqrt(6.0 / fan_in)
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def he_normal(shape, rng, dtype=np.float32, fans=None):
    fan_in, _ = fans or compute_fans(shape)
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)


def zeros(shape, rng=None, dtype=np.float32, fans=None):
    return np.zeros(shape, dtype=dtype)


def ones(shape, rng=None, dtype=np.float32, fans=None):
    return np.ones(shape, dtype=dtype)


def constant(value):
    """An initializer that fills every entry with ``value`` (PReLU's slope, 0.25)."""
    def fill(shape, rng=None, dtype=np.float32, fans=None):
        return np.full(shape, value, dtype=dtype)
    return fill


def placeholder(shape, rng=None, dtype=np.float32, fans=None):
    """A read-only array of zeros of ``shape`` that takes no memory: every entry is the same
    element (a zero stride). What initializers return inside :func:`shapes_only`."""
    return np.broadcast_to(np.zeros((), dtype=dtype), tuple(shape))


def is_placeholder(a) -> bool:
    """True for an array of :func:`placeholder` (stands for a weight, holds no numbers)."""
    return isinstance(a, np.ndarray) and a.ndim > 0 and not a.flags.writeable and not any(a.strides)


_building = threading.local()


@contextlib.contextmanager
def shapes_only():
    """Within this block every initializer returns a :func:`placeholder`: building a model then
    fixes the names, shapes and dtypes of all its weights without allocating them or drawing a
    random number. :func:`handprop.load_model` builds a file's architecture this way and compares
    those shapes with the file's tensors before it allocates anything."""
    before = getattr(_building, "shapes_only", False)
    _building.shapes_only = True
    try:
        yield
    finally:
        _building.shapes_only = before


def building_shapes_only() -> bool:
    """Is a :func:`shapes_only` block active (in this thread)?"""
    return getattr(_building, "shapes_only", False)


INITIALIZERS = {
    "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "xavier_uniform": glorot_uniform,
    "xavier_normal": glorot_normal,
    "he_uniform": he_uniform,
    "he_normal": he_normal,
    "zeros": zeros,
    "ones": ones,
}


def get(init):
    """Look up an initializer by name, or pass a callable ``f(shape, rng, dtype)`` through
    (:func:`placeholder` in place of any of them inside :func:`shapes_only`)."""
    if not callable(init) and init not in INITIALIZERS:
        raise ValueError(f"unknown initializer {init!r}; choose one of {sorted(INITIALIZERS)}")
    if building_shapes_only():
        return placeholder
    return init if callable(init) else INITIALIZERS[init]


def make_rng(rng):
    """Accept a Generator, an int seed or None (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)
