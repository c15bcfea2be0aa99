"""The pure forward/backward pairs (``hp.layers.relu_forward``, ``hp.losses.softmax_cross_entropy_forward``, ...):
each pair passes a float64 gradient check on its own, and the layer or loss that wraps it gives
exactly the pair's numbers (the layer calls the pair; patching the pair changes the layer)."""

from __future__ import annotations

import numpy as np
import pytest

import handprop as hp
import handprop.layers.activations as act
import handprop.layers.dropout as dropout_module
import handprop.losses as losses_module
from handprop.gradcheck import numeric_gradient

L = hp.layers
REL = 1e-7  # float64 central differences on smooth functions, points kept away from kinks


def rel_error(a, b):
    """The largest difference relative to the largest entry: max |a - b| / max(|a|, |b|) (entries
    near 0 carry the differences' rounding noise, so CS231n's entrywise ratio would be noise there)."""
    return float(np.max(np.abs(a - b)) / max(1e-12, np.max(np.abs(a)), np.max(np.abs(b))))


def away_from_zero(shape, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape)
    return x + 0.1 * np.sign(x)  # no element within 0.1 of a kink


def numeric(f, x, h=1e-5):
    """Central differences of the scalar function ``f`` at ``x`` (float64)."""
    return numeric_gradient(f, x, np.arange(x.size), h=h).reshape(x.shape)


# Each activation pair: (name, forward's extra arguments, the layer that wraps it).
ELEMENTWISE = [
    ("sigmoid", (), L.Sigmoid),
    ("tanh", (), L.Tanh),
    ("relu", (), L.ReLU),
    ("leaky_relu", (0.01,), L.LeakyReLU),
    ("leaky_relu", (0.2,), lambda: L.LeakyReLU(0.2)),
    ("elu", (1.0,), L.ELU),
    ("elu", (0.5,), lambda: L.ELU(0.5)),
    ("softmax", (-1,), L.Softmax),
    ("softmax", (1,), lambda: L.Softmax(axis=1)),
    ("log_softmax", (-1,), None),
    ("log_softmax", (1,), None),
]
SHAPES = [(4, 5), (2, 3, 4, 4)]


@pytest.mark.parametrize("name, args, _", ELEMENTWISE, ids=[f"{e[0]}{e[1]}" for e in ELEMENTWISE])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_activation_pair_gradient(name, args, _, shape):
    forward, backward = getattr(hp.layers, f"{name}_forward"), getattr(hp.layers, f"{name}_backward")
    x = away_from_zero(shape)
    dy = np.random.default_rng(1).standard_normal(shape)
    dy_before = dy.copy()
    y, cache = forward(x, *args)
    assert y.shape == x.shape and y.dtype == np.float64
    dx = backward(dy, cache)
    np.testing.assert_array_equal(dy, dy_before)  # the pair never writes into dy
    expected = numeric(lambda: float((forward(x, *args)[0] * dy).sum()), x)
    assert rel_error(dx, expected) < REL


