"""Optimizers: step-by-step agreement with torch.optim in float64, plus the handprop-only behaviour
(L1, dtype preservation, state, reset, errors)."""

import inspect

import numpy as np
import pytest

from handprop import optimizers as O
from handprop.surfaces import get_surface

# (handprop class, torch class name, options shared by both)
TORCH_CASES = [
    (O.SGD, "SGD", {"lr": 1e-3}),
    (O.SGD, "SGD", {"lr": 1e-3, "momentum": 0.9}),
    (O.SGD, "SGD", {"lr": 1e-3, "momentum": 0.9, "nesterov": True}),
    (O.SGD, "SGD", {"lr": 1e-3, "momentum": 0.5, "dampening": 0.3, "weight_decay": 0.05}),
    (O.SGD, "SGD", {"lr": 1e-3, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
    (O.RMSprop, "RMSprop", {"lr": 1e-2}),
    (O.RMSprop, "RMSprop", {"lr": 1e-3, "alpha": 0.95, "momentum": 0.9}),
    (O.RMSprop, "RMSprop", {"lr": 1e-3, "centered": True}),
    (O.RMSprop, "RMSprop", {"lr": 1e-3, "momentum": 0.8, "centered": True, "weight_decay": 0.1, "eps": 1e-6}),
    (O.AdaGrad, "Adagrad", {"lr": 0.5}),
    (O.AdaGrad, "Adagrad", {"lr": 0.5, "lr_decay": 0.01, "initial_accumulator_value": 0.1, "weight_decay": 0.1}),
    (O.AdaDelta, "Adadelta", {}),
    (O.AdaDelta, "Adadelta", {"lr": 0.5, "rho": 0.95, "eps": 1e-4, "weight_decay": 0.1}),
    (O.Adam, "Adam", {"lr": 0.05}),
    (O.Adam, "Adam", {"lr": 0.05, "betas": (0.8, 0.99), "amsgrad": True}),
    (O.Adam, "Adam", {"lr": 0.01, "eps": 1e-3, "weight_decay": 0.1, "amsgrad": True}),
]
CASE_IDS = [f"{cls.__name__}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'defaults'}"
            for cls, _, kw in TORCH_CASES]


def rel_error(a, b):
    return float(np.max(np.abs(a - b) / np.maximum(1e-12, np.abs(a) + np.abs(b))))


@pytest.mark.parametrize(("cls", "torch_name", "kwargs"), TORCH_CASES, ids=CASE_IDS)
def test_matches_torch_on_rosenbrock(cls, torch_name, kwargs):
    """300 steps from (-1.5, 2): the whole trajectory agrees with torch.optim in float64."""
    torch = pytest.importorskip("torch")
    surface = get_surface("rosenbrock")
    p = np.array([-1.5, 2.0])
    t = torch.tensor([-1.5, 2.0], dtype=torch.float64, requires_grad=True)
    opt, topt = cls(**kwargs), getattr(torch.optim, torch_name)([t], **kwargs)
    worst = 0.0
    for _ in range(300):
        opt.step({"xy": p}, {"xy": np.array(surface.gradient(*p))})
        t.grad = torch.tensor(surface.gradient(*t.detach().numpy()), dtype=torch.float64)
        topt.step()
        worst = max(worst, rel_error(p, t.detach().numpy()))
    assert np.isfinite(p).all()
    assert worst < 1e-10


@pytest.mark.parametrize(("cls", "torch_name", "kwargs"), TORCH_CASES, ids=CASE_IDS)
def test_matches_torch_on_random_gradients(cls, torch_name, kwargs):
    """Several parameters of different shapes, random gradients, and a learning rate that a
    schedule changes half-way: every parameter agrees with torch at every step."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    shapes = {"W": (4, 3), "b": (3,), "K": (2, 3, 2, 2)}
    params = {k: rng.standard_normal(s) for k, s in shapes.items()}
    tparams = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    opt = cls(**kwargs)
    topt = getattr(torch.optim, torch_name)(list(tparams.values()), **kwargs)
    for step in range(100):
        if step == 50:
            opt.lr *= 0.3
            topt.param_groups[0]["lr"] *= 0.3
        grads = {k: rng.standard_normal(s) * 2.0 for k, s in shapes.items()}
        opt.step(params, grads)
        for k, t in tparams.items():
            t.grad = torch.tensor(grads[k])
        topt.step()
        for k in shapes:
            assert rel_error(params[k], tparams[k].detach().numpy()) < 1e-10, (k, step)


@pytest.mark.parametrize(("cls", "torch_name", "kwargs"), TORCH_CASES[::3], ids=CASE_IDS[::3])
def test_l1_is_sign_added_to_the_gradient(cls, torch_name, kwargs):
    """torch has no L1 option: feeding torch g + l1*sign(p) must give the same walk."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    p = rng.standard_normal((3, 5))
    t = torch.tensor(p, requires_grad=True)
    opt = cls(**kwargs, l1=0.05)
    topt = getattr(torch.optim, torch_name)([t], **kwargs)
    for _ in range(50):
        g = rng.standard_normal(p.shape)
        t.grad = torch.tensor(g + 0.05 * np.sign(t.detach().numpy()))
        opt.step({"p": p}, {"p": g})
        topt.step()
    assert rel_error(p, t.detach().numpy()) < 1e-10


def test_l1_and_weight_decay_by_hand():
    p = np.array([1.0, -2.0, 0.0])
    g = np.array([0.5, 0.5, 0.5])
    O.SGD(lr=0.1, l1=0.2, weight_decay=0.01).step({"p": p}, {"p": g})
    # g + l1 * sign(p) + wd * p = [0.5 + 0.2 + 0.01, 0.5 - 0.2 - 0.02, 0.5 + 0 + 0]
    np.testing.assert_allclose(p, [1.0 - 0.1 * 0.71, -2.0 - 0.1 * 0.28, 0.0 - 0.1 * 0.5], rtol=1e-15)


ALL_OPTIONS = [
    O.SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01, l1=0.01),
    O.RMSprop(lr=0.01, momentum=0.9, centered=True, weight_decay=0.01, l1=0.01),
    O.AdaGrad(lr=0.1, lr_decay=0.1, weight_decay=0.01, l1=0.01),
    O.AdaDelta(weight_decay=0.01, l1=0.01),
    O.Adam(lr=0.01, amsgrad=True, weight_decay=0.01, l1=0.01),
]


@pytest.mark.parametrize("opt", ALL_OPTIONS, ids=lambda o: type(o).__name__)
@pytest.mark.parametrize("grad_dtype", [np.float32, np.float64])
def test_float32_stays_float32_in_place(opt, grad_dtype):
    opt.reset()
    rng = np.random.default_rng(2)
    p = rng.standard_normal((4, 3)).astype(np.float32)
    view, before = p[0], p.copy()
    for _ in range(3):
        opt.step({"p": p}, {"p": rng.standard_normal((4, 3)).astype(grad_dtype)})
    assert p.dtype == np.float32
    assert not np.array_equal(p, before)
    np.testing.assert_array_equal(view, p[0])  # updated in place: a view sees the change
    for key, value in opt.state["p"].items():
        if key != "step":
            assert value.dtype == np.float32, key


@pytest.mark.parametrize("opt", ALL_OPTIONS, ids=lambda o: type(o).__name__)
def test_gradients_are_never_modified(opt):
    opt.reset()
    rng = np.random.default_rng(3)
    p, g = rng.standard_normal(6), rng.standard_normal(6)
    g_before = g.copy()
    for _ in range(3):
        opt.step({"p": p}, {"p": g})
    np.testing.assert_array_equal(g, g_before)
    for key, value in opt.state["p"].items():
        if key != "step":
            assert not np.shares_memory(value, g), key


def test_state_is_inspectable():
    g = np.array([1.0, -2.0])
    expected = {
        O.SGD(momentum=0.9): {"step", "momentum_buffer"},
        O.SGD(): {"step"},
        O.RMSprop(momentum=0.5, centered=True): {"step", "square_avg", "grad_avg", "momentum_buffer"},
        O.AdaGrad(): {"step", "sum"},
        O.AdaDelta(): {"step", "square_avg", "acc_delta"},
        O.Adam(amsgrad=True): {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
    }
    for opt, keys in expected.items():
        opt.step({"w": np.zeros(2)}, {"w": g})
        opt.step({"w": np.zeros(2)}, {"w": g})
        assert set(opt.state["w"]) == keys, type(opt).__name__
        assert opt.state["w"]["step"] == 2
    sgd = O.SGD(momentum=0.9)
    sgd.step({"w": np.zeros(2)}, {"w": g})
    np.testing.assert_array_equal(sgd.state["w"]["momentum_buffer"], g)  # torch: b = g on step 1
    adam = O.Adam(betas=(0.9, 0.999))
    adam.step({"w": np.zeros(2)}, {"w": g})
    np.testing.assert_allclose(adam.state["w"]["exp_avg"], 0.1 * g)
    np.testing.assert_allclose(adam.state["w"]["exp_avg_sq"], 0.001 * g**2)


@pytest.mark.parametrize("opt", ALL_OPTIONS, ids=lambda o: type(o).__name__)
def test_reset_makes_it_fresh(opt):
    rng = np.random.default_rng(4)
    g1, g2 = rng.standard_normal(5), rng.standard_normal(5)
    opt.reset()
    p = np.ones(5)
    opt.step({"p": p}, {"p": g1})
    opt.reset()
    assert opt.state == {}
    q, fresh = p.copy(), O.get(type(opt).__name__, **opt.get_config())
    opt.step({"p": p}, {"p": g2})
    fresh.step({"p": q}, {"p": g2})
    np.testing.assert_array_equal(p, q)
    assert opt.state["p"]["step"] == 1
    for key, value in fresh.state["p"].items():
        np.testing.assert_array_equal(opt.state["p"][key], value)


def test_errors_name_the_problem():
    opt = O.SGD(momentum=0.9)
    w, b = np.zeros(3), np.zeros(2)
    with pytest.raises(KeyError, match="'b'"):
        opt.step({"w": w, "b": b}, {"w": np.ones(3)})
    assert np.all(w == 0), "no parameter may move when a check fails"
    with pytest.raises(ValueError, match="'w'.*shape"):
        opt.step({"w": w}, {"w": np.ones(4)})
    with pytest.raises(TypeError, match="'i'"):
        opt.step({"i": np.zeros(3, dtype=np.int64)}, {"i": np.ones(3)})
    opt.step({"w": w}, {"w": np.ones(3)})
    with pytest.raises(ValueError, match="reset"):
        opt.step({"w": np.zeros(4)}, {"w": np.ones(4)})


def test_invalid_hyperparameters_raise_like_torch():
    with pytest.raises(ValueError, match="Nesterov"):
        O.SGD(nesterov=True)
    with pytest.raises(ValueError, match="Nesterov"):
        O.SGD(momentum=0.9, nesterov=True, dampening=0.1)
    with pytest.raises(ValueError, match="lr"):
        O.Adam(lr=-1.0)
    with pytest.raises(ValueError, match="beta"):
        O.Adam(betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="eps"):
        O.RMSprop(eps=-1e-8)
    with pytest.raises(ValueError, match="learning_rate"):
        O.SGD(lr=0.1, learning_rate=0.2)
    with pytest.raises(ValueError, match="unknown optimizer"):
        O.get("lbfgs")


def test_keras_spelling_and_contract_defaults():
    opt = O.SGD(lr=0.01, momentum=0.9, nesterov=True)  # the tutorial's call, as written
    assert (opt.lr, opt.momentum, opt.nesterov) == (0.01, 0.9, True)
    assert O.Adam(learning_rate=0.02).lr == 0.02
    assert O.RMSprop(learning_rate=0.02, lr=0.02).lr == 0.02
    assert isinstance(O.get("adam"), O.Adam) and O.get(opt) is opt
    defaults = {
        O.SGD: {"lr": 0.01, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0},
        O.RMSprop: {"lr": 0.01, "alpha": 0.99, "eps": 1e-8, "momentum": 0.0, "weight_decay": 0.0},
        O.AdaGrad: {"lr": 0.01, "eps": 1e-10, "weight_decay": 0.0},
        O.AdaDelta: {"lr": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0.0},
        O.Adam: {"lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False},
    }
    for cls, expected in defaults.items():
        assert issubclass(cls, O.Optimizer)
        signature = inspect.signature(cls)
        assert list(signature.parameters)[: len(expected)] == list(expected), cls.__name__
        assert {k: signature.parameters[k].default for k in expected} == expected
        assert "l1" in signature.parameters and "learning_rate" in signature.parameters
        assert cls.__doc__.count("<-") >= 2, "the docstring states the update equations"


def test_lr_is_read_at_every_step():
    p = np.zeros(1)
    opt = O.SGD(lr=0.1)
    opt.step({"p": p}, {"p": np.ones(1)})
    opt.lr = np.float64(0.01)  # a schedule may set a NumPy float; it must not promote float32
    q = np.zeros(1, dtype=np.float32)
    opt.step({"p": p, "q": q}, {"p": np.ones(1), "q": np.ones(1, dtype=np.float32)})
    np.testing.assert_allclose(p, [-0.11])
    assert q.dtype == np.float32
    assert "SGD(lr=" in repr(opt)


@pytest.mark.parametrize("engine", ["numpy", "numba"])
@pytest.mark.parametrize("n", [10, 2**17 + 6])  # small: NumPy's line; large: the numba one-pass p -= lr * g
def test_sgd_momentum_switched_on_later_matches_torch(engine, n, torch):
    """Turning momentum on after the first step starts a buffer at the gradient, as torch does
    (regression: a fused kernel once wrote past a missing buffer)."""
    import handprop as hp

    rng = np.random.default_rng(0)
    p = rng.standard_normal(n)
    pt = torch.tensor(p.copy(), requires_grad=True)
    opt, topt = hp.optimizers.SGD(lr=0.1), torch.optim.SGD([pt], lr=0.1)
    with hp.engine(engine):
        for step in range(4):
            if step == 2:
                opt.momentum = 0.9
                topt.param_groups[0]["momentum"] = 0.9
            g = rng.standard_normal(n)
            opt.step({"w": p}, {"w": g})
            pt.grad = torch.tensor(g)
            topt.step()
    np.testing.assert_allclose(p, pt.detach().numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kwargs", [{}, {"momentum": 0.9}, {"momentum": 0.9, "nesterov": True},
                                    {"momentum": 0.8, "dampening": 0.3, "weight_decay": 0.01}],
                         ids=["plain", "momentum", "nesterov", "dampening-decay"])  # fmt: skip
def test_sgd_on_the_numba_engine_is_bitwise_its_numpy_line(kwargs, dtype, monkeypatch):
    """SGD's ``p -= lr * g`` runs as one pass on the numba engine (kernels/numba_cpu/scaled_add.py):
    the same bits as NumPy's two operations."""
    pytest.importorskip("numba")
    import handprop as hp
    from handprop.kernels.numba_cpu import scaled_add

    calls = []
    original = scaled_add.subtract_scaled
    monkeypatch.setattr(scaled_add, "subtract_scaled", lambda *a: calls.append(1) or original(*a))
    monkeypatch.setattr(hp.kernels.numba_cpu, "subtract_scaled", scaled_add.subtract_scaled)
    p0 = np.random.default_rng(24).standard_normal((scaled_add.MIN_SIZE // 64, 64)).astype(dtype)
    results = []
    for engine in ("numba", "numpy"):
        p, opt = p0.copy(), O.SGD(lr=0.013, **kwargs)
        with hp.engine(engine):
            for step in range(3):
                opt.step({"p": p}, {"p": np.sin(p * (step + 1))})
        results.append(p)
    assert len(calls) == 3  # the numba engine's loop ran (and only there)
    np.testing.assert_array_equal(*results)
    assert not scaled_add.subtract_scaled(p0[:10], p0[:10], 0.1)  # small: left to NumPy
    assert not scaled_add.subtract_scaled(p0[::2], p0[::2], 0.1)  # strided
    assert not scaled_add.subtract_scaled(p0, p0.astype(np.float16), 0.1)  # mixed dtypes
