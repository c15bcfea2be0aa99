"""Data augmentation applied jointly to a fundus image, its vessel mask and its FOV mask.

Every transform is a callable ``t(image, vessels, fov, rng) -> (image, vessels, fov)``:

* ``image`` (C, H, W) float in [0, 1] (augment *before* standardizing: the intensity transforms
  assume [0, 1]); ``vessels`` (H, W) {0, 1} and ``fov`` (H, W) bool, either may be None;
* ``rng`` a ``np.random.Generator``: the one generator draws every random choice, so a seeded
  generator reproduces the same augmentation of the image and its masks.

Geometric transforms move the three arrays the same way. Flips and 90° rotations are exact
(array views, no interpolation). Rotations by any angle, scaling and elastic deformation sample
the image at new positions with ``scipy.ndimage.map_coordinates``: bilinear for the image, and
bilinear then thresholded at 1/2 for the masks, so masks stay binary and smooth (no staircase);
outside the array the values are mirrored (``mode="reflect"``), or ``mode="constant"`` fills 0.
Intensity transforms change the image only and clip it to [0, 1]. The output has the input's
shape and dtypes (vessels uint8 stays uint8, fov bool stays bool).

``Augmenter([...])`` applies a list of transforms in order, each with its probability ``p``::

    aug = Augmenter([Flip(), Rotate90(), Affine(rotation=180, scale=(0.9, 1.1)),
                     Elastic(alpha=2.0, sigma=10.0), Intensity(brightness=0.1, contrast=0.15, gamma=0.2)])
    image2, vessels2, fov2 = aug(image, vessels, fov, np.random.default_rng(0))

``default_augmenter()`` is that list.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from ..checks import check_real

__all__ = ["Augmenter", "Flip", "Rotate90", "Affine", "Elastic", "Intensity", "default_augmenter",
           "warp"]


def _check(image, vessels, fov, name):
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"{name}: image must be (C, H, W), got shape {image.shape}")
    for mask, what in ((vessels, "vessels"), (fov, "fov")):
        if mask is not None and np.shape(mask) != image.shape[1:]:
            raise ValueError(f"{name}: {what} must be (H, W) = {image.shape[1:]}, got {np.shape(mask)}")
    return image


def _pair(value, what, from_scalar, low=-np.inf):
    """A (low, high) range of finite numbers from a scalar (``from_scalar(x)``) or a pair; every
    number above ``low`` (a NaN scale used to give a black image)."""
    if np.isscalar(value):
        check_real(value, what, low, 1e6, low_open=low > -np.inf)
        value = from_scalar(value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{what} must be a number or a pair (low, high), got {value!r}")
    pair = tuple(value)
    if not np.isfinite([check_real(v, what, low, 1e6, low_open=low > -np.inf) for v in pair]).all():
        raise ValueError(f"{what} must be finite, got {pair}")
    if pair[0] > pair[1]:
        raise ValueError(f"{what}: the range {pair} is reversed; give (low, high)")
    return pair


def warp(image, vessels, fov, rows, cols, mode="reflect"):
    """Sample image and masks at (H, W) coordinate maps ``rows``, ``cols`` (output pixel -> input position).

    Image: bilinear (order 1), keeps its dtype. Masks: bilinear, then ``>= 0.5``.
    """
    coords = np.stack([rows, cols])
    out = np.stack([ndimage.map_coordinates(channel, coords, order=1, mode=mode, cval=0.0) for channel in image])
    out = out.astype(image.dtype, copy=False)

    def mask(m):
        if m is None:
            return None
        m = np.asarray(m)
        moved = ndimage.map_coordinates(m.astype(np.float32), coords, order=1, mode=mode, cval=0.0) >= 0.5
        return moved.astype(m.dtype)

    return out, mask(vessels), mask(fov)


class _Transform:
    p = 1.0

    def __call__(self, image, vessels, fov, rng):
        image = _check(image, vessels, fov, type(self).__name__)
        return self.apply(image, vessels, fov, rng)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Flip(_Transform):
    """Mirror left-right and / or up-down, each with probability 1/2 (exact, no interpolation)."""

    def __init__(self, horizontal=True, vertical=True, p=1.0):
        self.horizontal, self.vertical, self.p = horizontal, vertical, p

    def apply(self, image, vessels, fov, rng):
        axes = []
        if self.horizontal and rng.random() < 0.5:
            axes.append(-1)
        if self.vertical and rng.random() < 0.5:
            axes.append(-2)
        if not axes:
            return image, vessels, fov
        flip = lambda a: None if a is None else np.flip(a, axis=tuple(axes)).copy()
        return flip(image), flip(vessels), flip(fov)


class Rotate90(_Transform):
    """Rotate by k × 90°, k uniform in {0, 1, 2, 3} (exact; square arrays keep their shape, others swap H and W)."""

    def __init__(self, p=1.0):
        self.p = p

    def apply(self, image, vessels, fov, rng):
        k = int(rng.integers(4))
        if k == 0:
            return image, vessels, fov
        rot = lambda a: None if a is None else np.rot90(a, k, axes=(-2, -1)).copy()
        return rot(image), rot(vessels), rot(fov)


class Affine(_Transform):
    """Rotation by any angle and scaling about the centre, in one interpolation; the size is kept.

    ``rotation``: the angle is uniform in [-rotation, rotation] degrees (or in a given (low, high));
    a positive angle turns the picture clockwise as displayed (rows grow downwards), so +90° equals
    ``np.rot90(a, -1)``.
    ``scale``: the zoom factor is log-uniform in (low, high); > 1 zooms in (a crop of the middle,
    enlarged), < 1 zooms out (the border is filled by ``mode``). The output pixel at offset ``o`` from
    the centre comes from the input position ``centre + R(-angle) o / zoom``.
    """

    def __init__(self, rotation=180.0, scale=(0.9, 1.1), mode="reflect", p=1.0):
        self.rotation = _pair(rotation, "Affine: rotation", lambda r: (-abs(r), abs(r)))
        self.scale = _pair(scale, "Affine: scale", lambda s: (s, s), low=0.0)
        self.mode, self.p = mode, p

    def apply(self, image, vessels, fov, rng):
        angle = math.radians(rng.uniform(*self.rotation))
        zoom = math.exp(rng.uniform(math.log(self.scale[0]), math.log(self.scale[1])))
        h, w = image.shape[1:]
        cy, cx = (h - 1) / 2, (w - 1) / 2
        oy, ox = np.mgrid[0:h, 0:w].astype(np.float64)
        oy -= cy
        ox -= cx
        cos, sin = math.cos(angle) / zoom, math.sin(angle) / zoom
        rows = cy + cos * oy - sin * ox
        cols = cx + sin * oy + cos * ox
        return warp(image, vessels, fov, rows, cols, self.mode)


class Elastic(_Transform):
    """Elastic deformation (Simard et al. 2003): a smooth random displacement field.

    Each of the two displacement components is white noise smoothed by a Gaussian of ``sigma``
    pixels (the distance over which the field stays coherent) and rescaled to a standard deviation
    of ``alpha`` pixels. (Simard's ``alpha`` multiplies the smoothed noise instead, so its values
    depend on ``sigma``; here ``alpha`` is the typical displacement itself.)
    """

    def __init__(self, alpha=2.0, sigma=10.0, mode="reflect", p=1.0):
        self.alpha = check_real(alpha, "Elastic: alpha (the typical displacement, in pixels)", 0.0, 1e6)
        self.sigma = check_real(sigma, "Elastic: sigma (the smoothing, in pixels)", 0.0, 1e6, low_open=True)
        self.mode, self.p = mode, p

    def apply(self, image, vessels, fov, rng):
        h, w = image.shape[1:]
        fields = []
        for _ in range(2):
            field = ndimage.gaussian_filter(rng.standard_normal((h, w)), self.sigma, mode="reflect")
            fields.append(field * (self.alpha / (field.std() + 1e-12)))
        rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
        return warp(image, vessels, fov, rows + fields[0], cols + fields[1], self.mode)


class Intensity(_Transform):
    """Brightness, contrast and gamma of the image (masks unchanged); the result is clipped to [0, 1].

    ``x -> clip(c (x^g - m) + m + b, 0, 1)`` with gamma ``g`` log-uniform in [1/(1+gamma), 1+gamma]
    (or in a given (low, high)), contrast ``c`` uniform in [1 - contrast, 1 + contrast] about the mean
    ``m`` of x^g inside the FOV, and brightness ``b`` uniform in [-brightness, brightness]. One draw for
    all channels.
    """

    def __init__(self, brightness=0.1, contrast=0.15, gamma=0.2, p=1.0):
        self.brightness = check_real(brightness, "Intensity: brightness (a shift of [0, 1] images)", 0.0, 1.0)
        # contrast c in [1 - contrast, 1 + contrast] must stay > 0: c < 0 inverts the image
        self.contrast = check_real(contrast, "Intensity: contrast", 0.0, 1.0, high_open=True)
        self.p = p
        if np.isscalar(gamma):  # exponents from 1/(1+gamma) to 1+gamma: gamma = -1 divided by zero
            g = check_real(gamma, "Intensity: gamma", 0.0, 1e3)
            gamma = (1 / (1 + g), 1 + g)
        self.gamma = _pair(gamma, "Intensity: gamma (the exponents)", None, low=0.0)

    def apply(self, image, vessels, fov, rng):
        lo, hi = float(np.min(image)), float(np.max(image))
        if lo < -1e-6 or hi > 1 + 1e-6:
            raise ValueError(f"Intensity: expects images in [0, 1], got values in [{lo:.3g}, {hi:.3g}]; augment "
                             "before standardizing (clipping standardized images to [0, 1] would destroy them)")
        g = math.exp(rng.uniform(math.log(self.gamma[0]), math.log(self.gamma[1])))
        c = rng.uniform(1 - self.contrast, 1 + self.contrast)
        b = rng.uniform(-self.brightness, self.brightness)
        x = np.clip(image, 0, 1) ** g
        inside = np.asarray(fov, bool) if fov is not None and np.any(fov) else np.ones(image.shape[1:], bool)
        m = x[:, inside].mean()
        return np.clip(c * (x - m) + m + b, 0, 1).astype(image.dtype, copy=False), vessels, fov


class Augmenter:
    """Apply ``transforms`` in order, each with its probability ``p``: ``aug(image, vessels, fov, rng)``.

    ``rng``: a ``np.random.Generator`` (or a seed); every random choice comes from it. Returns
    ``(image, vessels, fov)`` (see the module docstring for shapes).
    """

    def __init__(self, transforms):
        transforms = list(transforms)
        for t in transforms:
            if not callable(t):
                raise TypeError(f"Augmenter: {t!r} is not a transform (a callable (image, vessels, fov, rng))")
        self.transforms = transforms

    def __call__(self, image, vessels=None, fov=None, rng=None):
        rng = np.random.default_rng(rng)
        image = _check(image, vessels, fov, "Augmenter")
        for t in self.transforms:
            if rng.random() < getattr(t, "p", 1.0):
                image, vessels, fov = t(image, vessels, fov, rng)
        return image, vessels, fov

    def __repr__(self):
        inner = ",\n    ".join(repr(t) for t in self.transforms)
        return f"Augmenter([\n    {inner}])"


def default_augmenter():
    """Flips, 90° rotations, any rotation with ±10 % zoom, mild elastic deformation, intensity changes."""
    return Augmenter([Flip(), Rotate90(), Affine(rotation=180.0, scale=(0.9, 1.1), p=0.7),
                      Elastic(alpha=1.5, sigma=8.0, p=0.5), Intensity(brightness=0.08, contrast=0.15, gamma=0.2)])
