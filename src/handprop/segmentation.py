"""The tutorial's task end to end: segment the vessels of retinal fundus images.

``handprop demo`` runs :func:`run_vessel_segmentation`; ``handprop predict`` runs
:func:`run_prediction`. A notebook can call the steps one by one::

    data = hp.data.synthetic_retina(20)                      # or hp.data.load_drive("DRIVE", "training")
    train, val, test = (data[i] for i in hp.data.split_patients(data, (0.6, 0.15, 0.25)))
    settings = hp.preprocessing.DEFAULT_PREPROCESSING        # green, smooth surround, CLAHE, gamma
    x_train, x_val = (hp.preprocessing.preprocess_images(d, **settings) for d in (train, val))
    model = vessel_unet(in_channels=1)
    train_segmenter(model, x_train, train, x_val, val)       # tiles, masked loss, best epoch
    prob = predict_probabilities(model, hp.preprocessing.preprocess_images(test, **settings), tta="flips")
    report = hp.metrics.segmentation_report(prob, test.vessels, test.fov,
                                            threshold=hp.segmentation.at_least(model.threshold))

The steps, and why:

1. **Split by patient** (one image per patient here): pixels of one eye in both the training and
   the test set would make the test score a memory test.
2. **Preprocess each image by itself** (:mod:`handprop.preprocessing`): the green channel, a
   smooth extension of the retina over the dark surround (a sharp circular edge, or the radial
   streaks of copying the nearest FOV pixel, look like vessels to a network), CLAHE, gamma, and
   standardization with the mean and standard deviation of the image's FOV pixels. It uses no
   statistics of other images, so nothing leaks from the test patients and a new photograph is
   treated as a training one was; it removes the colour, illumination and contrast differences
   between photographs that a network would otherwise have to learn.
3. **Train a small U-Net on random tiles** (a :class:`handprop.data.TileSampler`: fresh,
   flipped and rotated tiles every epoch) with binary cross-entropy on logits, **weighted by the
   FOV mask**: pixels outside the field of view do not count.
4. **Choose on the validation patients**: after each epoch of the second half of training the
   whole validation images are predicted; the epoch with the best in-FOV ROC AUC is kept, and the
   threshold on the vessel probability (applied as ``p >= threshold``) that gives the best Dice
   on them becomes the model's decision threshold.
5. **Predict with test-time flips** (:data:`TEST_TIME_FLIPS`) and report on the test patients
   only, inside the FOV (metrics over the whole image would count the easy black surround as
   correct background and inflate accuracy). The recipe (preprocessing, flips, threshold) is
   saved in the model file's metadata, so :func:`segment` repeats it exactly on new images.
"""

from __future__ import annotations

import time

import numpy as np

from .callbacks import Callback
from .checks import check_both_classes, check_output_folder
from .errors import DataError
from .inference import predict_padded
from .layers.activations import sigmoid
from .metrics import dice, roc_auc
from .preprocessing import DEFAULT_PREPROCESSING, preprocess_images

DEPTH = 2
"""The U-Net's number of poolings: images are padded to a multiple of ``2**DEPTH`` for inference."""


def normalize_images(data, fov=None, outside="nearest"):
    """Per-image, per-channel standardization inside the field of view (RGB, no CLAHE).

    ``data``: a :class:`handprop.data.RetinaData` (or images (n, C, H, W) with ``fov`` (n, H, W)).
    Returns float32 (n, C, H, W): ``(x - mean_FOV) / std_FOV`` per image and channel inside the
    FOV; outside it the value of the nearest FOV pixel (``outside="nearest"``), a smooth extension
    of the FOV (``"smooth"``, :func:`handprop.preprocessing.extend_outside_fov`) or 0 (``"zero"``).
    The demo's full preprocessing (green channel, CLAHE, gamma): :func:`handprop.preprocessing.preprocess_images`.
    """
    images = np.asarray(getattr(data, "images", data), dtype=np.float32)
    fov = np.asarray(getattr(data, "fov", fov), dtype=bool)
    if fov.ndim != 3 or fov.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(f"normalize_images: fov must be (n, H, W) for images {images.shape}, got {fov.shape}")
    if outside not in ("nearest", "smooth", "zero"):
        raise ValueError(f"normalize_images: outside must be 'nearest', 'smooth' or 'zero', got {outside!r}")
    try:
        return preprocess_images(data if hasattr(data, "images") else images, fov, channels="rgb", outside=outside)
    except ValueError as e:
        raise ValueError(str(e).replace("preprocess_images", "normalize_images")) from None


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


