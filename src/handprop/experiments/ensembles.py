"""Ensembles: average the vessel probabilities of 1, 3 or 5 U-Nets that differ only in their seed
(initial weights and the order of the training tiles), and compare with the single models.

Every subset of the five trained models of a given size is an ensemble (5 of size 1, 10 of size 3,
1 of size 5): the table gives the mean (± sd) over those subsets, so that "an ensemble of 3" is not
one lucky draw. Each ensemble gets its own threshold (best mean Dice on the validation patients).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from .. import architectures as arch
from .common import (
    FULL,
    SMOKE,
    Clock,
    fcn_probabilities,
    machine,
    pm,
    retina_split,
    say,
    scores,
    train_fcn,
    write_outputs,
)

NAME = "ensembles"


def run(out, smoke=False, seed=0, verbose=1, n_models=5, sizes_k=(1, 3, 5)):
    """Train ``n_models`` U-Nets (seeds ``seed .. seed + n_models - 1``), score every ensemble of each
    size in ``sizes_k`` and write ``ensembles.md / .png / .json`` to ``out``. Returns the results."""
    sizes = SMOKE if smoke else FULL
    split = retina_split(sizes, seed)
    steps, epochs, tile = (2, 1, 32) if smoke else (30, 6, 64)
    members = []
    for k in range(n_models):
        with Clock() as clock:
            model = arch.unet(3, depth=2, width=8, seed=seed + k)
            train_fcn(model, split.train, steps=steps, epochs=epochs, tile=tile, batch_size=8, seed=seed + k)
            prob_val, prob_test = fcn_probabilities(model, split.val.x), fcn_probabilities(model, split.test.x)
        s = scores(prob_val, prob_test, split)
        members.append(dict(seed=seed + k, val=prob_val, test=prob_test, seconds=clock.seconds, load=clock.load,
                            **s))
        say(verbose, f"U-Net seed {seed + k}: AUC {s['auc']:.4f} Dice {s['dice']:.4f} ({clock.seconds:.0f} s, "
                     f"load {clock.load})")
    by_k = {}
    for k in sizes_k:
        runs = []
        for subset in combinations(range(n_models), k):
            prob_val = np.mean([members[i]["val"] for i in subset], axis=0)
            prob_test = np.mean([members[i]["test"] for i in subset], axis=0)
            runs.append(dict(members=[members[i]["seed"] for i in subset], **scores(prob_val, prob_test, split)))
        by_k[k] = runs
    single_auc = np.mean([m["auc"] for m in members])
    single_dice = np.mean([m["dice"] for m in members])
    rows, results = [], []
    for k, runs in by_k.items():
        auc, dice = [r["auc"] for r in runs], [r["dice"] for r in runs]
        results.append(dict(k=k, ensembles=len(runs), auc_mean=float(np.mean(auc)), dice_mean=float(np.mean(dice)),
                            auc_gain=float(np.mean(auc) - single_auc), dice_gain=float(np.mean(dice) - single_dice),
                            runs=runs))
        rows.append([f"{k}", f"{len(runs)}", pm(auc, 4), pm(dice, 4), f"{np.mean(auc) - single_auc:+.4f}",
                     f"{np.mean(dice) - single_dice:+.4f}", f"{max(auc):.4f}", f"{max(dice):.4f}"])
        say(verbose, f"ensembles of {k}: AUC {np.mean(auc):.4f} Dice {np.mean(dice):.4f}")
    seconds = sum(m["seconds"] for m in members)
    loads = sorted(float(x) for m in members for x in m["load"].split("-"))
    load = f"{loads[0]:.1f}-{loads[-1]:.1f}"
    header = ["models", "ensembles of this size", "test AUC (mean ± sd over ensembles)", "test Dice",
              "AUC gain over a single model", "Dice gain", "best AUC", "best Dice"]
    notes = [f"Data: {sizes.describe()}; seed {seed}.",
             f"Models: `arch.unet(3, depth=2, width=8, seed=s)` for s = {seed}..{seed + n_models - 1}, each "
             f"trained {epochs} epochs x {steps} batches of 8 random {tile}x{tile} tiles (the tile order also "
             "follows the seed), BCE on logits masked by the FOV, Adam 2e-3, no augmentation. An ensemble "
             "averages its members' probabilities; its threshold is the best-Dice one on the validation crops.",
             "Scores: mean over the test crops, inside the FOV. The gain is the ensembles' mean minus the single "
             "models' mean (the row '1').",
             f"Training: {seconds:.0f} s for the {n_models} models together (wall clock, load {load}, 1-minute load "
             f"average of the shared 2-core machine at the start and end of each model). Machine: {machine()}."]
    fig = _figure(by_k)
    paths = write_outputs(out, NAME, "Ensembles of U-Nets with different seeds", header, rows, notes, fig,
                          dict(sizes=sizes.__dict__, seed=seed, patients=split.patients, training_seconds=seconds,
                               load=load, members=[{k: v for k, v in m.items() if k not in ("val", "test")}
                                                   for m in members], ensembles=results))
    return dict(results=results, paths=paths)


def _figure(by_k):
    from ..viz.figure import Figure

    fig = Figure(figsize=(8.5, 3.4), layout="constrained")
    for col, metric in enumerate(("auc", "dice")):
        ax = fig.add_subplot(1, 2, col + 1)
        for k, runs in by_k.items():
            values = [r[metric] for r in runs]
            ax.scatter(np.full(len(values), k) + np.linspace(-0.15, 0.15, len(values)), values, s=14, alpha=0.6)
            ax.errorbar(k + 0.3, np.mean(values), yerr=np.std(values, ddof=1) if len(values) > 1 else 0,
                        fmt="o", color="black", capsize=3)
        ax.set_xticks(list(by_k))
        ax.set_xlabel("models in the ensemble")
        ax.set_ylabel(f"test {metric.upper() if metric == 'auc' else 'Dice'}")
        ax.grid(alpha=0.3)
    fig.suptitle("Every ensemble of 1, 3 and 5 of five U-Nets (dots); mean ± sd (black)", fontsize=9)
    return fig
