"""A synthetic 3-D vessel volume, and the patches a triplanar (2.5-D) or a 3-D CNN classifies.

The tutorial compares two ways to classify a voxel of a 3-D scan: three orthogonal 2-D patches
through it (axial, coronal, sagittal: a *triplanar* network, cheap) or the whole cube around it
(a 3-D CNN, costly). To try both without a data set, :func:`synthetic_vessel_volume` draws tubes
-- random smooth 3-D curves with a radius of 1-3 voxels -- through a noisy, blurred background::

    volume, mask = hp.data.synthetic_vessel_volume((48, 48, 48), seed=0)    # (1, D, H, W), (D, H, W)
    centres = hp.data.sample_voxel_centres(mask, 2000, seed=0)                    # half vessel, half not
    planes, labels = hp.data.extract_triplanar_patches(volume, mask, centres, 15)  # 3 x (N, 1, 15, 15)
    cubes, labels = hp.data.extract_cubes(volume, mask, centres, 9)              # (N, 1, 9, 9, 9)

Axes: a volume is (C, D, H, W) = (channels, z, y, x). The **axial** plane through voxel
``(z, y, x)`` is ``volume[:, z, :, :]`` (rows y, columns x), the **coronal** one
``volume[:, :, y, :]`` (rows z, columns x), the **sagittal** one ``volume[:, :, :, x]`` (rows z,
columns y). A patch of size ``s`` covers ``c - s // 2 .. c - s // 2 + s - 1`` along each of its
axes, so the voxel sits at index ``s // 2``; outside the volume it is zero-padded.
"""

from __future__ import annotations

import numpy as np


def _gaussian_blur(v, sigma):
    """Separable Gaussian blur of a 3-D array (edges extended), ``sigma`` in voxels."""
    if sigma <= 0:
        return v
    radius = max(1, int(3 * sigma + 0.5))
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    k /= k.sum()
    for axis in range(v.ndim):
        pad = [(0, 0)] * v.ndim
        pad[axis] = (radius, radius)
        vp = np.pad(v, pad, mode="edge")
        out = np.zeros_like(v)
        for i, w in enumerate(k):  # sum of shifted copies, one per kernel tap
            index = [slice(None)] * v.ndim
            index[axis] = slice(i, i + v.shape[axis])
            out += w * vp[tuple(index)]
        v = out
    return v


def _tube_centreline(shape, rng, step=0.5):
    """Points along a smooth random curve from one face of the box to the opposite one:
    a straight line plus three random sine bends, sampled every ``step`` voxels."""
    shape = np.asarray(shape, dtype=np.float64)
    axis = rng.integers(3)  # the faces it runs between
    start, end = rng.uniform(0.15, 0.85, 3) * shape, rng.uniform(0.15, 0.85, 3) * shape
    start[axis], end[axis] = -2.0, shape[axis] + 1.0
    length = np.linalg.norm(end - start)
    t = np.linspace(0.0, 1.0, max(2, int(length / step)))[:, None]
    bends = sum(rng.uniform(-1, 1, 3) * shape / (5 * k) * np.sin(np.pi * k * t + rng.uniform(0, np.pi))
                for k in (1, 2, 3))
    bends[:, axis] *= 0.3  # bend mostly sideways, so the tube keeps crossing the volume
    return start + t * (end - start) + bends, t[:, 0]


def synthetic_vessel_volume(shape=(48, 48, 48), n_tubes=6, radius=(1.0, 3.0), contrast=0.45, noise=0.08,
                            blur=0.7, seed=0):
    """A 3-D volume with bright tubes ("vessels") through a noisy background, and their mask.

    Parameters
    ----------
    shape : (D, H, W) -- the volume size in voxels.
    n_tubes : int -- number of tubes; each is a random smooth curve from one face of the volume to
        the opposite one, its radius varying smoothly along it within ``radius``.
    radius : (min, max) radius in voxels (1 to 3 by default).
    contrast : how much brighter a tube's centre is than the background (before blur and noise).
    noise : standard deviation of the Gaussian noise added last.
    blur : sigma in voxels of the Gaussian blur applied before the noise (a scanner's
        point-spread function); 0 for none.
    seed : the same seed gives the same volume.

    Returns
    -------
    volume : float32 (1, D, H, W) in [0, 1] -- one channel, ready for ``Conv3D``.
    mask : uint8 (D, H, W) in {0, 1} -- the voxels whose centre lies inside a tube.
    """
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 4:
        raise ValueError(f"synthetic_vessel_volume: shape must be (D, H, W), each >= 4, got {shape}")
    lo, hi = float(radius[0]), float(radius[1])
    if not 0 < lo <= hi:
        raise ValueError(f"synthetic_vessel_volume: radius must be (min, max) with 0 < min <= max, got {radius}")
    mask = np.zeros(shape, dtype=bool)
    tubes = np.zeros(shape)  # anti-aliased tube intensity in [0, 1]
    for _ in range(int(n_tubes)):
        points, t = _tube_centreline(shape, rng)
        base = rng.uniform(lo, hi)
        wobble = (hi - lo) / 2 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t + rng.uniform(0, 2 * np.pi))
        radii = np.clip(base + wobble, lo, hi)
        for p, r in zip(points, radii):  # stamp a ball of radius r around every centreline point
            a = np.maximum(np.floor(p - r - 1).astype(int), 0)
            b = np.minimum(np.ceil(p + r + 2).astype(int), shape)
            if np.any(a >= b):
                continue
            zz, yy, xx = np.ogrid[a[0]:b[0], a[1]:b[1], a[2]:b[2]]
            d = np.sqrt((zz - p[0]) ** 2 + (yy - p[1]) ** 2 + (xx - p[2]) ** 2)
            box = (slice(a[0], b[0]), slice(a[1], b[1]), slice(a[2], b[2]))
            mask[box] |= d <= r
            tubes[box] = np.maximum(tubes[box], np.clip(r + 0.5 - d, 0.0, 1.0))
    shading = _gaussian_blur(rng.standard_normal(shape), 6.0)
    background = 0.3 + 0.05 * shading / shading.std()  # slow variations of brightness
    volume = _gaussian_blur(background + contrast * tubes, blur) + noise * rng.standard_normal(shape)
    return np.clip(volume, 0.0, 1.0).astype(np.float32)[None], mask.astype(np.uint8)


