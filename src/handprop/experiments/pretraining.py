"""Pre-training: does an autoencoder trained on unlabeled images help a patch classifier that has
only 1 %, 10 % or 100 % of the labels?

1. A convolutional autoencoder (:func:`handprop.architectures.conv_autoencoder`, filters 16, 32)
   learns to reproduce 16 x 16 tiles of the training images -- no labels used.
2. Its encoder is put under a small head (:func:`handprop.architectures.classifier_from_encoder`:
   Flatten -> Dense(64) -> ReLU -> Dense(2)) and the classifier is trained on labelled 16 x 16
   patches (centre pixel vessel or not): a fixed balanced pool, of which 1 %, 10 % or 100 % is used.
3. Four ways to start: **random** initial weights (everything trained); **pretrained, frozen**
   (only the head learns); **pretrained, then fine-tuned** (the head first, encoder frozen, for half
   of the steps; then everything with a 10x smaller learning rate: the recipe of
   :mod:`handprop.architectures.autoencoder`); **pretrained init** (the pretrained encoder is only
   the starting point: everything trained from the first step, as the random start).

Every run takes the same number of optimizer steps, whatever the number of labels (a small set is
seen for more epochs), so a small set is not also an undertrained one. The encoder pads with zeros
("same"), so the classifier cannot be made fully convolutional exactly; it is scored on patches
around a fixed random sample of FOV pixels of the validation and test crops (uniform, so the
vessel share is the natural one): AUC over the sampled test pixels, Dice over them pooled.
"""

from __future__ import annotations

import numpy as np

from .. import architectures as arch
from .. import losses, optimizers
from ..data import extract_patches, extract_tiles
from ..metrics import dice, roc_auc
from ..model import clone_model
from ..segmentation import best_dice_threshold
from .common import FULL, SMOKE, Clock, machine, pm, retina_split, say, sigmoid, write_outputs

NAME = "pretraining"
FRACTIONS = (0.01, 0.1, 1.0)
STARTS = ("random", "pretrained, frozen", "pretrained, then fine-tuned", "pretrained init")