@pytest.mark.parametrize("name, args, make", [e for e in ELEMENTWISE if e[2] is not None],
                         ids=[f"{e[0]}{e[1]}" for e in ELEMENTWISE if e[2] is not None])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_layer_equals_its_pair(name, args, make, dtype):
    forward, backward = getattr(hp.layers, f"{name}_forward"), getattr(hp.layers, f"{name}_backward")
    x = away_from_zero((2, 3, 4, 4)).astype(dtype)
    x.flat[:3] = 0  # the kink itself: both sides take the left derivative
    dy = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    layer = make()
    with hp.engine("numpy"):  # on numba, ReLU's one-pass loop runs instead (tests/test_engines.py)
        y = layer.forward(x)
        dx = layer.backward(dy)
    y_pair, cache = forward(x, *args)
    np.testing.assert_array_equal(y, y_pair)
    np.testing.assert_array_equal(dx, backward(dy, cache))
    assert y.dtype == dx.dtype == dtype


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_prelu_pair_gradient(shape, shared):
    x = away_from_zero(shape)
    alpha = np.array([0.25]) if shared else np.linspace(0.1, 0.4, shape[1])
    dy = np.random.default_rng(1).standard_normal(shape)
    y, cache = hp.layers.prelu_forward(x, alpha)
    dx, dalpha = hp.layers.prelu_backward(dy, cache)
    assert dalpha.shape == alpha.shape
    assert rel_error(dx, numeric(lambda: float((hp.layers.prelu_forward(x, alpha)[0] * dy).sum()), x)) < REL
    assert rel_error(dalpha, numeric(lambda: float((hp.layers.prelu_forward(x, alpha)[0] * dy).sum()), alpha)) < REL
    assert hp.layers.prelu_backward(dy, cache, need_dx=False)[0] is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_prelu_layer_equals_its_pair(dtype):
    x = away_from_zero((2, 3, 4, 4)).astype(dtype)
    dy = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    layer = L.PReLU()
    layer.build(x.shape[1:], rng=0, dtype=dtype)
    layer.params["alpha"] = np.array([0.1, 0.2, 0.3], dtype=dtype)
    with hp.engine("numpy"):
        y = layer.forward(x)
        dx = layer.backward(dy)
    y_pair, cache = hp.layers.prelu_forward(x, layer.params["alpha"])
    dx_pair, dalpha = hp.layers.prelu_backward(dy, cache)
    np.testing.assert_array_equal(y, y_pair)
    np.testing.assert_array_equal(dx, dx_pair)
    np.testing.assert_array_equal(layer.grads["alpha"], dalpha)


