"""The tutorial's task end to end: segment the vessels of retinal fundus images.

``handprop demo`` runs :func:`run_vessel_segmentation`; a notebook can call the steps one by one::

    data = hp.data.synthetic_retina(20)                      # or hp.data.load_drive("DRIVE", "training")
    train, val, test = (data[i] for i in hp.data.split_patients(data, (0.6, 0.15, 0.25)))
    x_train = normalize_images(train)                        # per image and channel, inside the FOV
    model = vessel_unet()
    train_segmenter(model, x_train, train, normalize_images(val), val)   # tiles, masked loss, best epoch
    prob = predict_probabilities(model, normalize_images(test))          # whole images, (n, H, W)
    report = hp.metrics.segmentation_report(prob, test.vessels, test.fov, threshold=model.threshold)

The steps, and why:

1. **Split by patient** (one image per patient here): pixels of one eye in both the training and
   the test set would make the test score a memory test.
2. **Normalize each image by itself** (per channel: subtract the mean and divide by the standard
   deviation of its field-of-view pixels). It uses no statistics of other images, so nothing
   leaks from the test patients, and it removes the illumination and contrast differences between
   photographs that a network would otherwise have to learn. Outside the FOV each pixel takes the
   value of the nearest FOV pixel: the black surround would otherwise put a sharp circular edge
   into every image, which a network readily mistakes for a vessel.
3. **Train a small U-Net on random tiles** (a :class:`handprop.data.TileSampler`: fresh,
   flipped and rotated tiles every epoch) with binary cross-entropy on logits, **weighted by the
   FOV mask**: pixels outside the field of view do not count.
4. **Choose on the validation patients**: after every epoch the whole validation images are
   predicted; the epoch with the best in-FOV ROC AUC is kept, and the threshold on the vessel
   probability that gives the best Dice on them becomes the model's decision threshold.
5. **Report on the test patients only**, inside the FOV (metrics over the whole image would count
   the easy black surround as correct background and inflate accuracy).
"""

from __future__ import annotations

import time

import numpy as np

from .callbacks import Callback
from .errors import DataError
from .inference import predict_padded
from .layers.activations import sigmoid
from .metrics import dice, roc_auc

DEPTH = 2
"""The U-Net's number of poolings: images are padded to a multiple of ``2**DEPTH`` for inference."""


def normalize_images(data, fov=None, outside="nearest"):
    """Per-image, per-channel standardization inside the field of view.

    ``data``: a :class:`handprop.data.RetinaData` (or images (n, C, H, W) with ``fov`` (n, H, W)).
    Returns float32 (n, C, H, W): ``(x - mean_FOV) / std_FOV`` per image and channel inside the
    FOV; outside it the value of the nearest FOV pixel (``outside="nearest"``) or 0 (``"zero"``).
    """
    from scipy import ndimage

    images = np.asarray(getattr(data, "images", data), dtype=np.float32)
    fov = np.asarray(getattr(data, "fov", fov), dtype=bool)
    if fov.ndim != 3 or fov.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(f"normalize_images: fov must be (n, H, W) for images {images.shape}, got {fov.shape}")
    out = np.zeros_like(images)
    for i in range(len(images)):
        inside = images[i][:, fov[i]]  # (C, pixels in the FOV)
        if inside.shape[1] < 2:
            name = data.ids[i] if getattr(data, "ids", None) is not None else f"image {i}"
            raise ValueError(f"normalize_images: {name} has fewer than 2 pixels inside its field of view")
        mean = inside.mean(axis=1)[:, None, None]
        std = inside.std(axis=1)[:, None, None]
        normalized = (images[i] - mean) / np.maximum(std, 1e-6)
        if outside == "nearest":  # every pixel copies its nearest FOV pixel (FOV pixels copy themselves)
            rows, cols = ndimage.distance_transform_edt(~fov[i], return_distances=False, return_indices=True)
            out[i] = normalized[:, rows, cols]
        elif outside == "zero":
            out[i] = np.where(fov[i], normalized, 0.0)
        else:
            raise ValueError(f"normalize_images: outside must be 'nearest' or 'zero', got {outside!r}")
    return out