TEST_TIME_FLIPS = {"none": ((),), "hflip": ((), (-1,)), "flips": ((), (-1,), (-2,), (-2, -1))}
"""Test-time augmentation: the flips (axes of an (n, C, H, W) batch) whose predictions are averaged.
``"flips"``: the image, mirrored left-right, upside down, and both (the network was trained on
flipped tiles, so each is an equally good guess; their mean is a little less noisy)."""


MAX_PASS_PIXELS = 640 * 640
"""The largest input one forward pass of :func:`predict_probabilities` takes. The demo's U-Net
needs about 1.5 KB per pixel of a pass (measured with tracemalloc: 1.4 GB for a 1024 x 1024
image run whole), so a pass stays under 0.65 GB; DRIVE's 584 x 565 images still run whole."""


def predict_probabilities(model, images, batch_size=1, multiple=2**DEPTH, tta="none", max_pixels=MAX_PASS_PIXELS):
    """Vessel probabilities (n, H, W) of normalized images (n, C, H, W), each run whole (padded to
    a ``multiple`` of the U-Net's total pooling). ``tta``: a key of :data:`TEST_TIME_FLIPS`; the
    probabilities of the flipped images, flipped back, are averaged (in that order: the same
    images give the same bits).

    **Memory budget**: an image larger than ``max_pixels`` (:data:`MAX_PASS_PIXELS`, 640 x 640) is
    run in overlapping tiles of at most that size
    (:func:`handprop.inference.predict_overlapping`: the same probabilities to float32 rounding),
    so one 2048 x 2048 image adds at most 1 GB with the demo's U-Net (measured: peak RSS +0.72 GB in
    20 s, where one whole pass added 5.7 GB in 47 s, 2 loaded cores). A wider network needs
    proportionally more per pixel: pass a smaller ``max_pixels``. The tiling depends only on the
    image size, so ``handprop predict`` reproduces the demo's probabilities bit for bit."""
    if tta not in TEST_TIME_FLIPS:
        raise ValueError(f"predict_probabilities: tta must be one of {sorted(TEST_TIME_FLIPS)}, got {tta!r}")
    images = np.asarray(images)
    total = None
    for axes in TEST_TIME_FLIPS[tta]:
        x = np.ascontiguousarray(np.flip(images, axes)) if axes else images
        logits = predict_padded(model, x, multiple=multiple, batch_size=batch_size, max_pixels=max_pixels)[:, 0]
        p = sigmoid(logits.astype(np.float32))
        p = np.flip(p, axes) if axes else p
        total = p if total is None else total + p
    return np.ascontiguousarray(total / np.float32(len(TEST_TIME_FLIPS[tta])), dtype=np.float32)


def at_least(threshold):
    """The ``>`` threshold that :mod:`handprop.metrics` needs to predict ``p >= threshold``: the
    float64 just below it (no float32 or float64 value lies between the two)."""
    return float(np.nextafter(np.float64(threshold), -np.inf))


def best_dice_threshold(probabilities, vessels, fov, candidates=None):
    """The threshold on the probabilities (default candidates 0.05, 0.06, ..., 0.95), applied as
    ``p >= threshold``, that maximizes the mean in-FOV Dice of these images. -> ``(threshold, dice)``.

    The candidates are float32 numbers (0.41 is 0.4099999964237213), so ``p >= threshold`` gives
    the same pixels whether float32 probabilities are compared in float32 or in float64."""
    candidates = np.round(np.linspace(0.05, 0.95, 91), 2) if candidates is None else np.asarray(candidates)
    candidates = candidates.astype(np.float32)
    scores = [np.mean([dice(p, v, f, threshold=at_least(t)) for p, v, f in zip(probabilities, vessels, fov)])
              for t in candidates]
    k = int(np.argmax(scores))
    return float(candidates[k]), float(scores[k])


