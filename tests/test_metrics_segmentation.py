"""Segmentation metrics inside a mask, compared with scikit-learn (ties and masks included)."""

import math

import numpy as np
import pytest

from handprop import metrics

sk = pytest.importorskip("sklearn.metrics")


@pytest.fixture
def maps():
    rng = np.random.default_rng(0)
    truth = (rng.random((3, 20, 24)) < 0.2).astype(np.uint8)
    prob = np.clip(0.35 * truth + rng.random(truth.shape) * 0.7, 0, 1).astype(np.float32)
    fov = np.zeros(truth.shape, bool)
    fov[:, 2:18, 3:21] = True
    return prob, truth, fov


def test_roc_auc_matches_sklearn_with_ties_and_mask(maps):
    prob, truth, fov = maps
    assert metrics.roc_auc(prob, truth) == pytest.approx(sk.roc_auc_score(truth.ravel(), prob.ravel()), abs=1e-12)
    coarse = np.round(prob * 4) / 4  # five distinct values: many ties between the classes
    expected = sk.roc_auc_score(truth[fov], coarse[fov])
    assert metrics.roc_auc(coarse, truth, fov) == pytest.approx(expected, abs=1e-12)
    assert metrics.roc_auc(coarse, truth, fov) != pytest.approx(metrics.roc_auc(coarse, truth), abs=1e-6)
    # every score equal: every pair is a tie, AUC 1/2
    assert metrics.roc_auc(np.zeros(10), np.arange(10) % 2) == 0.5
    assert metrics.roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75  # sklearn's doc example
    assert metrics.roc_auc(-prob, truth) == pytest.approx(1 - metrics.roc_auc(prob, truth), abs=1e-12)


def test_roc_auc_single_class_is_nan():
    assert math.isnan(metrics.roc_auc([0.2, 0.7], [1, 1]))
    assert math.isnan(metrics.roc_auc([0.2, 0.7, 0.1], [1, 0, 0], mask=[True, False, False]))


@pytest.mark.parametrize("drop", [False, True])
def test_roc_curve_matches_sklearn(maps, drop):
    prob, truth, fov = maps
    coarse = np.round(prob * 10) / 10
    fpr, tpr, thresholds = metrics.roc_curve(coarse, truth, fov, drop_intermediate=drop)
    e_fpr, e_tpr, e_thr = sk.roc_curve(truth[fov], coarse[fov], drop_intermediate=drop)
    np.testing.assert_allclose(fpr, e_fpr, atol=1e-12)
    np.testing.assert_allclose(tpr, e_tpr, atol=1e-12)
    np.testing.assert_allclose(thresholds[1:], e_thr[1:], atol=1e-7)
    assert np.isinf(thresholds[0])
    area = np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)  # the trapezoid rule
    assert area == pytest.approx(metrics.roc_auc(coarse, truth, fov), abs=1e-12)
    with pytest.raises(ValueError, match="positives and negatives"):
        metrics.roc_curve([0.1, 0.2], [0, 0])


def test_thresholded_metrics_match_sklearn(maps):
    prob, truth, fov = maps
    pred = prob[fov] > 0.5
    t = truth[fov]
    assert metrics.dice(prob, truth, fov) == pytest.approx(sk.f1_score(t, pred), abs=1e-12)
    assert metrics.f1 is metrics.dice
    assert metrics.sensitivity(prob, truth, fov) == pytest.approx(sk.recall_score(t, pred), abs=1e-12)
    assert metrics.specificity(prob, truth, fov) == pytest.approx(sk.recall_score(t, pred, pos_label=0), abs=1e-12)
    assert metrics.accuracy(prob, truth, mask=fov) == pytest.approx(sk.accuracy_score(t, pred), abs=1e-12)
    assert metrics.dice(prob, truth, fov, threshold=0.8) == pytest.approx(sk.f1_score(t, prob[fov] > 0.8), abs=1e-12)
    c = metrics.confusion(prob, truth, fov)
    tn, fp, fn, tp = sk.confusion_matrix(t, pred).ravel()
    assert c == {"tp": tp, "fp": fp, "tn": tn, "fn": fn}


