"""A synthetic retina: procedural fundus photographs with an exact vessel annotation.

DRIVE (40 fundus photographs of 565×584 pixels with manual vessel annotations) cannot be shipped
with handprop, so the tutorial's task runs on images drawn by this generator, which imitates
what makes DRIVE hard, at DRIVE's measured sizes (the table below):

* a circular field of view (FOV) on a dark background, with strong vignetting (darker towards
  the rim, and steeply so at the rim), an illumination gradient and slow illumination
  variation, so that "dark" does not mean "vessel" everywhere;
* an optic disc (bright, with brighter cup) and a macula (a darker patch with the fovea at its
  centre, free of vessels); the choroid's texture at two scales (mottle and grain);
* vessel trees that leave the disc as arteries and veins (8-10 px wide at the disc, times the
  patient's calibre), arch around the macula (the temporal arcades), branch by Murray's law
  (parent width³ = sum of the children's widths³, branching angles from the same law), taper,
  end at 1.7-2 px, and meander (tortuosity);
* vessels darken by Beer-Lambert's law through a cylinder of blood, mostly in green, little in
  red, so thin vessels are faint; wide vessels show a central light reflex (a bright line along
  their axis) that makes their centre look like background to a small patch;
* optical blur, a veil of scattered light, sensor noise (partly correlated between neighbouring
  pixels, as after demosaicing and compression) and 8-bit quantization;
* look-alikes (:mod:`handprop.data.retina_lesions`): in diseased patients microaneurysms,
  dot, blot and flame haemorrhages, hard exudates, drusen, cotton-wool spots, pigment and laser
  scars; in some patients (15 %) a tessellated fundus, the choroid's vessels showing through as a
  network of blurry dark bands that is not annotated. Only shape and context tell these from
  vessels.

Every patient varies (domain randomization): pigmentation and colour, illumination, vessel
calibre, absorption and reflex, blur, veil and noise, so that a network trained on these images
meets real photographs as one more variation, not as a new domain.

The vessel mask is exact: a pixel is a vessel when its centre lies within half a vessel width of
a vessel's centre line (at least half of the pixel is covered). The FOV mask is the circle.
Every length scales with the FOV radius (270 px at the default size, as in DRIVE), so smaller
images are smaller retinas.

How close to DRIVE (``synthetic_retina(20, seed=0)``; DRIVE's numbers measured on its 20
training and 20 test images; definitions in ``data/README.md``, checked within 15 % by
``tests/test_retina_data.py``):

=================================  ======================  ======================  ======================
statistic (inside the FOV)         DRIVE training          DRIVE test              synthetic (n=20)
=================================  ======================  ======================  ======================
mean R / G / B                     0.709 / 0.382 / 0.224   0.739 / 0.374 / 0.222   0.734 / 0.370 / 0.218
std R / G / B                      0.127 / 0.079 / 0.043   0.124 / 0.071 / 0.040   0.127 / 0.072 / 0.042
vessel fraction                    0.125                   0.127                   0.121
width median / p90 (px)            2.87 / 6.05             2.60 / 6.12             2.89 / 6.26
share of skeleton <= 3 px wide     0.54                    0.55                    0.58
skeleton length (px per image)     8,537                   8,871                   8,185
green-channel AUC (inverted)       0.699                   0.725                   0.668
local vessel contrast (green)      0.037                   0.037                   0.038
background std (green)             0.080                   0.072                   0.069
high-frequency noise (green)       0.0125                  0.0124                  0.0128
contrast-to-noise                  3.03                    3.09                    2.98
=================================  ======================  ======================  ======================

What it teaches (``python -m handprop.experiments patch_sizes``, unchanged: 6 training, 2
validation, 3 test patients, test AUC / Dice inside the FOV, one run each on 2 shared cores; a
U-Net trained twice on the same patients by a scratch script with default threads moved by 0.002
AUC, so the third decimal is noise):

=========================  ===============  ===============  ==============================
model                      seed 0           seed 1           real DRIVE (issue 17)
=========================  ===============  ===============  ==============================
5×5 patches                0.954 / 0.702    0.939 / 0.669    0.925 / 0.664
11×11 patches              0.966 / 0.720    0.947 / 0.659    0.945 / 0.729
29×29 patches              0.977 / 0.771    0.966 / 0.686    0.950 / 0.741
dilated context net        0.949 / 0.690    0.920 / 0.641    0.549 / 0.26 (collapsed)
U-Net                      0.975 / 0.783    0.960 / 0.720    0.953 / 0.766
=========================  ===============  ===============  ==============================

(The generator before issue 17 gave 0.977 / 0.970 / 0.970 / 0.966 / 0.970 AUC: 5×5 best.)

Generating one 584×565 image takes about 0.2 s of CPU time (``time.process_time``, one core).

Each image is drawn from its own random stream ``np.random.default_rng([seed, i])``: image ``i``
is the same patient whatever ``n`` is, so splitting by patient is stable. Within a patient, the
vessel tree, the appearance, the lesions and the tessellation each come from their own child
stream, so that ``pathology`` changes the lesions and nothing else.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from .dataset import RetinaData
from .retina_lesions import lesion_layers, tessellation

__all__ = ["synthetic_retina", "DRIVE_SIZE"]

DRIVE_SIZE = (584, 565)  # (H, W) of a DRIVE image

_REFERENCE_RADIUS = 270.0  # FOV radius (px) of a DRIVE image: every length below is for this radius
PATHOLOGY = {"drive": 0.2, "none": 0.0, "all": 1.0}  # share of diseased patients (DRIVE: 7 of 40)
_WIDTH_BINS = (0.0, 0.9, 1.4, 2.0, 2.9, 4.0, np.inf)  # half-width bins rendered separately (see _render)
_SUBSAMPLE = 4  # centre-line samples per pixel of length when rendering


def synthetic_retina(n, seed=0, size=DRIVE_SIZE, pathology="drive"):
    """``n`` synthetic fundus photographs with their vessel and FOV masks.

    Parameters
    ----------
    n : int
        Number of images (patients).
    seed : int
        Image ``i`` is drawn from ``np.random.default_rng([seed, i])``: the same ``(seed, i)`` gives the
        same image, whatever ``n`` is.
    size : (int, int)
        ``(H, W)``; DRIVE's ``(584, 565)`` by default. The retina (the FOV circle, radius 0.478 ×
        min(H, W)) and every length in it scale with the size; vessels are never thinner than 1 px.
    pathology : "drive", "none", "all", bool or float in [0, 1]
        The share of diseased patients (lesions: see :mod:`handprop.data.retina_lesions`).
        ``"drive"`` (the default): one in five, about DRIVE's 7 of 40; ``"none"`` or ``False``:
        every retina healthy; ``"all"`` or ``True``: every retina diseased; a number: that share.
        Whether patient ``i`` is diseased is one draw compared with the share, so a larger share
        adds diseased patients and keeps the others; the vessels and the rest of every image do not
        depend on it.

    Returns
    -------
    RetinaData
        ``images`` (n, 3, H, W) float32 in [0, 1] (multiples of 1/255, as an 8-bit photograph),
        ``vessels`` (n, H, W) uint8 {0, 1} (zero outside the FOV), ``fov`` (n, H, W) bool, ``ids``
        ``["synthetic_000", ...]``. Unpacks as ``images, vessels, fov, ids = synthetic_retina(n)``.
    """
    n = int(n)
    h, w = (int(s) for s in size)
    if n < 0 or h < 16 or w < 16:
        raise ValueError(f"synthetic_retina: need n >= 0 and size >= (16, 16), got n={n}, size={size}")
    if int(seed) < 0:
        raise ValueError(f"synthetic_retina: seed must be a non-negative integer, got {seed}")
    share = _pathology_share(pathology)
    images = np.empty((n, 3, h, w), np.float32)
    vessels = np.empty((n, h, w), np.uint8)
    fov = np.empty((n, h, w), bool)
    for i in range(n):
        images[i], vessels[i], fov[i] = _one_retina(np.random.default_rng([int(seed), i]), h, w, share)
    return RetinaData(images, vessels, fov, [f"synthetic_{i:03d}" for i in range(n)])


def _pathology_share(pathology):
    """The share of diseased patients that ``pathology`` asks for (see :func:`synthetic_retina`)."""
    if isinstance(pathology, (bool, np.bool_)):
        return float(pathology)
    if isinstance(pathology, str) and pathology in PATHOLOGY:
        return PATHOLOGY[pathology]
    if isinstance(pathology, (int, float, np.integer, np.floating)) and 0.0 <= float(pathology) <= 1.0:
        return float(pathology)
    raise ValueError(f"synthetic_retina: pathology must be one of {sorted(PATHOLOGY)}, a bool or a share in [0, 1], "
                     f"got {pathology!r}")


# -- geometry ---------------------------------------------------------------------------------

class _Geometry:
    """Where things are in one image: FOV circle, optic disc, fovea; ``s`` scales every length."""

    def __init__(self, rng, h, w):
        m = min(h, w)
        self.h, self.w = h, w
        self.radius = 0.478 * m * rng.uniform(0.985, 1.0)
        self.s = self.radius / _REFERENCE_RADIUS
        self.cy = h / 2 + rng.normal(0, 0.004 * m)
        self.cx = w / 2 + rng.normal(0, 0.004 * m)
        self.side = rng.choice([-1.0, 1.0])  # +1: the disc on the right (a right eye, as photographed)
        R = self.radius
        self.disc_y = self.cy + rng.normal(0, 0.04 * R)
        self.disc_x = self.cx + self.side * R * rng.uniform(0.56, 0.66)
        self.disc_r = 0.14 * R * rng.uniform(0.9, 1.1)
        self.fovea_y = self.disc_y + R * rng.uniform(0.0, 0.1)
        self.fovea_x = self.disc_x - self.side * R * rng.uniform(0.72, 0.8)
        self.arcade_r = R * rng.uniform(0.42, 0.52)  # radius at which the temporal arcades circle the fovea


# -- vessel trees -----------------------------------------------------------------------------

def _wrap(angle):
    """Angle difference mapped to (-pi, pi]."""
    return (angle + math.pi) % (2 * math.pi) - math.pi


def _trunks(rng, g, calibre):
    """The vessels leaving the optic disc: (y, x, angle, width, darkness, arcade) per trunk.

    Angles are image angles (x right, y down). Each of the four quadrants gets an artery and a
    vein (veins wider and darker); the temporal pair of each half is an arcade that circles the
    fovea. Two or three small trunks go straight to the macula or nasally.
    """
    s, t = g.s * calibre, -g.side  # t: the x direction from the disc towards the fovea (temporal)
    trunks = []
    for vertical in (-1.0, 1.0):  # superior, inferior
        for kind, darkness in (("vein", 1.0), ("artery", 0.75)):
            wide = rng.uniform(8.0, 10.5) if kind == "vein" else rng.uniform(6.5, 7.5)
            trunks.append((math.atan2(vertical, t * rng.uniform(0.15, 0.45)), wide * s, darkness, True))
            narrow = rng.uniform(5.0, 6.5) if kind == "vein" else rng.uniform(4.0, 5.5)
            trunks.append((math.atan2(vertical * rng.uniform(0.4, 1.0), -t), narrow * s, darkness, False))
    for _ in range(rng.integers(2, 4)):
        angle = math.atan2(rng.uniform(-0.35, 0.35), t) if rng.random() < 0.6 else rng.uniform(-math.pi, math.pi)
        trunks.append((angle, rng.uniform(2.5, 4.0) * s, rng.choice([0.75, 1.0]), False))
    out = []
    for angle, width, darkness, arcade in trunks:
        jitter = g.disc_r * 0.25
        y = g.disc_y + rng.uniform(-jitter, jitter) + math.sin(angle) * g.disc_r * 0.2
        x = g.disc_x + rng.uniform(-jitter, jitter) + math.cos(angle) * g.disc_r * 0.2
        out.append((y, x, angle + rng.normal(0, 0.08), max(width, 1.6), darkness, arcade, None))
    return out


def _grow(rng, g, tortuosity, branch_spacing, calibre, end_width):
    """Grow every vessel tree: returns a list of (k, 4) arrays (y, x, half-width, darkness), one per vessel.

    A vessel is a walk of 1-px steps. Its heading turns by a smooth random curvature (an
    Ornstein-Uhlenbeck process: tortuosity) plus a pull towards a preferred direction: away from
    the disc, around the fovea for the arcades, never into the foveal avascular zone. Its width
    tapers slowly; at branch points (spaced exponentially, more often on thin vessels) it splits
    by Murray's law into a continuation and a side branch that grows later.
    """
    R, s = g.radius, g.s
    stack = _trunks(rng, g, calibre)
    vessels = []
    max_vessels, max_steps = 900, int(2.2 * R)
    faz = 0.07 * R  # foveal avascular zone
    while stack and len(vessels) < max_vessels:
        y, x, angle, width, darkness, arcade, home = stack.pop()
        noise = rng.standard_normal(max_steps)
        curvature = 0.0
        sigma = tortuosity * (0.6 + 1.2 / max(width / s, 1.0))  # thin vessels meander more
        taper = 0.002 + 0.003 / max(width, 1.0)
        next_branch = rng.exponential(branch_spacing * (12 + 5 * width / s) * s)
        travelled = 0.0
        points = []
        for step in range(max_steps):
            points.append((y, x, width / 2, darkness))
            dy, dx = y - g.fovea_y, x - g.fovea_x
            dist_f = math.hypot(dy, dx) + 1e-9
            if width < end_width or dist_f < faz or math.hypot(y - g.cy, x - g.cx) > 1.02 * R:
                break
            # preferred direction
            uy, ux = dy / dist_f, dx / dist_f
            if arcade:
                ty, tx = ux, -uy  # one tangent to the circle around the fovea; take the one ahead
                if ty * math.sin(angle) + tx * math.cos(angle) < 0:
                    ty, tx = -ty, -tx
                past = (x - g.fovea_x) * (-g.side) > -0.05 * R  # beyond the fovea: spread outwards
                c = 0.7 if past else max(-0.4, min(0.4, (g.arcade_r - dist_f) / (0.6 * R)))
                py, px = ty + c * uy, tx + c * ux
                gain = 0.06
            else:
                if home is None:  # a trunk: away from the disc
                    oy, ox = y - g.disc_y, x - g.disc_x
                    norm = math.hypot(oy, ox) + 1e-9
                    py, px = oy / norm, ox / norm
                else:  # a branch keeps the direction it left its parent in
                    py, px = math.sin(home), math.cos(home)
                push = max(0.0, (0.3 * R - dist_f) / (0.1 * R))  # keep off the macula
                py, px = py + push * uy, px + push * ux
                gain = 0.015
            angle += gain * _wrap(math.atan2(py, px) - angle) + curvature
            curvature = 0.9 * curvature + sigma * noise[step]
            y += math.sin(angle)
            x += math.cos(angle)
            width -= taper
            travelled += 1.0
            if travelled >= next_branch:
                travelled, next_branch = 0.0, rng.exponential(branch_spacing * (12 + 5 * width / s) * s)
                alpha = rng.uniform(0.2, 1.0) ** 1.5  # child / continuation width ratio
                main = width / (1 + alpha**3) ** (1 / 3)
                child = alpha * main
                # Murray's optimal angles: cos θ1 = (r0⁴ + r1⁴ - r2⁴) / (2 r0² r1²), same for θ2
                r0, r1, r2 = width**2, main**2, child**2
                theta_main = math.acos(max(-1.0, min(1.0, (r0 * r0 + r1 * r1 - r2 * r2) / (2 * r0 * r1))))
                theta_child = math.acos(max(-1.0, min(1.0, (r0 * r0 + r2 * r2 - r1 * r1) / (2 * r0 * r2))))
                turn = rng.choice([-1.0, 1.0])
                if child >= end_width:
                    heading = angle - turn * (theta_child + rng.normal(0, 0.15))
                    stack.append((y, x, heading, child, darkness, arcade and alpha > 0.85, heading))
                angle += turn * theta_main
                width = main
        if len(points) > 1:
            vessels.append(np.array(points, dtype=np.float64))
    return vessels


# -- rendering --------------------------------------------------------------------------------

def _render(vessel_list, g, absorption, reflex):
    """Vessel coverage and darkening maps (H, W) from the centre lines.

    For every pixel p, with d the distance from its centre to the nearest centre-line sample and
    r that sample's half-width: coverage = clip(r + 1/2 - d, 0, 1) (the fraction of the pixel
    inside the vessel, anti-aliased) and mask = coverage >= 1/2 (that is, d <= r). The darkening
    follows Beer-Lambert's law through a cylinder of blood: 1 - exp(-absorption × chord), with
    chord = 2 sqrt((r + 1/2)² - d²) the length of the light's path through the vessel (the 1/2
    spreads it over the pixel), so a 1-px vessel darkens far less than a 10-px one; the vessel's
    darkness (veins 1, arteries 0.75) scales it, and a central light reflex on wide vessels
    lightens their axis. The nearest sample is found with a Euclidean distance transform of the
    rasterized centre lines, separately for each band of widths (so that a thin branch next to a
    wide vessel does not hide it), taking the maximum over the bands.
    """
    h, w = g.h, g.w
    pieces = []
    for v in vessel_list:  # resample each polyline at 1/_SUBSAMPLE px
        t = np.linspace(0, len(v) - 1, (len(v) - 1) * _SUBSAMPLE + 1)
        k = np.arange(len(v))
        pieces.append(np.stack([np.interp(t, k, v[:, j]) for j in range(4)], axis=1))
    samples = np.concatenate(pieces)
    samples = samples[(samples[:, 0] > -0.5) & (samples[:, 0] < h - 0.5) & (samples[:, 1] > -0.5)
                      & (samples[:, 1] < w - 0.5)]
    coverage = np.zeros((h, w), np.float32)
    darkening = np.zeros((h, w), np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    for low, high in zip(_WIDTH_BINS[:-1], _WIDTH_BINS[1:]):
        band = samples[(samples[:, 2] >= low) & (samples[:, 2] < high)]
        if not len(band):
            continue
        iy, ix = np.rint(band[:, 0]).astype(np.int64), np.rint(band[:, 1]).astype(np.int64)
        lin = iy * w + ix
        off = (band[:, 0] - iy) ** 2 + (band[:, 1] - ix) ** 2
        order = np.lexsort((off, lin))  # per pixel, the sample nearest to its centre first
        first = order[np.r_[True, lin[order][1:] != lin[order][:-1]]]
        owner = np.full(h * w, -1, np.int64)
        owner[lin[first]] = first
        empty = (owner < 0).reshape(h, w)
        # only pixels near this band matter: a box around its samples, with the widest half-width as margin
        m = int(math.ceil(band[:, 2].max())) + 2
        y0, y1 = max(0, iy.min() - m), min(h, iy.max() + m + 1)
        x0, x1 = max(0, ix.min() - m), min(w, ix.max() + m + 1)
        box = (slice(y0, y1), slice(x0, x1))
        nearest = ndimage.distance_transform_edt(empty[box], return_distances=False, return_indices=True)
        k = owner[(nearest[0] + y0) * w + nearest[1] + x0]
        d = np.hypot(yy[box] - band[k, 0], xx[box] - band[k, 1])
        r = band[k, 2]
        cov = np.clip(r + 0.5 - d, 0.0, 1.0)
        chord = 2 * np.sqrt(np.clip((r + 0.5) ** 2 - d**2, 0.0, None))
        shine = reflex * np.clip((r / g.s - 1.5) / 2.0, 0.0, 1.0) * np.exp(-((d / (0.3 * r)) ** 2))
        dark = (1 - np.exp(-absorption * chord / g.s)) * band[k, 3] * (1 - shine)
        np.maximum(coverage[box], cov, out=coverage[box])
        np.maximum(darkening[box], dark, out=darkening[box])
    return coverage, darkening


def _smooth_noise(rng, h, w, sigma):
    """Gaussian-filtered white noise with unit standard deviation (computed at a coarser grid for large sigma)."""
    step = max(1, int(sigma // 4))
    small = rng.standard_normal((h // step + 2, w // step + 2)).astype(np.float32)
    field = ndimage.gaussian_filter(small, sigma / step, mode="wrap")
    if step > 1:
        field = ndimage.zoom(field, step, order=1)[:h, :w]
    field = field[:h, :w]
    return (field - field.mean()) / (field.std() + 1e-12)


def _rgb(red, green, blue):
    """A (3, 1, 1) float32 per-channel factor, to broadcast over a (3, H, W) image."""
    return np.array([red, green, blue], np.float32)[:, None, None]


def _one_retina(rng, h, w, pathology):
    g = _Geometry(rng, h, w)
    R, s = g.radius, g.s
    # each part from its own stream, so that no part shifts another: the vessel tree's random walk
    # takes a varying number of draws, and lesions and tessellation exist in some patients only
    tree, look, lesion_rng, tess_rng = (np.random.default_rng(rng.integers(2**63)) for _ in range(4))
    diseased = rng.random() < pathology
    tessellated = rng.random() < 0.15

    # -- vessels
    vessel_list = _grow(tree, g, tortuosity=tree.uniform(0.004, 0.012), branch_spacing=tree.uniform(0.45, 0.68),
                        calibre=tree.uniform(0.95, 1.15), end_width=max(tree.uniform(1.75, 2.0) * s, 1.0))
    coverage, darkening = _render(vessel_list, g, absorption=look.uniform(0.17, 0.24),
                                  reflex=look.uniform(0.3, 0.7))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rho = np.hypot(yy - g.cy, xx - g.cx) / R
    fov = rho <= 1.0
    vessels = ((coverage >= 0.5) & fov).astype(np.uint8)

    # -- background: the patient's pigmentation, the camera's illumination, the choroid's texture
    red = look.uniform(0.75, 0.97)
    base = _rgb(red, red * look.uniform(0.4, 0.58), red * look.uniform(0.2, 0.33))
    direction = look.uniform(0, 2 * np.pi)
    gradient = look.uniform(0.05, 0.25) * ((xx - g.cx) * np.cos(direction) + (yy - g.cy) * np.sin(direction)) / R
    falloff = look.uniform(0.16, 0.4) * rho**2 + look.uniform(0.1, 0.3) * np.clip(rho, 0, 1.1) ** 10
    illumination = (1 - falloff) * (1 + gradient)
    illumination *= 1 + look.uniform(0.035, 0.08) * _smooth_noise(look, h, w, 40 * s)
    mottle = look.uniform(0.03, 0.055) * _smooth_noise(look, h, w, look.uniform(6, 12) * s)
    grain = look.uniform(0.015, 0.035) * _smooth_noise(look, h, w, max(1.5 * s, 0.7))
    image = base * illumination[None] * (1 + (mottle + grain)[None] * _rgb(0.5, 1.0, 1.0))
    tess = tessellation(tess_rng, g, _smooth_noise) if tessellated else None

    # -- macula and fovea: darker, mostly in green
    dist_f = np.hypot(yy - g.fovea_y, xx - g.fovea_x)
    macula = np.exp(-((dist_f / (0.22 * R)) ** 2)) * look.uniform(0.08, 0.25)
    macula += np.exp(-((dist_f / (0.05 * R)) ** 2)) * look.uniform(0.03, 0.12)
    image *= 1 - macula[None] * _rgb(0.4, 1.0, 0.7)
    if tess is not None:
        # the choroid's vessels show as the gaps between them darken with brown pigment
        image *= 1 - tess_rng.uniform(0.06, 0.15) * tess[None] * _rgb(0.75, 0.9, 0.8)

    # -- optic disc: bright with a brighter cup and an irregular rim
    dist_d = np.hypot(yy - g.disc_y, xx - g.disc_x)
    theta = np.arctan2(yy - g.disc_y, xx - g.disc_x)
    phase = look.uniform(0, 2 * np.pi, 2)
    rim = g.disc_r * (1 + 0.06 * np.sin(2 * theta + phase[0]) + 0.04 * np.sin(3 * theta + phase[1]))
    disc = 1 / (1 + np.exp((dist_d - rim) / (0.08 * g.disc_r)))
    cup = np.exp(-((dist_d / (0.45 * g.disc_r)) ** 2))
    image += (disc * look.uniform(0.15, 0.3))[None] * _rgb(0.3, 1.0, 0.5)
    image += (cup * look.uniform(0.05, 0.2))[None] * _rgb(0.3, 1.0, 0.7)

    # -- lesions (diseased patients): dark red blood, yellow exudates and drusen, white spots, pigment
    if diseased:
        layers = lesion_layers(lesion_rng, g)
        image *= 1 - np.clip(layers["blood"], 0, 1)[None] * _rgb(0.15, 0.45, 0.35)
        image *= 1 - np.clip(layers["pigment"], 0, 1)[None] * _rgb(0.5, 0.6, 0.55)
        image += layers["yellow"][None] * _rgb(0.7, 1.0, 0.25) + layers["white"][None] * _rgb(0.8, 1.0, 0.9)

    # -- vessels: absorb green most, blue some, red little
    strength = look.uniform(1.1, 1.4) * _rgb(look.uniform(0.06, 0.14), look.uniform(0.3, 0.4), look.uniform(0.2, 0.3))
    image *= 1 - strength * darkening[None]

    # -- optics and sensor: blur, haze, dark surround, noise, 8 bits
    blur = look.uniform(0.7, 1.2) * max(s, 0.5)
    image = ndimage.gaussian_filter(image, (0, blur, blur))
    image += look.uniform(0.0, 0.05) * _rgb(0.6, 0.8, 1.0)  # veil: scattered light in the eye and the optics
    edge = np.clip((1.0 - rho) * R / 1.5 + 0.5, 0.0, 1.0)  # soft 1.5-px FOV edge
    image = image * edge[None] + look.uniform(0.0, 0.02)
    noise = look.standard_normal(image.shape).astype(np.float32)
    correlation = look.uniform(0.0, 0.6)  # demosaicing and compression correlate neighbouring pixels' noise
    if correlation > 0.05:
        noise = ndimage.gaussian_filter(noise, (0, correlation, correlation))
        noise /= noise.std()
    image += noise * (look.uniform(0.011, 0.018) * _rgb(look.uniform(0.8, 1.2), 1.0, look.uniform(0.9, 1.3)))
    image = np.round(np.clip(image, 0.0, 1.0) * 255) / 255
    return image.astype(np.float32), vessels, fov
