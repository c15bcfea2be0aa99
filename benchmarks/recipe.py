"""The demo's recipe, one change at a time, side by side on synthetic patients and on a held-out
degradation of them (a check of transfer to images the training never resembled).

    PYTHONPATH=src python benchmarks/recipe.py [--variants A,B,...] [--epochs 10 --steps 30] [--json out.json]

Every variant trains the demo's U-Net on the same patients (``synthetic_retina(20, seed=0)``,
split 60 / 15 / 25 % as the demo), keeps the best validation epoch, chooses the Dice threshold on
validation, and is scored on the test patients inside the FOV (mean per image), without and with
test-time flips, on

* **clean**: the test patients as the generator draws them;
* **camera** and **strong**: the same test patients through :func:`degrade` -- colour casts, gamma,
  uneven illumination, blur and noise the generator never makes, at two strengths (threshold still
  chosen on the clean validation patients: a model shipped to another camera does not re-tune);
* **edge FP**: the false-positive rate in the 12-px band inside the FOV edge (clean test), where
  the old demo's false positives gathered.

The machine this runs on may be shared: times are comparable only within one run.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from scipy import ndimage

import handprop as hp
from handprop.metrics import dice, roc_auc
from handprop.preprocessing import DEFAULT_PREPROCESSING, preprocess_images
from handprop.segmentation import best_dice_threshold, predict_probabilities, train_segmenter, vessel_unet

GREEN_CLAHE = DEFAULT_PREPROCESSING  # the demo's: green, smooth surround, CLAHE 8 x 8 clip 2, gamma 1.2
VARIANTS = {
    "A": ("old demo: RGB, nearest FOV pixel outside", {"channels": "rgb", "outside": "nearest"}, 64, 16),
    "B": ("RGB, smooth outside", {"channels": "rgb", "outside": "smooth"}, 64, 16),
    "C": ("green, smooth, CLAHE, gamma 1.2", GREEN_CLAHE, 64, 16),
    "D": ("luminance, smooth, CLAHE, gamma 1.2", {**GREEN_CLAHE, "channels": "luminance"}, 64, 16),
    "E": ("green, smooth, no CLAHE", {"channels": "green", "outside": "smooth"}, 64, 16),
    "F": ("C with 96-px tiles (batch 7: the same pixels per step)", GREEN_CLAHE, 96, 7),
    "G": ("green, nearest, CLAHE, gamma 1.2", {**GREEN_CLAHE, "outside": "nearest"}, 64, 16),
    "H": ("C + contrast, blur and noise on the training tiles", GREEN_CLAHE, 64, 16),
}
AUGMENTED = {"H"}


class PhotoLike:
    """On standardized tiles: contrast x U(0.75, 1.25), offset U(-0.2, 0.2), a Gaussian blur of
    width U(0, 1) px half of the time, and noise of std U(0, 0.25) (the image's FOV std is 1)."""

    p = 1.0

    def __call__(self, image, vessels, fov, rng):
        x = image * rng.uniform(0.75, 1.25) + rng.uniform(-0.2, 0.2)
        if rng.random() < 0.5:
            x = ndimage.gaussian_filter(x, (0, *(2 * [rng.uniform(0.0, 1.0)])))
        x = x + rng.normal(0, rng.uniform(0, 0.25), x.shape)
        return x.astype(image.dtype), vessels, fov


def degrade(data, seed=1, strength="strong"):
    """A differently made copy of ``data``, per image: a colour cast (channel gains), gamma, a smooth
    multiplicative illumination field, a Gaussian blur and noise, clipped to [0, 1]; black outside
    the FOV again. ``"camera"``: what differs between fundus cameras (one gamma for all channels,
    noise mostly shared by the channels, std 0.008-0.02, as sensor and JPEG noise);
    ``"strong"``: per-channel gammas and independent noise up to std 0.035 (contrast-to-noise
    near 1 in green: harsher than real photographs)."""
    rng = np.random.default_rng(seed)
    out = np.empty_like(data.images)
    n, _, H, W = data.images.shape
    yy, xx = np.mgrid[0:H, 0:W] / max(H, W)
    for i in range(n):
        x = data.images[i].astype(np.float64)
        gains = rng.uniform([0.75, 0.55, 0.4], [1.15, 1.25, 1.6])[:, None, None]
        if strength == "strong":
            gammas = rng.uniform(0.7, 1.5, 3)[:, None, None]
        else:
            gammas = rng.uniform(0.7, 1.4) * rng.uniform(0.92, 1.08, 3)[:, None, None]
        x = np.clip(x * gains, 0, 1) ** gammas
        a, b, c = rng.uniform(-1, 1, 3)
        field = 1 + 0.35 * np.tanh(a * (xx - 0.5) * 3 + b * (yy - 0.5) * 3) + 0.15 * c * np.cos(6 * xx + 4 * yy)
        x = x * field
        x = ndimage.gaussian_filter(x, (0, rng.uniform(0.6, 1.4), rng.uniform(0.6, 1.4)))
        if strength == "strong":
            x = x + rng.normal(0, rng.uniform(0.015, 0.035), x.shape)
        else:
            sigma = rng.uniform(0.008, 0.02)
            x = x + sigma * (0.8 * rng.normal(0, 1, (1, H, W)) + 0.6 * rng.normal(0, 1, x.shape))
        out[i] = np.where(data.fov[i], np.clip(x, 0, 1), 0)
    return hp.data.RetinaData(out.astype(np.float32), data.vessels, data.fov, data.ids)


def scores(prob, data, threshold):
    at_least = np.nextafter(threshold, -np.inf)  # p >= threshold
    auc = np.mean([roc_auc(p, v, f) for p, v, f in zip(prob, data.vessels, data.fov)])
    d = np.mean([dice(p, v, f, threshold=at_least) for p, v, f in zip(prob, data.vessels, data.fov)])
    return float(auc), float(d)


def edge_false_positives(prob, data, threshold, band=12):
    rates = []
    for p, v, f in zip(prob, data.vessels, data.fov):
        edge = f & ~ndimage.binary_erosion(f, iterations=band)
        negatives = edge & (v == 0)
        rates.append(float(((p >= threshold) & negatives).sum() / max(negatives.sum(), 1)))
    return float(np.mean(rates))


def run_variant(key, train, val, test, held_out, epochs, steps, seed=0, save=None):
    label, settings, tile, batch = VARIANTS[key]
    t0 = time.perf_counter()
    x_train, x_val = preprocess_images(train, **settings), preprocess_images(val, **settings)
    x_test = preprocess_images(test, **settings)
    x_held = {name: preprocess_images(d, **settings) for name, d in held_out.items()}
    t_pre = time.perf_counter() - t0
    model = vessel_unet(in_channels=x_train.shape[1], seed=seed)
    t0 = time.perf_counter()
    augment = None
    if key in AUGMENTED:
        augment = hp.data.Augmenter([hp.data.Flip(), hp.data.Rotate90(), PhotoLike()])
    train_segmenter(model, x_train, train, x_val, val, epochs=epochs, steps=steps, tile=tile, batch_size=batch,
                    seed=seed, verbose=0, augment=augment)
    t_train = time.perf_counter() - t0
    row = {"variant": key, "what": label, "tile": tile, "batch": batch, "seconds_training": round(t_train, 1),
           "seconds_preprocessing_per_image": round(t_pre / (len(train) + len(val) + len(test) * (1 + len(held_out))),
                                                    3),
           "best_epoch": model.best_epoch + 1}
    for tta in ("none", "flips"):
        t = best_dice_threshold(predict_probabilities(model, x_val, tta=tta), val.vessels, val.fov)[0]
        t0 = time.perf_counter()
        p_test = predict_probabilities(model, x_test, tta=tta)
        row[f"seconds_test_inference_{tta}"] = round(time.perf_counter() - t0, 1)
        row[f"{tta}/threshold"] = t
        row[f"{tta}/clean_auc"], row[f"{tta}/clean_dice"] = scores(p_test, test, t)
        for name, d in held_out.items():
            p_held = predict_probabilities(model, x_held[name], tta=tta)
            row[f"{tta}/{name}_auc"], row[f"{tta}/{name}_dice"] = scores(p_held, d, t)
        row[f"{tta}/edge_fp_rate"] = edge_false_positives(p_test, test, t)
    if save:
        model.metadata = {"preprocessing": settings, "variant": key}
        model.save(f"{save}/{key}.safetensors", include_optimizer=False)
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--patients", type=int, default=20)
    parser.add_argument("--json", default=None)
    parser.add_argument("--save", default=None, help="a folder for the trained models")
    args = parser.parse_args(argv)
    data = hp.data.synthetic_retina(args.patients, seed=0)
    train_i, val_i, test_i = hp.data.split_patients(data, (0.6, 0.15, 0.25), seed=0)
    train, val, test = data[train_i], data[val_i], data[test_i]
    held_out = {"camera": degrade(test, strength="camera"), "strong": degrade(test, strength="strong")}
    rows = []
    for key in args.variants.split(","):
        rows.append(run_variant(key, train, val, test, held_out, args.epochs, args.steps, save=args.save))
        print(json.dumps(rows[-1]), flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