class KeepBestOnValidation(Callback):
    """After every epoch (from epoch ``first_epoch``, counted from 0), predict the whole validation
    images; keep the weights of the epoch with the best mean in-FOV ROC AUC (restored at the end),
    and log ``val_auc`` and ``val_dice`` (NaN for the epochs before ``first_epoch``)."""

    def __init__(self, x_val, val, first_epoch=0):
        super().__init__()
        check_both_classes(val.vessels, val.fov, val.ids, "KeepBestOnValidation")
        self.x_val, self.val, self.first_epoch = x_val, val, int(first_epoch)
        self.best, self.best_weights, self.best_epoch = -np.inf, None, None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        if epoch < self.first_epoch:
            logs["val_auc"] = logs["val_dice"] = float("nan")
            return
        prob = predict_probabilities(self.model, self.x_val)
        auc = float(np.mean([roc_auc(p, v, f) for p, v, f in zip(prob, self.val.vessels, self.val.fov)]))
        logs["val_auc"] = auc
        logs["val_dice"] = float(np.mean([dice(p, v, f) for p, v, f in zip(prob, self.val.vessels, self.val.fov)]))
        if auc > self.best or self.best_weights is None:  # (an AUC of NaN never wins otherwise)
            self.best, self.best_epoch, self.best_weights = auc, epoch, self.model.get_weights()

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


def train_segmenter(model, x_train, train, x_val, val, *, epochs=10, steps=30, tile=64, batch_size=16,
                    lr=2e-3, seed=0, verbose=1, validate_from=0, augment=None, choose_threshold=True):
    """Train ``model`` on random augmented tiles of the preprocessed training images ``x_train``
    (with the masks of ``train``; Adam with a cosine-decaying learning rate), keep the best epoch
    on the validation patients (validated from epoch ``validate_from``, counted from 0), and set
    ``model.threshold`` to the validation's best-Dice threshold (``p >= threshold``;
    ``choose_threshold=False`` leaves that to the caller, e.g. with test-time flips as the demo
    does). ``augment``: an :class:`handprop.data.Augmenter` for the tiles (default: flips and 90°
    rotations). Returns the ``History``."""
    from . import losses, optimizers
    from .data import TileSampler
    from .schedules import CosineDecay, LearningRateScheduler

    check_both_classes(val.vessels, val.fov, val.ids, "train_segmenter (validation patients)")
    sampler = TileSampler(x_train, train.vessels, train.fov, tile, batch_size=batch_size,
                          tiles_per_epoch=steps * batch_size,
                          augment=_augmenter() if augment is None else augment, seed=seed)
    model.compile(loss=losses.BinaryCrossEntropy(from_logits=True), optimizer=optimizers.Adam(lr))
    keep = KeepBestOnValidation(x_val, val, first_epoch=min(validate_from, epochs - 1))
    schedule = LearningRateScheduler(CosineDecay(lr, epochs, min_lr=lr / 20))  # settle at the end
    history = model.fit(sampler, epochs=epochs, callbacks=[schedule, keep], verbose=verbose)
    if choose_threshold:
        prob = predict_probabilities(model, x_val)
        model.threshold, model.val_dice = best_dice_threshold(prob, val.vessels, val.fov)
    model.best_epoch, model.val_auc = (keep.best_epoch if keep.best_epoch is not None else epochs - 1), keep.best
    return history


# ----------------------------------------------------------------------------- the recipe, saved with the model
BUDGETS = {
    "default": {"epochs": 10, "steps": 30, "tile": 64, "batch_size": 16, "tta": "hflip"},
    "full": {"epochs": 30, "steps": 55, "tile": 64, "batch_size": 16, "tta": "flips"},
}
"""``handprop demo --budget NAME``: training length, tile size and test-time flips. ``"default"``:
under 3 minutes on 2 cores (DRIVE-sized data, cold Numba compile included); ``"full"``: under 15
(README gives the measured times and how the full budget's was estimated). The epoch is chosen
among the second half of the epochs: with the cosine schedule earlier ones are rarely best, and
each validation costs whole-image passes."""

SETTINGS_KEY = "vessel_segmentation"
"""The key of the recipe in ``model.metadata`` (saved in the model file): see :func:`segment`."""


