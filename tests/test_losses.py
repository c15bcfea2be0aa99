"""Losses and metrics: gradient checks, PyTorch parity (mean reductions), extreme logits, errors."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import assert_close
from handprop import losses, metrics
from handprop.gradcheck import check_loss

N, K = 6, 4
DTYPES = [np.float64, np.float32]


def targets(kind, rng, dtype=np.float64):
    """``(pred, target)`` for one loss setting."""
    if kind == "mse":
        return rng.standard_normal((N, 3)).astype(dtype), rng.standard_normal((N, 3)).astype(dtype)
    if kind == "mse-column":  # (N,) targets for a (N, 1) regression output
        return rng.standard_normal((N, 1)).astype(dtype), rng.standard_normal(N).astype(dtype)
    logits = (3 * rng.standard_normal((N, K))).astype(dtype)
    labels = rng.integers(0, K, N)
    labels[:K] = np.arange(K)  # every class present
    if kind == "ce-int":
        return logits, labels
    if kind == "ce-onehot":
        return logits, np.eye(K, dtype=dtype)[labels]
    if kind == "ce-soft":
        soft = rng.random((N, K))
        return logits, (soft / soft.sum(1, keepdims=True)).astype(dtype)
    if kind == "bce-prob":
        return (0.05 + 0.9 * rng.random((N, 2))).astype(dtype), rng.integers(0, 2, (N, 2)).astype(dtype)
    if kind == "bce-logits":
        return logits, rng.random((N, K)).astype(dtype)  # soft targets are allowed
    raise KeyError(kind)


LOSS_OF = {
    "mse": losses.MeanSquaredError,
    "mse-column": losses.MeanSquaredError,
    "ce-int": losses.SoftmaxCrossEntropy,
    "ce-onehot": losses.SoftmaxCrossEntropy,
    "ce-soft": losses.SoftmaxCrossEntropy,
    "bce-prob": lambda: losses.BinaryCrossEntropy(from_logits=False),
    "bce-logits": lambda: losses.BinaryCrossEntropy(from_logits=True),
}


def torch_loss(kind, pred, target, torch):
    F = torch.nn.functional
    t = torch.from_numpy(np.asarray(target))
    if kind == "mse":
        return F.mse_loss(pred, t)
    if kind == "mse-column":
        return F.mse_loss(pred, t.reshape(-1, 1))
    if kind == "ce-int":
        return F.cross_entropy(pred, t)
    if kind in ("ce-onehot", "ce-soft"):
        return F.cross_entropy(pred, t)  # class probabilities as targets
    if kind == "bce-prob":
        return F.binary_cross_entropy(pred, t)
    return F.binary_cross_entropy_with_logits(pred, t)


@pytest.mark.parametrize("kind", list(LOSS_OF))
def test_gradient_check(kind, rng):
    pred, target = targets(kind, rng)
    report = check_loss(LOSS_OF[kind](), pred, target)
    assert report.passed, str(report)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", list(LOSS_OF))
def test_matches_torch(kind, dtype, torch, rng):
    pred, target = targets(kind, rng, dtype)
    loss = LOSS_OF[kind]()
    value = loss.forward(pred, target)
    assert isinstance(value, float)
    grad = loss.backward()
    assert grad.dtype == dtype and grad.shape == pred.shape
    pt = torch.tensor(pred, requires_grad=True)
    reference = torch_loss(kind, pt, target, torch)
    reference.backward()
    assert_close(value, reference, dtype)
    assert_close(grad, pt.grad, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_exact_for_huge_logits(dtype, torch):
    logits = np.array([[1e4, -1e4, 0.0], [1e4, -1e4, 0.0], [-1e4, 1e4, 1e4], [0.0, 0.0, -1e4]], dtype=dtype)
    labels = np.array([0, 1, 2, 2])
    loss = losses.SoftmaxCrossEntropy()
    value = loss.forward(logits, labels)  # filterwarnings=error: no overflow or log(0) warnings
    grad = loss.backward()
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    pt = torch.tensor(logits.astype(np.float64), requires_grad=True)
    reference = torch.nn.functional.cross_entropy(pt, torch.from_numpy(labels))
    reference.backward()
    # exact: the losses are sums of logit differences (2e4, log 2, 1e4 + log 2) divided by N
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(value, reference.item(), rtol=rtol)
    np.testing.assert_allclose(grad, pt.grad.numpy(), rtol=rtol, atol=1e-12)
    # one-hot labels give the same
    assert losses.SoftmaxCrossEntropy().forward(logits, np.eye(3, dtype=dtype)[labels]) == value


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_cross_entropy_from_logits_exact_for_huge_logits(dtype, torch):
    z = np.array([[1e4], [-1e4], [1e4], [-1e4], [0.0]], dtype=dtype)
    t = np.array([1.0, 0.0, 0.0, 1.0, 1.0], dtype=dtype)  # (N,) labels for a (N, 1) output
    loss = losses.BinaryCrossEntropy(from_logits=True)
    value = loss.forward(z, t)
    grad = loss.backward()
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    pt = torch.tensor(z.astype(np.float64), requires_grad=True)
    reference = torch.nn.functional.binary_cross_entropy_with_logits(pt, torch.from_numpy(t.reshape(-1, 1)))
    reference.backward()
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(value, reference.item(), rtol=rtol)
    np.testing.assert_allclose(grad, pt.grad.numpy(), rtol=rtol, atol=1e-12)


def test_binary_cross_entropy_on_probabilities_is_finite_at_0_and_1():
    loss = losses.BinaryCrossEntropy()
    value = loss.forward(np.array([[0.0], [1.0], [0.0], [1.0]]), np.array([0.0, 1.0, 1.0, 0.0]))
    assert np.isfinite(value) and np.all(np.isfinite(loss.backward()))


# ------------------------------------------------------------------------------- readable errors
@pytest.mark.parametrize("labels, match", [
    (np.array([0, 1, 4, 2, 3, 0]), r"\[0, 3\].*4 classes.*\[4\]"),
    (np.array([0, 1, -1, 2, 3, 0]), r"\[0, 3\].*\[-1\]"),
    (np.array([0, 1, 2.5, 2, 3, 0]), "whole numbers"),
    (np.zeros((N, 2, 2), dtype=int), r"class indices \(N,\) or one-hot"),
    (np.eye(3)[[0, 1, 2, 0, 1, 2]], "3 columns but the model predicts 4 classes"),
    (np.eye(3, dtype=int)[[0, 1, 2, 0, 1, 2]], "3 columns but the model predicts 4 classes"),
    (np.array([0, 1, 2]), "6 predictions but 3 targets"),
    (np.array(["a"] * N), "must be integers"),
])
def test_softmax_cross_entropy_bad_labels(labels, match, rng):
    with pytest.raises(ValueError, match=match):
        losses.SoftmaxCrossEntropy().forward(rng.standard_normal((N, K)), labels)


def test_softmax_cross_entropy_shapes(rng):
    with pytest.raises(ValueError, match=r"logits of shape \(N, classes\)"):
        losses.SoftmaxCrossEntropy().forward(rng.standard_normal(N), np.zeros(N, int))
    with pytest.raises(ValueError, match=r"class maps \(6, 4, 2\) need label maps \(6, 2\)"):
        losses.SoftmaxCrossEntropy().forward(rng.standard_normal((N, K, 2)), np.zeros(N, int))


def test_shape_and_range_errors(rng):
    with pytest.raises(ValueError, match=r"\(6, 3\).*\(6, 2\)"):
        losses.MeanSquaredError().forward(rng.standard_normal((N, 3)), rng.standard_normal((N, 2)))
    with pytest.raises(ValueError, match=r"BinaryCrossEntropy.*\(6, 1\).*\(3,\)"):
        losses.BinaryCrossEntropy().forward(rng.random((N, 1)), np.ones(3))
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 1\]"):
        losses.BinaryCrossEntropy().forward(rng.random((N, 1)), np.full(N, 2.0))
    with pytest.raises(ValueError, match="from_logits=True"):
        losses.BinaryCrossEntropy().forward(rng.standard_normal((N, 1)) * 5, np.ones(N))


def test_loss_lookup_by_name():
    assert isinstance(losses.get("mse"), losses.MeanSquaredError)
    assert isinstance(losses.get("sparse_categorical_crossentropy"), losses.SoftmaxCrossEntropy)
    assert isinstance(losses.get("binary_crossentropy"), losses.BinaryCrossEntropy)
    same = losses.MeanSquaredError()
    assert losses.get(same) is same
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        losses.get("hinge")


# ------------------------------------------------------------------------------- metrics
def test_accuracy_multiclass_with_indices_and_one_hot():
    scores = np.array([[0.1, 0.9, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 5.0], [1.0, 3.0, 2.0]])
    labels = np.array([1, 0, 1, 2])
    assert metrics.accuracy(scores, labels) == 0.5
    assert metrics.accuracy(scores, np.eye(3)[labels]) == 0.5
    assert metrics.accuracy(scores.astype(np.float32), labels.astype(np.uint8)) == 0.5


def test_accuracy_binary_thresholds_at_half():
    probs = np.array([[0.2], [0.7], [0.51], [0.49]])
    assert metrics.accuracy(probs, np.array([0, 1, 0, 0])) == 0.75
    assert metrics.accuracy(probs.reshape(-1), np.array([[0], [1], [1], [0]])) == 1.0


def test_metric_lookup():
    assert metrics.get("acc") == ("accuracy", metrics.accuracy)
    assert metrics.get("accuracy")[1] is metrics.accuracy

    def my_metric(pred, target):
        return 0.0

    assert metrics.get(my_metric) == ("my_metric", my_metric)
    with pytest.raises(ValueError, match="unknown metric"):
        metrics.get("f1")


# ------------------------------------------------------------------------------- weights and maps
def test_per_pixel_cross_entropy_matches_torch(torch, rng):
    z = rng.standard_normal((2, 3, 4, 5))
    t = rng.integers(0, 3, (2, 4, 5))
    loss = losses.SoftmaxCrossEntropy()
    value = loss.forward(z, t)
    tz = torch.tensor(z, requires_grad=True)
    tl = torch.nn.functional.cross_entropy(tz, torch.tensor(t))
    tl.backward()
    assert abs(value - tl.item()) < 1e-12
    assert_close(loss.backward(), tz.grad)
    assert abs(loss.forward(z, np.eye(3)[t].transpose(0, 3, 1, 2)) - value) < 1e-12  # one-hot maps
    assert abs(loss.forward(z, t[:, None]) - value) < 1e-12  # (N, 1, H, W) label maps
    assert check_loss(losses.SoftmaxCrossEntropy(), z, t).passed


@pytest.mark.parametrize("kind", ["mse", "ce-int", "bce-logits", "bce-prob"])
@pytest.mark.parametrize("per", ["sample", "element"])
def test_weighted_mean_matches_torch_and_gradient_check(kind, per, torch, rng):
    """L = Σ w l / Σ w, with one weight per sample or per element (a mask)."""
    pred, target = targets(kind, rng)
    loss = LOSS_OF[kind]()
    elements = (N,) if kind.startswith("ce") or per == "sample" else pred.shape
    w = (rng.random(elements) > 0.3).astype(np.float64) * rng.uniform(0.5, 2.0, elements)
    w[0] = 1.0
    value = loss.forward(pred, target, w)
    tp = torch.tensor(pred, requires_grad=True)
    F = torch.nn.functional
    none = {"mse": lambda: F.mse_loss(tp, torch.tensor(target), reduction="none"),
            "ce-int": lambda: F.cross_entropy(tp, torch.tensor(target), reduction="none"),
            "bce-logits": lambda: F.binary_cross_entropy_with_logits(tp, torch.tensor(target), reduction="none"),
            "bce-prob": lambda: F.binary_cross_entropy(tp, torch.tensor(target), reduction="none")}[kind]()
    tw = torch.tensor(w if w.shape == tuple(none.shape) else w.reshape(-1, *([1] * (none.ndim - 1))))
    expected = (none * tw).sum() / (tw * torch.ones_like(none)).sum()
    expected.backward()
    assert abs(value - expected.item()) < 1e-10
    assert_close(loss.backward(), tp.grad)
    assert loss.total_weight == pytest.approx(float((tw * torch.ones_like(none)).sum()))
    assert check_loss(LOSS_OF[kind](), pred, target, weight=w).passed


def test_a_mask_excludes_pixels_and_an_empty_mask_gives_zero(rng):
    z = rng.standard_normal((2, 1, 4, 4))
    t = (rng.random((2, 1, 4, 4)) > 0.5).astype(float)
    fov = np.zeros((2, 4, 4), bool)
    fov[:, 1:3, 1:3] = True
    loss = losses.BinaryCrossEntropy(from_logits=True)
    inside = loss.forward(z, t, fov)
    g = loss.backward()
    assert inside == pytest.approx(loss.forward(z[:, :, 1:3, 1:3], t[:, :, 1:3, 1:3]))
    assert (g[:, 0][~fov] == 0).all() and (g[:, 0][fov] != 0).all()
    assert loss.forward(z, t, np.zeros((2, 4, 4))) == 0.0 and not loss.backward().any()
    with pytest.raises(ValueError, match="one per sample"):
        loss.forward(z, t, np.ones(3))
    with pytest.raises(ValueError, match=">= 0"):
        loss.forward(z, t, -np.ones(2))


def test_integer_one_hot_class_maps(rng):
    z = rng.standard_normal((2, 3, 4, 4))
    t = rng.integers(0, 3, (2, 4, 4))
    one_hot = np.eye(3, dtype=np.uint8)[t].transpose(0, 3, 1, 2)
    loss = losses.SoftmaxCrossEntropy()
    assert loss.forward(z, one_hot) == pytest.approx(loss.forward(z, t))


def test_accuracy_on_one_map_thresholds_and_takes_keywords(rng):
    prob = rng.random((6, 5))
    truth = (rng.random((6, 5)) > 0.5).astype(np.uint8)
    assert metrics.accuracy(prob, truth) == pytest.approx(((prob > 0.5) == truth).mean())
    with pytest.raises(TypeError):
        metrics.accuracy(prob, truth, np.ones((6, 5), bool))  # mask is keyword-only: no silent misuse