def green_channel_auc(data):
    """The baseline a CNN must beat: the in-FOV ROC AUC of the (inverted) green channel alone
    (vessels are darker than the background, most of all in green). -> (mean, per image)."""
    per_image = [roc_auc(-data.images[i, 1], data.vessels[i], data.fov[i]) for i in range(len(data))]
    return float(np.mean(per_image)), per_image


def vessel_unet(in_channels=3, width=16, seed=0):
    """The demo's U-Net: two poolings, ``width``-``2 width``-``4 width`` channels, "same" padding,
    nearest upsampling, skip connections by concatenation, one logit per pixel. Any image size
    that divides by 4 (:func:`predict_probabilities` pads the others)."""
    from . import architectures

    return architectures.unet(in_channels, out_channels=1, depth=DEPTH, width=width, seed=seed)


def predict_probabilities(model, images, batch_size=1, multiple=2**DEPTH):
    """Vessel probabilities (n, H, W) of normalized images (n, C, H, W), each run whole (padded to
    a ``multiple`` of the U-Net's total pooling)."""
    logits = predict_padded(model, images, multiple=multiple, batch_size=batch_size)[:, 0]
    return sigmoid(logits.astype(np.float32))


def best_dice_threshold(probabilities, vessels, fov, candidates=None):
    """The threshold on the probabilities (default candidates 0.05, 0.06, ..., 0.95) that maximizes
    the mean in-FOV Dice of these images. -> ``(threshold, dice)``."""
    candidates = np.linspace(0.05, 0.95, 91) if candidates is None else np.asarray(candidates)
    scores = [np.mean([dice(p, v, f, threshold=t) for p, v, f in zip(probabilities, vessels, fov)])
              for t in candidates]
    k = int(np.argmax(scores))
    return float(candidates[k]), float(scores[k])


class KeepBestOnValidation(Callback):
    """After every epoch, predict the whole validation images; keep the weights of the epoch with
    the best mean in-FOV ROC AUC (restored at the end), and log ``val_auc`` and ``val_dice``."""

    def __init__(self, x_val, val):
        super().__init__()
        self.x_val, self.val = x_val, val
        self.best, self.best_weights, self.best_epoch = -np.inf, None, None

    def on_epoch_end(self, epoch, logs=None):
        prob = predict_probabilities(self.model, self.x_val)
        auc = float(np.mean([roc_auc(p, v, f) for p, v, f in zip(prob, self.val.vessels, self.val.fov)]))
        logs = logs if logs is not None else {}
        logs["val_auc"] = auc
        logs["val_dice"] = float(np.mean([dice(p, v, f) for p, v, f in zip(prob, self.val.vessels, self.val.fov)]))
        if auc > self.best or self.best_weights is None:  # (an AUC of NaN never wins otherwise)
            self.best, self.best_epoch, self.best_weights = auc, epoch, self.model.get_weights()

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


def train_segmenter(model, x_train, train, x_val, val, *, epochs=10, steps=30, tile=64, batch_size=16,
                    lr=2e-3, seed=0, verbose=1):
    """Train ``model`` on random augmented tiles of the normalized training images ``x_train``
    (with the masks of ``train``; Adam with a cosine-decaying learning rate), keep the best epoch
    on the validation patients, and set ``model.threshold`` to the validation's best-Dice
    threshold. Returns the ``History``."""
    from . import losses, optimizers
    from .data import TileSampler
    from .schedules import CosineDecay, LearningRateScheduler

    sampler = TileSampler(x_train, train.vessels, train.fov, tile, batch_size=batch_size,
                          tiles_per_epoch=steps * batch_size, augment=_augmenter(), seed=seed)
    model.compile(loss=losses.BinaryCrossEntropy(from_logits=True), optimizer=optimizers.Adam(lr))
    keep = KeepBestOnValidation(x_val, val)
    schedule = LearningRateScheduler(CosineDecay(lr, epochs, min_lr=lr / 20))  # settle at the end
    history = model.fit(sampler, epochs=epochs, callbacks=[schedule, keep], verbose=verbose)
    prob = predict_probabilities(model, x_val)
    model.threshold, model.val_dice = best_dice_threshold(prob, val.vessels, val.fov)
    model.best_epoch, model.val_auc = (keep.best_epoch if keep.best_epoch is not None else epochs - 1), keep.best
    return history