def sample_voxel_centres(mask, n, vessel_fraction=0.5, margin=0, seed=0):
    """``n`` voxel coordinates (n, 3) int64 ``(z, y, x)``: about ``vessel_fraction`` of them inside
    the mask, the rest outside, drawn without replacement, at least ``margin`` voxels from the
    border (so patches of size ``2 margin + 1`` need no padding)."""
    rng = np.random.default_rng(seed)
    mask = np.asarray(mask).astype(bool)
    inside = np.zeros_like(mask)
    inner = tuple(slice(margin, s - margin) for s in mask.shape)
    inside[inner] = True
    picks = []
    for want, where in ((int(round(n * vessel_fraction)), mask & inside), (None, ~mask & inside)):
        coords = np.argwhere(where)
        k = n - sum(len(p) for p in picks) if want is None else want
        if k > len(coords):
            raise ValueError(f"sample_voxel_centres: asked for {k} voxels {'in' if want is not None else 'outside'} "
                             f"the mask but only {len(coords)} are (margin {margin})")
        picks.append(coords[rng.choice(len(coords), size=k, replace=False)])
    centres = np.concatenate(picks).astype(np.int64)
    return centres[rng.permutation(len(centres))]


def _padded(volume, mask, centres, size):
    """Checked inputs: the volume as (C, D, H, W) zero-padded by ``size // 2``, the centres in
    padded coordinates, the offsets of a patch, and the centres' labels."""
    volume = np.asarray(volume)
    if volume.ndim == 3:
        volume = volume[None]
    if volume.ndim != 4:
        raise ValueError(f"patch extraction: volume must be (C, D, H, W) or (D, H, W), got {volume.shape}")
    centres = np.asarray(centres, dtype=np.int64).reshape(-1, 3)
    mask = np.asarray(mask)
    if mask.shape != volume.shape[1:]:
        raise ValueError(f"patch extraction: mask {mask.shape} does not match the volume {volume.shape[1:]}")
    if len(centres) and (centres.min() < 0 or np.any(centres.max(axis=0) >= np.asarray(mask.shape))):
        raise ValueError(f"patch extraction: centres must lie inside the volume {mask.shape}")
    if int(size) < 1:
        raise ValueError(f"patch extraction: size must be >= 1, got {size}")
    h = int(size) // 2
    padded = np.pad(volume, ((0, 0), (h, h), (h, h), (h, h)))
    labels = mask[tuple(centres.T)].astype(np.int64)
    return padded, centres + h, np.arange(int(size)) - h, labels


def extract_triplanar_patches(volume, mask, centres, size):
    """Three orthogonal ``size x size`` patches through each centre.

    volume (C, D, H, W) (or (D, H, W)), mask (D, H, W), centres (N, 3) ``(z, y, x)`` ->
    ``([axial, coronal, sagittal], labels)``: each (N, C, size, size) float32 (axial: rows y,
    columns x; coronal: rows z, columns x; sagittal: rows z, columns y), labels (N,) int64 =
    the mask at the centres -- ready for ``model.fit(planes, labels)`` on a three-input model.
    """
    padded, c, off, labels = _padded(volume, mask, centres, size)
    z, y, x = (c[:, a, None, None] for a in range(3))
    rows, cols = off[None, :, None], off[None, None, :]
    planes = [padded[:, z, y + rows, x + cols],  # axial: fixed z
              padded[:, z + rows, y, x + cols],  # coronal: fixed y
              padded[:, z + rows, y + cols, x]]  # sagittal: fixed x
    return [p.transpose(1, 0, 2, 3).astype(np.float32) for p in planes], labels


def extract_cubes(volume, mask, centres, size):
    """The ``size``-cube around each centre: volume (C, D, H, W), centres (N, 3) ->
    ``(cubes, labels)`` with cubes (N, C, size, size, size) float32 and labels (N,) int64."""
    padded, c, off, labels = _padded(volume, mask, centres, size)
    z, y, x = (c[:, a, None, None, None] for a in range(3))
    cubes = padded[:, z + off[None, :, None, None], y + off[None, None, :, None], x + off[None, None, None, :]]
    return cubes.transpose(1, 0, 2, 3, 4).astype(np.float32), labels


__all__ = ["synthetic_vessel_volume", "sample_voxel_centres", "extract_triplanar_patches", "extract_cubes"]