def test_dropout_pair_gradient_and_rule():
    x = away_from_zero((50, 40))
    dy = np.random.default_rng(1).standard_normal(x.shape)
    y, cache = hp.layers.dropout_forward(x, 0.3, True, np.random.default_rng(5))
    dx = hp.layers.dropout_backward(dy, cache)
    kept = y != 0
    assert abs(1 - kept.mean() - 0.3) < 0.03  # a fraction `rate` dropped
    np.testing.assert_allclose(y[kept], x[kept] / 0.7)
    # the same mask on every evaluation: a fresh generator with the same seed
    expected = numeric(lambda: float((hp.layers.dropout_forward(x, 0.3, True, np.random.default_rng(5))[0]
                                      * dy).sum()), x)
    assert rel_error(dx, expected) < REL
    for training, rate in ((False, 0.3), (True, 0.0)):  # identity: nothing dropped, dx a copy of dy
        y, cache = hp.layers.dropout_forward(x, rate, training, np.random.default_rng(5))
        assert y is x and cache is None
        dx = hp.layers.dropout_backward(dy, cache)
        np.testing.assert_array_equal(dx, dy)
        assert dx is not dy
    with pytest.raises(ValueError, match="drop probability"):
        hp.layers.dropout_forward(x, 1.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_layer_equals_its_pair(dtype):
    x = away_from_zero((2, 3, 4, 4)).astype(dtype)
    dy = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    layer = L.Dropout(0.4)
    layer.build(x.shape[1:], rng=0, dtype=dtype)
    replay = np.random.default_rng()
    replay.bit_generator.state = layer.rng.bit_generator.state  # the layer's next mask, drawn again
    y = layer.forward(x)
    dx = layer.backward(dy)
    y_pair, cache = hp.layers.dropout_forward(x, 0.4, True, replay)
    np.testing.assert_array_equal(y, y_pair)
    np.testing.assert_array_equal(dx, hp.layers.dropout_backward(dy, cache))
    assert y.dtype == dx.dtype == dtype


# ----------------------------------------------------------------------------- losses
def _loss_cases():
    rng = np.random.default_rng(3)
    z2, z4 = rng.standard_normal((6, 4)) * 2, rng.standard_normal((3, 4, 3, 3)) * 2
    p = 1 / (1 + np.exp(-rng.standard_normal((6, 1))))
    return [
        ("mean_squared_error", {}, hp.losses.MeanSquaredError(), z2, rng.standard_normal((6, 4))),
        ("softmax_cross_entropy", {}, hp.losses.SoftmaxCrossEntropy(), z2, rng.integers(0, 4, 6)),
        ("softmax_cross_entropy", {}, hp.losses.SoftmaxCrossEntropy(), z2, rng.dirichlet(np.ones(4), 6)),  # soft
        ("softmax_cross_entropy", {}, hp.losses.SoftmaxCrossEntropy(), z4, rng.integers(0, 4, (3, 3, 3))),
        ("binary_cross_entropy", {}, hp.losses.BinaryCrossEntropy(), p, (rng.random((6, 1)) > 0.5) * 1.0),
        ("binary_cross_entropy", {"from_logits": True}, hp.losses.BinaryCrossEntropy(from_logits=True),
         z4[:, :1], rng.random((3, 1, 3, 3))),
    ]


LOSS_CASES = _loss_cases()
LOSS_IDS = [f"{c[0]}-{i}" for i, c in enumerate(LOSS_CASES)]


def _weights(pred, kind):
    rng = np.random.default_rng(4)
    if kind == "none":
        return None
    if kind == "per sample":
        return rng.random(pred.shape[0])
    # one per element of the per-element losses (a mask): for the softmax, no class axis
    shape = (pred.shape[0], *pred.shape[2:]) if pred.ndim > 2 or pred.shape[1] > 1 else pred.shape
    return (rng.random(shape) > 0.3) * 1.0


@pytest.mark.parametrize("weights", ["none", "per sample", "per element"])
@pytest.mark.parametrize("name, kwargs, _, pred, target", LOSS_CASES, ids=LOSS_IDS)
def test_loss_pair_gradient(name, kwargs, _, pred, target, weights):
    forward, backward = getattr(hp.losses, f"{name}_forward"), getattr(hp.losses, f"{name}_backward")
    if name == "mean_squared_error" and weights == "per element":
        weight = (np.random.default_rng(4).random(pred.shape) > 0.3) * 1.0
    else:
        weight = _weights(pred, weights)
    loss, cache = forward(pred, target, weight, **kwargs)
    assert isinstance(loss, float) and np.isfinite(loss)
    dpred = backward(cache)
    assert dpred.shape == pred.shape and dpred.dtype == pred.dtype
    x = pred.copy()
    expected = numeric(lambda: forward(x, target, weight, **kwargs)[0], x)
    assert rel_error(dpred, expected) < REL


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, kwargs, loss, pred, target", LOSS_CASES, ids=LOSS_IDS)
def test_loss_object_equals_its_pair(name, kwargs, loss, pred, target, dtype):
    forward, backward = getattr(hp.losses, f"{name}_forward"), getattr(hp.losses, f"{name}_backward")
    pred = pred.astype(dtype)
    for weight in (None, _weights(pred, "per sample")):
        value = loss.forward(pred, target, weight)
        grad = loss.backward()
        value_pair, cache = forward(pred, target, weight, **kwargs)
        assert value == value_pair
        np.testing.assert_array_equal(grad, backward(cache))
        assert grad.dtype == dtype
        assert loss.total_weight == cache[-1].total


def test_log_softmax_pair_is_softmax_cross_entropy_s_forward():
    z = np.random.default_rng(0).standard_normal((5, 3)) * 1e3  # huge logits: still exact
    labels = np.array([0, 1, 2, 1, 0])
    logp, _ = hp.layers.log_softmax_forward(z, axis=1)
    loss, _ = hp.losses.softmax_cross_entropy_forward(z, labels)
    assert np.isfinite(logp).all()
    assert loss == pytest.approx(-logp[np.arange(5), labels].mean(), rel=1e-15)


# ----------------------------------------------------------------------------- the layers call the pairs
@pytest.mark.parametrize("module, pair, make", [
    (act, "sigmoid_backward", L.Sigmoid), (act, "tanh_backward", L.Tanh), (act, "leaky_relu_backward", L.LeakyReLU),
    (act, "elu_backward", L.ELU), (act, "softmax_backward", L.Softmax), (act, "relu_backward", L.ReLU),
    (dropout_module, "dropout_backward", lambda: L.Dropout(0.5)),
])
def test_layers_call_their_pair(monkeypatch, module, pair, make):
    """Replacing the module's pair changes the layer: the equations have one home."""
    monkeypatch.setattr(module, pair, lambda dy, cache: dy * 0 + 7)
    layer = make()
    x = away_from_zero((2, 3))
    with hp.engine("numpy"):
        layer.forward(x)
        assert (layer.backward(np.ones_like(x)) == 7).all()


@pytest.mark.parametrize("pair, loss", [
    ("mean_squared_error_backward", hp.losses.MeanSquaredError()),
    ("softmax_cross_entropy_backward", hp.losses.SoftmaxCrossEntropy()),
    ("binary_cross_entropy_backward", hp.losses.BinaryCrossEntropy()),
])
def test_losses_call_their_pair(monkeypatch, pair, loss):
    monkeypatch.setattr(losses_module, pair, lambda cache: "the pair ran")
    loss.forward(np.full((2, 2), 0.5), np.array([[0.0, 1.0], [1.0, 0.0]]))
    assert loss.backward() == "the pair ran"


def test_pairs_are_exported_and_listed():
    """Every pair is importable from hp.layers / hp.losses and named in its module's table."""
    layer_pairs = ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "prelu", "softmax", "log_softmax", "dropout"]
    for name in layer_pairs:
        for half in ("forward", "backward"):
            assert callable(getattr(hp.layers, f"{name}_{half}"))
            assert f"{name}_{half}" in hp.layers.__all__
            assert f"``{name}_{half}(" in act.__doc__ or f"``{name}_{half}(" in dropout_module.__doc__
        assert f"``{name}_*``" in hp.layers.__doc__
    for name in ("mean_squared_error", "softmax_cross_entropy", "binary_cross_entropy"):
        assert callable(getattr(hp.losses, f"{name}_backward"))
        assert f"``{name}_forward(" in losses_module.__doc__


