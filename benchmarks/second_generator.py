"""A second, independent generator of fundus images: a held-out check of the demo's recipe.

``handprop.data.synthetic_retina`` was tuned to DRIVE's statistics; a model trained on it could
still fit that generator's quirks. This file draws retinas by different rules, written without
reading the first generator's code paths: vessel trees grown as two curved arcades from the disc
by a random walk with branching (not a space colonisation), Gaussian cross-sections stamped along
the centre lines, the background from band-pass noise and a few smooth illumination blobs, a
JPEG round trip for the camera's compression, and a random share of bright and dark lesions.
It is a benchmark tool, not part of the package.

    PYTHONPATH=src python benchmarks/second_generator.py OUT [--n 40] [--seed 0]

writes a DRIVE-layout folder (``OUT/training`` from the first half, ``OUT/test`` from the rest)
that ``handprop demo --drive OUT``, ``handprop predict`` and ``../shared/tools/retina_stats.py
--drive OUT`` read.
"""

from __future__ import annotations

import argparse
import io

import numpy as np
from PIL import Image
from scipy import ndimage

H, W = 584, 565


def _fov(rng):
    """DRIVE-like field of view: a disc of radius ~270 px, clipped at the top and bottom rows."""
    yy, xx = np.mgrid[:H, :W]
    cy, cx = H / 2 + rng.normal(0, 3), W / 2 + rng.normal(0, 3)
    r = rng.uniform(262, 276)
    fov = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    fov[: int(rng.uniform(18, 30))] = False
    fov[H - int(rng.uniform(18, 30)):] = False
    return fov, (cy, cx, r)


def _grow(rng, start, angle, width, bend, segments, out):
    """One vessel from ``start``: a random walk of 4-px steps whose heading turns by ``bend`` per
    step plus noise; side branches leave at 35-75 degrees, thinner by a Murray-like factor."""
    y, x = start
    step = 4.0
    for _ in range(segments):
        angle += bend + rng.normal(0, 0.07)
        ny, nx = y + step * np.sin(angle), x + step * np.cos(angle)
        out.append((y, x, ny, nx, width))
        y, x = ny, nx
        if not (-20 < y < H + 20 and -20 < x < W + 20):
            return
        if width > 1.6 and rng.random() < 0.035:
            child = width * rng.uniform(0.55, 0.8)
            side = rng.choice([-1, 1])
            _grow(rng, (y, x), angle + side * rng.uniform(0.6, 1.3), child, rng.normal(0, 0.012) - side * 0.01,
                  int(segments * rng.uniform(0.35, 0.7)), out)
            width = width * rng.uniform(0.82, 0.95)
        width *= 0.996
        if width < 1.3:
            return


def _tree(rng, disc):
    """Centre-line segments (y0, x0, y1, x1, width) of four arcades and a few nasal vessels."""
    dy, dx, side = disc
    out = []
    toward = 0.0 if side < 0 else np.pi  # the macula lies away from the disc's edge of the image
    for sign in (-1, 1):  # superior and inferior arcades, an artery and a vein each
        for w in (rng.uniform(9.0, 12.0), rng.uniform(7.0, 9.5)):
            a = toward + sign * rng.uniform(0.9, 1.3)
            _grow(rng, (dy + sign * 8, dx), a, w, -sign * (0.018 if side < 0 else -0.018) * rng.uniform(0.8, 1.3),
                  170, out)
    for _ in range(int(rng.integers(2, 5))):  # nasal and small temporal vessels
        _grow(rng, (dy, dx), rng.uniform(0, 2 * np.pi), rng.uniform(3.0, 5.0), rng.normal(0, 0.01), 60, out)
    return out


def _stamp(segments):
    """Vessel mask, darkness (Gaussian cross-section, 0..1) and central-reflex maps from the segments."""
    dark = np.zeros((H, W), np.float32)
    reflex = np.zeros((H, W), np.float32)
    mask = np.zeros((H, W), bool)
    for y0, x0, y1, x1, w in segments:
        r = w / 2
        pad = int(np.ceil(1.5 * r + 2))
        top, left = int(min(y0, y1)) - pad, int(min(x0, x1)) - pad
        bottom, right = int(max(y0, y1)) + pad + 1, int(max(x0, x1)) + pad + 1
        t0, l0 = max(top, 0), max(left, 0)
        t1, l1 = min(bottom, H), min(right, W)
        if t0 >= t1 or l0 >= l1:
            continue
        yy, xx = np.mgrid[t0:t1, l0:l1]
        # distance from each pixel to the segment
        vy, vx = y1 - y0, x1 - x0
        s = np.clip(((yy - y0) * vy + (xx - x0) * vx) / max(vy * vy + vx * vx, 1e-9), 0, 1)
        d = np.hypot(yy - (y0 + s * vy), xx - (x0 + s * vx))
        mask[t0:t1, l0:l1] |= d <= r
        profile = np.exp(-0.5 * (d / max(0.55 * r, 0.45)) ** 2)
        dark[t0:t1, l0:l1] = np.maximum(dark[t0:t1, l0:l1], profile * min(1.0, 0.55 + 0.09 * w))
        if w >= 4.5:
            reflex[t0:t1, l0:l1] = np.maximum(reflex[t0:t1, l0:l1], np.exp(-0.5 * (d / (0.16 * w)) ** 2))
    return mask, dark, reflex


