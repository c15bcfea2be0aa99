"""Regularization and the generalization gap: one patch classifier trained on a small fixed set of
patches, without and with dropout, L2 weight decay, batch normalization, data augmentation, and all
of them, each over several seeds; the score on the training patients next to the score on the test
patients.

A network that has seen the same few thousand patches for many epochs fits them, and the training
patients' pixels (which those patches come from) score better than the test patients': the gap
between the two is what a regularizer should narrow -- ideally by raising the test score, not only
by lowering the training score.

* dropout: ``Dropout(0.5)`` before the last layer;
* L2: ``Adam(weight_decay=1e-3)`` (``g <- g + 1e-3 w`` on every weight);
* batch norm: ``BatchNorm`` after each convolution;
* augmentation: every epoch, each training patch is flipped / rotated by a random one of the
  8 symmetries of the square and its intensities scaled by U(0.9, 1.1) and shifted by U(-0.1, 0.1)
  (the patches are standardized, so this is a contrast and brightness change);
* all: the four together.
"""

from __future__ import annotations

import numpy as np

from .. import losses, optimizers
from ..data import extract_patches
from ..layers import BatchNorm, Conv2D, Dense, Dropout, Flatten, MaxPool2D, PReLU
from ..metrics import roc_auc
from ..model import Sequential
from .common import FULL, SMOKE, Clock, machine, patch_probabilities, pm, retina_split, say, scores, write_outputs

NAME = "regularization"

SETTINGS = {
    "none": dict(),
    "dropout": dict(dropout=0.5),
    "L2": dict(weight_decay=1e-3),
    "batch norm": dict(batchnorm=True),
    "augmentation": dict(augment=True),
    "all": dict(dropout=0.5, weight_decay=1e-3, batchnorm=True, augment=True),
}


def regularized_patch_net(patch_size=11, dropout=0.0, batchnorm=False, dense_units=256, seed=0):
    """``Conv(16, 3) -> (BatchNorm) -> PReLU -> MaxPool 2 -> Conv(32, 3) -> (BatchNorm) -> PReLU ->
    MaxPool 2 -> Flatten -> Dense(dense_units) -> PReLU -> (Dropout) -> Dense(2)`` on
    (3, patch_size, patch_size) patches (valid padding: 11 -> 9 -> 4 -> 2 -> 1)."""
    layers = []
    for filters in (16, 32):
        layers.append(Conv2D(filters, 3, use_bias=not batchnorm))
        layers += [BatchNorm()] if batchnorm else []
        layers += [PReLU(), MaxPool2D(2)]
    layers += [Flatten(), Dense(dense_units), PReLU(), *([Dropout(dropout)] if dropout else []), Dense(2)]
    return Sequential(layers, seed=seed, input_shape=(3, patch_size, patch_size), name="regularized_patch_net")


class AugmentedPatches:
    """A batch source over fixed patches: every epoch each patch gets a random symmetry of the square
    (flips and 90-degree rotations) and a random contrast / brightness change. ``epoch(i)`` is
    reproducible from ``(seed, i)``."""

    def __init__(self, x, y, batch_size=128, seed=0):
        self.x, self.y, self.batch_size, self.seed = x, y, int(batch_size), int(seed)

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def epoch(self, i):
        rng = np.random.default_rng([self.seed, int(i)])
        n = len(self.x)
        x = self.x.copy()
        turns, flips = rng.integers(0, 4, n), rng.random(n) < 0.5
        for k in range(4):
            chosen = turns == k
            x[chosen] = np.rot90(x[chosen], k, axes=(2, 3))
        x[flips] = x[flips][..., ::-1]
        x = x * rng.uniform(0.9, 1.1, (n, 1, 1, 1)) + rng.uniform(-0.1, 0.1, (n, 1, 1, 1))
        x = x.astype(np.float32)
        order = rng.permutation(n)
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            yield x[idx], self.y[idx]


def train_one(split, patches, labels, setting, epochs, seed, patch_size):
    """Train the patch net with one regularization ``setting`` (a dict of SETTINGS) on fixed patches;
    return its scores on the training and test patients."""
    model = regularized_patch_net(patch_size, setting.get("dropout", 0.0), setting.get("batchnorm", False),
                                  seed=seed)
    model.compile(loss=losses.SoftmaxCrossEntropy(),
                  optimizer=optimizers.Adam(2e-3, weight_decay=setting.get("weight_decay", 0.0)))
    if setting.get("augment"):
        model.fit(AugmentedPatches(patches, labels, 128, seed=seed), epochs=epochs, verbose=0)
    else:
        model.fit(patches, labels, epochs=epochs, batch_size=128, verbose=0)
    probs = [patch_probabilities(model, part.x) for part in (split.train, split.val, split.test)]
    logits = model.predict(patches, batch_size=512)
    return dict(fit_auc=roc_auc(logits[:, 1] - logits[:, 0], labels),
                **scores(probs[1], probs[2], split, prob_train=probs[0]))


