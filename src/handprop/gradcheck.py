"""Gradient checking: compare hand-written backward passes with central differences.

For a layer ``f`` and a random upstream gradient ``g`` (same shape as ``y = f(x)``) we check the
scalar function ``L(x, θ) = sum(f(x; θ) * g)``, whose gradient is exactly what ``backward(g)``
returns (``dx``) and stores (``grads``). Each checked entry is perturbed both ways::

    numeric = (L(v + h) - L(v - h)) / (2 h)          h = 1e-5, float64

and compared with the analytic value. The relative error of one entry is::

    rel = |analytic - numeric| / max(|analytic| + |numeric|, 1e-3 * scale)

where ``scale`` is the largest ``|analytic| + |numeric|`` over all the tensors of the check, so
entries a thousand times smaller than the typical gradient are compared on that scale rather than
dividing rounding noise by almost zero (the CS231n formula uses a fixed floor of 1e-8 instead).
The scale is shared by all tensors because a whole tensor may have a true gradient of exactly 0:
a Dense bias followed by BatchNorm (which subtracts the mean) is the classic case.
A correct float64 backward gives ~1e-9 or less; a wrong one gives 1e-3 or more. The check
passes when every tensor's max relative error is below ``tol`` (1e-5).

Randomness: layers that draw random numbers (Dropout) keep their generator in ``layer.rng``;
the checker saves its state and replays the same draws for every evaluation, so the mask is
fixed. Running statistics (BatchNorm ``state``) are restored after the check.

Large tensors are checked on a random sample of ``max_elements`` entries (seeded), so the check
stays fast; pass ``max_elements=None`` to check every entry.
"""

from __future__ import annotations

import copy

import numpy as np

from .backend import get_array_module, to_numpy

H = 1e-5
TOL = 1e-5


class GradCheckReport:
    """Result of a gradient check: ``.passed``, ``.max_rel_error`` and a per-tensor table."""

    def __init__(self, title, rows, tol):
        self.title = title
        self.rows = rows  # list of dicts: name, shape, checked, max_abs_error, max_rel_error
        self.tol = tol

    @property
    def max_rel_error(self) -> float:
        return max((r["max_rel_error"] for r in self.rows), default=0.0)

    @property
    def passed(self) -> bool:
        return all(r["max_rel_error"] < self.tol for r in self.rows)

    def __bool__(self):
        return self.passed

    def table(self) -> str:
        head = f"{'tensor':<24}{'shape':<20}{'checked':>8}{'max abs err':>14}{'max rel err':>14}  ok"
        lines = [f"gradient check: {self.title}", head, "-" * len(head)]
        for r in self.rows:
            ok = "yes" if r["max_rel_error"] < self.tol else "NO"
            lines.append(
                f"{r['name']:<24}{str(r['shape']):<20}{r['checked']:>8}"
                f"{r['max_abs_error']:>14.3e}{r['max_rel_error']:>14.3e}  {ok}"
            )
        verdict = "PASSED" if self.passed else "FAILED"
        lines.append(f"{verdict}: max relative error {self.max_rel_error:.3e} (tolerance {self.tol:.0e})")
        return "\n".join(lines)

    __str__ = table

    def __repr__(self):
        return f"GradCheckReport(passed={self.passed}, max_rel_error={self.max_rel_error:.3e})"

    def _repr_html_(self):
        cells = "".join(
            f"<tr><td>{r['name']}</td><td>{r['shape']}</td><td>{r['checked']}</td>"
            f"<td>{r['max_abs_error']:.3e}</td><td>{r['max_rel_error']:.3e}</td>"
            f"<td>{'✔' if r['max_rel_error'] < self.tol else '✘'}</td></tr>"
            for r in self.rows
        )
        verdict = "passed" if self.passed else "FAILED"
        return (
            f"<b>gradient check: {self.title}</b> — {verdict} (max rel error {self.max_rel_error:.2e})"
            "<table><tr><th>tensor</th><th>shape</th><th>checked</th><th>max abs err</th>"
            f"<th>max rel err</th><th>ok</th></tr>{cells}</table>"
        )


