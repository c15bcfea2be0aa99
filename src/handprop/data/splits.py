"""Splitting by patient, and standardizing with training statistics only.

Two rules of the tutorial that keep a test score honest:

* **Split by patient.** Pixels (or patches) of one image are strongly correlated: if some of an
  image's patches train the network and others test it, the test measures memory, not
  generalization. ``split_patients`` assigns whole images (or whole groups of images, e.g. both
  eyes of one person) to train / validation / test.
* **Normalize with the training set's statistics.** ``Standardizer.fit`` computes the per-channel
  mean and standard deviation on the training images, inside the field of view only (the black
  surround would drag the mean down); ``transform`` applies those same numbers to validation
  and test images. Fitting on the test images would leak information about them.
"""

from __future__ import annotations

import numpy as np

from ..checks import check_int

__all__ = ["split_patients", "Standardizer"]


def split_patients(ids_or_n, fractions=(0.6, 0.2, 0.2), seed=0, groups=None):
    """Indices of a random split of images into disjoint parts, by patient.

    Parameters
    ----------
    ids_or_n : int, a sequence of ids, or a RetinaData
        What to split: ``n`` images, or as many images as there are ids.
    fractions : sequence of floats summing to 1
        Share of each part, e.g. ``(train, val, test)`` or ``(train, test)``. Counts are rounded
        by largest remainder; every part with a positive fraction gets at least one patient when
        there are enough patients.
    seed : int
    groups : sequence, optional
        A patient key per image: images with the same key always land in the same part (both eyes
        of a person, several visits). Default: every image is its own patient.

    Returns
    -------
    tuple of int64 arrays, one per fraction, each sorted: image indices, so that
    ``data[train]`` is the training set of a ``RetinaData``. Together they hold every index once.
    """
    n = ids_or_n if isinstance(ids_or_n, (int, np.integer)) else len(ids_or_n)
    n = int(n)
    check_int(seed, "split_patients: seed", 0)
    try:
        fractions = np.asarray(fractions, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"split_patients: fractions must be a sequence of numbers, e.g. (0.6, 0.2, 0.2); "
                        f"got {fractions!r}") from None
    if fractions.ndim != 1 or len(fractions) < 1 or (fractions < 0).any() or abs(fractions.sum() - 1) > 1e-6:
        raise ValueError(f"split_patients: fractions must be a sequence of non-negative numbers that sum to 1, "
                         f"got {fractions.tolist()}")
    keys = np.arange(n) if groups is None else np.asarray(groups)
    if len(keys) != n:
        raise ValueError(f"split_patients: {len(keys)} group keys for {n} images")
    patients, image_patient = np.unique(keys, return_inverse=True)
    m = len(patients)
    counts = np.floor(fractions * m).astype(np.int64)
    remainder = fractions * m - counts
    for k in np.argsort(-remainder, kind="stable")[: m - counts.sum()]:
        counts[k] += 1
    # give each part with a positive fraction at least one patient, taken from the largest part
    for k in np.flatnonzero((fractions > 0) & (counts == 0)):
        largest = int(np.argmax(counts))
        if counts[largest] > 1:
            counts[largest] -= 1
            counts[k] += 1
    empty = np.flatnonzero((fractions > 0) & (counts == 0))
    if len(empty):
        raise ValueError(f"split_patients: {m} patient(s) cannot fill {int((fractions > 0).sum())} parts "
                         f"{tuple(fractions.tolist())}: part {int(empty[0])} would be empty. Use more patients or "
                         "fewer parts (e.g. fractions=(0.5, 0.5))")
    order = np.random.default_rng(seed).permutation(m)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    parts = []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        chosen = np.isin(image_patient, order[start:stop])
        parts.append(np.flatnonzero(chosen).astype(np.int64))
    return tuple(parts)


