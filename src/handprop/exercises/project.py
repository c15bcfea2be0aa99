"""The project's checker: a vessel segmenter graded on test patients the student never sees.

The student's notebook trains a segmenter on synthetic patients (``hp.data.synthetic_retina``)
and defines::

    segment(images) -> probabilities      images (n, 3, H, W) float32 in [0, 1], as synthetic_retina gives
                                          them (unnormalized); probabilities (n, H, W), vessels high

The checker draws :data:`N_TEST` test patients of :data:`SIZE` from a seed: the teacher's hidden
one at grading time (``python -m handprop.exercises grade --seed S``, or the environment variable
``HANDPROP_GRADE_SEED``), else the public practice seed :data:`PRACTICE_SEED`. The library is open,
so only the seed is secret. It scores the mean in-FOV ROC AUC (``hp.metrics.roc_auc``) and the
Dice at the best threshold for the whole test set, passes at an AUC of at least :data:`PASS_AUC`
and above the green channel's (the tutorial's baseline) on the same patients, and reports ``scores`` for the leaderboard
(``python -m handprop.exercises leaderboard FOLDER``).
"""

from __future__ import annotations

import os

import numpy as np

from ..data import synthetic_retina
from ..metrics import dice, roc_auc
from .grading import as_student
from .result import CheckResult, StudentError, call_student

__all__ = ["check_project", "test_patients", "grade_seed", "PASS_AUC", "SIZE", "N_TEST", "PRACTICE_SEED"]

SIZE = (96, 96)
N_TEST = 6
PRACTICE_SEED = 1000
PASS_AUC = 0.85
SEED_VARIABLE = "HANDPROP_GRADE_SEED"


def grade_seed():
    """``(seed, hidden)``: the teacher's seed from ``HANDPROP_GRADE_SEED`` (hidden) or the practice seed."""
    value = os.environ.get(SEED_VARIABLE, "").strip()
    if value:
        try:
            return int(value), True
        except ValueError:
            raise ValueError(f"{SEED_VARIABLE}={value!r}: the grading seed must be an integer") from None
    return PRACTICE_SEED, False


def test_patients(seed):
    """The test patients of ``seed``: ``synthetic_retina(N_TEST, seed, size=SIZE)``."""
    return synthetic_retina(N_TEST, seed=seed, size=SIZE)


test_patients.__test__ = False  # not a pytest test


THRESHOLDS = np.linspace(0.05, 0.95, 19)


def _scores(probabilities, data):
    """Mean in-FOV AUC, and the mean Dice at the one threshold (of :data:`THRESHOLDS`) best for the
    whole test set: a score of the ranking that does not punish a network for calibrating low."""
    n = len(data.images)
    aucs = [roc_auc(probabilities[i], data.vessels[i], mask=data.fov[i]) for i in range(n)]
    dices = [np.mean([dice(probabilities[i] >= t, data.vessels[i], mask=data.fov[i]) for i in range(n)])
             for t in THRESHOLDS]
    return float(np.mean(aucs)), float(np.max(dices))


def check_project(segment):
    """Grade ``segment(images) -> probabilities`` on the test patients of the grading seed."""
    name = "project: vessel segmentation on unseen patients"
    segment = as_student(segment)
    seed, hidden = grade_seed()
    data = test_patients(seed)
    where = (f"{N_TEST} hidden test patients ({SIZE[0]}×{SIZE[1]})" if hidden else
             f"{N_TEST} practice patients (public seed {PRACTICE_SEED}; your teacher grades on hidden ones)")
    n, (H, W) = len(data.images), SIZE
    try:
        out = call_student(segment, data.images.copy(), what="segment")
        if out is None:
            raise StudentError("segment returned None: return the probability maps (n, H, W)")
        p = np.asarray(out, dtype=np.float64)
        if p.shape == (n, 1, H, W):
            raise StudentError(f"segment returned shape {p.shape}: drop the channel axis, (n, H, W) = {(n, H, W)}")
        if p.shape != (n, H, W):
            raise StudentError(f"segment returned shape {p.shape}, expected {(n, H, W)}: one map per image")
        if not np.all(np.isfinite(p)):
            raise StudentError("segment returned inf or nan values")
    except StudentError as error:
        return CheckResult(name, False, [f"{where}: {error}"])
    auc, dice_score = _scores(p, data)
    green = float(np.mean([roc_auc(-data.images[i, 1].astype(np.float64), data.vessels[i], mask=data.fov[i])
                           for i in range(n)]))  # vessels are dark in the green channel
    findings = [f"{where}: in-FOV AUC {auc:.4f}, Dice {dice_score:.4f} (at the best threshold); "
                f"the green channel's AUC {green:.4f}"]
    passed = auc >= PASS_AUC and auc > green
    hint = None
    if not passed:
        if auc < 0.4:
            hint = "your map is high on the background: vessels should get the high values (1 - p?)"
        elif p.min() < 0 or p.max() > 1:
            hint = "return probabilities in [0, 1] (the sigmoid of the logits); the Dice thresholds them"
        elif np.ptp(p) < 1e-6:
            hint = "the map is constant: did segment normalize the images the way the training did?"
        else:
            hint = (f"an AUC of at least {PASS_AUC} (and above the green channel's) is needed: normalize each image "
                    "as in training, train longer or on more patients, and check the validation curve")
    result = CheckResult(name, passed, findings, hint)
    result.scores = {"auc": auc, "dice": dice_score}
    return result
