"""``RetinaData``: the one structure that the synthetic retina and the DRIVE loader both return.

::

    data = hp.data.synthetic_retina(20)            # or hp.data.load_drive("DRIVE", "training")
    images, vessels, fov, ids = data               # unpacks like a tuple of its four fields
    data.images   # (n, 3, H, W) float32 in [0, 1]  RGB fundus photographs
    data.vessels  # (n, H, W) uint8 in {0, 1}      the manual (or generated) vessel annotation;
                  #                                 None for a DRIVE split without annotations
    data.fov      # (n, H, W) bool                 the field of view (the lit disc of the retina)
    data.ids      # list of n str                  "synthetic_000", ... or "21_training", ...
    len(data)     # n, the number of images (one per patient)
    data[2:5], data[[0, 3]], data[np.array([True, ...])]   # a subset of patients, a RetinaData again
    data[0]       # also a RetinaData, with one image: the leading axis is kept

Iterating over a ``RetinaData`` gives its four fields (that is what makes the unpacking work), not
its images: ``len(data)`` counts images, ``list(data)`` has four items. To loop over the
patients, index: ``for i in range(len(data)): data[i]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["RetinaData"]


@dataclass(frozen=True, eq=False)
class RetinaData:
    """Fundus images with their vessel and field-of-view masks, one per patient (see module doc)."""

    images: np.ndarray
    vessels: np.ndarray | None
    fov: np.ndarray
    ids: list

    def __post_init__(self):
        images, vessels, fov = self.images, self.vessels, self.fov
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"RetinaData: images must be (n, 3, H, W), got shape {images.shape}")
        n, _, h, w = images.shape
        if fov.shape != (n, h, w):
            raise ValueError(f"RetinaData: fov must be (n, H, W) = {(n, h, w)}, got {fov.shape}")
        if vessels is not None and vessels.shape != (n, h, w):
            raise ValueError(f"RetinaData: vessels must be (n, H, W) = {(n, h, w)}, got {vessels.shape}")
        if len(self.ids) != n:
            raise ValueError(f"RetinaData: {len(self.ids)} ids for {n} images")
        object.__setattr__(self, "ids", list(self.ids))

    def __len__(self):
        return len(self.images)

    def __iter__(self):
        return iter((self.images, self.vessels, self.fov, self.ids))

    def __getitem__(self, index):
        """A subset of patients: an int, a slice, a list / array of indices or a boolean mask."""
        if isinstance(index, (int, np.integer)):
            if not -len(self) <= index < len(self):
                raise IndexError(f"RetinaData: index {index} out of range for {len(self)} images")
            index = [int(index) % len(self)]
        elif not isinstance(index, slice):
            index = np.asarray(index)
            if index.dtype == bool:
                if index.shape != (len(self),):
                    raise IndexError(f"RetinaData: boolean index of shape {index.shape} for {len(self)} images")
                index = np.flatnonzero(index)
            elif index.size and not np.issubdtype(index.dtype, np.integer):
                raise IndexError(f"RetinaData: index with dtype {index.dtype}; use integers or booleans")
            index = index.astype(np.int64).reshape(-1)
        ids = self.ids[index] if isinstance(index, slice) else [self.ids[i] for i in index]
        vessels = None if self.vessels is None else self.vessels[index]
        return RetinaData(self.images[index], vessels, self.fov[index], ids)

    @property
    def shape(self):
        """``(H, W)`` of the images."""
        return tuple(self.images.shape[2:])

    def __repr__(self):
        h, w = self.shape
        ids = ", ".join(self.ids[:3]) + (", ..." if len(self) > 3 else "")
        annotated = "" if self.vessels is not None else ", no vessel annotations"
        return f"RetinaData({len(self)} images of {h}x{w}{annotated}; ids {ids})"