def _augmenter():
    """Flips and 90° rotations: exact (no interpolation) and cheap. No brightness/contrast changes:
    the images are already normalized (``Intensity`` works on [0, 1] images and would clip them)."""
    from .data import Augmenter, Flip, Rotate90

    return Augmenter([Flip(), Rotate90()])


def run_vessel_segmentation(out, drive=None, n_synthetic=20, epochs=10, steps=30, seed=0, verbose=1,
                            figures=True, size=None, tile=64):
    """The main job of ``handprop demo``: data, training, choice on validation, in-FOV test metrics.

    ``drive``: a DRIVE-layout folder (its training split is split into training and validation
    patients, its test split is reported), or None for ``n_synthetic`` synthetic patients split
    60 / 15 / 25 % (``size``: their (H, W), DRIVE's 584 x 565 by default). ``tile``: the training
    tiles' size. Writes ``metrics.json``, ``probabilities.npz`` and figures to ``out``; returns the
    metrics dict.
    """
    import json
    from pathlib import Path

    from . import data as hpdata
    from .metrics import format_segmentation_report, segmentation_report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    clock = {"start": time.perf_counter()}
    if drive is None:
        data = hpdata.synthetic_retina(n_synthetic, seed=seed, **({} if size is None else {"size": size}))
        train_i, val_i, test_i = hpdata.split_patients(data, (0.6, 0.15, 0.25), seed=seed)
        train, val, test = data[train_i], data[val_i], data[test_i]
        source = f"synthetic_retina({n_synthetic}, seed={seed})"
    else:
        everything = hpdata.load_drive(drive, "training")
        if len(everything) < 2:
            raise DataError(f"run_vessel_segmentation: the training split of {drive} has {len(everything)} image; "
                             "at least 2 are needed (one to train on, one to choose the epoch and threshold)")
        train_i, val_i = hpdata.split_patients(everything, (0.8, 0.2), seed=seed)
        train, val = everything[train_i], everything[val_i]
        test = hpdata.load_drive(drive, "test", require_vessels=False)
        source = str(drive)
    clock["data"] = time.perf_counter() - clock["start"]
    _say(verbose, f"data: {source}: {len(train)} training, {len(val)} validation, {len(test)} test patients, "
                  f"images {train.images.shape[2]}x{train.images.shape[3]} ({clock['data']:.1f} s)")
    x_train, x_val, x_test = normalize_images(train), normalize_images(val), normalize_images(test)
    fits = min(x_train.shape[2:]) // 2**DEPTH * 2**DEPTH  # the largest tile the images hold
    if fits < 2**DEPTH:
        raise DataError(f"run_vessel_segmentation: the training images ({x_train.shape[2]}x{x_train.shape[3]}) "
                         f"are too small for the U-Net (at least {2**DEPTH}x{2**DEPTH} pixels)")
    if tile > fits:
        _say(verbose, f"tiles of {fits} px: the training images ({x_train.shape[2]}x{x_train.shape[3]}) are smaller "
                      f"than {tile} px")
        tile = fits
    model = vessel_unet(in_channels=x_train.shape[1], seed=seed)
    t0 = time.perf_counter()
    history = train_segmenter(model, x_train, train, x_val, val, epochs=epochs, steps=steps, tile=tile, seed=seed,
                              verbose=verbose)
    clock["training"] = time.perf_counter() - t0
    _say(verbose, f"training: {epochs} epochs of {steps} steps in {clock['training']:.0f} s; best epoch "
                  f"{model.best_epoch + 1} (validation AUC {model.val_auc:.4f}); threshold {model.threshold:.2f} "
                  f"(validation Dice {model.val_dice:.4f})")
    t0 = time.perf_counter()
    prob = predict_probabilities(model, x_test)
    clock["inference"] = time.perf_counter() - t0
    np.savez_compressed(out / "probabilities.npz", **{i: p for i, p in zip(test.ids, prob)})
    metrics = {"data": source, "inside_fov": True, "threshold": model.threshold,
               "patients": {"training": train.ids, "validation": val.ids, "test": test.ids}}
    if test.vessels is not None:
        report = segmentation_report(prob, test.vessels, test.fov, threshold=model.threshold, ids=test.ids)
        metrics.update(report["mean"])
        metrics["per_image"] = report["per_image"]
        metrics["pooled"] = report["pooled"]
        metrics["green_channel_auc"], _ = green_channel_auc(test)
        if verbose:
            print(format_segmentation_report(report))
            print(f"green-channel threshold baseline: in-FOV ROC AUC {metrics['green_channel_auc']:.4f}")
    else:
        metrics.update({k: None for k in ("auc", "dice", "accuracy", "sensitivity", "specificity")})
        metrics["note"] = "the test split has no vessel annotations (1st_manual): probabilities only"
        _say(verbose, metrics["note"])
    written = []
    if figures:
        written = _figures(out, model, history, test, prob, metrics)
    clock["total"] = time.perf_counter() - clock["start"]
    metrics["seconds"] = {k: round(v, 2) for k, v in clock.items() if k != "start"}
    with open(out / "metrics.json", "w") as f:
        json.dump(jsonable(metrics), f, indent=1)
    _say(verbose, f"written to {out.resolve()}: metrics.json, probabilities.npz"
                  + "".join(f", {p.name}" for p in written) + f" ({clock['total']:.0f} s in all)")
    return metrics