def _compare(name, analytic, numeric, scale=0.0):
    """One report row; ``scale`` is the check-wide gradient scale (see the module docstring)."""
    a, n = to_numpy(analytic).ravel(), to_numpy(numeric).ravel()
    total = np.abs(a) + np.abs(n)
    scale = max(scale, total.max() if total.size else 0.0)
    denom = np.maximum(total, max(1e-3 * scale, 1e-30))
    diff = np.abs(a - n)
    return {
        "name": name,
        "shape": tuple(analytic.shape),
        "checked": int(a.size),
        "max_abs_error": float(diff.max()) if diff.size else 0.0,
        "max_rel_error": float((diff / denom).max()) if diff.size else 0.0,
    }


def _rows(compared):
    """Rows for ``[(name, analytic, numeric, shape), ...]``, compared on their common scale."""
    scale = max((float(np.max(np.abs(to_numpy(a)) + np.abs(n), initial=0.0)) for _, a, n, _ in compared),
                default=0.0)
    rows = []
    for name, a, n, shape in compared:
        rows.append(_compare(name, a, n, scale))
        rows[-1]["shape"] = tuple(shape)
    return rows


def _indices(size, max_elements, rng):
    if max_elements is None or size <= max_elements:
        return np.arange(size)
    return np.sort(rng.choice(size, size=max_elements, replace=False))


def numeric_gradient(f, v, indices, h=H):
    """Central differences of the scalar function ``f()`` w.r.t. the entries ``indices`` of
    array ``v`` (perturbed in place and restored). Returns a float64 vector."""
    if not v.flags.c_contiguous:
        raise ValueError("numeric_gradient: v must be C-contiguous (a reshaped copy would be perturbed)")
    flat = v.reshape(-1)  # a view, because v is contiguous
    out = np.empty(len(indices))
    for k, i in enumerate(indices):
        old = flat[i].item()
        flat[i] = old + h
        f_plus = f()
        flat[i] = old - h
        f_minus = f()
        flat[i] = old
        out[k] = (f_plus - f_minus) / (2 * h)
    return out


def _rng_layers(layers):
    return [la for la in layers if isinstance(getattr(la, "rng", None), np.random.Generator)]


class _Replay:
    """Save the random-generator state of layers so that every forward draws the same numbers."""

    def __init__(self, layers):
        self.layers = _rng_layers(layers)
        self.states = [copy.deepcopy(la.rng.bit_generator.state) for la in self.layers]

    def restore(self):
        for la, s in zip(self.layers, self.states):
            la.rng.bit_generator.state = copy.deepcopy(s)


def _as_float64_layer(layer, x=None):
    """Build if needed, then make params and state float64 and C-contiguous: the checker perturbs
    entries through a flat view, which a transposed (e.g. ``params["W"] = M.T``) array lacks."""
    if not layer.built and x is not None:
        layer.build(x.shape[1:], rng=0, dtype=np.float64)
    for d in (layer.params, layer.state):
        for k, v in d.items():
            if v.dtype != np.float64 or not v.flags.c_contiguous:
                d[k] = v.astype(np.float64, order="C")
    layer.dtype = np.float64


def _cast_back(layer, dtype):
    """Return a layer's params and state to the dtype it had before the check."""
    for d in (layer.params, layer.grads, layer.state):
        for k, v in d.items():
            d[k] = v.astype(dtype)
    layer.dtype = dtype


