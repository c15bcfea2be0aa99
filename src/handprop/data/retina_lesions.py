"""Look-alikes for the synthetic retina: lesions of diseased retinas and the tessellated fundus.

A network that has only seen healthy synthetic retinas calls every dark spot a vessel. Real
fundus photographs (DRIVE: about 7 of its 40 patients show pathology) have dark and bright
structures of the vessels' own sizes that are not vessels; only their shape and their context
(does it continue? does it branch? is it round?) tell them apart. This module draws them into
three (H, W) layers that :mod:`handprop.data.retina` turns into colour:

=================  =============================================================================
layer              what draws into it
=================  =============================================================================
``blood``          microaneurysms (dark red dots, 1-3 px across), dot and blot haemorrhages
                   (3-15 px), flame haemorrhages (streaks 3-7 px wide, 15-45 px long, pointing
                   away from the optic disc, like a short piece of vessel)
``yellow``         hard exudates (small sharp yellow spots in clusters and rings), drusen (soft
                   yellow dots around the macula), the pale centres of laser scars
``white``          cotton-wool spots (pale fluffy patches near the arcades)
``pigment``        pigment clumps and the dark rims of laser scars (brown-black, all channels)
=================  =============================================================================

``tessellation`` draws the choroid's own vessels as they show through a thin, lightly pigmented
retina (myopic and elderly eyes): a network of broad, blurry, curving dark bands, stronger in red
than in green, that is not in the vessel annotation.

Every length is for a FOV radius of 270 px and scaled by ``g.s``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

__all__ = ["lesion_layers", "tessellation"]


def _stamp(layer, y, x, ry, rx, angle, amplitude, edge=1.0):
    """Add ``amplitude`` × a soft-edged ellipse to ``layer`` in place (only inside its bounding box).

    The ellipse has semi-axes ``ry`` (across) and ``rx`` (along ``angle``, radians, x right, y
    down); its edge is a logistic ramp about ``edge`` px wide.
    """
    h, w = layer.shape
    reach = max(ry, rx) + 4 * edge + 1
    y0, y1 = max(0, int(y - reach)), min(h, int(y + reach) + 2)
    x0, x1 = max(0, int(x - reach)), min(w, int(x + reach) + 2)
    if y0 >= y1 or x0 >= x1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1]
    dy, dx = yy - y, xx - x
    c, s = math.cos(angle), math.sin(angle)
    along, across = (dx * c + dy * s) / rx, (-dx * s + dy * c) / ry
    beyond = (np.hypot(along, across) - 1.0) * min(rx, ry) / edge  # about px outside the boundary, in edges
    layer[y0:y1, x0:x1] += (amplitude / (1.0 + np.exp(np.clip(4.0 * beyond, -30, 30)))).astype(layer.dtype)


def _around(rng, cy, cx, r_min, r_max):
    """A random point at a distance in [r_min, r_max) from (cy, cx), uniform over that ring's area."""
    r = math.sqrt(rng.uniform(r_min**2, r_max**2))
    a = rng.uniform(0, 2 * math.pi)
    return cy + r * math.sin(a), cx + r * math.cos(a)