def _figures(out, model, history, test, prob, metrics):
    from . import viz
    from .data import load_fundus_photo

    written = []
    fig = viz.plot_history(history)
    written.append(out / "training_curves.png")
    fig.savefig(written[-1], dpi=90)
    for i in range(min(3, len(test))):
        fig = viz.plot_segmentation(test.images[i], None if test.vessels is None else test.vessels[i], prob[i],
                                    test.fov[i], threshold=model.threshold, title=test.ids[i])
        written.append(out / f"segmentation_{test.ids[i]}.png")
        fig.savefig(written[-1], dpi=90)
    if test.vessels is not None:
        curves = {"U-Net": (prob, test.vessels, test.fov),
                  "green channel (inverted)": (-test.images[:, 1], test.vessels, test.fov)}
        fig = viz.plot_roc_curves(curves, title="Test patients, inside the FOV")
        written.append(out / "roc_curves.png")
        fig.savefig(written[-1], dpi=90)
    photo = load_fundus_photo()
    p = predict_probabilities(model, normalize_images(photo))
    fig = viz.plot_segmentation(photo.images[0], None, p[0], photo.fov[0], threshold=model.threshold,
                                title="A real fundus photograph (no annotation)")
    written.append(out / "fundus_photo_prediction.png")
    fig.savefig(written[-1], dpi=90)
    return written


def _say(verbose, text):
    if verbose:
        print(text, flush=True)


def jsonable(value, digits=None):
    """``value`` with NumPy numbers, arrays and paths made JSON-ready, NaN/inf as None (floats
    rounded to ``digits`` when given): for metrics.json and the experiments' numbers."""
    from pathlib import Path

    if isinstance(value, dict):
        return {str(k): jsonable(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, digits) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist(), digits)
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float):
        return (value if digits is None else round(value, digits)) if np.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


__all__ = ["normalize_images", "green_channel_auc", "vessel_unet", "predict_probabilities", "best_dice_threshold",
           "KeepBestOnValidation", "train_segmenter", "run_vessel_segmentation", "jsonable"]