def run(out, smoke=False, seed=0, verbose=1, seeds=3, patches=1000, epochs=100, patch_size=11):
    """Train every setting of SETTINGS with ``seeds`` seeds and write ``regularization.md / .png /
    .json`` to ``out``. Returns the results."""
    sizes = SMOKE if smoke else FULL
    if smoke:
        seeds, patches, epochs = 2, 64, 1
    split = retina_split(sizes, seed)
    x, y = extract_patches(split.train.x, split.train.vessels, split.train.fov, patch_size,
                           -(-patches // len(split.train)), balance=0.5, seed=seed)
    rows, results = [], []
    for name, setting in SETTINGS.items():
        runs = []
        with Clock() as clock:
            for s in range(seed, seed + seeds):
                runs.append(train_one(split, x, y, setting, epochs, s, patch_size))
        gap = [r["fit_auc"] - r["auc"] for r in runs]
        results.append(dict(setting=name, runs=runs, seconds=clock.seconds, load=clock.load))
        rows.append([name, pm([r["fit_auc"] for r in runs], 4), pm([r["train_auc"] for r in runs], 4),
                     pm([r["auc"] for r in runs], 4), pm(gap, 4), pm([r["train_dice"] for r in runs]),
                     pm([r["dice"] for r in runs]), f"{clock.seconds / seeds:.0f}", clock.load])
        mean = {k: np.mean([r[k] for r in runs]) for k in ("fit_auc", "train_auc", "auc")}
        say(verbose, f"{name}: AUC on the training patches {mean['fit_auc']:.4f}, training patients "
                     f"{mean['train_auc']:.4f}, test {mean['auc']:.4f}, gap {np.mean(gap):.4f} ({clock.seconds:.0f} s, "
                     f"load {clock.load})")
    header = ["regularization", "AUC, training patches", "AUC, training patients", "AUC, test patients",
              "gap (training patches - test)", "Dice, training patients", "Dice, test patients", "seconds per run",
              "load"]
    notes = [f"Data: {sizes.describe()}; seed {seed}. Training set: {len(x)} fixed balanced {patch_size}x"
             f"{patch_size} patches of the training crops (half centred on vessels), {epochs} epochs, batch 128, "
             "Adam 2e-3.",
             f"Values: mean ± sd over {seeds} seeds (initial weights, batch order and augmentation). Three "
             "scores: the ROC AUC on the training patches themselves (what the network was fitted to; "
             "AUC does not depend on their 50 % vessel share), on every FOV pixel of the training patients' "
             "crops (mostly pixels of no training patch, but the same eyes), and on the test patients' crops. "
             "The gap is the first minus the last. Dice inside the FOV at the validation patients' best-Dice "
             "threshold.",
             "Network: `Conv(16, 3) -> (BN) -> PReLU -> pool -> Conv(32, 3) -> (BN) -> PReLU -> pool -> Dense(256) "
             f"-> PReLU -> (Dropout 0.5) -> Dense(2)` ({regularized_patch_net(patch_size).count_params():,} weights "
             "without BN); L2: `Adam(weight_decay=1e-3)`; "
             "augmentation: random flips / 90° rotations and contrast x U(0.9, 1.1), brightness + U(-0.1, 0.1), "
             "drawn anew every epoch.",
             f"Times: wall clock per run on a shared 2-core machine (load: its 1-minute load average at the start "
             f"and end of the setting's runs). Machine: {machine()}."]
    fig = _figure(results)
    paths = write_outputs(out, NAME, "Regularization and the generalization gap", header, rows, notes, fig,
                          dict(sizes=sizes.__dict__, seed=seed, seeds=seeds, patches=len(x), epochs=epochs,
                               patients=split.patients, results=results))
    return dict(results=results, paths=paths)


def _figure(results):
    from ..viz.figure import Figure

    fig = Figure(figsize=(9.0, 3.4), layout="constrained")
    x = np.arange(len(results))
    panels = (("auc", (("fit_auc", "training patches"), ("train_auc", "training patients"), ("auc", "test patients"))),
              ("dice", (("train_dice", "training patients"), ("dice", "test patients"))))
    for col, (metric, bars) in enumerate(panels):
        ax = fig.add_subplot(1, 2, col + 1)
        width = 0.8 / len(bars)
        for k, (key, label) in enumerate(bars):
            values = [[r[key] for r in res["runs"]] for res in results]
            sd = [np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in values]
            ax.bar(x + (k - (len(bars) - 1) / 2) * width, [np.mean(v) for v in values], width, yerr=sd, capsize=2,
                   label=label)
        every = [r[key] for res in results for r in res["runs"] for key, _ in bars]
        ax.set_ylim(max(0.0, min(every) - 0.03), max(every) + 0.01)
        ax.set_xticks(x, [res["setting"] for res in results], fontsize=8, rotation=20)
        ax.set_ylabel("AUC" if metric == "auc" else "Dice")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, ncol=len(bars), loc="upper center", bbox_to_anchor=(0.5, -0.2))
    fig.suptitle("Training vs test, mean ± sd over seeds", fontsize=9)
    return fig