# ----------------------------------------------------------------------------- the LogSoftmax layer
@pytest.mark.parametrize("shape, axis", [((4, 5), -1), ((2, 3, 4, 4), 1)])
def test_log_softmax_layer_gradient_and_pair(shape, axis):
    x = away_from_zero(shape) * 3
    layer = L.LogSoftmax(axis=axis)
    report = hp.gradcheck.check_layer(layer, x)
    assert report.passed, report.table()
    y = layer.forward(x)
    y_pair, cache = hp.layers.log_softmax_forward(x, axis)
    np.testing.assert_array_equal(y, y_pair)
    np.testing.assert_allclose(np.exp(y).sum(axis=axis), 1.0)  # log-probabilities
    with pytest.raises(ValueError, match="batch axis"):
        L.LogSoftmax(axis=0)


def test_log_softmax_layer_matches_pytorch(torch):
    x = np.random.default_rng(0).standard_normal((3, 4, 2, 2)) * 50
    dy = np.random.default_rng(1).standard_normal(x.shape)
    layer = L.LogSoftmax(axis=1)
    y, dx = layer.forward(x), None
    dx = layer.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.LogSoftmax(dim=1)(xt)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_log_softmax_layer_saves_and_exports(tmp_path, torch):
    model = hp.Sequential([L.Dense(3), L.LogSoftmax()], input_shape=(4,), seed=0)
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    model.save(tmp_path / "m.safetensors")
    again = hp.load_model(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(again.predict(x), model.predict(x))
    module = hp.export.to_torch(model)
    np.testing.assert_allclose(module(torch.tensor(x)).detach().numpy(), model.predict(x), rtol=1e-5, atol=1e-6)
