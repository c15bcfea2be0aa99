"""The tutorial's comparisons, measured: each experiment trains its models on the synthetic retina
(split by patient) or on synthetic vessel volumes and writes a Markdown table, a PNG figure and the
raw numbers (JSON) to ``docs/experiments/``::

    python -m handprop.experiments patch_sizes           # one experiment (a few minutes on 2 cores)
    python -m handprop.experiments all                   # all six, one after the other
    python -m handprop.experiments patch_sizes --smoke   # a trivial size, seconds: checks that it runs

or from Python: ``handprop.experiments.run("ensembles", out="docs/experiments")``.

======================  ===========================================================================
experiment              question
======================  ===========================================================================
``patch_sizes``         5x5, 11x11, 29x29 patch classifiers vs the dilated context network vs U-Net
``ensembles``           ensembles of 1, 3 and 5 U-Nets (different seeds): the gain over one model
``regularization``      none / dropout / L2 / batch norm / augmentation / all: training vs test score
``pretraining``         autoencoder pre-training vs random init with 1 %, 10 %, 100 % of the labels
``triplanar_vs_3d``     three orthogonal 2-D patches vs a 3-D CNN on a synthetic vessel volume
``reducing_parameters`` full, factorized, dilated, shared and depthwise-separable 7x7 context blocks
======================  ===========================================================================

Every score is in-FOV on the test patients (ROC AUC, and Dice at the validation patients'
best-Dice threshold); every table gives the sizes used, the wall time, and the machine's load
average while it ran (the times are only comparable within a table). :func:`run` uses one thread
(``hp.set_num_threads(1)``) unless told otherwise: on a shared 2-core machine two threads per
process made training several times *slower*, and one thread makes the times steadier.
"""

from __future__ import annotations

import importlib

EXPERIMENTS = {
    "patch_sizes": "context",
    "ensembles": "ensembles",
    "regularization": "regularization",
    "pretraining": "pretraining",
    "triplanar_vs_3d": "volumes",
    "reducing_parameters": "reduction",
}
"""Experiment name -> the module (in this package) whose ``run(out, smoke, seed, verbose)`` does it."""


def run(name, out=None, smoke=False, seed=0, verbose=1, threads=1):
    """Run experiment ``name`` (a key of :data:`EXPERIMENTS`), writing ``name.md``, ``name.png`` and
    ``name.json`` to ``out`` (default ``docs/experiments``). ``smoke=True``: trivial sizes (a few
    seconds), to check that it runs. ``threads``: :func:`handprop.set_num_threads` (None: leave as is).
    Returns ``{"results": ..., "paths": {"table", "figure", "json"}}``."""
    if name not in EXPERIMENTS:
        raise ValueError(f"handprop.experiments.run: unknown experiment {name!r}; choose from {sorted(EXPERIMENTS)}")
    from .. import set_num_threads
    from .common import DEFAULT_OUT

    if threads is not None:
        set_num_threads(threads)
    module = importlib.import_module(f".{EXPERIMENTS[name]}", __name__)
    return module.run(DEFAULT_OUT if out is None else out, smoke=smoke, seed=seed, verbose=verbose)


__all__ = ["EXPERIMENTS", "run"]
