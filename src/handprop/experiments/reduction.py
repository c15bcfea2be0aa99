"""Reducing parameters (the tutorial's slide), measured: one small fully convolutional network whose
only difference is how its 7 x 7 context block is built -- a full 7 x 7 convolution, a factorized
7 x 1 then 1 x 7 pair, a dilated 3 x 3 (dilation 3), one 3 x 3 convolution applied three times
(shared weights), or a depthwise 7 x 7 then a 1 x 1 (depthwise-separable) -- trained the same way
and scored on the test patients. A network without the block (a 3 x 3 layer and the 1 x 1 output:
a 3-pixel context) shows what the context is worth in the first place.

All blocks see a 7 x 7 window (receptive field 9 with the stem); they differ in weights, in which
of the 49 pixels they can weigh independently, and in depth (factorized and shared blocks add
nonlinearities or layers).
"""

from __future__ import annotations

import numpy as np

from .. import architectures as arch
from ..layers import Conv2D, ReLU
from ..model import Sequential
from ..receptive_field import receptive_field
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

NAME = "reducing_parameters"
BASELINE = "none (3x3 only)"


def build(kind, filters=16, seed=0):
    """The network of ``kind`` (one of ``arch.REDUCTIONS`` or BASELINE) on 3-channel images."""
    if kind == BASELINE:
        return Sequential([Conv2D(filters, 3, padding="same"), ReLU(), Conv2D(1, 1)], seed=seed,
                          input_shape=(3, None, None), name="no_context_block")
    return arch.parameter_reduction_net(kind, in_channels=3, out_channels=1, filters=filters, kernel_size=7,
                                        seed=seed)


def block_params(model, filters=16):
    """Weights of the context block alone: the model's minus the stem's (3x3, 3 -> F) and the head's (1x1, F -> 1)."""
    return model.count_params() - (3 * 9 * filters + filters) - (filters + 1)


def run(out, smoke=False, seed=0, verbose=1, seeds=2, steps=30, epochs=6, filters=16):
    """Train every kind with ``seeds`` seeds; write ``reducing_parameters.md / .png / .json`` to ``out``."""
    sizes = SMOKE if smoke else FULL
    if smoke:
        seeds, steps, epochs = 1, 2, 1
    tile = min(64, sizes.crop)
    split = retina_split(sizes, seed)
    rows, results = [], []
    for kind in (BASELINE, *arch.REDUCTIONS):
        runs = []
        with Clock() as clock:
            for s in range(seed, seed + seeds):
                model = build(kind, filters, seed=s)
                train_fcn(model, split.train, steps=steps, epochs=epochs, tile=tile, batch_size=8, seed=s)
                runs.append(scores(fcn_probabilities(model, split.val.x, 1), fcn_probabilities(model, split.test.x, 1),
                                   split))
        field = receptive_field(model)[-1]
        params = model.count_params()
        block = block_params(model, filters) if kind != BASELINE else 0
        results.append(dict(kind=kind, params=params, block_params=block, receptive_field=field, runs=runs,
                            seconds_per_run=clock.seconds / seeds, load=clock.load))
        rows.append([kind, f"{block:,}", f"{params:,}", f"{field}", pm([r["auc"] for r in runs], 4),
                     pm([r["dice"] for r in runs], 4), f"{clock.seconds / seeds:.0f}", clock.load])
        say(verbose, f"{kind}: {params:,} weights, AUC {np.mean([r['auc'] for r in runs]):.4f} Dice "
                     f"{np.mean([r['dice'] for r in runs]):.4f} ({clock.seconds:.0f} s, load {clock.load})")
    header = ["context block", "block weights", "all weights", "receptive field (px)", "test AUC", "test Dice",
              "seconds per run", "load"]
    notes = [f"Data: {sizes.describe()}; seed {seed}.",
             f"Network: `arch.parameter_reduction_net(kind, in_channels=3, filters={filters}, kernel_size=7)` = "
             "`Conv2D(16, 3) -> ReLU -> block -> ReLU -> Conv2D(1, 1)`, all 'same' padding; the first row leaves "
             f"the block out. Training: {epochs} epochs x {steps} batches of 8 random {tile}x{tile} tiles, BCE on "
             "logits masked by the FOV, Adam 2e-3, no augmentation.",
             f"Values: mean ± sd over {seeds} seeds; scores on the test crops, inside the FOV, Dice at the "
             "validation's best-Dice threshold. `model.summary()` lists the same counts (a shared layer once).",
             f"Times: wall clock per run on a shared 2-core machine (load: 1-minute load average at the start and "
             f"end of the kind's runs). Machine: {machine()}."]
    fig = _figure(results)
    paths = write_outputs(out, NAME, "Reducing parameters: five 7x7 context blocks", header, rows, notes, fig,
                          dict(sizes=sizes.__dict__, seed=seed, seeds=seeds, patients=split.patients,
                               results=results))
    return dict(results=results, paths=paths)


def _figure(results):
    from ..viz.figure import Figure

    fig = Figure(figsize=(8.5, 3.4), layout="constrained")
    for col, metric in enumerate(("auc", "dice")):
        ax = fig.add_subplot(1, 2, col + 1)
        for r in results:
            values = [run[metric] for run in r["runs"]]
            sd = np.std(values, ddof=1) if len(values) > 1 else 0.0
            ax.errorbar(max(r["params"], 1), np.mean(values), yerr=sd, fmt="o", capsize=3, label=r["kind"])
        ax.set_xscale("log")
        ax.set_xlabel("weights of the whole network")
        ax.set_ylabel(f"test {'AUC' if metric == 'auc' else 'Dice'}")
        ax.grid(alpha=0.3)
        if col == 0:
            ax.legend(fontsize=7)
    fig.suptitle("Accuracy against parameters (mean ± sd over seeds)", fontsize=9)
    return fig