def recipe_settings(model):
    """The settings :func:`segment` applies with ``model``: ``model.metadata["vessel_segmentation"]``
    (a model saved by ``handprop demo``), or the old demo's (RGB, no flips, threshold 0.5) for a
    bare U-Net. A dict with ``preprocessing`` (keyword arguments of
    :func:`handprop.preprocessing.preprocess_images`), ``tta`` (a key of :data:`TEST_TIME_FLIPS`),
    ``multiple`` (the padding of whole images), ``outside_fov`` (the probability written outside the
    FOV) and ``threshold`` (applied as ``p >= threshold``)."""
    settings = (getattr(model, "metadata", None) or {}).get(SETTINGS_KEY)
    if settings is None:
        return {"preprocessing": {"channels": "rgb", "outside": "nearest"}, "tta": "none", "multiple": 2**DEPTH,
                "outside_fov": 0.0, "threshold": float(getattr(model, "threshold", 0.5))}
    missing = [key for key in ("preprocessing", "tta", "threshold") if key not in settings] \
        if isinstance(settings, dict) else ["everything"]
    if missing or settings["tta"] not in TEST_TIME_FLIPS:
        raise ValueError(f"the model's metadata[{SETTINGS_KEY!r}] is not a recipe saved by handprop demo (missing "
                         f"{missing or 'nothing'}; tta {settings.get('tta') if isinstance(settings, dict) else None!r} "
                         f"must be one of {sorted(TEST_TIME_FLIPS)}): save the model again with handprop demo, or "
                         f"delete that key to use the plain U-Net's defaults")
    return settings


def segment(model, data, settings=None):
    """Vessel probabilities (n, H, W) float32 of the fundus images of ``data`` (a ``RetinaData``:
    images in [0, 1] and FOV masks), as ``handprop demo`` computes its test probabilities and
    ``handprop predict`` those of new images: each image preprocessed alone, run whole (with
    test-time flips), and ``outside_fov`` (0) written outside its FOV. ``settings``: see
    :func:`recipe_settings` (default: the ones saved with the model)."""
    settings = recipe_settings(model) if settings is None else settings
    x = preprocess_images(data, **settings["preprocessing"])
    prob = predict_probabilities(model, x, multiple=settings.get("multiple", 2**DEPTH), tta=settings["tta"])
    return np.where(np.asarray(data.fov, bool), prob, np.float32(settings.get("outside_fov", 0.0))).astype(np.float32)


def _augmenter():
    """Flips and 90° rotations: exact (no interpolation) and cheap. No brightness/contrast changes:
    the images are already normalized (``Intensity`` works on [0, 1] images and would clip them)."""
    from .data import Augmenter, Flip, Rotate90

    return Augmenter([Flip(), Rotate90()])


DEMO_OUTPUTS = ("metrics.json", "probabilities.npz", "model.safetensors", "training_curves.png", "roc_curves.png",
                "fundus_photo_prediction.png", "segmentation_*.png")
"""The files :func:`run_vessel_segmentation` writes into its folder (glob patterns): a second run
refuses to mix its outputs with these unless told to overwrite them."""


def claim_output_folder(out, overwrite, what="run_vessel_segmentation", patterns=DEMO_OUTPUTS):
    """``out`` checked (a writable folder, :func:`handprop.checks.check_output_folder`) and free of an
    earlier run's outputs: with ``overwrite`` those files are removed first (and only those: other
    files stay), else a FileExistsError names them. Two runs never mix their figures and metrics."""
    out = check_output_folder(out, what)
    earlier = sorted({p for pattern in patterns for p in out.glob(pattern) if p.is_file()})
    if earlier and not overwrite:
        names = ", ".join(p.name for p in earlier[:6]) + (", ..." if len(earlier) > 6 else "")
        raise FileExistsError(f"{what}: {out} already holds an earlier run's outputs ({names}); pass --overwrite "
                              "(overwrite=True) to remove them and write this run's, or choose another --out")
    for path in earlier:
        path.unlink()
    return out


