"""The gradient checker itself: it passes correct code and catches subtle, real backprop bugs."""

from __future__ import annotations

import numpy as np
import pytest

import handprop as hp
from handprop import layers as L
from handprop import losses
from handprop.gradcheck import GradCheckReport, check_layer, check_loss, check_model


# ------------------------------------------------------------------------------- buggy layers
class DenseScaledGrad(L.Dense):
    """dW off by 0.1%: the kind of bug a loose tolerance lets through."""

    def backward(self, dy, need_dx=True):
        dx = super().backward(dy)
        self.grads["W"] = self.grads["W"] * 1.001
        return dx


class DenseBiasMean(L.Dense):
    """db averaged over the batch instead of summed."""

    def backward(self, dy, need_dx=True):
        dx = super().backward(dy)
        self.grads["b"] = dy.mean(axis=0)
        return dx


class BatchNormMissingTerm(L.BatchNorm):
    """Forgets the ``- x̂ mean(g x̂)`` term (the path through the batch variance)."""

    def backward(self, dy, need_dx=True):
        x_hat, inv_std, gamma, axes = self._cache[:4]  # a BatchNormCache
        super().backward(dy)
        g = dy * gamma
        return (g - g.mean(axis=axes, keepdims=True)) * inv_std


class BatchNormPerActivation(L.BatchNorm):
    """For images, normalizes correctly per channel but reduces dgamma over the batch only."""

    def backward(self, dy, need_dx=True):
        dx = super().backward(dy)
        self.grads["gamma"] = (dy * self._cache[0]).sum(axis=0).mean(axis=(1, 2))
        return dx


class SigmoidSlightlyOff(L.Sigmoid):
    def _backward(self, dy, y):
        return dy * y * (1 - y) * 1.001


class SoftmaxDiagonalOnly(L.Softmax):
    """The classic mistake: elementwise ``y (1 - y)`` instead of the full Jacobian."""

    def backward(self, dy, need_dx=True):
        y, _ = self._cache  # what Softmax.forward kept: (y, axis)
        return dy * y * (1 - y)


class PReLUForgotMin(L.PReLU):
    """dalpha summed over dy * x instead of dy * min(x, 0)."""

    def backward(self, dy, need_dx=True):
        dx = super().backward(dy)
        axes = tuple(i for i in range(dy.ndim) if i != 1)
        x, _ = self._cache  # what PReLU.forward kept: (x, alpha)
        self.grads["alpha"] = (dy * x).sum(axis=axes)
        return dx


class DropoutNoMaskInBackward(L.Dropout):
    """numpy-ml issue 94: the backward pass never applies the mask."""

    def backward(self, dy, need_dx=True):
        return dy.copy()


class ReLUWritesIntoDy(L.ReLU):
    def _backward(self, dy, mask):
        dy *= mask
        return dy


BUGGY = [
    (DenseScaledGrad(3), (4,), "W"),
    (DenseBiasMean(3), (4,), "b"),
    (BatchNormMissingTerm(), (3,), "x"),
    (BatchNormMissingTerm(), (2, 3, 3), "x"),
    (BatchNormPerActivation(), (2, 3, 3), "gamma"),
    (SigmoidSlightlyOff(), (5,), "x"),
    (SoftmaxDiagonalOnly(), (5,), "x"),
    (PReLUForgotMin(), (3, 2, 2), "alpha"),
    (DropoutNoMaskInBackward(0.5), (8,), "x"),
]


def away_from_zero(shape, seed=0):
    x = np.random.default_rng(seed).standard_normal((4, *shape))
    return x + 0.1 * np.sign(x)


@pytest.mark.parametrize("layer, shape, culprit", BUGGY, ids=[type(b[0]).__name__ + str(b[1]) for b in BUGGY])
def test_catches_wrong_backward(layer, shape, culprit):
    report = check_layer(layer, away_from_zero(shape))
    assert not report.passed
    assert not report
    bad = {r["name"] for r in report.rows if r["max_rel_error"] >= report.tol}
    assert culprit in bad, report.table()
    assert report.max_rel_error > 1e-4  # even the 0.1% bugs stand well clear of the tolerance