def sampled_patches(part, size, n, seed):
    """Patches around ``n`` FOV pixels drawn uniformly from the crops of ``part`` and their labels."""
    return extract_patches(part.x, part.vessels, part.fov, size, -(-n // len(part)), seed=seed)


def pretrain_encoder(split, patch_size, tiles, epochs, seed):
    """Train the autoencoder on ``tiles`` random tiles of the training crops (no labels); -> its encoder."""
    x, _, _ = extract_tiles(split.train.x, None, split.train.fov, patch_size, -(-tiles // len(split.train)),
                            seed=seed)
    autoencoder, encoder = arch.conv_autoencoder(3, filters=(16, 32), seed=seed)
    autoencoder.compile(loss=losses.MeanSquaredError(), optimizer=optimizers.Adam(2e-3))
    history = autoencoder.fit(x, x, epochs=epochs, batch_size=32, verbose=0)
    return encoder, history.history["loss"]


def train_classifier(start, encoder, x, y, steps, batch_size, seed):
    """One classifier from ``start`` (see STARTS) trained for ``steps`` optimizer steps on (x, y)."""
    if start == "random":
        _, encoder = arch.conv_autoencoder(3, filters=(16, 32), seed=seed + 100)
    else:
        encoder = clone_model(encoder)  # every run starts from the same pretrained weights
    freeze = start in ("pretrained, frozen", "pretrained, then fine-tuned")
    model = arch.classifier_from_encoder(encoder, 2, dense_units=64, freeze=freeze, input_shape=x.shape[1:],
                                         seed=seed)
    phases = [(steps, 2e-3)]
    if start == "pretrained, then fine-tuned":
        phases = [(steps // 2, 2e-3), (steps - steps // 2, 2e-4)]
    for k, (n_steps, lr) in enumerate(phases):
        if k == 1:
            encoder.trainable = True
        model.compile(loss=losses.SoftmaxCrossEntropy(), optimizer=optimizers.Adam(lr))
        epochs = max(1, round(n_steps * batch_size / len(x)))
        model.fit(x, y, epochs=epochs, batch_size=min(batch_size, len(x)), verbose=0)
    return model


def vessel_probability(model, x):
    logits = model.predict(x, batch_size=512)
    return sigmoid(logits[:, 1] - logits[:, 0])


def run(out, smoke=False, seed=0, verbose=1, patch_size=16, pool=8000, steps=400, batch_size=32, ae_tiles=4096,
        ae_epochs=10, n_val=3000, n_test=6000, seeds=3):
    """Pre-train, train every (start, fraction) classifier and write ``pretraining.md / .png / .json``."""
    sizes = SMOKE if smoke else FULL
    if smoke:
        pool, steps, ae_tiles, ae_epochs, n_val, n_test, seeds = 200, 4, 64, 1, 100, 100, 1
    split = retina_split(sizes, seed)
    with Clock() as clock:
        encoder, ae_loss = pretrain_encoder(split, patch_size, ae_tiles, ae_epochs, seed)
    ae_seconds, ae_load = clock.seconds, clock.load
    say(verbose, f"autoencoder: reconstruction MSE {ae_loss[0]:.3f} -> {ae_loss[-1]:.3f} ({ae_seconds:.0f} s)")
    x_pool, y_pool = extract_patches(split.train.x, split.train.vessels, split.train.fov, patch_size,
                                     -(-pool // len(split.train)), balance=0.5, seed=seed)
    x_val, y_val = sampled_patches(split.val, patch_size, n_val, seed + 1)
    x_test, y_test = sampled_patches(split.test, patch_size, n_test, seed + 2)
    everything = np.ones((1, len(y_val)), bool)
    rows, results = [], []
    for fraction in FRACTIONS:
        n = max(2, int(round(fraction * len(x_pool))))
        for start in STARTS:
            runs = []
            with Clock() as clock:
                for s in range(seed, seed + seeds):  # the seed picks the labelled subset too
                    chosen = np.random.default_rng([s, 7]).permutation(len(x_pool))[:n]
                    model = train_classifier(start, encoder, x_pool[chosen], y_pool[chosen], steps, batch_size, s)
                    p_val, p_test = vessel_probability(model, x_val), vessel_probability(model, x_test)
                    threshold, _ = best_dice_threshold(p_val[None], y_val[None], everything)
                    runs.append(dict(seed=s, auc=roc_auc(p_test, y_test), threshold=threshold,
                                     dice=dice(p_test, y_test, threshold=threshold)))
            auc, d = [r["auc"] for r in runs], [r["dice"] for r in runs]
            results.append(dict(fraction=fraction, labels=n, start=start, auc=float(np.mean(auc)),
                                dice=float(np.mean(d)), runs=runs, trainable_params=model.count_trainable_params(),
                                seconds_per_run=clock.seconds / seeds, load=clock.load))
            rows.append([f"{fraction:.0%}", f"{n:,}", start, pm(auc, 4), pm(d, 4),
                         f"{model.count_trainable_params():,}", f"{clock.seconds / seeds:.0f}", clock.load])
            say(verbose, f"{fraction:.0%} ({n} labels), {start}: AUC {np.mean(auc):.4f} Dice {np.mean(d):.4f} "
                         f"({clock.seconds:.0f} s)")
    header = ["labels used", "labelled patches", "start", "test AUC", "test Dice", "trained weights",
              "seconds per run", "load"]
    total = sum(r["seconds_per_run"] * seeds for r in results) + ae_seconds
    notes = [f"Data: {sizes.describe()}; seed {seed}.",
             f"Pre-training: `arch.conv_autoencoder(3, filters=(16, 32))` on {ae_tiles} random {patch_size}x"
             f"{patch_size} tiles of the training crops, MSE, Adam 2e-3, {ae_epochs} epochs: reconstruction MSE "
             f"{ae_loss[0]:.3f} -> {ae_loss[-1]:.3f} (mean of the first and last epoch; the inputs are "
             "standardized, so predicting 0 everywhere scores about 1), "
             f"{ae_seconds:.0f} s (load {ae_load}).",
             f"Classifiers: `arch.classifier_from_encoder(encoder, 2, dense_units=64)`; {len(x_pool):,} balanced "
             f"labelled {patch_size}x{patch_size} patches of the training crops = 100 %; every run {steps} Adam "
             f"steps of batch {batch_size} (lr 2e-3; 'then fine-tuned': half the steps frozen, half everything at "
             "2e-4); the labelled subset is drawn anew for every seed.",
             f"Scores: {len(y_test):,} uniformly sampled FOV pixels of the test crops (AUC; Dice pooled over "
             f"them at the threshold with the best Dice on {len(y_val):,} pixels of the validation crops).",
             f"Values: mean ± sd over {seeds} seeds (classifier weights, labelled subset, batch order; one "
             f"autoencoder). Total {total:.0f} s on a shared machine ({machine()}); 'load' is the 1-minute load "
             "average at the start and end of each row's runs."]
    fig = _figure(results)
    paths = write_outputs(out, NAME, "Autoencoder pre-training vs random initialization", header, rows, notes, fig,
                          dict(sizes=sizes.__dict__, seed=seed, patients=split.patients, ae_loss=ae_loss,
                               ae_seconds=ae_seconds, pool=len(x_pool), steps=steps, seeds=seeds, results=results))
    return dict(results=results, paths=paths)


def _figure(results):
    from ..viz.figure import Figure

    fig = Figure(figsize=(8.5, 3.3), layout="constrained")
    for col, metric in enumerate(("auc", "dice")):
        ax = fig.add_subplot(1, 2, col + 1)
        for start in STARTS:
            rows = [r for r in results if r["start"] == start]
            sd = [np.std([run[metric] for run in r["runs"]], ddof=1) if len(r["runs"]) > 1 else 0.0 for r in rows]
            ax.errorbar([r["labels"] for r in rows], [r[metric] for r in rows], yerr=sd, fmt="o-", capsize=3,
                        label=start)
        ax.set_xscale("log")
        ax.set_xlabel("labelled patches")
        ax.set_ylabel(f"test {'AUC' if metric == 'auc' else 'Dice'}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Autoencoder pre-training vs random initialization", fontsize=9)
    return fig