def run_vessel_segmentation(out, drive=None, n_synthetic=20, epochs=None, steps=None, seed=0, verbose=1,
                            figures=True, size=None, tile=None, budget="default", preprocessing=None, tta=None,
                            batch_size=None, overwrite=False):
    """The main job of ``handprop demo``: data, training, choice on validation, in-FOV test metrics.

    ``drive``: a DRIVE-layout folder (its training split is split into training and validation
    patients, its test split is reported), or None for ``n_synthetic`` synthetic patients split
    60 / 15 / 25 % (``size``: their (H, W), DRIVE's 584 x 565 by default). ``budget``: a key of
    :data:`BUDGETS` (epochs, steps per epoch, tile size, batch size, test-time flips), each
    overridden by the argument of that name when given. ``preprocessing``: keyword arguments of
    :func:`handprop.preprocessing.preprocess_images` (default :data:`DEFAULT_PREPROCESSING`).

    Writes to ``out``: ``metrics.json``, ``probabilities.npz`` (one full-size map per test image,
    keyed by id, as :func:`segment` computes it), ``model.safetensors`` (the trained model with
    the recipe in its metadata: ``handprop predict`` reproduces the probabilities) and figures
    (:data:`DEMO_OUTPUTS`). ``out`` is checked before anything is trained: a file, a folder it
    cannot write into, or one that holds an earlier run's outputs is refused (``overwrite=True``
    removes those outputs first; ``handprop demo --overwrite``). Returns the metrics dict.
    """
    import json

    from . import data as hpdata
    from .metrics import format_segmentation_report, segmentation_report

    if budget not in BUDGETS:
        raise ValueError(f"run_vessel_segmentation: budget must be one of {sorted(BUDGETS)}, got {budget!r}")
    given = {"epochs": epochs, "steps": steps, "tile": tile, "batch_size": batch_size, "tta": tta}
    plan = {k: (BUDGETS[budget][k] if v is None else v) for k, v in given.items()}
    preprocessing = dict(DEFAULT_PREPROCESSING if preprocessing is None else preprocessing)
    out = claim_output_folder(out, overwrite)
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
    t0 = time.perf_counter()
    x_train, x_val = preprocess_images(train, **preprocessing), preprocess_images(val, **preprocessing)
    clock["preprocessing"] = time.perf_counter() - t0
    fits = min(x_train.shape[2:]) // 2**DEPTH * 2**DEPTH  # the largest tile the images hold
    if fits < 2**DEPTH:
        raise DataError(f"run_vessel_segmentation: the training images ({x_train.shape[2]}x{x_train.shape[3]}) "
                         f"are too small for the U-Net (at least {2**DEPTH}x{2**DEPTH} pixels)")
    if plan["tile"] > fits:
        _say(verbose, f"tiles of {fits} px: the training images ({x_train.shape[2]}x{x_train.shape[3]}) are smaller "
                      f"than {plan['tile']} px")
        plan["tile"] = fits
    model = vessel_unet(in_channels=x_train.shape[1], seed=seed)
    t0 = time.perf_counter()
    history = train_segmenter(model, x_train, train, x_val, val, epochs=plan["epochs"], steps=plan["steps"],
                              tile=plan["tile"], batch_size=plan["batch_size"], seed=seed, verbose=verbose,
                              validate_from=plan["epochs"] // 2,  # the cosine schedule's second half
                              choose_threshold=False)  # chosen below, with the test-time flips
    clock["training"] = time.perf_counter() - t0
    settings = {"preprocessing": preprocessing, "tta": plan["tta"], "multiple": 2**DEPTH, "outside_fov": 0.0}
    t0 = time.perf_counter()
    settings["threshold"], model.val_dice = best_dice_threshold(segment(model, val, settings), val.vessels, val.fov)
    model.threshold = settings["threshold"]
    settings.update(threshold_rule="p >= threshold", threshold_chosen_on=val.ids,
                    trained_on=source, budget=budget, training={k: plan[k] for k in ("epochs", "steps", "tile",
                                                                                       "batch_size")})
    model.metadata = {SETTINGS_KEY: settings}
    model.save(out / "model.safetensors", include_optimizer=False)
    clock["threshold"] = time.perf_counter() - t0
    _say(verbose, f"training: {plan['epochs']} epochs of {plan['steps']} steps ({plan['batch_size']} tiles of "
                  f"{plan['tile']} px) in {clock['training']:.0f} s; best epoch {model.best_epoch + 1} (validation "
                  f"AUC {model.val_auc:.4f}); threshold {model.threshold:.2f} (validation Dice {model.val_dice:.4f}, "
                  f"test-time flips: {plan['tta']})")
    t0 = time.perf_counter()
    prob = segment(model, test, settings)
    clock["inference"] = time.perf_counter() - t0
    np.savez_compressed(out / "probabilities.npz", **{i: p for i, p in zip(test.ids, prob)})
    metrics = {"data": source, "inside_fov": True, "threshold": model.threshold, "protocol": _protocol(settings),
               "patients": {"training": train.ids, "validation": val.ids, "test": test.ids}}
    if test.vessels is not None:
        report = segmentation_report(prob, test.vessels, test.fov, threshold=at_least(model.threshold), ids=test.ids)
        report["threshold"] = model.threshold
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
    _say(verbose, f"written to {out.resolve()}: metrics.json, probabilities.npz, model.safetensors"
                  + "".join(f", {p.name}" for p in written) + f" ({clock['total']:.0f} s in all)")
    return metrics


