"""Triplanar (2.5-D) vs 3-D: classify the voxels of a synthetic vessel volume from three orthogonal
patches through the voxel, or from the cube around it.

The trade-off the tutorial describes: a 3-D convolution sees all of the neighbourhood but costs
``k`` times the weights of a 2-D one and works on ``s`` times more positions; three 2-D planes see
only three slices of it, at a fraction of the cost. Here both are trained on the same voxels of the
same training volumes (tubes through noise, :func:`handprop.data.synthetic_vessel_volume`; each
volume is one "patient") and scored on voxels of another volume, with the weights, training and
inference times next to the scores.
"""

from __future__ import annotations

import numpy as np

from .. import architectures as arch
from .. import losses, optimizers
from ..data import extract_cubes, extract_triplanar_patches, sample_voxel_centres, synthetic_vessel_volume
from ..metrics import dice, roc_auc
from ..segmentation import best_dice_threshold
from .common import Clock, machine, pm, say, sigmoid, write_outputs

NAME = "triplanar_vs_3d"

MODELS = {  # label: (kind, patch size, builder arguments)
    "triplanar 15x15 (x3)": ("planes", 15, dict()),
    "triplanar 15x15, shared weights": ("planes", 15, dict(shared_weights=True)),
    "3-D 9x9x9": ("cube", 9, dict()),
    "3-D 15x15x15": ("cube", 15, dict()),
}


def uniform_voxels(mask, n, seed):
    """``n`` voxel coordinates (n, 3) drawn uniformly without replacement (the natural vessel share)."""
    rng = np.random.default_rng(seed)
    flat = rng.choice(mask.size, size=min(n, mask.size), replace=False)
    return np.stack(np.unravel_index(flat, mask.shape), axis=1).astype(np.int64)


def inputs(kind, volume, mask, centres, size):
    if kind == "planes":
        return extract_triplanar_patches(volume, mask, centres, size)
    return extract_cubes(volume, mask, centres, size)


def build(kind, size, seed, **kwargs):
    if kind == "planes":
        return arch.triplanar_net(size, filters=(16, 32), dense_units=64, seed=seed, **kwargs)
    return arch.cnn3d(size, filters=(16, 32), dense_units=64, seed=seed, **kwargs)


VOLUME = dict(contrast=0.25, noise=0.3)
"""A harder volume than ``synthetic_vessel_volume``'s default (contrast 0.45, noise 0.08), on which
the models scored AUCs of 0.995-0.996 and no difference could show."""