def lesion_layers(rng, g):
    """Draw one diseased retina's lesions: a dict of (H, W) float32 layers (see the module doc).

    Which lesions a patient has is drawn too: diabetic retinopathy (microaneurysms,
    haemorrhages, exudates, cotton-wool spots, laser scars in some), age-related maculopathy
    (drusen, pigment) or a mixture, as in DRIVE's few diseased patients.
    """
    h, w, R, s = g.h, g.w, g.radius, g.s
    layers = {k: np.zeros((h, w), np.float32) for k in ("blood", "yellow", "white", "pigment")}
    blood, yellow, white, pigment = (layers[k] for k in ("blood", "yellow", "white", "pigment"))
    kind = rng.choice(["diabetic", "macular", "mixed"], p=[0.5, 0.25, 0.25])
    diabetic, macular = kind in ("diabetic", "mixed"), kind in ("macular", "mixed")
    if diabetic:
        for _ in range(rng.integers(5, 40)):  # microaneurysms, around the posterior pole
            y, x = _around(rng, g.fovea_y, g.fovea_x, 0.05 * R, 0.75 * R)
            r = rng.uniform(0.7, 1.6) * s
            _stamp(blood, y, x, r, r, 0.0, rng.uniform(0.5, 1.0), edge=0.5)
        for _ in range(rng.integers(2, 16)):  # dot and blot haemorrhages
            y, x = _around(rng, g.fovea_y, g.fovea_x, 0.08 * R, 0.85 * R)
            r = rng.uniform(1.5, 7.5) * s
            _stamp(blood, y, x, r * rng.uniform(0.6, 1.0), r, rng.uniform(0, math.pi), rng.uniform(0.4, 1.0),
                   edge=rng.uniform(0.7, 2.0) * s)
        for _ in range(rng.integers(0, 7)):  # flame haemorrhages: along the nerve fibres, away from the disc
            y, x = _around(rng, g.disc_y, g.disc_x, 1.3 * g.disc_r, 0.7 * R)
            angle = math.atan2(y - g.disc_y, x - g.disc_x) + rng.normal(0, 0.25)
            _stamp(blood, y, x, rng.uniform(1.5, 3.5) * s, rng.uniform(7, 22) * s, angle, rng.uniform(0.4, 0.9),
                   edge=1.0 * s)
        for _ in range(rng.integers(0, 5)):  # hard exudates: clusters of small sharp yellow spots
            cy, cx = _around(rng, g.fovea_y, g.fovea_x, 0.1 * R, 0.6 * R)
            spread = rng.uniform(6, 30) * s
            for _ in range(rng.integers(3, 25)):
                r = rng.uniform(0.8, 3.5) * s
                _stamp(yellow, cy + rng.normal(0, spread), cx + rng.normal(0, spread), r, r * rng.uniform(1, 1.8),
                       rng.uniform(0, math.pi), rng.uniform(0.1, 0.3), edge=0.5)
        for _ in range(rng.integers(0, 4)):  # cotton-wool spots near the arcades
            y, x = _around(rng, g.disc_y, g.disc_x, 1.5 * g.disc_r, 0.55 * R)
            r = rng.uniform(5, 14) * s
            _stamp(white, y, x, r * rng.uniform(0.5, 0.9), r, rng.uniform(0, math.pi), rng.uniform(0.06, 0.16),
                   edge=rng.uniform(2, 4) * s)
        if rng.random() < 0.35:
            _laser_scars(rng, g, yellow, pigment)
    if macular:
        for _ in range(rng.integers(10, 80)):  # drusen: soft yellow dots around the fovea
            y, x = _around(rng, g.fovea_y, g.fovea_x, 0.0, 0.35 * R)
            r = rng.uniform(1.2, 5.0) * s
            _stamp(yellow, y, x, r, r, 0.0, rng.uniform(0.04, 0.12), edge=rng.uniform(0.8, 1.8) * s)
        for _ in range(rng.integers(0, 10)):  # pigment clumps
            y, x = _around(rng, g.fovea_y, g.fovea_x, 0.0, 0.4 * R)
            r = rng.uniform(1.0, 4.0) * s
            _stamp(pigment, y, x, r * rng.uniform(0.4, 1.0), r, rng.uniform(0, math.pi), rng.uniform(0.2, 0.5),
                   edge=0.7)
    return layers


def _laser_scars(rng, g, yellow, pigment):
    """Panretinal photocoagulation: rows of round scars in the mid-periphery, sparing the macula
    and the disc; each a pale centre in a dark pigmented ring (some all pigment, some all pale)."""
    R, s = g.radius, g.s
    radius = rng.uniform(4.0, 9.0) * s
    spacing = radius * rng.uniform(2.6, 4.0)
    inner = rng.uniform(0.5, 0.7) * R
    for y in np.arange(g.cy - R, g.cy + R, spacing):
        for x in np.arange(g.cx - R, g.cx + R, spacing):
            y_, x_ = y + rng.normal(0, 0.25 * spacing), x + rng.normal(0, 0.25 * spacing)
            rho = math.hypot(y_ - g.cy, x_ - g.cx)
            if rho < inner or rho > 0.97 * R or rng.random() < 0.3:
                continue
            if math.hypot(y_ - g.disc_y, x_ - g.disc_x) < 2 * g.disc_r:
                continue
            r = radius * rng.uniform(0.7, 1.3)
            ring = rng.uniform(0.15, 0.5)
            _stamp(pigment, y_, x_, r, r, 0.0, ring, edge=0.8 * s)
            _stamp(pigment, y_, x_, 0.6 * r, 0.6 * r, 0.0, -ring * rng.uniform(0.3, 1.0), edge=0.8 * s)
            _stamp(yellow, y_, x_, 0.6 * r, 0.6 * r, 0.0, rng.uniform(0.0, 0.15), edge=s)


def tessellation(rng, g, smooth_noise):
    """A (H, W) float32 map in [0, 1] of the choroidal vessels of a tessellated fundus: the ridges
    of band-pass noise (where it crosses zero) form a network of curving bands a few px wide,
    faded in the macula and towards the disc; ``smooth_noise(rng, h, w, sigma)`` makes the noise."""
    h, w, R, s = g.h, g.w, g.radius, g.s
    scale = rng.uniform(7, 13) * s
    field = smooth_noise(rng, h, w, scale) - 0.6 * smooth_noise(rng, h, w, 2.5 * scale)
    field /= field.std() + 1e-12
    width = rng.uniform(0.12, 0.25)  # ridge half-width in units of the field's std
    bands = np.exp(-((field / width) ** 2))
    bands = ndimage.gaussian_filter(bands, rng.uniform(1.0, 2.0) * s)
    yy, xx = np.ogrid[0:h, 0:w]
    spread = np.clip(np.hypot(yy - g.fovea_y, xx - g.fovea_x) / (0.35 * R), 0.0, 1.0) ** 2
    strength = np.clip(0.7 + rng.uniform(0.1, 0.3) * smooth_noise(rng, h, w, 40 * s), 0.0, None)  # patchy
    return (bands * spread * strength).astype(np.float32)