def test_mask_changes_accuracy_but_not_the_old_behaviour():
    # outside the FOV everything is an easy true negative: whole-image accuracy is inflated
    truth = np.zeros((10, 10), np.uint8)
    truth[4:6, 2:8] = 1
    prob = np.zeros((10, 10))
    prob[4, 2:8] = 0.9
    fov = np.zeros((10, 10), bool)
    fov[3:7, 1:9] = True
    assert metrics.pixel_accuracy(prob, truth) == 0.94
    assert metrics.accuracy(prob, truth, mask=fov) == pytest.approx(26 / 32)
    assert metrics.pixel_accuracy(prob, truth, mask=fov) == pytest.approx(26 / 32)
    assert metrics.accuracy(prob[None], truth[None]) == 0.94  # (1, H, W): thresholded, not argmax
    # the fit-time behaviour is unchanged: (N, classes) argmax, binary > threshold
    assert metrics.accuracy(np.array([[0.2], [0.7]]), np.array([0, 1])) == 1.0
    assert metrics.accuracy(np.array([[0.2, 0.8], [0.9, 0.1]]), np.array([1, 0])) == 1.0
    assert metrics.accuracy(np.array([[-0.1], [0.1]]), np.array([0, 1]), threshold=0.0) == 1.0


def test_dice_on_empty_ground_truth_and_undefined_rates():
    empty = np.zeros(6)
    assert metrics.dice(empty, empty) == 1.0  # nothing to find, nothing found: perfect agreement
    assert metrics.dice([0.9, 0, 0, 0, 0, 0], empty) == 0.0  # every predicted pixel is a false positive
    assert metrics.dice([0.9, 0.9, 0.1], [1, 0, 1]) == 0.5
    assert math.isnan(metrics.sensitivity(empty, empty))
    assert math.isnan(metrics.specificity(np.ones(3), np.ones(3)))
    # the mask decides which pixels count: the false positive lies outside it
    assert metrics.dice([0.9, 0.9], [1, 0], mask=[True, False]) == 1.0


def test_metrics_check_their_inputs():
    with pytest.raises(ValueError, match=r"roc_auc: the ground truth has shape \(2,\) and the score array shape"):
        metrics.roc_auc([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(ValueError, match=r"dice: the mask has shape \(2,\)"):
        metrics.dice([0.1, 0.2, 0.3], [0, 1, 1], mask=[True, False])
    with pytest.raises(ValueError, match="0/1"):
        metrics.sensitivity([0.1, 0.2], [0, 2])


def test_segmentation_report(maps):
    prob, truth, fov = maps
    ids = ["a", "b", "c"]
    report = metrics.segmentation_report(prob[:, None], truth, fov, ids=ids)  # (n, 1, H, W) accepted
    keys = ["auc", "dice", "accuracy", "sensitivity", "specificity"]
    assert list(report["mean"]) == keys
    assert [row["id"] for row in report["per_image"]] == ids
    assert report["inside_fov"] is True and report["threshold"] == 0.5
    for i, row in enumerate(report["per_image"]):
        assert list(row) == ["id"] + keys
        assert row["auc"] == pytest.approx(sk.roc_auc_score(truth[i][fov[i]], prob[i][fov[i]]), abs=1e-12)
        assert row["dice"] == pytest.approx(sk.f1_score(truth[i][fov[i]], prob[i][fov[i]] > 0.5), abs=1e-12)
    for k in keys:
        assert report["mean"][k] == pytest.approx(np.mean([row[k] for row in report["per_image"]]))
    assert report["pooled"]["auc"] == pytest.approx(sk.roc_auc_score(truth[fov], prob[fov]), abs=1e-12)
    whole = metrics.segmentation_report(prob, truth)
    assert whole["inside_fov"] is False and whole["per_image"][0]["id"] == "0"
    assert whole["mean"]["accuracy"] != pytest.approx(report["mean"]["accuracy"])
    table = metrics.format_segmentation_report(report)
    assert "inside the FOV" in table and table.count("\n") == 7 and "pooled" in table
    with pytest.raises(ValueError, match="segmentation_report"):
        metrics.segmentation_report(prob, truth[:, :5])
    with pytest.raises(ValueError, match="ids"):
        metrics.segmentation_report(prob, truth, fov, ids=["a"])