def _protocol(settings):
    """How metrics.json's numbers were computed (its ``protocol`` entry)."""
    return {
        "inside_fov": True,
        "region": "every metric counts only the pixels inside each image's FOV mask",
        "mean_per_image": "top-level auc, dice, accuracy, sensitivity, specificity: computed per test image, "
                          "then averaged over the images",
        "pooled": "'pooled': the same five over all test images' FOV pixels together (one ROC curve)",
        "threshold": f"{settings['threshold']}, applied as p >= threshold; chosen on the validation patients: "
                     "the candidate 0.05, 0.06, ..., 0.95 with the best mean in-FOV Dice of their probabilities "
                     "(computed exactly as the test's)",
        "probabilities": "probabilities.npz: one map per test image at its full size, keyed by image id, with "
                         f"test-time flips ({settings['tta']}) averaged in and {settings['outside_fov']} outside "
                         "the FOV",
        "preprocessing": settings["preprocessing"],
        "test_time_augmentation": settings["tta"],
        "model_selection": "the epoch (of the second half of training) with the best mean in-FOV validation AUC; "
                           "no test image is used to choose anything",
    }


def load_images(paths, fraction=0.3):
    """Fundus photographs from image files as a ``RetinaData`` without annotations: images (n, 3,
    H, W) in [0, 1] (the DRIVE loader's reading: 8-bit / 255, 16-bit / 65535), FOV masks estimated
    from each image (:func:`handprop.data.estimate_fov`), ids the file stems. The images must be
    of one size (``handprop predict`` calls this once per image)."""
    from pathlib import Path

    from .data import RetinaData, estimate_fov
    from .data.drive import _read_rgb

    images, ids = [], []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise DataError(f"load_images: no such image file: {path}")
        images.append(_read_rgb(path, caller="handprop predict").transpose(2, 0, 1))
        ids.append(path.stem)
    images = np.stack(images).astype(np.float32)
    fov = np.stack([estimate_fov(image, fraction=fraction) for image in images])
    return RetinaData(images, None, fov, ids)