def run(out, smoke=False, seed=0, verbose=1, shape=(48, 48, 48), train_volumes=2, per_volume=2000, epochs=4,
        n_val=2000, n_test=4000, n_seeds=3):
    """Train every model of MODELS and write ``triplanar_vs_3d.md / .png / .json`` to ``out``."""
    if smoke:
        shape, train_volumes, per_volume, epochs, n_val, n_test, n_seeds = (16, 16, 16), 1, 64, 1, 60, 60, 1
    seeds = dict(train=[1000 * seed + k for k in range(train_volumes)], val=1000 * seed + 100,
                 test=1000 * seed + 200)
    train = [synthetic_vessel_volume(shape, seed=s, **VOLUME) for s in seeds["train"]]
    volume_val, mask_val = synthetic_vessel_volume(shape, seed=seeds["val"], **VOLUME)
    volume_test, mask_test = synthetic_vessel_volume(shape, seed=seeds["test"], **VOLUME)
    centres = [sample_voxel_centres(mask, per_volume, vessel_fraction=0.5, seed=seed + k)
               for k, (_, mask) in enumerate(train)]
    val_centres, test_centres = uniform_voxels(mask_val, n_val, seed + 1), uniform_voxels(mask_test, n_test, seed + 2)
    rows, results = [], []
    for label, (kind, size, kwargs) in MODELS.items():
        parts = [inputs(kind, v, m, c, size) for (v, m), c in zip(train, centres)]
        if kind == "planes":
            x = [np.concatenate([p[0][i] for p in parts]) for i in range(3)]
        else:
            x = np.concatenate([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts])
        x_val, y_val = inputs(kind, volume_val, mask_val, val_centres, size)
        x_test, y_test = inputs(kind, volume_test, mask_test, test_centres, size)
        runs = []
        for s in range(seed, seed + n_seeds):
            model = build(kind, size, s, **kwargs)
            model.compile(loss=losses.SoftmaxCrossEntropy(), optimizer=optimizers.Adam(2e-3))
            with Clock() as train_clock:
                model.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
            with Clock() as clock:
                logits_test = model.predict(x_test, batch_size=512)
            logits_val = model.predict(x_val, batch_size=512)
            p_val, p_test = (sigmoid(z[:, 1] - z[:, 0]) for z in (logits_val, logits_test))
            threshold, _ = best_dice_threshold(p_val[None], y_val[None], np.ones((1, len(y_val)), bool))
            runs.append(dict(seed=s, auc=roc_auc(p_test, y_test), dice=dice(p_test, y_test, threshold=threshold),
                             threshold=threshold, train_seconds=train_clock.seconds, load=train_clock.load,
                             inference_seconds_per_1000=clock.seconds / len(y_test) * 1000))
        mean = {k: float(np.mean([r[k] for r in runs]))
                for k in ("auc", "dice", "train_seconds", "inference_seconds_per_1000")}
        loads = sorted(float(v) for r in runs for v in r["load"].split("-"))
        load = f"{loads[0]:.1f}-{loads[-1]:.1f}"
        results.append(dict(model=label, kind=kind, size=size, params=model.count_params(), **mean, load=load,
                            runs=runs, samples=len(y), epochs=epochs))
        rows.append([label, f"{model.count_params():,}", pm([r["auc"] for r in runs], 4),
                     pm([r["dice"] for r in runs], 4), f"{mean['train_seconds']:.0f}",
                     f"{mean['inference_seconds_per_1000']:.2f}", load])
        say(verbose, f"{label}: AUC {mean['auc']:.4f} Dice {mean['dice']:.4f}, {model.count_params():,} weights, "
                     f"{mean['train_seconds']:.0f} s training, {mean['inference_seconds_per_1000']:.2f} s / 1000 "
                     f"voxels (load {load})")
    header = ["model", "parameters", "test AUC", "test Dice", "training (s per run)", "inference (s per 1000 voxels)",
              "load"]
    notes = [f"Data: `synthetic_vessel_volume({shape}, contrast={VOLUME['contrast']}, noise={VOLUME['noise']})` "
             "(tubes of radius 1-3 voxels through noise; with the default contrast 0.45 and noise 0.08 both triplanar "
             "nets and the 9-cube 3-D net scored a test AUC of 0.995-0.996 in a first run, too close to 1 to "
             "compare): "
             f"{train_volumes} training volumes (seeds {seeds['train']}), one validation ({seeds['val']}) and one "
             f"test volume ({seeds['test']}). Training: {per_volume} voxels per training volume, half inside "
             f"vessels ({len(y):,} samples), {epochs} epochs, batch 64, Adam 2e-3. Scores: {n_test:,} uniformly "
             f"drawn voxels of the test volume (vessel share {y_test.mean():.1%}): AUC, and Dice at the threshold "
             f"with the best Dice on {n_val:,} voxels of the validation volume.",
             "Models: `arch.triplanar_net(15, filters=(16, 32), dense_units=64)` (one 2-D branch per plane, or "
             "one shared by the three) and `arch.cnn3d(s, filters=(16, 32), dense_units=64)` on the s-cube "
             f"(3x3x3 kernels, 2x2x2 pooling). Same head. Values: mean ± sd over {n_seeds} seeds (initial weights and "
             "batch order; the same training voxels).",
             f"Times: wall clock, mean over the seeds, on a shared 2-core machine (load: its 1-minute load average "
             f"at the start and end of each training). Machine: {machine()}."]
    fig = _figure(results)
    paths = write_outputs(out, NAME, "Triplanar (2.5-D) vs 3-D CNN on a synthetic vessel volume", header, rows,
                          notes, fig, dict(shape=shape, seeds=seeds, results=results))
    return dict(results=results, paths=paths)


def _figure(results):
    from ..viz.figure import Figure

    fig = Figure(figsize=(9.0, 3.3), layout="constrained")
    panels = (("params", "parameters"), ("train_seconds", "training time (s)"),
              ("inference_seconds_per_1000", "inference (s / 1000 voxels)"))
    for col, (key, label) in enumerate(panels):
        ax = fig.add_subplot(1, 3, col + 1)
        for r in results:
            aucs = [run["auc"] for run in r.get("runs", [r])]
            ax.errorbar(r[key], np.mean(aucs), yerr=np.std(aucs, ddof=1) if len(aucs) > 1 else 0.0, capsize=3,
                        fmt="o" if r["kind"] == "planes" else "s", label=r["model"])
        ax.set_xlim(0, 1.15 * max(r[key] for r in results))
        ax.set_xlabel(label)
        ax.set_ylabel("test AUC")
        ax.grid(alpha=0.3)
        if col == 0:
            ax.legend(fontsize=6)
    fig.suptitle("Accuracy against weights, training time and inference time", fontsize=9)
    return fig
