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
    """Look up an initializer by name, or pass a callable ``f(shape, rng, dtype)`` through."""
    if callable(init):
        return init
    try:
        return INITIALIZERS[init]
    except KeyError:
        raise ValueError(f"unknown initializer {init!r}; choose one of {sorted(INITIALIZERS)}") from None


def make_rng(rng):
    """Accept a Generator, an int seed or None (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)
