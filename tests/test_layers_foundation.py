"""Foundation layers: gradient checks, PyTorch parity and the layer contract.

Every layer of the foundation is described once in ``CASES`` (a factory and an input shape without
the batch axis); the tests are parametrized over it. PyTorch twins are built from the handprop
layer's own parameters, so forward, input gradient and parameter gradients are compared 1:1.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from conftest import assert_close
from handprop import layers as L
from handprop.backend import numba_available
from handprop.gradcheck import check_layer

BATCH = 5

CASES = {
    "Dense": (lambda: L.Dense(3), (4,)),
    "Dense-nobias": (lambda: L.Dense(3, use_bias=False), (4,)),
    "Flatten": (L.Flatten, (2, 3, 2)),
    "Sigmoid": (L.Sigmoid, (5,)),
    "Tanh": (L.Tanh, (2, 2, 3)),
    "Linear": (L.Linear, (5,)),
    "ReLU": (L.ReLU, (2, 3, 3)),
    "LeakyReLU": (L.LeakyReLU, (6,)),
    "LeakyReLU-0.2": (lambda: L.LeakyReLU(0.2), (2, 3, 3)),
    "ELU": (L.ELU, (6,)),
    "ELU-0.5": (lambda: L.ELU(0.5), (2, 3, 3)),
    "PReLU-shared-NF": (lambda: L.PReLU(shared=True), (4,)),
    "PReLU-channel-NF": (lambda: L.PReLU(), (4,)),
    "PReLU-shared-NCHW": (lambda: L.PReLU(shared=True), (3, 3, 2)),
    "PReLU-channel-NCHW": (lambda: L.PReLU(), (3, 3, 2)),
    "Softmax": (L.Softmax, (6,)),
    "Dropout": (lambda: L.Dropout(0.3), (10,)),
    "BatchNorm-NF": (L.BatchNorm, (4,)),
    "BatchNorm-NCHW": (L.BatchNorm, (3, 3, 2)),
}
ALL = list(CASES)
TORCH_CASES = [c for c in ALL if c != "Dropout"]  # masks come from different generators
WITH_PARAMS = [c for c in ALL if c.startswith(("Dense", "PReLU", "BatchNorm"))]
DTYPES = [np.float64, np.float32]


def make_input(shape, rng, dtype=np.float64, batch=BATCH):
    """Random input kept at least 0.1 away from 0, so finite differences never straddle a kink."""
    x = rng.standard_normal((batch, *shape))
    return (x + 0.1 * np.sign(x)).astype(dtype)


def make_layer(case, dtype=np.float64, rng=None):
    """A built layer of ``case`` and a matching random input."""
    rng = rng if rng is not None else np.random.default_rng(1)
    factory, shape = CASES[case]
    layer = factory()
    layer.build(shape, rng=0, dtype=dtype)
    # non-trivial parameter values (defaults are 1, 0 and 0.25 everywhere)
    for k, v in layer.params.items():
        if not k == "W":
            layer.params[k] = (v + 0.3 * rng.standard_normal(v.shape)).astype(dtype)
    return layer, make_input(shape, rng, dtype)


# ------------------------------------------------------------------------------- gradient checks
@pytest.mark.parametrize("case", ALL)
def test_gradient_check(case):
    layer, x = make_layer(case)
    report = check_layer(layer, x)
    assert report.passed, str(report)
    assert {r["name"] for r in report.rows} == {"x", *layer.params}


@pytest.mark.parametrize("case", ["Dropout", "BatchNorm-NF", "BatchNorm-NCHW"])
def test_gradient_check_inference_mode(case):
    layer, x = make_layer(case)
    layer.forward(make_input(layer.input_shape, np.random.default_rng(5)) * 2 + 1)  # move running stats
    report = check_layer(layer, x, training=False)
    assert report.passed, str(report)


def test_gradient_check_on_unbuilt_float32_layer():
    layer = L.Dense(3)
    layer.build((4,), rng=0)  # float32
    report = check_layer(layer, make_input((4,), np.random.default_rng(0), np.float32))
    assert report.passed, str(report)


# ------------------------------------------------------------------------------- PyTorch parity
def torch_twin(layer, torch):
    """A torch module computing what ``layer`` computes, initialized from its params, and a dict
    ``name -> (callable returning torch's gradient in handprop's layout)``."""
    F = torch.nn.functional
    dt = torch.float64 if layer.dtype is np.float64 else torch.float32

    def copy_into(tensor, array):
        with torch.no_grad():
            tensor.copy_(torch.from_numpy(np.ascontiguousarray(array)))

    if isinstance(layer, L.Dense):
        d_in, d_out = layer.params["W"].shape
        lin = torch.nn.Linear(d_in, d_out, bias=layer.use_bias, dtype=dt)
        copy_into(lin.weight, layer.params["W"].T)  # torch stores (out, in)
        grads = {"W": lambda: lin.weight.grad.T}
        if layer.use_bias:
            copy_into(lin.bias, layer.params["b"])
            grads["b"] = lambda: lin.bias.grad
        return lin, grads
    if isinstance(layer, L.PReLU):
        prelu = torch.nn.PReLU(num_parameters=layer.params["alpha"].size, dtype=dt)
        copy_into(prelu.weight, layer.params["alpha"])
        return prelu, {"alpha": lambda: prelu.weight.grad}
    if isinstance(layer, L.BatchNorm):
        cls = torch.nn.BatchNorm1d if len(layer.input_shape) == 1 else torch.nn.BatchNorm2d
        bn = cls(layer.input_shape[0], momentum=0.1, eps=1e-5, dtype=dt)
        copy_into(bn.weight, layer.params["gamma"])
        copy_into(bn.bias, layer.params["beta"])
        copy_into(bn.running_mean, layer.state["running_mean"])
        copy_into(bn.running_var, layer.state["running_var"])
        return bn, {"gamma": lambda: bn.weight.grad, "beta": lambda: bn.bias.grad}
    functions = {
        L.Flatten: lambda x: torch.flatten(x, 1),
        L.Sigmoid: torch.sigmoid,
        L.Tanh: torch.tanh,
        L.Linear: lambda x: x * 1,
        L.ReLU: torch.relu,
        L.LeakyReLU: lambda x: F.leaky_relu(x, negative_slope=layer.alpha),
        L.ELU: lambda x: F.elu(x, alpha=layer.alpha),
        L.Softmax: lambda x: torch.softmax(x, dim=-1),
    }
    return functions[type(layer)], {}


def compare_with_torch(layer, x, torch, dtype, rng, training=True):
    """Forward, dx (for a random upstream gradient) and parameter gradients against torch."""
    module, torch_grads = torch_twin(layer, torch)
    if hasattr(module, "train"):
        module.train(training)
    xt = torch.tensor(x, requires_grad=True)
    y = layer.forward(x, training=training)
    yt = module(xt)
    assert_close(y, yt, dtype)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = layer.backward(dy)
    yt.backward(torch.from_numpy(dy))
    assert_close(dx, xt.grad, dtype)
    assert set(torch_grads) == set(layer.params)
    for name, torch_grad in torch_grads.items():
        assert_close(layer.grads[name], torch_grad(), dtype)
    return module


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", TORCH_CASES)
def test_matches_torch(case, dtype, torch, rng):
    layer, x = make_layer(case, dtype, rng)
    compare_with_torch(layer, x, torch, dtype, rng)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ["ReLU", "LeakyReLU", "ELU", "PReLU-channel-NF", "PReLU-shared-NCHW"])
def test_kinks_at_zero_match_torch(case, dtype, torch, rng):
    """At exactly x = 0 the derivative is the left one (0 for ReLU, the slope otherwise), as torch."""
    layer, x = make_layer(case, dtype, rng)
    x.reshape(-1)[::2] = 0
    compare_with_torch(layer, x, torch, dtype, rng)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ["BatchNorm-NF", "BatchNorm-NCHW"])
def test_batchnorm_running_statistics_and_modes_match_torch(case, dtype, torch, rng):
    layer, _ = make_layer(case, dtype, rng)
    assert np.array_equal(layer.state["running_mean"], np.zeros(layer.input_shape[0]))
    assert np.array_equal(layer.state["running_var"], np.ones(layer.input_shape[0]))
    bn, _ = torch_twin(layer, torch)
    for step in range(4):
        x = (make_input(layer.input_shape, rng) * (step + 2) + 3 - step).astype(dtype)
        y = layer.forward(x, training=True)
        bn.train()
        assert_close(y, bn(torch.from_numpy(x)), dtype)
        assert_close(layer.state["running_mean"], bn.running_mean, dtype)
        assert_close(layer.state["running_var"], bn.running_var, dtype)  # unbiased, started at 1
        assert layer.state["running_var"].dtype == dtype
    # inference uses the running statistics: forward and backward
    compare_with_torch(layer, make_input(layer.input_shape, rng, dtype), torch, dtype, rng, training=False)
    # and training mode still uses the batch statistics
    x = make_input(layer.input_shape, rng, dtype) * 5 - 2
    assert not np.allclose(layer.forward(x, training=True), layer.forward(x, training=False))


def test_batchnorm_inference_does_not_touch_running_statistics(rng):
    layer, x = make_layer("BatchNorm-NCHW")
    layer.forward(x * 3 + 1)
    saved = {k: v.copy() for k, v in layer.state.items()}
    layer.forward(x, training=False)
    layer.backward(np.ones_like(x))
    for k in saved:
        assert np.array_equal(layer.state[k], saved[k])


def test_batchnorm_needs_two_values_per_feature():
    layer = L.BatchNorm()
    with pytest.raises(ValueError, match="more than one value per feature"):
        layer.forward(np.ones((1, 3)))


# ------------------------------------------------------------------------------- extreme values
@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_exact_and_quiet_for_huge_inputs(dtype, torch):
    x = np.array([[-1e4, -50.0, -1.0, 0.0, 1.0, 50.0, 1e4]], dtype=dtype)
    layer = L.Sigmoid()
    y = layer.forward(x)  # filterwarnings=error: an overflow warning would fail here
    assert y.dtype == dtype
    assert y[0, 0] == 0.0 and y[0, -1] == 1.0 and y[0, 3] == 0.5
    np.testing.assert_array_equal(y[0, [0, -1]], torch.sigmoid(torch.from_numpy(x))[0, [0, -1]].numpy())
    assert_close(y, torch.sigmoid(torch.from_numpy(x)), dtype)
    dx = layer.backward(np.ones_like(x))
    assert np.all(np.isfinite(dx)) and dx[0, 0] == 0.0 and dx[0, -1] == 0.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_elu_no_overflow_for_large_inputs(dtype, torch):
    big = np.finfo(dtype).max / 2
    x = np.array([[-1e4, -100.0, 0.0, 100.0, 1e4, big]], dtype=dtype)
    layer = L.ELU()
    y = layer.forward(x)
    assert y.dtype == dtype and np.all(np.isfinite(y))
    np.testing.assert_array_equal(y[0, 3:], x[0, 3:])
    assert y[0, 0] == -1.0
    assert_close(y, torch.nn.functional.elu(torch.from_numpy(x)), dtype)
    dx = layer.backward(np.ones_like(x))
    assert np.all(np.isfinite(dx))
    np.testing.assert_array_equal(dx[0, 3:], 1.0)


# ------------------------------------------------------------------------------- dropout
@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_is_identity_in_inference(dtype, rng):
    layer = L.Dropout(0.5)
    x = rng.standard_normal((4, 6)).astype(dtype)
    y = layer.forward(x, training=False)
    np.testing.assert_array_equal(y, x)
    dy = rng.standard_normal(x.shape).astype(dtype)
    np.testing.assert_array_equal(layer.backward(dy), dy)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_dropout_training_semantics(rate, dtype, rng):
    layer = L.Dropout(rate)
    layer.build((500,), rng=0, dtype=dtype)
    x = (1.0 + rng.random((1000, 500))).astype(dtype)  # nonzero everywhere
    y = layer.forward(x, training=True)
    assert y.dtype == dtype
    kept = y != 0
    # every element is either dropped or scaled by 1 / keep probability (inverted dropout)
    np.testing.assert_allclose(y[kept], x[kept] / dtype(1 - rate), rtol=1e-6)
    # rate is the DROP probability (PyTorch's p, Keras' rate); 5e5 draws: std of the fraction < 1e-3
    assert abs((~kept).mean() - rate) < 5e-3
    # the expectation is preserved: mean(y) / mean(x) ~ 1
    assert abs(y.mean(dtype=np.float64) / x.mean(dtype=np.float64) - 1) < 0.02
    # backward applies the same mask and scale
    dy = rng.standard_normal(x.shape).astype(dtype)
    dx = layer.backward(dy)
    assert dx.dtype == dtype
    np.testing.assert_array_equal(dx[~kept], 0)
    np.testing.assert_allclose(dx[kept], dy[kept] / dtype(1 - rate), rtol=1e-6)


def test_dropout_draws_fresh_masks_and_is_reproducible(rng):
    x = np.ones((8, 50))
    a, b = L.Dropout(0.5), L.Dropout(0.5)
    a.build((50,), rng=3)
    b.build((50,), rng=3)
    ya1, ya2 = a.forward(x), a.forward(x)
    assert not np.array_equal(ya1, ya2)  # a new mask every step
    np.testing.assert_array_equal(ya1, b.forward(x))  # same seed, same masks
    np.testing.assert_array_equal(ya2, b.forward(x))


def test_dropout_rate_zero_is_identity_and_bad_rates_are_rejected(rng):
    x = rng.standard_normal((3, 4))
    np.testing.assert_array_equal(L.Dropout(0.0).forward(x, training=True), x)
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="drop probability"):
            L.Dropout(bad)


# ------------------------------------------------------------------------------- the contract
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ALL)
def test_backward_never_writes_into_dy_nor_forward_into_x(case, dtype, rng):
    layer, x = make_layer(case, dtype, rng)
    x_saved = x.copy()
    y = layer.forward(x)
    np.testing.assert_array_equal(x, x_saved)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dy_saved = dy.copy()
    layer.backward(dy)
    np.testing.assert_array_equal(dy, dy_saved)
    np.testing.assert_array_equal(x, x_saved)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ALL)
def test_dtype_is_preserved_and_grads_mirror_params(case, dtype, rng):
    """No silent promotion: float32 in, float32 out, float32 gradients (and float64 likewise)."""
    layer, x = make_layer(case, dtype, rng)
    y = layer.forward(x)
    assert y.dtype == dtype
    assert tuple(y.shape) == (BATCH, *layer.output_shape)
    dx = layer.backward(np.ones_like(y))
    assert dx.dtype == dtype and dx.shape == x.shape
    assert set(layer.grads) == set(layer.params)
    for k, p in layer.params.items():
        assert p.dtype == dtype, k
        assert layer.grads[k].shape == p.shape, k
        assert layer.grads[k].dtype == dtype, k
    for k, s in layer.state.items():
        assert s.dtype == dtype, k


@pytest.mark.parametrize("case", ALL)
def test_grads_exist_before_backward(case):
    layer, _ = make_layer(case)
    assert set(layer.grads) == set(layer.params)
    for k, p in layer.params.items():
        assert layer.grads[k].shape == p.shape and not np.any(layer.grads[k])


@pytest.mark.parametrize("case", ALL)
def test_unbuilt_layer_builds_from_first_input(case, rng):
    factory, shape = CASES[case]
    layer = factory()
    x = make_input(shape, rng, np.float32)
    y = layer.forward(x)
    assert layer.built and layer.input_shape == shape and y.dtype == np.float32
    assert all(p.dtype == np.float32 for p in layer.params.values())


@pytest.mark.parametrize("case", ALL)
def test_shape_mismatch_names_layer_and_both_shapes(case, rng):
    """A size the weights fix (features, channels) must match, with an error naming the layer and
    both shapes; every other size is free (elementwise layers accept any shape at all)."""
    layer, x = make_layer(case, rng=rng)
    other = make_input((*layer.input_shape[:-1], layer.input_shape[-1] + 1), rng, batch=2)
    spec = layer.input_spec
    if spec is None or spec[-1] is None:  # the last size is free: another one just works
        assert layer.forward(other).shape[0] == 2
    if spec is None:
        return
    bad = make_input((layer.input_shape[0] + 1, *layer.input_shape[1:]), rng, batch=2)
    expected = "(N" + "".join(f", {d}" for d in spec) + ")"
    with pytest.raises(ValueError, match=re.escape(layer.name)) as info:
        layer.forward(bad)
    assert expected in str(info.value) and str(bad.shape) in str(info.value)


@pytest.mark.parametrize("case", ALL)
def test_upstream_gradient_shape_mismatch_is_reported(case, rng):
    layer, x = make_layer(case, rng=rng)
    y = layer.forward(x)
    wrong = np.ones((y.shape[0] + 1, *y.shape[1:]))
    with pytest.raises(ValueError, match=re.escape(f"{layer.name}.backward")) as info:
        layer.backward(wrong)
    assert str(wrong.shape) in str(info.value) and str(y.shape) in str(info.value)


def test_dense_on_images_suggests_flatten():
    with pytest.raises(ValueError, match=r"Flatten\(\)"):
        L.Dense(3).build((2, 4, 4))


@pytest.mark.parametrize("case", WITH_PARAMS)
def test_params_dict_is_the_single_source_of_truth(case, rng):
    """Replacing an array in ``layer.params`` (not writing into it) changes forward and backward."""
    layer, x = make_layer(case, rng=rng)
    y_old = layer.forward(x)
    new = {k: (rng.standard_normal(v.shape) + 1.5).astype(v.dtype) for k, v in layer.params.items()}
    for k, v in new.items():
        layer.params[k] = v
    y = layer.forward(x)
    assert not np.allclose(y, y_old)
    if isinstance(layer, L.Dense):
        expected = x @ new["W"] + new.get("b", 0)
        dy = rng.standard_normal(y.shape)
        np.testing.assert_allclose(layer.backward(dy), dy @ new["W"].T)
    elif isinstance(layer, L.PReLU):
        a = new["alpha"].reshape((1, -1) + (1,) * (x.ndim - 2))
        expected = np.where(x > 0, x, a * x)
    else:
        bshape = (1, -1) + (1,) * (x.ndim - 2)
        axes = (0,) if x.ndim == 2 else (0, 2, 3)
        x_hat = (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, keepdims=True) + 1e-5)
        expected = new["gamma"].reshape(bshape) * x_hat + new["beta"].reshape(bshape)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    check = check_layer(layer, x)  # and the gradients follow the new arrays
    assert check.passed, str(check)


def test_conventions_defaults():
    assert L.LeakyReLU().alpha == 0.01 and L.ELU().alpha == 1.0
    bn = L.BatchNorm()
    assert (bn.momentum, bn.eps) == (0.1, 1e-5)
    prelu = L.PReLU()
    prelu.build((3, 4, 4))
    np.testing.assert_array_equal(prelu.params["alpha"], np.full(3, 0.25, np.float32))
    shared = L.PReLU(shared=True)
    shared.build((3, 4, 4))
    assert shared.params["alpha"].shape == (1,)
    dense = L.Dense(7)
    assert dense.build((5,)) == (7,) and dense.params["W"].shape == (5, 7) and dense.params["b"].shape == (7,)
    assert L.Flatten().build((3, 4, 5)) == (60,)
    assert dense.count_params() == 42


def test_integer_input_is_computed_in_floating_point():
    from handprop import layers as L

    x = np.array([[-3, -1, 0, 2, 5]])
    y = L.Sigmoid().forward(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, 1 / (1 + np.exp(-x)), rtol=1e-6)
    np.testing.assert_allclose(L.LeakyReLU(0.1).forward(x), [[-0.3, -0.1, 0, 2, 5]], rtol=1e-6)
    dense = L.Dense(2)
    assert dense.forward(x).dtype == np.float32 and dense.params["W"].dtype == np.float32


def test_check_layer_refuses_merge_layers_in_words():
    import handprop as hp

    with pytest.raises(TypeError, match="check_model"):
        hp.gradcheck.check_layer(hp.layers.Concatenate(), [np.ones((2, 3)), np.ones((2, 3))])


@pytest.mark.skipif(not numba_available(), reason="needs numba")
@pytest.mark.parametrize("layer_class", ["ReLU", "PReLU"])
def test_float16_activations_run_their_own_numpy_lines(layer_class):
    """The numba engine's one-pass loops exist for float32/float64 only; a float16 network (say,
    for a memory demonstration) gets the layer's NumPy definition instead of a TypeError."""
    import handprop as hp

    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float16)
    layer = getattr(hp.layers, layer_class)()
    layer.build(x.shape[1:], dtype=np.float16)
    with hp.engine("numba"):
        y = layer.forward(x)
        dx = layer.backward(np.ones_like(y))
    assert y.dtype == dx.dtype == np.float16
    np.testing.assert_array_equal(y[x > 0], x[x > 0])
