"""Random, seeded layer geometries shared by the engine tests."""

from __future__ import annotations

import numpy as np

from handprop.kernels.reference import output_size


def pool_configs(count, seed, max_hw, max_ch):
    """``count`` pooling cases: dicts with ``x`` (N, C, H, W), ``pool``, ``stride``, ``padding``
    (pairs; padding at most half the window, as PyTorch), each giving a non-empty output."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        N, C = (int(v) for v in rng.integers(1, [4, max_ch + 1]))
        H, W = (int(v) for v in rng.integers(2, max_hw + 1, 2))
        pool = tuple(int(v) for v in rng.integers(1, 5, 2))
        stride = tuple(int(v) for v in rng.integers(1, 4, 2))
        padding = tuple(int(rng.integers(0, p // 2 + 1)) for p in pool)
        if min(output_size(n, p, s, q) for n, p, s, q in zip((H, W), pool, stride, padding)) < 1:
            continue
        out.append(dict(x=(N, C, H, W), pool=pool, stride=stride, padding=padding))
    return out