def run_prediction(model_path, out, drive=None, split="test", images=(), figures=True, verbose=1):
    """``handprop predict``: apply a saved model to new fundus images.

    ``model_path``: a model file, e.g. ``handprop demo``'s ``model.safetensors`` (its recipe --
    preprocessing, test-time flips, threshold -- comes from the file's metadata; a bare U-Net gets
    :func:`recipe_settings`' fallback). Images: the ``split`` of a DRIVE-layout folder ``drive``
    (FOV from its masks), or image files ``images`` (FOV estimated from each image). Writes
    ``out/probabilities.npz`` (one full-size map per image, keyed by image id, computed by
    :func:`segment`: the demo's test probabilities bit for bit for the same images and model),
    ``out/predictions.json`` (ids, threshold, recipe, and in-FOV metrics when the DRIVE split has
    annotations) and a figure per image (the first 20). Returns the predictions dict.
    """
    import json

    from . import data as hpdata
    from .saving import load_model

    if (drive is None) == (not images):
        raise ValueError("run_prediction: give either a DRIVE folder (drive=) or image files (images=)")
    out = check_output_folder(out, "run_prediction")
    model = load_model(model_path, compile=False)
    settings = recipe_settings(model)
    start = time.perf_counter()
    if drive is not None:
        batches = [hpdata.load_drive(drive, split, require_vessels=False)]
        source = f"{drive} ({split})"
    else:
        batches = [load_images([path]) for path in images]  # one by one: the files may differ in size
        source = f"{len(images)} image file(s), FOV estimated from each"
        if len({b.ids[0] for b in batches}) < len(batches):
            raise DataError("run_prediction: two image files have the same name (the id is the file stem)")
    probabilities, summary = {}, {"model": str(model_path), "data": source, "threshold": settings["threshold"],
                                  "threshold_rule": "p >= threshold", "recipe": settings, "ids": []}
    written = []
    for data in batches:
        prob = segment(model, data, settings)
        for i, name in enumerate(data.ids):
            probabilities[name] = prob[i]
            summary["ids"].append(name)
            _say(verbose, f"{name}: {prob.shape[1]}x{prob.shape[2]}, {int(data.fov[i].sum())} FOV pixels, "
                          f"{float((prob[i][data.fov[i]] >= settings['threshold']).mean()):.1%} of them vessel")
            if figures and len(written) < 20:
                written.append(_prediction_figure(out, data, i, prob[i], settings["threshold"]))
        if data.vessels is not None:
            from .metrics import segmentation_report

            report = segmentation_report(prob, data.vessels, data.fov, threshold=at_least(settings["threshold"]),
                                         ids=data.ids)
            summary.update(report["mean"])
            summary["per_image"], summary["pooled"] = report["per_image"], report["pooled"]
            _say(verbose, f"inside the FOV, mean per image: AUC {summary['auc']:.4f}, Dice {summary['dice']:.4f}")
    np.savez_compressed(out / "probabilities.npz", **probabilities)
    summary["seconds"] = round(time.perf_counter() - start, 2)
    with open(out / "predictions.json", "w") as f:
        json.dump(jsonable(summary), f, indent=1)
    _say(verbose, f"written to {out.resolve()}: probabilities.npz, predictions.json"
                  + (f" and {len(written)} figure(s)" if written else ""))
    return summary


def _prediction_figure(out, data, i, prob, threshold):
    from . import viz

    fig = viz.plot_segmentation(data.images[i], None if data.vessels is None else data.vessels[i], prob,
                                data.fov[i], threshold=at_least(threshold), title=data.ids[i])
    path = out / f"prediction_{data.ids[i]}.png"
    fig.savefig(path, dpi=90)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def _figures(out, model, history, test, prob, metrics):
    from . import viz
    from .data import load_fundus_photo

    written = []
    fig = viz.plot_history(history)
    written.append(out / "training_curves.png")
    fig.savefig(written[-1], dpi=90)
    for i in range(min(3, len(test))):
        fig = viz.plot_segmentation(test.images[i], None if test.vessels is None else test.vessels[i], prob[i],
                                    test.fov[i], threshold=at_least(model.threshold), title=test.ids[i])
        written.append(out / f"segmentation_{test.ids[i]}.png")
        fig.savefig(written[-1], dpi=90)
    if test.vessels is not None:
        curves = {"U-Net": (prob, test.vessels, test.fov),
                  "green channel (inverted)": (-test.images[:, 1], test.vessels, test.fov)}
        fig = viz.plot_roc_curves(curves, title="Test patients, inside the FOV")
        written.append(out / "roc_curves.png")
        fig.savefig(written[-1], dpi=90)
    photo = load_fundus_photo()
    p = segment(model, photo)
    fig = viz.plot_segmentation(photo.images[0], None, p[0], photo.fov[0], threshold=at_least(model.threshold),
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
           "KeepBestOnValidation", "train_segmenter", "run_vessel_segmentation", "jsonable", "at_least",
           "TEST_TIME_FLIPS", "BUDGETS", "SETTINGS_KEY", "recipe_settings", "segment", "load_images",
           "run_prediction", "DEMO_OUTPUTS", "claim_output_folder", "MAX_PASS_PIXELS"]