def check_layer(layer, x, seed=0, training=True, max_elements=200, tol=TOL, h=H):
    """Check ``layer.backward`` (input gradient and every parameter gradient) in float64.

    Parameters
    ----------
    layer : Layer — built or not; an unbuilt layer is built in float64, a built one is checked in
        float64 and returned to its own dtype afterwards (parameter values unchanged).
    x : array (N, ...) — the input; converted to float64.
    seed : int — seeds the random upstream gradient and the entry sampling.
    training : bool — the mode forward runs in.

    Returns
    -------
    GradCheckReport with one row for ``x`` and one per parameter.
    """
    if isinstance(x, (list, tuple)):
        raise TypeError(f"check_layer: {layer.name} takes several inputs; check it inside a graph model "
                        "with check_model")
    xp = get_array_module(x)
    x = xp.array(x, dtype=np.float64, order="C")  # a C-contiguous copy, whatever the input's layout
    dtype_before = layer.dtype if layer.built else np.float64
    _as_float64_layer(layer, x)
    rng = np.random.default_rng(seed)
    saved_state = {k: v.copy() for k, v in layer.state.items()}
    replay = _Replay([layer])

    y = layer.forward(x, training=training)
    g = xp.asarray(rng.standard_normal(y.shape))
    g_before = g.copy()
    dx = layer.backward(g)
    if not bool(xp.all(g == g_before)):
        raise AssertionError(f"{layer.name}.backward wrote into its upstream gradient dy")
    analytic = {"x": dx, **{k: v.copy() for k, v in layer.grads.items()}}

    def loss():
        replay.restore()
        return float(xp.sum(layer.forward(x, training=training) * g))

    compared = []
    for name, v in [("x", x), *layer.params.items()]:
        idx = _indices(v.size, max_elements, rng)
        num = numeric_gradient(loss, v, idx, h)
        compared.append((name, to_numpy(analytic[name]).reshape(-1)[idx], num, v.shape))
    rows = _rows(compared)
    layer.state.update(saved_state)
    replay.restore()
    if dtype_before != np.float64:
        _cast_back(layer, dtype_before)
    return GradCheckReport(layer.name, rows, tol)


def check_loss(loss, pred, target, seed=0, max_elements=200, tol=TOL, h=H, weight=None):
    """Check ``loss.backward()`` against central differences of ``loss.forward(pred, target, weight)``."""
    xp = get_array_module(pred)
    pred = xp.array(pred, dtype=np.float64, order="C")
    rng = np.random.default_rng(seed)
    loss.forward(pred, target, weight)
    analytic = loss.backward()
    idx = _indices(pred.size, max_elements, rng)
    num = numeric_gradient(lambda: float(loss.forward(pred, target, weight)), pred, idx, h)
    rows = _rows([("pred", to_numpy(analytic).reshape(-1)[idx], num, pred.shape)])
    return GradCheckReport(type(loss).__name__, rows, tol)


def check_model(model, x, y, seed=0, training=True, max_elements=100, tol=TOL, h=H):
    """Check a whole compiled model: ``loss(model(x), y)`` against every parameter and ``x``.

    The model is built if needed, checked in float64 and cast back to its own dtype afterwards
    (parameter values unchanged; running statistics restored). Inputs may be one array or a
    list of arrays (multi-input graph models).
    """
    if model.loss is None:
        raise ValueError("check_model: compile the model with a loss first")
    multi = isinstance(x, (list, tuple))
    xs = [get_array_module(xi).array(xi, dtype=np.float64, order="C") for xi in (x if multi else [x])]
    dtype_before = model.dtype
    model.ensure_built(xs if multi else xs[0], dtype=np.float64)
    model.cast(np.float64)
    for layer in model.layers_list():
        _as_float64_layer(layer)
    rng = np.random.default_rng(seed)
    saved_state = copy.deepcopy(model.get_state())
    replay = _Replay(model.layers_list())
    inputs = xs if multi else xs[0]

    replay.restore()
    pred = model.forward(inputs, training=training)
    model.loss.forward(pred, y)
    dxs = model.backward(model.loss.backward())
    dxs = dxs if isinstance(dxs, (list, tuple)) else [dxs]
    params, grads = model.named_params(), {k: v.copy() for k, v in model.named_grads().items()}

    def loss():
        replay.restore()
        return float(model.loss.forward(model.forward(inputs, training=training), y))

    compared = []
    tensors = [(f"x{i}" if multi else "x", xi, dxi) for i, (xi, dxi) in enumerate(zip(xs, dxs))]
    tensors += [(k, params[k], grads[k]) for k in params]
    for name, v, a in tensors:
        idx = _indices(v.size, max_elements, rng)
        num = numeric_gradient(loss, v, idx, h)
        compared.append((name, to_numpy(a).reshape(-1)[idx], num, v.shape))
    rows = _rows(compared)
    model.set_state(saved_state)
    replay.restore()
    model.cast(dtype_before)
    return GradCheckReport(getattr(model, "name", type(model).__name__), rows, tol)