@pytest.mark.parametrize("layer, shape", [
    (L.Dense(3), (4,)), (L.BatchNorm(), (3,)), (L.BatchNorm(), (2, 3, 3)), (L.Sigmoid(), (5,)),
    (L.Softmax(), (5,)), (L.PReLU(), (3, 2, 2)), (L.Dropout(0.5), (8,)),
], ids=lambda v: type(v).__name__ if isinstance(v, L.Layer) else str(v))
def test_passes_correct_layers(layer, shape):
    report = check_layer(layer, away_from_zero(shape))
    assert report.passed and report, report.table()
    assert report.max_rel_error < 1e-6


def test_detects_writing_into_dy():
    with pytest.raises(AssertionError, match="wrote into its upstream gradient"):
        check_layer(ReLUWritesIntoDy(), away_from_zero((5,)))


def test_report_table_and_html():
    report = check_layer(DenseScaledGrad(3), away_from_zero((4,)))
    text = report.table()
    assert str(report) == text
    lines = text.splitlines()
    assert "DenseScaledGrad" in lines[0]
    for word in ("tensor", "shape", "max rel err"):
        assert word in lines[1]
    rows = {line.split()[0]: line for line in lines[3:-1]}
    assert set(rows) == {"x", "W", "b"}
    assert rows["W"].rstrip().endswith("NO") and rows["x"].rstrip().endswith("yes")
    assert "(4, 3)" in rows["W"] and "(4, 4)" in rows["x"]
    assert lines[-1].startswith("FAILED")
    assert "passed=False" in repr(report)
    html = report._repr_html_()
    assert html.count("<tr>") == 4 and "<table>" in html and "FAILED" in html
    assert "<td>W</td>" in html and "<td>b</td>" in html
    good = check_layer(L.Dense(3), away_from_zero((4,)))
    assert good.table().splitlines()[-1].startswith("PASSED") and "passed" in good._repr_html_()


def test_report_edge_cases():
    empty = GradCheckReport("nothing", [], 1e-5)
    assert empty.passed and empty.max_rel_error == 0.0
    layer = L.Dense(40)
    report = check_layer(layer, away_from_zero((30,)), max_elements=50)
    assert {r["name"]: r["checked"] for r in report.rows} == {"x": 50, "W": 50, "b": 40}
    assert {r["name"]: r["shape"] for r in report.rows}["W"] == (30, 40)


def test_non_contiguous_inputs_and_params_are_checked_correctly():
    """Regression: a transposed x or parameter used to be perturbed through a reshaped copy, so its
    numeric gradient was 0 and a correct layer FAILED."""
    rng = np.random.default_rng(0)
    layer = L.Dense(3)
    layer.build((4,), rng=0, dtype=np.float64)
    layer.params["W"] = rng.standard_normal((3, 4)).T  # a view in Fortran order
    x = rng.standard_normal((4, 5)).T
    assert check_layer(layer, x).passed
    model = hp.Sequential([L.Dense(3)], seed=0, input_shape=(4,))
    model.compile(loss=losses.MeanSquaredError(), optimizer=hp.optimizers.SGD())
    model.layers[0].params["W"] = rng.standard_normal((3, 4)).T
    assert check_model(model, x, rng.standard_normal((3, 5)).T).passed
    pred = rng.standard_normal((3, 5)).T
    assert check_loss(losses.MeanSquaredError(), pred, rng.standard_normal((5, 3))).passed


