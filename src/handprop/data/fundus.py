"""One real fundus photograph, shipped with handprop for qualitative inference.

``fundus_photo.jpg``: a normal left eye, public domain (CC0), from scikit-image's sample data,
downscaled to 565×565 pixels (about a DRIVE image's scale); provenance and licence in
``FUNDUS_PHOTO_LICENSE.md`` beside it. It has no vessel annotation: it shows what a network
trained on synthetic or DRIVE images predicts on a real photograph, not a score.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
from scipy import ndimage

from .dataset import RetinaData

__all__ = ["load_fundus_photo", "estimate_fov"]


def estimate_fov(image, fraction=0.3):
    """A field-of-view mask (H, W) bool for a (3, H, W) fundus image in [0, 1], from its dark surround.

    A pixel is inside when its brightest channel exceeds ``fraction`` × the image's 99th
    percentile of that channel; holes are filled and only the largest connected region is kept.
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"estimate_fov: image must be (C, H, W), got shape {image.shape}")
    brightest = image.max(axis=0)
    mask = brightest > fraction * np.percentile(brightest, 99)
    mask = ndimage.binary_fill_holes(mask)
    labels, count = ndimage.label(mask)
    if count > 1:
        sizes = np.bincount(labels.reshape(-1))[1:]
        mask = labels == 1 + int(np.argmax(sizes))
    return mask


def load_fundus_photo():
    """The shipped fundus photograph as a ``RetinaData`` of one image without vessel annotation.

    Returns ``RetinaData(images (1, 3, 565, 565) float32 in [0, 1], vessels=None, fov (1, 565, 565)
    bool estimated with :func:`estimate_fov`, ids=["fundus_photo"])``; ``photo.images[0]`` is the
    (3, H, W) image and ``photo.fov[0]`` its mask.
    """
    from PIL import Image

    with resources.files(__package__).joinpath("fundus_photo.jpg").open("rb") as f:
        with Image.open(f) as image:
            rgb = np.asarray(image.convert("RGB"))
    image = rgb.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
    return RetinaData(image[None], None, estimate_fov(image)[None], ["fundus_photo"])
