"""Data sets and data handling.

``load_digits`` returns the UCI handwritten digits (1,797 8×8 images, 10 classes), shipped
inside the package (``digits.npz``, 45 KB; licence in ``DIGITS_LICENSE.md``) so that the demo
runs without a download.

The tutorial's task, retinal vessel segmentation:

==========================  =====================================================================
``synthetic_retina``        procedural DRIVE-like fundus images with exact vessel and FOV masks
``load_drive``              the DRIVE data set from its folder layout; ``save_drive_layout`` writes one
``load_fundus_photo``       one real (CC0) fundus photograph, for qualitative inference
``RetinaData``              what the three return: ``images, vessels, fov, ids = data``
``split_patients``          train / validation / test indices, whole patients per part
``Standardizer``            per-channel mean / std fitted on training images inside the FOV
``extract_patches``         patches around FOV pixels and their centre labels (balanced, multi-scale)
``extract_tiles``           image tiles with vessel and FOV masks, for fully convolutional nets
``PatchSampler``            fresh (augmented) patches every epoch: batches ``(x, y)``
``TileSampler``             fresh (augmented) tiles every epoch: batches ``(x, y, weight)``
``Augmenter`` & transforms  joint augmentation of image, vessel mask and FOV mask
==========================  =====================================================================

And for the 3-D lessons: ``synthetic_vessel_volume`` (tubes through noise), ``sample_voxel_centres``,
``extract_triplanar_patches`` (three orthogonal patches) and ``extract_cubes``; ``mni_brain``, a
real anatomy: a 1 mm crop of the MNI152 template (T1, grey- and white-matter maps; licence notice
in ``MNI_BRAIN_LICENSE.md``), with optional simulated scanner noise and bias field.
"""

from __future__ import annotations

from importlib import resources

import numpy as np


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


from .augment import Affine, Augmenter, Elastic, Flip, Intensity, Rotate90, default_augmenter  # noqa: E402
from .brain import MNIBrain, mni_brain  # noqa: E402
from .dataset import RetinaData  # noqa: E402
from .drive import load_drive, save_drive_layout  # noqa: E402
from .fundus import estimate_fov, load_fundus_photo  # noqa: E402
from .patches import PatchSampler, TileSampler, extract_patches, extract_tiles, sample_centres  # noqa: E402
from .retina import synthetic_retina  # noqa: E402
from .splits import Standardizer, split_patients  # noqa: E402
from .volume import extract_cubes, extract_triplanar_patches, sample_voxel_centres, synthetic_vessel_volume  # noqa: E402

__all__ = [
    "load_digits",
    "RetinaData", "synthetic_retina", "load_drive", "save_drive_layout", "load_fundus_photo", "estimate_fov",
    "split_patients", "Standardizer",
    "extract_patches", "extract_tiles", "sample_centres", "PatchSampler", "TileSampler",
    "Augmenter", "Flip", "Rotate90", "Affine", "Elastic", "Intensity", "default_augmenter",
    "synthetic_vessel_volume", "sample_voxel_centres", "extract_triplanar_patches", "extract_cubes",
    "MNIBrain", "mni_brain",
]