def test_check_layer_restores_state_and_rng():
    bn = L.BatchNorm()
    bn.build((3,), dtype=np.float64)
    bn.forward(away_from_zero((3,), 1) * 3 + 2)
    saved = {k: v.copy() for k, v in bn.state.items()}
    check_layer(bn, away_from_zero((3,)))
    for k in saved:
        np.testing.assert_array_equal(bn.state[k], saved[k])

    drop, twin = L.Dropout(0.5), L.Dropout(0.5)
    drop.build((8,), rng=1, dtype=np.float64)
    twin.build((8,), rng=1, dtype=np.float64)
    x = np.ones((4, 8))
    check_layer(drop, x)
    np.testing.assert_array_equal(drop.forward(x), twin.forward(x))


# ------------------------------------------------------------------------------- losses
class MSEBatchMean(losses.MeanSquaredError):
    """Divides by the batch size instead of the number of elements."""

    def backward(self):
        dl = self._cache[0]  # the per-element derivatives 2 (p - t)
        return dl / dl.shape[0]


class CrossEntropyNoBatchMean(losses.SoftmaxCrossEntropy):
    def backward(self):
        return self._cache[0]  # softmax(z) - onehot(t), not divided by N


class BCESlightlyOff(losses.BinaryCrossEntropy):
    def backward(self):
        return super().backward() * 1.001


def test_check_loss_passes_and_fails():
    rng = np.random.default_rng(0)
    pred, target = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    assert check_loss(losses.MeanSquaredError(), pred, target).passed
    assert not check_loss(MSEBatchMean(), pred, target).passed
    labels = np.array([0, 2, 1, 1, 0])
    assert check_loss(losses.SoftmaxCrossEntropy(), pred, labels).passed
    assert not check_loss(CrossEntropyNoBatchMean(), pred, labels).passed
    bce_target = rng.random((5, 3))
    assert check_loss(losses.BinaryCrossEntropy(from_logits=True), pred, bce_target).passed
    report = check_loss(BCESlightlyOff(from_logits=True), pred, bce_target)
    assert not report.passed and report.rows[0]["name"] == "pred" and "BCESlightlyOff" in report.table()


# ------------------------------------------------------------------------------- models
def small_model(hidden_layer=L.BatchNorm):
    model = hp.Sequential([L.Dense(6), hidden_layer(), L.ReLU(), L.Dropout(0.3), L.Dense(3)], seed=0)
    model.compile(loss=losses.SoftmaxCrossEntropy(), optimizer=hp.optimizers.SGD(lr=0.1))
    return model


def test_check_model_passes_with_dropout_and_batchnorm():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 4)), rng.integers(0, 3, 8)
    model = small_model()
    report = check_model(model, x, y)
    assert report.passed, report.table()
    names = [r["name"] for r in report.rows]
    assert names[0] == "x" and "1.BatchNorm/gamma" in names and "4.Dense/W" in names
    # regression: the Dense bias before BatchNorm has a true gradient of exactly 0 (BN subtracts the
    # mean); rounding noise in it used to be divided by ~0 and reported as a relative error of 1
    bias = next(r for r in report.rows if r["name"] == "0.Dense/b")
    assert bias["max_abs_error"] < 1e-9 and bias["max_rel_error"] < 1e-6
    assert len(names) == 1 + len(model.named_params())
    # checked in float64, then handed back in the model's own dtype with its statistics untouched
    assert model.dtype == np.float32
    assert all(p.dtype == np.float32 for p in model.named_params().values())
    np.testing.assert_array_equal(model.get_state()["1.BatchNorm/running_var"], np.ones(6))
    assert model.predict(x).dtype == np.float32


def test_check_model_catches_a_buggy_layer():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 4)), rng.integers(0, 3, 8)
    report = check_model(small_model(BatchNormMissingTerm), x, y)
    assert not report.passed
    bad = {r["name"] for r in report.rows if r["max_rel_error"] >= report.tol}
    assert "x" in bad and "0.Dense/W" in bad  # the error flows to everything below the bug


def test_check_model_needs_a_loss():
    model = hp.Sequential([L.Dense(2)])
    with pytest.raises(ValueError, match="compile"):
        check_model(model, np.ones((2, 3)), np.zeros(2, int))