def _bandpass(rng, small, large, shape=(H, W)):
    noise = rng.normal(size=shape)
    field = ndimage.gaussian_filter(noise, small) - ndimage.gaussian_filter(noise, large)
    return field / (field.std() + 1e-9)


def retina(rng):
    """One image (3, H, W) in [0, 1], its vessel mask (H, W) and FOV (H, W)."""
    fov, (cy, cx, r) = _fov(rng)
    side = rng.choice([-1, 1])
    disc = (cy + rng.normal(0, 15), cx + side * r * rng.uniform(0.55, 0.68), side)
    mask, dark, reflex = _stamp(_tree(rng, disc))
    mask &= fov
    yy, xx = np.mgrid[:H, :W]
    # patient colour (pigmentation) and illumination
    base = np.array([rng.uniform(0.72, 0.95), rng.uniform(0.32, 0.52), rng.uniform(0.17, 0.3)], np.float32)
    rr = np.hypot(yy - cy, xx - cx) / r
    light = 1.0 - rng.uniform(0.2, 0.45) * rr ** 2
    for _ in range(3):
        by, bx, s = rng.uniform(0, H), rng.uniform(0, W), rng.uniform(80, 200)
        light += rng.normal(0, 0.2) * np.exp(-((yy - by) ** 2 + (xx - bx) ** 2) / (2 * s * s))
    texture = 0.6 * _bandpass(rng, 2.0, 9.0) + 0.4 * _bandpass(rng, 6.0, 30.0)
    tex_amp = rng.uniform(0.05, 0.12)
    # optic disc (bright) and macula (dark)
    disc_r = rng.uniform(38, 50)
    d_disc = np.hypot(yy - disc[0], xx - disc[1])
    bright = np.exp(-0.5 * (d_disc / disc_r) ** 4)
    my, mx = cy + rng.normal(0, 10), disc[1] - side * rng.uniform(2.3, 2.7) * 2 * disc_r
    macula = np.exp(-((yy - my) ** 2 + (xx - mx) ** 2) / (2 * rng.uniform(35, 60) ** 2))
    img = np.empty((3, H, W), np.float32)
    gain = np.array([0.25, 0.55, 0.45]) * rng.uniform(0.6, 0.9)  # vessel absorption per channel
    disc_gain = np.array([0.15, 0.3, 0.2])
    for c in range(3):
        v = base[c] * light * (1 + tex_amp * texture * (1.2 if c == 1 else 0.8))
        v = v * (1 - 0.25 * macula) + disc_gain[c] * bright
        v = v * (1 - gain[c] * dark * (1 - 0.45 * reflex))
        img[c] = v
    # lesions: bright (exudate/drusen-like) and dark (microaneurysm/haemorrhage-like) spots
    for _ in range(int(rng.poisson(rng.choice([0, 3, 12])))):
        ly, lx, lr = rng.uniform(0, H), rng.uniform(0, W), rng.uniform(1.5, 6)
        spot = np.exp(-((yy - ly) ** 2 + (xx - lx) ** 2) / (2 * lr * lr))
        if rng.random() < 0.5:
            img += np.array([0.12, 0.12, 0.02])[:, None, None] * spot
        else:
            img *= 1 - np.array([0.2, 0.45, 0.35])[:, None, None] * spot
    img = ndimage.gaussian_filter(img, (0, 0.7, 0.7))
    img += rng.normal(0, rng.uniform(0.008, 0.018), img.shape).astype(np.float32)
    img = np.clip(img, 0, 1) * fov
    # the camera's JPEG round trip
    buffer = io.BytesIO()
    Image.fromarray((img.transpose(1, 2, 0) * 255).round().astype(np.uint8)).save(
        buffer, "JPEG", quality=int(rng.integers(70, 92)))
    img = np.asarray(Image.open(buffer), np.float32).transpose(2, 0, 1) / 255.0
    return img * fov, mask.astype(np.float32), fov


def generate(n, seed=0):
    rng = np.random.default_rng([seed, 7919])
    images, vessels, fovs = zip(*(retina(rng) for _ in range(n)))
    return np.stack(images), np.stack(vessels), np.stack(fovs)


def main():
    import handprop as hp

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    images, vessels, fov = generate(args.n, args.seed)
    half = args.n // 2
    hp.data.save_drive_layout((images[:half], vessels[:half], fov[:half], None), args.out, "training")
    hp.data.save_drive_layout((images[half:], vessels[half:], fov[half:], None), args.out, "test")
    print(f"{args.n} images written to {args.out} (training {half}, test {args.n - half})")


if __name__ == "__main__":
    main()
