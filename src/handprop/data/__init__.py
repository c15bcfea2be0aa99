"""Data sets and data handling.

``load_digits`` returns the UCI handwritten digits (1,797 8×8 images, 10 classes), shipped
inside the package (``digits.npz``, 45 KB; licence in ``DIGITS_LICENSE.md``) so that the demo
runs without a download.
"""

from __future__ import annotations

from importlib import resources

import numpy as np

from .volume import extract_cubes, extract_triplanar_patches, sample_centres, synthetic_vessel_volume  # noqa: F401


def load_digits(test_fraction=0.2, seed=0, flatten=True):
    """The digits data set, shuffled and split into train and test sets.

    Returns ``(x_train, y_train), (x_test, y_test)``: ``x`` float32 in [0, 1] of shape
    (N, 64), or (N, 1, 8, 8) with ``flatten=False``; ``y`` int64 class indices (N,).
    The split is stratified-free but seeded: the same seed gives the same split.
    """
    with resources.files(__package__).joinpath("digits.npz").open("rb") as f:
        data = np.load(f)
        images, labels = data["images"], data["labels"]
    x = images.astype(np.float32) / 16.0  # pixel counts 0..16 -> [0, 1]
    x = x.reshape(len(x), -1) if flatten else x[:, None, :, :]
    y = labels.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return (x[train], y[train]), (x[test], y[test])


__all__ = ["load_digits"]
