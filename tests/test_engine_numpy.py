"""What only the ``numpy`` (im2col) engine does: bounded chunks of columns. (Agreement with the
reference on random geometries is in ``test_engines.py``.)"""

from __future__ import annotations

import numpy as np
import pytest

from engines import conv_configs, conv_data
from handprop.kernels import im2col, reference


@pytest.mark.parametrize("budget", [1, 700, 5000], ids=["one-row-bands", "few-row-bands", "image-groups"])
@pytest.mark.parametrize("cfg", conv_configs(6, 7, 12, 4))
def test_chunking_changes_nothing(monkeypatch, cfg, budget):
    """Tiny chunk budgets force row bands (1 row each, or a few) and image groups."""
    monkeypatch.setattr(im2col, "CHUNK_BYTES", budget)
    x, W, b, dy = conv_data(cfg, np.float64, seed=200)
    g = cfg["geometry"]
    np.testing.assert_allclose(im2col.conv2d(x, W, b, g), reference.conv2d(x, W, b, g))
    np.testing.assert_allclose(im2col.conv2d_input_grad(dy, W, x.shape, g),
                               reference.conv2d_input_grad(dy, W, x.shape, g))  # fmt: skip
    np.testing.assert_allclose(im2col.conv2d_weight_grad(dy, x, W.shape, g),
                               reference.conv2d_weight_grad(dy, x, W.shape, g))  # fmt: skip


def test_chunk_plan_keeps_column_buffer_bounded():
    """A 584 x 565 retina image with 64 channels, 3 x 3 kernel: every chunk <= CHUNK_BYTES."""
    C, R, S, Ho, Wo, itemsize = 64, 3, 3, 584, 565, 4
    row_bytes = C * R * S * Wo * itemsize
    chunks = list(im2col._chunks(1, Ho, row_bytes))
    assert len(chunks) > 1
    assert all((n1 - n0) * (i1 - i0) * row_bytes <= im2col.CHUNK_BYTES for n0, n1, i0, i1 in chunks)
    covered = [i for _, _, i0, i1 in chunks for i in range(i0, i1)]
    assert covered == list(range(Ho))
    many = list(im2col._chunks(10, 8, 1000))  # small images are grouped, every image once
    assert [n for n0, n1, _, _ in many for n in range(n0, n1)] == list(range(10))