class Standardizer:
    """Per-channel standardization ``(x - mean[c]) / std[c]`` with statistics from training images.

    ``fit(images, fov)`` computes ``mean`` and ``std`` (float64 arrays of shape (C,), population
    standard deviation) over every FOV pixel of every image; ``transform`` applies them to any
    array whose channel axis is third from the end: (C, H, W), (N, C, H, W) or patches. The
    statistics are plain arrays: ``state_dict()`` gives ``{"mean": ..., "std": ...}`` to save (e.g.
    with ``np.savez``), ``Standardizer.from_state_dict(d)`` restores it.
    """

    def __init__(self, mean=None, std=None):
        self.mean = None if mean is None else np.asarray(mean, np.float64).reshape(-1)
        self.std = None if std is None else np.asarray(std, np.float64).reshape(-1)

    def fit(self, images, fov=None):
        """Fit on (n, C, H, W) images (or one (C, H, W)), inside ``fov`` (n, H, W) when given."""
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[None]
            fov = None if fov is None else np.asarray(fov)[None]
        if images.ndim != 4:
            raise ValueError(f"Standardizer.fit: images must be (n, C, H, W), got shape {images.shape}")
        channels = images.shape[1]
        if fov is None:
            fov = np.ones(images.shape[:1] + images.shape[2:], bool)
        fov = np.asarray(fov, bool)
        if fov.shape != images.shape[:1] + images.shape[2:]:
            raise ValueError(f"Standardizer.fit: fov {fov.shape} does not match images {images.shape}")
        count = int(fov.sum())
        if count == 0:
            raise ValueError("Standardizer.fit: the FOV masks are empty")
        mean = np.empty(channels)
        var = np.empty(channels)
        for c in range(channels):
            values = images[:, c][fov].astype(np.float64)
            mean[c] = values.mean()
            var[c] = ((values - mean[c]) ** 2).mean()
        std = np.sqrt(var)
        if (std == 0).any():
            raise ValueError(f"Standardizer.fit: channel(s) {np.flatnonzero(std == 0).tolist()} are constant "
                             "inside the FOV; their standard deviation is 0")
        self.mean, self.std = mean, std
        return self

    def _check(self, x, name):
        if self.mean is None:
            raise RuntimeError(f"Standardizer.{name}: call fit(training_images, fov) first")
        if x.ndim < 3 or x.shape[-3] != len(self.mean):
            raise ValueError(f"Standardizer.{name}: expected {len(self.mean)} channels on axis -3, got shape {x.shape}")

    def transform(self, images, fov=None):
        """``(images - mean) / std`` per channel, float32; pixels outside ``fov`` (..., H, W) set to 0 when given."""
        x = np.asarray(images)
        self._check(x, "transform")
        shape = (-1, 1, 1)
        out = ((x - self.mean.reshape(shape)) / self.std.reshape(shape)).astype(np.float32)
        if fov is not None:
            out *= np.expand_dims(np.asarray(fov, bool), -3)
        return out

    def fit_transform(self, images, fov=None):
        """``fit`` then ``transform`` the same images (zeroing outside ``fov`` when given)."""
        return self.fit(images, fov).transform(images, fov)

    def inverse_transform(self, x):
        """Back to image values: ``x * std + mean`` per channel, float32."""
        x = np.asarray(x)
        self._check(x, "inverse_transform")
        return (x * self.std.reshape(-1, 1, 1) + self.mean.reshape(-1, 1, 1)).astype(np.float32)

    def state_dict(self):
        """``{"mean": (C,) float64, "std": (C,) float64}`` (copies)."""
        if self.mean is None:
            raise RuntimeError("Standardizer.state_dict: not fitted")
        return {"mean": self.mean.copy(), "std": self.std.copy()}

    @classmethod
    def from_state_dict(cls, state):
        return cls(state["mean"], state["std"])

    def __repr__(self):
        if self.mean is None:
            return "Standardizer(not fitted)"
        return f"Standardizer(mean={np.round(self.mean, 4).tolist()}, std={np.round(self.std, 4).tolist()})"
