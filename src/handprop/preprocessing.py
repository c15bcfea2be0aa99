"""Fundus preprocessing as the DRIVE literature does it, written with NumPy and SciPy.

Each step works on one image at a time and uses no statistics of other images, so a test image
is preprocessed exactly as it would be alone (nothing leaks, and ``handprop predict`` on a new
photograph repeats the training's preprocessing bit for bit)::

    x = preprocess_images(data, **DEFAULT_PREPROCESSING)             # (n, 1, H, W) float32
    x = preprocess_images(data, channels="rgb", outside="nearest")   # the old demo's normalization

The steps, in order (:data:`DEFAULT_PREPROCESSING` holds the defaults):

1. **channels** -- ``"green"`` (vessels contrast most in green; red is nearly saturated and blue
   is noise in most fundus photographs), ``"luminance"`` (0.299 R + 0.587 G + 0.114 B, as
   retina-unet) or ``"rgb"``. One channel removes most of the colour differences between cameras
   and patients.
2. **outside the FOV** -- :func:`extend_outside_fov`: the dark surround is replaced by a smooth
   extension of the FOV (iterative mean filtering outward, after Soares et al. 2006), so that
   neither a sharp circular edge nor the radial streaks of a nearest-pixel copy look like vessels.
3. **CLAHE** -- :func:`clahe`: contrast-limited adaptive histogram equalization (Zuiderveld 1994,
   as OpenCV's ``createCLAHE``) evens out illumination and local contrast across the image.
4. **gamma** -- ``x ** (1 / gamma)`` (retina-unet uses 1.2 after CLAHE).
5. **standardize** -- subtract the mean and divide by the standard deviation of the image's FOV
   pixels, per channel.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["DEFAULT_PREPROCESSING", "preprocess_images", "select_channels", "extend_outside_fov", "clahe"]

DEFAULT_PREPROCESSING = {"channels": "green", "outside": "smooth", "clahe": {"tiles": 8, "clip_limit": 2.0},
                         "gamma": 1.2}
"""The demo's preprocessing (a JSON-able dict, saved in the model file): green channel, smooth
extension outside the FOV, CLAHE on an 8 x 8 grid with clip limit 2, gamma 1.2, standardized."""

_LUMINANCE = np.array([0.299, 0.587, 0.114], np.float32)


def select_channels(image, channels="green"):
    """``(3, H, W)`` RGB -> ``(C, H, W)``: ``"green"`` and ``"luminance"`` give one channel, ``"rgb"`` all three."""
    image = np.asarray(image, np.float32)
    if channels == "rgb":
        return image.copy()
    if channels == "green":
        return image[1:2].copy()
    if channels == "luminance":
        return np.tensordot(_LUMINANCE, image, axes=1)[None].astype(np.float32)
    raise ValueError(f"select_channels: channels must be 'green', 'luminance' or 'rgb', got {channels!r}")


def extend_outside_fov(image, fov, radius=2, max_radius=16, blur=(2, 4, 8)):
    """Fill the pixels outside the field of view with a smooth continuation of the pixels inside.

    ``image`` (C, H, W), ``fov`` (H, W) bool. Iterative mean filtering from the FOV outward (after
    Soares et al. 2006, who grow the FOV one pixel per iteration): each pass, every unknown pixel
    within ``r`` pixels of a known one takes the mean of the known pixels in its ``(2 r + 1)``
    square window and becomes known; ``r`` starts at ``radius`` and doubles each pass up to
    ``max_radius`` (farther out, wider means: a dozen passes fill a DRIVE image's corners). Such a
    fill still carries every vessel that meets the FOV edge outward as a radial streak, so the
    surround is then blurred more the farther it lies from the FOV: a pixel at least ``2 b``
    pixels outside is replaced by a box blur of half-width ``b``, applied twice (about a Gaussian),
    for each ``b`` in ``blur`` in turn (continuous at the FOV edge, no streaks farther out). FOV
    pixels are returned unchanged. -> float32 (C, H, W).
    """
    image = np.asarray(image, np.float32)
    fov = np.asarray(fov, bool)
    if fov.shape != image.shape[1:]:
        raise ValueError(f"extend_outside_fov: fov {fov.shape} does not match the image {image.shape}")
    if not fov.any():
        raise ValueError("extend_outside_fov: the field of view is empty")
    out = np.where(fov, image, 0).astype(np.float64)  # float64 running sums
    known = fov.copy()
    r = int(radius)
    while not known.all():
        size = 2 * r + 1
        count = ndimage.uniform_filter(known.astype(np.float64), size, mode="constant")
        new = (count > 1e-9) & ~known
        for c in range(len(out)):
            total = ndimage.uniform_filter(np.where(known, out[c], 0), size, mode="constant")
            out[c][new] = total[new] / count[new]
        known |= new
        r = min(2 * r, int(max_radius))
    if blur:
        distance = ndimage.distance_transform_edt(~fov)
        for b in sorted(blur):
            far = distance >= 2 * b
            for c in range(len(out)):
                smooth = ndimage.uniform_filter(ndimage.uniform_filter(out[c], 2 * b + 1, mode="nearest"),
                                                2 * b + 1, mode="nearest")
                out[c][far] = smooth[far]
    return out.astype(np.float32)


def clahe(channel, tiles=8, clip_limit=2.0, bins=256):
    """Contrast-limited adaptive histogram equalization of one channel (H, W) in [0, 1].

    The image is cut into ``tiles`` x ``tiles`` regions (padded by reflection to a multiple). Each
    region's histogram (``bins`` levels) is clipped at ``clip_limit`` times its mean bin count and
    the clipped excess spread evenly over all bins; its cumulative sum is the region's mapping
    (histogram equalization with a bounded slope, so noise in flat regions is not blown up).
    Every pixel takes the bilinear interpolation of the mappings of the four regions whose
    centres surround it, so no tile borders show. As OpenCV's ``createCLAHE(clipLimit, tileGridSize)``
    up to rounding. -> float32 (H, W) in [0, 1].
    """
    x = np.asarray(channel, np.float32)
    if x.ndim != 2:
        raise ValueError(f"clahe: expects one channel (H, W), got shape {x.shape}")
    H, W = x.shape
    th, tw = -(-H // tiles), -(-W // tiles)  # region size: ceil
    level = np.clip(np.rint(x * (bins - 1)), 0, bins - 1).astype(np.int64)
    padded = np.pad(level, ((0, th * tiles - H), (0, tw * tiles - W)), mode="reflect")
    regions = padded.reshape(tiles, th, tiles, tw).transpose(0, 2, 1, 3).reshape(tiles * tiles, th * tw)
    offsets = np.arange(tiles * tiles)[:, None] * bins
    hist = np.bincount((regions + offsets).ravel(), minlength=tiles * tiles * bins)
    hist = hist.reshape(tiles * tiles, bins).astype(np.float64)
    limit = max(clip_limit * th * tw / bins, 1.0)
    excess = np.maximum(hist - limit, 0).sum(axis=1, keepdims=True)
    hist = np.minimum(hist, limit) + excess / bins
    lut = (np.cumsum(hist, axis=1) / (th * tw)).reshape(tiles, tiles, bins)
    lut = np.clip(lut, 0, 1).astype(np.float32)

    def axis(n, size):  # each pixel's two surrounding region centres and the weight of the second
        f = (np.arange(n) + 0.5) / size - 0.5
        lo = np.clip(np.floor(f).astype(np.int64), 0, tiles - 1)
        hi = np.minimum(lo + 1, tiles - 1)
        return lo, hi, np.clip(f - lo, 0, 1).astype(np.float32)

    y0, y1, wy = axis(H, th)
    x0, x1, wx = axis(W, tw)
    y0, y1, wy = y0[:, None], y1[:, None], wy[:, None]
    top = (1 - wx) * lut[y0, x0, level] + wx * lut[y0, x1, level]
    bottom = (1 - wx) * lut[y1, x0, level] + wx * lut[y1, x1, level]
    return ((1 - wy) * top + wy * bottom).astype(np.float32)


def _standardize(x, fov):
    """``(x - mean) / std`` per channel, with the statistics of the pixels inside ``fov`` (at least 2:
    :func:`preprocess_images` checks)."""
    inside = x[:, fov]
    mean = inside.mean(axis=1)[:, None, None]
    std = inside.std(axis=1)[:, None, None]
    return ((x - mean) / np.maximum(std, 1e-6)).astype(np.float32)


def preprocess_images(data, fov=None, *, channels="green", outside="smooth", clahe=None, gamma=1.0, **unknown):
    """Preprocess fundus images one by one (see the module doc for the steps and why).

    ``data``: a :class:`handprop.data.RetinaData` (or images (n, 3, H, W) in [0, 1] with ``fov``
    (n, H, W)). ``outside``: ``"smooth"`` (:func:`extend_outside_fov`), ``"nearest"`` (each
    pixel copies its nearest FOV pixel) or ``"zero"`` (0 after standardization). ``clahe``: None,
    or the keyword arguments of :func:`clahe` (``{"tiles": 8, "clip_limit": 2.0}``). The demo's
    settings are ``preprocess_images(data, **DEFAULT_PREPROCESSING)``; the old demo's (RGB, nearest
    FOV pixel outside, no CLAHE) ``preprocess_images(data, channels="rgb", outside="nearest")``.
    -> float32 (n, C, H, W), standardized inside each image's FOV.
    """
    if unknown:
        raise ValueError(f"preprocess_images: unknown settings {sorted(unknown)}")
    if outside not in ("smooth", "nearest", "zero"):
        raise ValueError(f"preprocess_images: outside must be 'smooth', 'nearest' or 'zero', got {outside!r}")
    images = np.asarray(getattr(data, "images", data), dtype=np.float32)
    fov = np.asarray(getattr(data, "fov", fov), dtype=bool)
    if images.ndim != 4 or fov.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(f"preprocess_images: fov must be (n, H, W) for images (n, C, H, W) {images.shape}, "
                         f"got {fov.shape}")
    ids = getattr(data, "ids", None)
    out = []
    for i in range(len(images)):
        name = ids[i] if ids is not None else f"image {i}"
        if fov[i].sum() < 2:
            raise ValueError(f"preprocess_images: {name} has fewer than 2 pixels inside its field of view")
        x = select_channels(images[i], channels)
        if outside == "smooth":
            x = extend_outside_fov(x, fov[i])
        elif outside == "nearest":  # every pixel copies its nearest FOV pixel (FOV pixels copy themselves)
            rows, cols = ndimage.distance_transform_edt(~fov[i], return_distances=False, return_indices=True)
            x = x[:, rows, cols]
        if clahe is not None:
            x = np.stack([_clahe(c, **clahe) for c in x])
        if gamma != 1.0:
            x = np.power(np.clip(x, 0, None), np.float32(1.0 / gamma))
        x = _standardize(x, fov[i])
        if outside == "zero":
            x = np.where(fov[i], x, np.float32(0))
        out.append(x)
    return np.stack(out).astype(np.float32)


_clahe = clahe  # preprocess_images' ``clahe`` argument hides the function's name inside it
