"""What every experiment shares: the data (synthetic retinas split by patient, whole or cropped),
training loops for fully convolutional nets, whole-image inference for them and for patch
classifiers, the in-FOV scores on the test patients, a clock that records the machine's load, and
the Markdown table writer.

The data: a synthetic retina is drawn at DRIVE's full size (584 x 565, so the vessels have their
real widths: 1-2 px to about 10 px, wide ones with a central light reflex) and normalized by itself inside its
field of view (:func:`handprop.segmentation.normalize_images`). :data:`WHOLE` keeps the whole
images; :data:`FULL` cuts each into ``crops_per_patient`` square crops around random points of the
FOV's inner part, for the experiments that train many models: whole images are too big to predict
dozens of models on two shared cores in minutes, and scaled-down retinas lose the thin vessels (the
generator's vessels end below 1 px) where crops keep them. Every crop of a patient lands in that
patient's part of the split (:func:`handprop.data.split_patients`).

Every score is computed on the test patients' images (or crops), inside the FOV: the decision
threshold of the Dice is the one with the best mean Dice on the validation patients'
(:func:`handprop.segmentation.best_dice_threshold`), the ROC AUC needs none.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import losses, optimizers
from ..data import RetinaData, TileSampler, split_patients, synthetic_retina
from ..inference import predict_dense, to_fully_convolutional
from ..layers.activations import sigmoid  # noqa: F401  (the experiments' logistic function)
from ..metrics import segmentation_report
from ..segmentation import best_dice_threshold, jsonable, normalize_images, predict_probabilities

DEFAULT_OUT = Path("docs") / "experiments"


# ----------------------------------------------------------------------------- sizes
@dataclass(frozen=True)
class Sizes:
    """The data sizes of a run: patients per part, retina size, crops."""

    train: int = 8
    val: int = 2
    test: int = 4
    retina: tuple = (584, 565)
    crop: int | None = 128
    crops_per_patient: int = 2

    def describe(self):
        if self.crop is None:
            return (f"whole synthetic retinas of {self.retina[0]}x{self.retina[1]} px; patients: {self.train} "
                    f"training, {self.val} validation, {self.test} test")
        n = self.crops_per_patient
        return (f"synthetic retinas of {self.retina[0]}x{self.retina[1]} px, {n} crop(s) of {self.crop}x{self.crop} "
                f"px per patient; patients: {self.train} training ({self.train * n} crops), {self.val} validation, "
                f"{self.test} test ({self.test * n} crops)")


FULL = Sizes()
"""Crops (8 / 2 / 4 patients, two 128-px crops each): the experiments that train many models."""
WHOLE = Sizes(train=6, val=2, test=3, crop=None)
"""Whole images (6 / 2 / 3 patients): the experiment that compares a few models on them."""
SMOKE = Sizes(train=2, val=1, test=1, retina=(96, 96), crop=32, crops_per_patient=1)
SMOKE_WHOLE = Sizes(train=2, val=1, test=1, retina=(64, 64), crop=None)


# ----------------------------------------------------------------------------- data
@dataclass
class Part:
    """The crops of one part of the split: ``data`` (raw RetinaData crops) and ``x`` (normalized)."""

    data: RetinaData
    x: np.ndarray

    @property
    def vessels(self):
        return self.data.vessels

    @property
    def fov(self):
        return self.data.fov

    def __len__(self):
        return len(self.x)


@dataclass
class Split:
    train: Part
    val: Part
    test: Part
    sizes: Sizes
    patients: dict = field(default_factory=dict)


def _crop_corners(fov, crop, k, rng):
    """``k`` (top, left) corners of ``crop``-squares centred on random pixels of the inner 60 % of the FOV."""
    h, w = fov.shape
    rows, cols = np.nonzero(fov)
    cy, cx = rows.mean(), cols.mean()
    radius = np.sqrt(fov.sum() / np.pi)
    inner = np.flatnonzero(((rows - cy) ** 2 + (cols - cx) ** 2) <= (0.6 * radius) ** 2)
    corners = []
    for j in rng.choice(inner, size=k, replace=len(inner) < k):
        top = int(np.clip(rows[j] - crop // 2, 0, h - crop))
        left = int(np.clip(cols[j] - crop // 2, 0, w - crop))
        corners.append((top, left))
    return corners


def _crops(data, x, crop, k, seed):
    images, vessels, fov, xs, ids = [], [], [], [], []
    for i in range(len(data)):
        rng = np.random.default_rng([seed, i, 1])
        for c, (top, left) in enumerate(_crop_corners(data.fov[i], crop, k, rng)):
            window = (slice(top, top + crop), slice(left, left + crop))
            images.append(data.images[i][(slice(None), *window)])
            vessels.append(data.vessels[i][window])
            fov.append(data.fov[i][window])
            xs.append(x[i][(slice(None), *window)])
            ids.append(f"{data.ids[i]}_crop{c}")
    return Part(RetinaData(np.stack(images), np.stack(vessels), np.stack(fov), ids), np.stack(xs))


_CACHE = {}


def retina_split(sizes=FULL, seed=0):
    """The synthetic patients of ``sizes``, split by patient into training, validation and test,
    normalized per image inside the FOV, then cropped. Cached per (sizes, seed) within a process.
    Returns a :class:`Split`."""
    key = (sizes, seed)
    if key not in _CACHE:
        n = sizes.train + sizes.val + sizes.test
        data = synthetic_retina(n, seed=seed, size=sizes.retina)
        x = normalize_images(data)
        parts = split_patients(n, np.array([sizes.train, sizes.val, sizes.test]) / n, seed=seed)
        if sizes.crop is None:
            crops = [Part(data[p], x[p]) for p in parts]
        else:
            crops = [_crops(data[p], x[p], sizes.crop, sizes.crops_per_patient, seed) for p in parts]
        patients = {name: [data.ids[i] for i in p] for name, p in zip(("training", "validation", "test"), parts)}
        _CACHE[key] = Split(*crops, sizes=sizes, patients=patients)
    return _CACHE[key]


# ----------------------------------------------------------------------------- training
def train_fcn(model, part, *, steps, epochs, tile=64, batch_size=8, lr=2e-3, weight_decay=0.0, augment=None,
              seed=0):
    """Train a fully convolutional model (logits (N, 1, H, W)) on random tiles of the training crops
    with binary cross-entropy weighted by the FOV mask; ``steps`` batches per epoch. -> History."""
    sampler = TileSampler(part.x, part.vessels, part.fov, tile, batch_size=batch_size,
                          tiles_per_epoch=steps * batch_size, augment=augment, seed=seed)
    model.compile(loss=losses.BinaryCrossEntropy(from_logits=True),
                  optimizer=optimizers.Adam(lr, weight_decay=weight_decay))
    return model.fit(sampler, epochs=epochs, verbose=0)


def fcn_probabilities(model, x, multiple=4):
    """Vessel probabilities (n, H, W) of a fully convolutional model on normalized crops (n, C, H, W)."""
    return predict_probabilities(model, x, batch_size=4, multiple=multiple)


def patch_probabilities(model, x):
    """Vessel probabilities (n, H, W) of a two-class patch classifier at every pixel of the crops:
    the classifier made fully convolutional (:func:`handprop.inference.to_fully_convolutional`)."""
    size = model.input_shape[-1]
    logits = predict_dense(to_fully_convolutional(model), x, size, batch_size=2)
    return sigmoid(logits[:, 1] - logits[:, 0])  # softmax of two classes = sigmoid of the difference


def wide_vessels(vessels, width=5):
    """The vessel pixels (n, H, W) that belong to vessels at least ``width`` px wide: the
    morphological opening of the mask by a ``width``-wide disc (its centre rows hold the light reflex)."""
    from scipy import ndimage

    r = width // 2
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    disc = (yy**2 + xx**2) <= r * r + r  # a digital disc exactly ``width`` px across
    return np.stack([ndimage.binary_opening(v > 0, structure=disc) for v in vessels])


def sensitivity_by_width(prob, part, threshold, width=5):
    """Share of vessel pixels found (prob > threshold), inside the FOV, in vessels at least ``width``
    px wide and in the thinner ones. -> (wide, thin)."""
    vessel = (part.vessels > 0) & part.fov
    wide = wide_vessels(part.vessels, width) & vessel
    found = prob > threshold
    thin = vessel & ~wide
    return (float(found[wide].mean()) if wide.any() else float("nan"),
            float(found[thin].mean()) if thin.any() else float("nan"))


def scores(prob_val, prob_test, split, prob_train=None):
    """In-FOV scores: the threshold with the best mean Dice on the validation crops, then the mean
    ROC AUC and Dice over the test crops (and the training crops when ``prob_train`` is given).
    -> dict ``auc, dice, threshold`` (+ ``train_auc, train_dice``)."""
    threshold, _ = best_dice_threshold(prob_val, split.val.vessels, split.val.fov)
    test = segmentation_report(prob_test, split.test.vessels, split.test.fov, threshold=threshold)["mean"]
    out = {"auc": test["auc"], "dice": test["dice"], "threshold": threshold}
    if prob_train is not None:
        train = segmentation_report(prob_train, split.train.vessels, split.train.fov, threshold=threshold)["mean"]
        out.update(train_auc=train["auc"], train_dice=train["dice"])
    return out


# ----------------------------------------------------------------------------- clock and machine
class Clock:
    """Wall time of a block and the machine's 1-minute load average at its start and end::

        with Clock() as clock:
            ...
        clock.seconds, clock.load      # e.g. 41.2, "4.1-5.3"
    """

    def __enter__(self):
        self.load_start = os.getloadavg()[0]
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        self.load_end = os.getloadavg()[0]
        lo, hi = sorted((self.load_start, self.load_end))
        self.load = f"{lo:.1f}-{hi:.1f}"
        return False


def machine():
    """One line about where a run happened: cores, handprop's threads, engine, date."""
    from .. import get_engine, get_num_threads

    threads = get_num_threads()
    return (f"{os.cpu_count()} cores ({platform.machine()}), engine {get_engine()}, threads numba "
            f"{threads.get('numba')} / BLAS {threads.get('blas')}, {datetime.date.today().isoformat()}")


# ----------------------------------------------------------------------------- output
def fmt(value, digits=3):
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    return f"{value:.{digits}f}"


def pm(values, digits=3):
    """``mean ± sd`` of a list (``sd`` over runs, ddof 1), or the value alone for one run."""
    values = np.asarray(values, np.float64)
    if len(values) == 1:
        return fmt(float(values[0]), digits)
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_outputs(out, name, title, header, rows, notes, figure, results):
    """Write ``name.md`` (title, table, notes, the figure), ``name.png`` and ``name.json`` to ``out``.
    Returns the paths ``{"table", "figure", "json"}``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"table": out / f"{name}.md", "figure": out / f"{name}.png", "json": out / f"{name}.json"}
    figure.savefig(paths["figure"], dpi=90, bbox_inches="tight")
    text = [f"# {title}", "", markdown_table(header, rows), "", *notes, "", f"![{title}]({name}.png)", ""]
    paths["table"].write_text("\n".join(text))
    paths["json"].write_text(json.dumps(jsonable(results, digits=5), indent=1) + "\n")
    return paths


def say(verbose, text):
    if verbose:
        print(text, flush=True)
