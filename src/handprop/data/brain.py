"""A real 3-D anatomy for the 3-D lessons: a 1 mm crop of the MNI ICBM152 brain template.

``mni_brain.npz`` (1.4 MB, shipped in the package; licence notice in ``MNI_BRAIN_LICENSE.md``)
holds 64 x 96 x 96 voxels of the ICBM 2009a nonlinear symmetric template -- a T1-weighted image
and the grey- and white-matter probability maps, each uint8 -- from 2 mm below to 62 mm above the
anterior commissure. ``data/make_mni_brain.py`` wrote it from the copy the ``nilearn`` wheel ships
(neither nilearn nor nibabel is needed to read it)::

    brain = hp.data.mni_brain(noise=0.15, bias=0.2, seed=0)   # a simulated scan of the template
    brain.t1.shape, brain.white.shape                            # (1, 64, 96, 96), (64, 96, 96)

Axes: arrays are indexed (z, y, x) like every volume in handprop -- z from inferior to superior,
y from posterior to anterior, x from the subject's left to right (RAS+); ``brain.affine`` maps a
voxel's (x, y, z, 1) to MNI millimetres. The template is an average of 152 brains: its T1 is nearly noise-free,
so that intensity alone separates grey from white matter almost perfectly. ``noise`` and ``bias``
make it look like one scan (Rician noise, a smooth multiplicative bias field), which is what makes
the neighbourhood of a voxel worth looking at.
"""

from __future__ import annotations

from importlib import resources
from typing import NamedTuple

import numpy as np

from .volume import _gaussian_blur


class MNIBrain(NamedTuple):
    """What :func:`mni_brain` returns (shapes for the shipped 64 x 96 x 96 crop)."""

    t1: np.ndarray  #: float32 (1, D, H, W): the T1-weighted image in about [0, 1], noise and bias applied
    gm: np.ndarray  #: float32 (D, H, W) in [0, 1]: probability of grey matter
    wm: np.ndarray  #: float32 (D, H, W) in [0, 1]: probability of white matter
    tissue: np.ndarray  #: bool (D, H, W): gm + wm >= 0.5 (brain tissue, not CSF or outside)
    white: np.ndarray  #: uint8 (D, H, W): 1 where wm > gm (white matter), else 0 (the label)
    affine: np.ndarray  #: float64 (4, 4): voxel (x, y, z, 1) -> millimetres (MNI space)


def mni_brain(noise=0.0, bias=0.0, seed=0):
    """The MNI152 crop: T1, grey/white-matter probabilities, tissue mask and white-matter label.

    Parameters
    ----------
    noise : standard deviation of the Gaussian noise in each of the two channels of a magnitude
        image, relative to the T1's range [0, 1]: the result ``sqrt((t1 + n1)^2 + n2^2)`` is
        Rician, as in an MR magnitude image. 0 (default) gives the clean template.
    bias : strength of a smooth multiplicative bias field ``exp(bias * f)``, ``f`` a Gaussian
        random field (sigma 16 mm) of unit standard deviation. 0 for none.
    seed : the same seed gives the same noise and field (a different seed: "another scan").

    Returns
    -------
    :class:`MNIBrain` ``(t1, gm, wm, tissue, white, affine)``; the label ``white`` is read from
    the probability maps (white where wm > gm), so it is meaningful only where ``tissue`` is True.
    """
    if noise < 0 or bias < 0:
        raise ValueError(f"mni_brain: noise and bias must be >= 0, got noise={noise}, bias={bias}")
    with resources.files(__package__).joinpath("mni_brain.npz").open("rb") as f:
        data = np.load(f)
        t1, gm, wm, affine = (data[k] for k in ("t1", "gm", "wm", "affine"))
    t1 = t1.astype(np.float64) / 255.0
    gm, wm = gm.astype(np.float32) / 255.0, wm.astype(np.float32) / 255.0
    rng = np.random.default_rng(seed)
    if bias > 0:
        field = _gaussian_blur(rng.standard_normal(t1.shape), 16.0)
        t1 = t1 * np.exp(bias * field / field.std())
    if noise > 0:
        t1 = np.sqrt((t1 + noise * rng.standard_normal(t1.shape)) ** 2 + (noise * rng.standard_normal(t1.shape)) ** 2)
    return MNIBrain(t1.astype(np.float32)[None], gm, wm, (gm + wm) >= 0.5, (wm > gm).astype(np.uint8), affine)


__all__ = ["MNIBrain", "mni_brain"]
