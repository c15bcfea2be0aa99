"""Exercise checkers: each accepts the worked solution and rejects typical wrong answers with the right hint.

The worked solutions here are the ones of ``notebooks/source/*.py`` (executed in the notebook tests too)."""

import math
from fractions import Fraction

import numpy as np
import pytest

import handprop as hp
from handprop.exercises import (
    CheckResult,
    check_adam_step,
    check_conv2d_backward,
    check_conv3d_shape_and_params,
    check_dense_backward,
    check_dense_to_conv,
    check_dropout,
    check_early_stopping,
    check_keras_translation,
    check_largest_stable_lr,
    check_momentum_step,
    check_network_backward,
    check_output_size,
    check_parameter_counts,
    check_receptive_field,
    check_regularized_gradient,
    check_segmentation_scores,
    check_softmax_cross_entropy,
    check_triplanar_patches,
)


def assert_rejected(result, *phrases):
    """Not passed, and the text (findings + hint) names every phrase."""
    assert isinstance(result, CheckResult) and not result and not result.passed
    text = str(result)
    assert text.startswith("NOT YET")
    for phrase in phrases:
        assert phrase in text, f"{phrase!r} not in:\n{text}"


# -- the result object -------------------------------------------------------------------------------
def test_result_renders():
    ok = CheckResult("thing", True, ["all good"])
    bad = CheckResult("thing", False, ["x differs <here>"], hint="try y")
    assert ok and not bad
    assert str(ok).startswith("PASSED: thing") and repr(ok) == str(ok) and "try y" not in str(ok)
    assert "hint: try y" in str(bad)
    assert "passed" in ok._repr_html_() and "&lt;here&gt;" in bad._repr_html_() and "try y" in bad._repr_html_()


# -- chapter 2 -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("answer", [0.99, 0.995, 0.999, np.float64(0.99), np.float32(0.995), Fraction(99, 100)],
                         ids=repr)
def test_largest_stable_lr_accepts(answer):
    result = check_largest_stable_lr(answer)
    assert result, str(result)
    assert "converges" in str(result) and "does not converge" in str(result)  # 95% converges, 105% does not


def test_largest_stable_lr():
    # the bound itself is not stable: y flips sign forever (issue 19)
    for bound in (1, 1.0, np.float64(1.0)):
        assert_rejected(check_largest_stable_lr(bound), "lr = 1 is the bound, not a stable rate", "flips",
                        "lr < 1 (strictly)")
    assert_rejected(check_largest_stable_lr("1.0"), "the string '1.0'", "without quotes",
                    "lr = 1 is the bound", "lr < 1 (strictly)")
    assert_rejected(check_largest_stable_lr("0.99"), "the string '0.99'", "no quotes")
    assert_rejected(check_largest_stable_lr(2.0), "not y")
    assert_rejected(check_largest_stable_lr(20), "limit along x")
    assert_rejected(check_largest_stable_lr(0.9), "stable, but not the largest")
    assert_rejected(check_largest_stable_lr(0.3), "one SGD step for y alone")
    assert_rejected(check_largest_stable_lr(1.01), "not the largest stable rate", "flips sign and grows")
    assert_rejected(check_largest_stable_lr("one"), "expected a number")
    assert_rejected(check_largest_stable_lr(True), "expected a number")
    assert_rejected(check_largest_stable_lr(None), "expected a number")


def momentum_solution(w, dw, state, lr, momentum):
    v = momentum * state.get("v", np.zeros_like(w)) + dw
    state["v"] = v
    return w - lr * v


def momentum_sutskever(w, dw, state, lr, momentum):
    """The other classical form, lr inside the velocity: the same walk."""
    state["v"] = momentum * state.get("v", 0.0) - lr * dw
    w += state["v"]  # in place, and returned
    return w


def test_momentum_checker_accepts_both_classical_forms():
    for solution in (momentum_solution, momentum_sutskever):
        result = check_momentum_step(solution)
        assert result, str(result)
        assert "all 6 steps match" in str(result)


@pytest.mark.parametrize("wrong, phrase", [
    (lambda w, dw, state, lr, momentum: w - lr * dw, "plain SGD"),
    (lambda w, dw, state, lr, momentum: w, "w after step 1 differs"),
    (lambda w, dw, state, lr, momentum: None, "returned None"),
    (lambda w, dw, state, lr, momentum: w - lr * (1 - momentum) * dw, "compare your two lines"),
])
def test_momentum_checker_rejects(wrong, phrase):
    assert_rejected(check_momentum_step(wrong), phrase)


def test_momentum_checker_names_each_known_mistake():
    from handprop.exercises.optimization import MOMENTUM_MISTAKES

    for mistake, hint in MOMENTUM_MISTAKES:
        assert_rejected(check_momentum_step(mistake), hint)


def test_momentum_checker_reports_student_errors():
    def unwritten(w, dw, state, lr, momentum):
        raise NotImplementedError

    def crashes(w, dw, state, lr, momentum):
        return w - lr * state["v"]

    def writes_into_dw(w, dw, state, lr, momentum):
        dw *= lr
        return w - dw

    assert_rejected(check_momentum_step(unwritten), "not written yet")
    assert_rejected(check_momentum_step(crashes), "raised KeyError", "state[\"v\"]")
    assert_rejected(check_momentum_step(writes_into_dw), "wrote into dw")
    assert_rejected(check_momentum_step(lambda w, dw, state, lr, momentum: w[:2]), "shape")


def adam_solution(w, dw, state, lr, beta1, beta2, eps):
    t = state["t"] = state.get("t", 0) + 1
    m = state["m"] = beta1 * state.get("m", 0.0) + (1 - beta1) * dw
    v = state["v"] = beta2 * state.get("v", 0.0) + (1 - beta2) * dw**2
    m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
    return w - lr * m_hat / (np.sqrt(v_hat) + eps)


def test_adam_checker_accepts_the_solution():
    result = check_adam_step(adam_solution)
    assert result, str(result)
    assert str(result).count("match handprop.optimizers") == 2


def test_adam_checker_names_each_known_mistake():
    from handprop.exercises.optimization import ADAM_MISTAKES

    for mistake, hint in ADAM_MISTAKES:
        assert_rejected(check_adam_step(mistake), hint)


def adam_efficient(w, dw, state, lr, beta1, beta2, eps):
    """Kingma & Ba's "efficient" form: corrections folded into the step, eps added to sqrt(v) uncorrected."""
    t = state["t"] = state.get("t", 0) + 1
    m = state["m"] = beta1 * state.get("m", 0.0) + (1 - beta1) * dw
    v = state["v"] = beta2 * state.get("v", 0.0) + (1 - beta2) * dw**2
    alpha_t = lr * np.sqrt(1 - beta2**t) / (1 - beta1**t)
    return w - alpha_t * m / (np.sqrt(v) + eps)


def adam_efficient_eps_hat(w, dw, state, lr, beta1, beta2, eps):
    """The efficient form with eps rescaled (eps_hat = eps sqrt(1 - beta2^t)): exactly Algorithm 1."""
    t = state["t"] = state.get("t", 0) + 1
    m = state["m"] = beta1 * state.get("m", 0.0) + (1 - beta1) * dw
    v = state["v"] = beta2 * state.get("v", 0.0) + (1 - beta2) * dw**2
    alpha_t = lr * np.sqrt(1 - beta2**t) / (1 - beta1**t)
    return w - alpha_t * m / (np.sqrt(v) + eps * np.sqrt(1 - beta2**t))


def adam_in_place(w, dw, state, lr, beta1, beta2, eps):
    """Moments as arrays updated in place, t counted from 0 before the increment, w updated in place."""
    if not state:
        state.update(m=np.zeros_like(w), v=np.zeros_like(w), t=0)
    state["t"] += 1
    state["m"] *= beta1
    state["m"] += (1 - beta1) * dw
    state["v"] *= beta2
    state["v"] += (1 - beta2) * np.square(dw)
    w -= lr * (state["m"] / (1 - beta1 ** state["t"])) / (np.sqrt(state["v"] / (1 - beta2 ** state["t"])) + eps)
    return w


def adam_einsum_float32(w, dw, state, lr, beta1, beta2, eps):
    """Moments kept in float32 would fail: rounding, not a wrong formula; float64 with einsum passes."""
    t = state["t"] = state.get("t", 0) + 1
    m = state["m"] = beta1 * state.get("m", 0.0) + (1 - beta1) * dw
    v = state["v"] = beta2 * state.get("v", 0.0) + (1 - beta2) * np.einsum("...,...->...", dw, dw)
    return w - lr * (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + eps)


@pytest.mark.parametrize("solution", [adam_solution, adam_efficient, adam_efficient_eps_hat, adam_in_place,
                                      adam_einsum_float32], ids=lambda f: f.__name__)
def test_adam_checker_accepts_every_correct_formulation(solution):
    result = check_adam_step(solution)
    assert result, str(result)


def test_adam_checker_names_the_efficient_form():
    text = str(check_adam_step(adam_efficient))
    assert "efficient form" in text and text.count("all 6 steps match") == 2
    assert "match handprop.optimizers" in str(check_adam_step(adam_efficient_eps_hat))  # exactly Algorithm 1

    def efficient_eps_inside(w, dw, state, lr, beta1, beta2, eps):
        t = state["t"] = state.get("t", 0) + 1
        m = state["m"] = beta1 * state.get("m", 0.0) + (1 - beta1) * dw
        v = state["v"] = beta2 * state.get("v", 0.0) + (1 - beta2) * dw**2
        return w - lr * np.sqrt(1 - beta2**t) / (1 - beta1**t) * m / np.sqrt(v + eps)

    def efficient_no_correction(w, dw, state, lr, beta1, beta2, eps):
        m = state["m"] = beta1 * state.get("m", 0.0) + (1 - beta1) * dw
        v = state["v"] = beta2 * state.get("v", 0.0) + (1 - beta2) * dw**2
        return w - lr * m / (np.sqrt(v) + eps)

    assert_rejected(check_adam_step(efficient_eps_inside), "eps belongs outside the square root")
    assert_rejected(check_adam_step(efficient_no_correction), "no bias correction")


def test_adam_checker_t_from_zero():
    def t_from_zero(w, dw, state, lr, beta1, beta2, eps):
        t = state.get("t", 0)
        state["t"] = t + 1
        m = state["m"] = beta1 * state.get("m", 0.0) + (1 - beta1) * dw
        v = state["v"] = beta2 * state.get("v", 0.0) + (1 - beta2) * dw**2
        return w - lr * (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + eps)

    assert_rejected(check_adam_step(t_from_zero), "not finite", "is t 0 at the first step")


# -- chapter 3 -----------------------------------------------------------------------------------------
def test_output_size_checker():
    def solution(n, k, stride=1, padding=0, dilation=1):
        return (n + 2 * padding - dilation * (k - 1) - 1) // stride + 1

    assert check_output_size(solution)
    assert_rejected(check_output_size(lambda n, k, stride=1, padding=0, dilation=1:
                                      (n + 2 * padding - k) // stride + 1), "dilation spreads the kernel")
    assert_rejected(check_output_size(lambda n, k, stride=1, padding=0, dilation=1:
                                      (n + 2 * padding - dilation * (k - 1) - 1) / stride + 1), "floor")
    assert_rejected(check_output_size(lambda n, k, stride=1, padding=0, dilation=1: n - k + 1), "Conv2D gives")


def conv2d_backward_solution(dy, x, W, stride):
    N, C, H, Wd = x.shape
    K, _, R, S = W.shape
    _, _, Ho, Wo = dy.shape
    dx, dW = np.zeros_like(x), np.zeros_like(W)
    for n in range(N):
        for k in range(K):
            for i in range(Ho):
                for j in range(Wo):
                    window = (n, slice(None), slice(i * stride, i * stride + R), slice(j * stride, j * stride + S))
                    dx[window] += W[k] * dy[n, k, i, j]
                    dW[k] += x[window] * dy[n, k, i, j]
    return dx, dW, dy.sum(axis=(0, 2, 3))


def test_conv_backward_checker_accepts_the_solution():
    result = check_conv2d_backward(conv2d_backward_solution)
    assert result, str(result)
    assert "case 2" in str(result)


def test_conv_backward_checker_rejects():
    def last_image_only(dy, x, W, stride):
        dx, _, db = conv2d_backward_solution(dy, x, W, stride)
        return dx, conv2d_backward_solution(dy[-1:], x[-1:], W, stride)[1], db

    def per_image_db(dy, x, W, stride):
        dx, dW, _ = conv2d_backward_solution(dy, x, W, stride)
        return dx, dW, dy.sum(axis=(2, 3))

    def flipped(dy, x, W, stride):
        dx, dW, db = conv2d_backward_solution(dy, x, W[:, :, ::-1, ::-1], stride)
        return dx, conv2d_backward_solution(dy, x, W, stride)[1], db

    def ignores_stride(dy, x, W, stride):
        dx, dW, db = conv2d_backward_solution(dy, x, W, stride)
        dx2 = conv2d_backward_solution(dy, x, W, 1)[0] if stride == 1 else np.zeros_like(x)
        return (dx if stride == 1 else dx2), dW, db

    assert_rejected(check_conv2d_backward(last_image_only), "dW differs from the numerical gradient",
                    "forget to sum over the batch")
    assert_rejected(check_conv2d_backward(per_image_db), "db has shape (2, 4)", "summed over the")
    assert_rejected(check_conv2d_backward(flipped), "dx differs", "kernel flipped")
    assert_rejected(check_conv2d_backward(ignores_stride), "case 1", "match the numerical gradient",
                    "stride-1 case passed")
    assert_rejected(check_conv2d_backward(lambda dy, x, W, stride: (x, W)), "tuple (dx, dW, db)")

    def per_image_dW(dy, x, W, stride):
        dx, _, db = conv2d_backward_solution(dy, x, W, stride)
        per_image = [conv2d_backward_solution(dy[i:i + 1], x[i:i + 1], W, stride)[1] for i in range(len(x))]
        return dx, np.stack(per_image), db

    assert_rejected(check_conv2d_backward(per_image_dW), "dW has shape (2, 4, 3, 3, 3)", "sum over the batch")


def test_receptive_field_checker():
    def solution(layers):
        r, j, fields = 1, 1, []
        for k, s, d in layers:
            r += d * (k - 1) * j
            j *= s
            fields.append(r)
        return fields

    result = check_receptive_field(solution)
    assert result, str(result)
    assert "[3, 5, 9, 17, 33, 65, 129, 131, 131, 131]" in str(result)
    # the library agrees with the tutorial's table
    assert hp.exercises.convolution._library_fields([(3, 1, 2 ** max(i - 1, 0)) for i in range(3)]) == [3, 5, 9]

    from handprop.exercises.convolution import _FIELD_MISTAKES, _fields_with

    for switches, hint in _FIELD_MISTAKES:
        assert_rejected(check_receptive_field(lambda layers, s=switches: _fields_with(layers, **s)), hint)
    assert_rejected(check_receptive_field(lambda layers: solution(layers)[:-1]), "one per layer")


# -- chapter 1 -----------------------------------------------------------------------------------------


def dense_backward_solution(dy, x, W):
    return dy @ W.T, x.T @ dy, dy.sum(axis=0)


def test_dense_backward_checker():
    result = check_dense_backward(dense_backward_solution)
    assert result, str(result)
    assert str(result).count("match the numerical gradient") == 2
    assert_rejected(check_dense_backward(lambda dy, x, W: (dy @ W.T, dy.T @ x, dy.sum(axis=0))),
                    "dW has shape (3, 5)", "transposed")
    assert_rejected(check_dense_backward(lambda dy, x, W: (dy @ W.T, x.T @ dy / len(x), dy.sum(axis=0))),
                    "dW differs", "averaged over the batch")
    assert_rejected(check_dense_backward(lambda dy, x, W: (dy @ W.T, x.T @ dy, dy)), "db has shape (4, 3)",
                    "sum dy over the batch")
    assert_rejected(check_dense_backward(lambda dy, x, W: (dy, x.T @ dy, dy.sum(axis=0))), "dx has shape",
                    "dx = dy @ W.T")
    assert_rejected(check_dense_backward(lambda dy, x, W: (-(dy @ W.T), x.T @ dy, dy.sum(axis=0))), "wrong sign")
    assert_rejected(check_dense_backward(lambda dy, x, W: (dy @ W.T, x.T @ dy)), "tuple (dx, dW, db)")

    def unwritten(dy, x, W):
        raise NotImplementedError

    assert_rejected(check_dense_backward(unwritten), "not written yet")


def dense_dx_without_transpose(dy, x, W):
    dx = dy @ W
    return dx, x.T @ dy, dy.sum(axis=0)


@pytest.mark.parametrize("wrong, phrases", [
    # W is never square in the cases, so dy @ W raises; the checker names the product instead (issue 19)
    (dense_dx_without_transpose, ["shapes do not fit", ": `dx = dy @ W`)", "your dx is dy @ W",
                                  "it must be dy @ W.T"]),
    (lambda dy, x, W: (np.dot(dy, W), x.T @ dy, dy.sum(axis=0)), ["your dx is dy @ W", "dy @ W.T"]),
    (lambda dy, x, W: (dy @ W.T, x @ dy, dy.sum(axis=0)), ["your dW is x @ dy", "it must be x.T @ dy"]),
    (lambda dy, x, W: (dy @ W.T, x.T @ dy.T, dy.sum(axis=0)), ["your dW is x.T @ dy.T", "x.T @ dy"]),
    (lambda dy, x, W: (W @ dy, x.T @ dy, dy.sum(axis=0)), ["columns of A must match the rows of B",
                                                            "dx (N, D_in) = dy (N, D_out) @ W.T"]),
    (lambda dy, x, W: (dy @ W.T, x.T @ dy, dy + W), ["same (or broadcastable) shapes", "db = dy.sum(axis=0)"]),
])
def test_dense_backward_checker_diagnoses_shape_errors(wrong, phrases):
    result = check_dense_backward(wrong)
    assert_rejected(result, *phrases)
    assert "gufunc" not in str(result) and "not aligned" not in str(result)  # no raw NumPy message


def dense_einsum(dy, x, W):
    return np.einsum("no,io->ni", dy, W), np.einsum("ni,no->io", x, dy), np.einsum("no->o", dy)


def dense_loops(dy, x, W):
    dx, dW, db = np.zeros_like(x), np.zeros_like(W), np.zeros(W.shape[1])
    for n in range(len(x)):
        dx[n] = W @ dy[n]
        dW += np.outer(x[n], dy[n])
        db += dy[n]
    return dx, dW, db


def dense_float32_lists(dy, x, W):
    """float32 arithmetic (rounding ~1e-6 here, accepted at float32's tolerance) and a list, not a tuple."""
    dy32, x32, W32 = (a.astype(np.float32) for a in (dy, x, W))
    return [dy32 @ W32.T, x32.T @ dy32, dy32.sum(axis=0)]


@pytest.mark.parametrize("solution", [dense_backward_solution, dense_einsum, dense_loops, dense_float32_lists,
                                      lambda dy, x, W: (np.dot(dy, W.T), np.dot(x.T, dy), np.sum(dy, axis=0)),
                                      lambda dy, x, W: (dy @ W.T, (dy.T @ x).T, dy.sum(axis=0, keepdims=True)[0])],
                         ids=["matmul", "einsum", "loops", "float32-list", "np.dot", "transposed-product"])
def test_dense_backward_checker_accepts_every_correct_formulation(solution):
    result = check_dense_backward(solution)
    assert result, str(result)


def softmax_ce_solution(z, labels):
    n = len(z)
    shifted = z - z.max(axis=1, keepdims=True)
    p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    loss = -np.log(p[np.arange(n), labels]).mean()
    dz = p.copy()
    dz[np.arange(n), labels] -= 1
    return loss, dz / n


def test_softmax_cross_entropy_checker():
    result = check_softmax_cross_entropy(softmax_ce_solution)
    assert result, str(result)
    assert "case 3" in str(result)

    def unshifted(z, labels):
        p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        loss = -np.log(p[np.arange(len(z)), labels]).mean()
        return loss, (p - np.eye(z.shape[1])[labels]) / len(z)

    def not_divided(z, labels):
        loss, dz = softmax_ce_solution(z, labels)
        return loss, dz * len(z)

    def no_onehot(z, labels):
        loss, dz = softmax_ce_solution(z, labels)
        return loss, dz + np.eye(z.shape[1])[labels] / len(z)

    def summed(z, labels):
        loss, dz = softmax_ce_solution(z, labels)
        return loss * len(z), dz

    assert_rejected(check_softmax_cross_entropy(unshifted), "case 1", "not finite", "subtract each row's maximum")
    assert_rejected(check_softmax_cross_entropy(not_divided), "dz differs", "not divided by the batch size")
    assert_rejected(check_softmax_cross_entropy(no_onehot), "subtract 1 at the true class")
    assert_rejected(check_softmax_cross_entropy(summed), "loss", "summed over the batch")
    assert_rejected(check_softmax_cross_entropy(lambda z, labels: (np.zeros(3), z)), "one number")


def network_solution(x, t, W1, b1, W2, b2):
    h = 1 / (1 + np.exp(-(x @ W1 + b1)))
    y = h @ W2 + b2
    dy = 2 * (y - t) / y.size
    dz = (dy @ W2.T) * h * (1 - h)
    return {"W1": x.T @ dz, "b1": dz.sum(axis=0), "W2": h.T @ dy, "b2": dy.sum(axis=0)}


def test_network_backward_checker():
    result = check_network_backward(network_solution)
    assert result, str(result)
    assert str(result).count("match the numerical gradient") == 2

    from handprop.exercises.networks import _NETWORK_MISTAKES, _network_variant

    for switches, hint in _NETWORK_MISTAKES:
        assert_rejected(check_network_backward(lambda *a, s=switches: _network_variant(*a, **s)), hint)

    def wrong_first_layer(x, t, W1, b1, W2, b2):
        grads = network_solution(x, t, W1, b1, W2, b2)
        grads["W1"] = grads["W1"] * 1.5
        return grads

    assert_rejected(check_network_backward(wrong_first_layer), "dW1 differs", "the output layer is right")
    assert_rejected(check_network_backward(lambda *a: {"W1": 0}), "keys")


# -- chapter 4 -----------------------------------------------------------------------------------------
def test_regularized_gradient_checker():
    result = check_regularized_gradient(lambda w, dw, wd, l1: dw + wd * w + l1 * np.sign(w))
    assert result, str(result)
    from handprop.exercises.generalization import _REGULARIZATION_MISTAKES

    for mistake, hint in _REGULARIZATION_MISTAKES:
        assert_rejected(check_regularized_gradient(mistake), hint)

    def in_place(w, dw, wd, l1):
        dw += wd * w + l1 * np.sign(w)
        return dw

    assert_rejected(check_regularized_gradient(in_place), "changed w or dw")


def early_stopping_solution(val_losses, patience, min_delta):
    best, best_epoch, wait = float("inf"), None, 0
    for epoch, value in enumerate(val_losses):
        if value < best - min_delta:
            best, best_epoch, wait = value, epoch, 0
        else:
            wait += 1
            if wait >= patience:
                return epoch, best_epoch
    return None, best_epoch


def test_early_stopping_checker():
    result = check_early_stopping(early_stopping_solution)
    assert result, str(result)
    assert "never stops" in str(result) and "stop after epoch None" in str(result)
    from handprop.exercises.generalization import _STOPPING_MISTAKES, _variant

    for switches, hint in _STOPPING_MISTAKES:
        assert_rejected(check_early_stopping(lambda v, p, d, s=switches: _variant(v, p, d, **s)), hint)
    assert_rejected(check_early_stopping(lambda v, p, d: (None, 0)), "should stop here")
    assert_rejected(check_early_stopping(lambda v, p, d: 3), "return (stop_epoch, best_epoch)")


def dropout_solution(x, rate, training, rng):
    if not training:
        return x
    return x * (rng.random(x.shape) >= rate) / (1 - rate)


def test_dropout_checker():
    result = check_dropout(dropout_solution)
    assert result, str(result)
    assert_rejected(check_dropout(lambda x, rate, training, rng: x * (rng.random(x.shape) < rate) / rate
                                  if training else x), "probability of *dropping*")
    assert_rejected(check_dropout(lambda x, rate, training, rng: x * (rng.random(x.shape) >= rate)
                                  if training else x), "not rescaled")
    assert_rejected(check_dropout(lambda x, rate, training, rng: dropout_solution(x, rate, training, rng)
                                  if training else x * (1 - rate)), "at inference inverted dropout does nothing")
    assert_rejected(check_dropout(lambda x, rate, training, rng: x * (rng.random(x.shape) >= rate) * (1 - rate)
                                  if training else x), "do not multiply")
    fixed = np.random.default_rng(5)
    mask = fixed.random((200, 200)) >= 0.3
    assert_rejected(check_dropout(lambda x, rate, training, rng: x * mask / (1 - rate) if training else x),
                    "same elements")

    def in_place(x, rate, training, rng):
        if training:
            x *= (rng.random(x.shape) >= rate) / (1 - rate)
        return x

    assert_rejected(check_dropout(in_place), "changed x in place")
    assert_rejected(check_dropout(lambda x, rate, training, rng: x * (rng.random(x.shape) >= 0.5) / (1 - rate)
                                  if training else x), "expected about rate")


# -- chapter 5 -----------------------------------------------------------------------------------------
def test_parameter_counts_checker():
    result = check_parameter_counts(lambda c, f, k: f * c * k * k + f, lambda d, u: d * u + u)
    assert result, str(result)
    assert "2,784,775" in str(result)
    assert_rejected(check_parameter_counts(lambda c, f, k: f * c * k * k, lambda d, u: d * u + u),
                    "each filter also has a bias")
    assert_rejected(check_parameter_counts(lambda c, f, k: f * k * k + f, lambda d, u: d * u),
                    "per *input channel*", "each unit also has a bias")
    assert_rejected(check_parameter_counts(lambda c, f, k: f * c * k * k + f, lambda d, u: d * u + d),
                    "one bias per output unit")


def keras_translation_solution():
    L = hp.layers
    model = hp.Sequential()
    model.add(L.Convolution2D(32, (3, 3), input_shape=(3, 25, 25)))
    model.add(L.PReLU())
    model.add(L.MaxPooling2D(pool_size=(2, 2)))
    model.add(L.Convolution2D(64, (3, 3)))
    model.add(L.PReLU())
    model.add(L.MaxPooling2D(pool_size=(2, 2)))
    model.add(L.Flatten())
    model.add(L.Dense(256))
    model.add(L.PReLU())
    model.add(L.Dropout(0.5))
    model.add(L.Dense(2))
    model.compile(loss="categorical_crossentropy", optimizer=hp.optimizers.SGD(lr=0.01, momentum=0.9, nesterov=True))
    return model


def test_keras_translation_checker():
    result = check_keras_translation(keras_translation_solution)
    assert result, str(result)
    assert "282,658 parameters" in str(result)
    L = hp.layers

    def keras1_conv():
        return hp.Sequential([L.Convolution2D(32, 3, 3, input_shape=(3, 25, 25))])

    def channels_last():
        return hp.Sequential([L.Conv2D(32, 3, input_shape=(25, 25, 3))])

    def with_softmax():
        model = keras_translation_solution()
        model.add(L.Activation("softmax"))
        model.compile(loss="categorical_crossentropy", optimizer="sgd")
        return model

    def relu():
        return hp.Sequential([L.Conv2D(32, 3), L.ReLU(), L.MaxPool2D(2), L.Conv2D(64, 3), L.ReLU(), L.MaxPool2D(2),
                              L.Flatten(), L.Dense(256), L.ReLU(), L.Dropout(0.5), L.Dense(2)], input_shape=(3, 25, 25))

    def keep_probability():
        return hp.Sequential([L.Conv2D(32, 3), L.PReLU(), L.MaxPool2D(2), L.Conv2D(64, 3), L.PReLU(), L.MaxPool2D(2),
                              L.Flatten(), L.Dense(256), L.PReLU(), L.Dropout(0.3), L.Dense(2)],
                             input_shape=(3, 25, 25))

    def plain_sgd():
        model = keras_translation_solution()
        model.compile(loss="categorical_crossentropy", optimizer=hp.optimizers.SGD(lr=0.01))
        return model

    def not_compiled():
        return hp.architectures.patch_cnn(25, n_classes=2, filters=(32, 64), kernel_sizes=(3, 3), dense_units=256,
                                          dropout=0.5)

    assert_rejected(check_keras_translation(keras1_conv), "keyword-only", "Conv2D(32, (3, 3))")
    assert_rejected(check_keras_translation(channels_last), "channels-last", "channels first")
    assert_rejected(check_keras_translation(with_softmax), "applies softmax", "leave out the final")
    assert_rejected(check_keras_translation(relu), "layers 2 (ReLU), 5 (ReLU), 9 (ReLU)", "hp.layers.PReLU()",
                    "not ReLU")
    assert_rejected(check_keras_translation(keep_probability), "dropout rates [0.3]")
    assert_rejected(check_keras_translation(plain_sgd), "'nesterov': False", "nesterov=True")
    assert_rejected(check_keras_translation(not_compiled), "not compiled")
    assert_rejected(check_keras_translation(lambda: None), "returned None", "return the model")
    assert_rejected(check_keras_translation(lambda: [L.Conv2D(32, 3)]), "returned list, not an hp.Sequential")
    # the tutorial's own ConvNet: 2,784,775 parameters (chapter 5's lesson builds it)
    assert hp.architectures.patch_cnn(29, dense_units=2000, n_classes=135).count_params() == 2_784_775


def keras_translation_graph_model():
    """The same network written with the graph API (hp.Input / hp.Model): also correct."""
    L = hp.layers
    inputs = hp.Input((3, 25, 25))
    x = L.MaxPool2D(2)(L.PReLU()(L.Conv2D(32, 3)(inputs)))
    x = L.MaxPool2D(2)(L.PReLU()(L.Conv2D(64, 3)(x)))
    x = L.Dropout(0.5)(L.PReLU()(L.Dense(256)(L.Flatten()(x))))
    model = hp.Model(inputs, L.Dense(2)(x))
    model.compile(loss=hp.losses.SoftmaxCrossEntropy(),
                  optimizer=hp.optimizers.SGD(lr=0.01, momentum=0.9, nesterov=True))
    return model


def keras_translation_list():
    """A list given to Sequential, input_shape on the model, the Keras names of the layers, a metric."""
    L = hp.layers
    model = hp.Sequential([L.Conv2D(32, (3, 3)), L.PReLU(shared=False), L.MaxPooling2D((2, 2)), L.Conv2D(64, 3),
                           L.PReLU(alpha_init=0.25), L.MaxPool2D(pool_size=2, stride=2), L.Flatten(), L.Dense(256),
                           L.PReLU(), L.Dropout(rate=0.5), L.Dense(2)], input_shape=(3, 25, 25), seed=3)
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  optimizer=hp.optimizers.SGD(lr=1e-2, momentum=0.9, nesterov=True))
    return model


def keras_translation_built_later():
    """No input_shape on the layers: model.build((3, 25, 25)) before returning."""
    model = keras_translation_solution()
    fresh = hp.Sequential(model.layers[:0])
    for layer in hp.architectures.patch_cnn(25, n_classes=2, filters=(32, 64), kernel_sizes=(3, 3), dense_units=256,
                                            dropout=0.5).layers:
        fresh.add(type(layer)(**layer.get_config()))
    fresh.build((3, 25, 25))
    fresh.compile(loss=hp.losses.SoftmaxCrossEntropy(), optimizer=hp.optimizers.SGD(0.01, 0.9, nesterov=True))
    return fresh


@pytest.mark.parametrize("build", [keras_translation_solution, keras_translation_graph_model, keras_translation_list,
                                   keras_translation_built_later], ids=lambda f: f.__name__)
def test_keras_translation_accepts_every_correct_formulation(build):
    result = check_keras_translation(build)
    assert result, str(result)
    assert "282,658 parameters" in str(result)


def test_keras_translation_names_the_activation_mistakes():
    L = hp.layers

    def fused():
        model = hp.Sequential([L.Conv2D(32, 3, activation="relu"), L.MaxPool2D(2), L.Conv2D(64, 3, activation="relu"),
                               L.MaxPool2D(2), L.Flatten(), L.Dense(256, activation="relu"), L.Dropout(0.5),
                               L.Dense(2)], input_shape=(3, 25, 25))
        return model

    def leaky():
        model = keras_translation_solution()
        return hp.Sequential([L.LeakyReLU() if isinstance(la, L.PReLU) else type(la)(**la.get_config())
                              for la in model.layers], input_shape=(3, 25, 25))

    def graph_relu():
        inputs = hp.Input((3, 25, 25))
        x = L.MaxPool2D(2)(L.ReLU()(L.Conv2D(32, 3)(inputs)))
        x = L.MaxPool2D(2)(L.PReLU()(L.Conv2D(64, 3)(x)))
        x = L.Dropout(0.5)(L.PReLU()(L.Dense(256)(L.Flatten()(x))))
        return hp.Model(inputs, L.Dense(2)(x))

    def graph_wrong_input():
        inputs = hp.Input((3, 29, 29))
        return hp.Model(inputs, L.Dense(2)(L.Flatten()(inputs)))

    assert_rejected(check_keras_translation(fused), "activation='relu'", "separate PReLU() layer")
    assert_rejected(check_keras_translation(leaky), "layers 2 (LeakyReLU), 5 (LeakyReLU), 9 (LeakyReLU)",
                    "not LeakyReLU")
    assert_rejected(check_keras_translation(graph_relu), "layer 2 (ReLU)", "hp.layers.PReLU()")
    assert_rejected(check_keras_translation(graph_wrong_input), "(3, 29, 29)", "input_shape=(3, 25, 25)")


# -- chapter 6 -----------------------------------------------------------------------------------------
def segmentation_scores_solution(prediction, vessels, fov):
    p, v, f = prediction.astype(bool), vessels.astype(bool), fov.astype(bool)
    tp, fp = np.sum(p & v & f), np.sum(p & ~v & f)
    fn, tn = np.sum(~p & v & f), np.sum(~p & ~v & f)
    return {"dice": 2 * tp / (2 * tp + fp + fn), "sensitivity": tp / (tp + fn), "specificity": tn / (tn + fp),
            "accuracy": (tp + tn) / f.sum()}


def test_segmentation_scores_checker():
    result = check_segmentation_scores(segmentation_scores_solution)
    assert result, str(result)

    def whole_image(prediction, vessels, fov):
        return segmentation_scores_solution(prediction, vessels, np.ones_like(fov))

    def iou(prediction, vessels, fov):
        scores = segmentation_scores_solution(prediction, vessels, fov)
        d = scores["dice"]
        return {**scores, "dice": d / (2 - d)}

    def swapped(prediction, vessels, fov):
        s = segmentation_scores_solution(prediction, vessels, fov)
        return {**s, "sensitivity": s["specificity"], "specificity": s["sensitivity"]}

    def precision(prediction, vessels, fov):
        s = segmentation_scores_solution(prediction, vessels, fov)
        p, v, f = prediction.astype(bool), vessels.astype(bool), fov.astype(bool)
        return {**s, "sensitivity": np.sum(p & v & f) / np.sum(p & f)}

    assert_rejected(check_segmentation_scores(whole_image), "inside the FOV", "inflates specificity")
    assert_rejected(check_segmentation_scores(iou), "Jaccard")
    assert_rejected(check_segmentation_scores(swapped), "swapped")
    assert_rejected(check_segmentation_scores(precision), "precision")
    assert_rejected(check_segmentation_scores(lambda p, v, f: {"dice": 1.0}), "keys")


def test_dense_to_conv_checker():
    result = check_dense_to_conv(lambda W, shape: W.T.reshape(W.shape[1], *shape))
    assert result, str(result)
    assert_rejected(check_dense_to_conv(lambda W, shape: W.reshape(W.shape[1], *shape)), "transpose it first")
    assert_rejected(check_dense_to_conv(lambda W, shape: np.moveaxis(
        W.T.reshape(W.shape[1], shape[1], shape[2], shape[0]), -1, 1)), "channel first")
    assert_rejected(check_dense_to_conv(lambda W, shape: W.T.reshape(W.shape[1], shape[1], shape[2], shape[0])),
                    "channels first: (units, C, h, w)")
    assert_rejected(check_dense_to_conv(lambda W, shape: W.T.reshape(
        W.shape[1], shape[0], shape[2], shape[1]).transpose(0, 1, 3, 2)), "3 x 3 map", "rows and columns are swapped")


# -- chapter 7 -----------------------------------------------------------------------------------------
def conv3d_solution(input_shape, filters, kernel_size, stride=1, padding=0):
    C, *sizes = input_shape
    out = tuple((n + 2 * padding - kernel_size) // stride + 1 for n in sizes)
    return (filters, *out), filters * C * kernel_size**3 + filters


def test_conv3d_checker():
    assert check_conv3d_shape_and_params(conv3d_solution)

    def params(function):
        def wrapped(input_shape, filters, k, stride=1, padding=0):
            return conv3d_solution(input_shape, filters, k, stride, padding)[0], function(input_shape[0], filters, k)
        return wrapped

    from handprop.exercises.beyond import _PARAM_MISTAKES

    for formula, hint in _PARAM_MISTAKES:
        assert_rejected(check_conv3d_shape_and_params(params(formula)), hint)

    def no_padding(input_shape, filters, k, stride=1, padding=0):
        return conv3d_solution(input_shape, filters, k, stride, 0)

    assert_rejected(check_conv3d_shape_and_params(no_padding), "output shape (4, 8, 18, 28)", "(n + 2 padding - k)")


def triplanar_solution(volume, centre, size):
    h = size // 2
    padded = np.pad(volume, ((0, 0), (h, h), (h, h), (h, h)))
    z, y, x = (c + h for c in centre)
    return (padded[:, z, y - h:y + h + 1, x - h:x + h + 1], padded[:, z - h:z + h + 1, y, x - h:x + h + 1],
            padded[:, z - h:z + h + 1, y - h:y + h + 1, x])


def test_triplanar_checker():
    result = check_triplanar_patches(triplanar_solution)
    assert result, str(result)

    def transposed_sagittal(volume, centre, size):
        a, c, s = triplanar_solution(volume, centre, size)
        return a, c, s.transpose(0, 2, 1)

    def swapped(volume, centre, size):
        a, c, s = triplanar_solution(volume, centre, size)
        return a, s, c

    def unpadded(volume, centre, size):
        h = size // 2
        z, y, x = centre
        return (volume[:, z, y - h:y + h + 1, x - h:x + h + 1], volume[:, z - h:z + h + 1, y, x - h:x + h + 1],
                volume[:, z - h:z + h + 1, y - h:y + h + 1, x])

    def off_by_one(volume, centre, size):
        return triplanar_solution(volume, tuple(c + 1 for c in centre), size)

    assert_rejected(check_triplanar_patches(transposed_sagittal), "sagittal patch differs", "transposed")
    assert_rejected(check_triplanar_patches(swapped), "wrong order")
    assert_rejected(check_triplanar_patches(unpadded), "near the border", "zero-pad")
    assert_rejected(check_triplanar_patches(off_by_one), "[size // 2, size // 2]")


# -- every checker accepts every correct formulation (issue 19) --------------------------------------------
def _sigmoid(z):
    return 0.5 * np.tanh(0.5 * z) + 0.5


def softmax_ce_logsumexp(z, labels):
    """log-sum-exp form, the loss from log-probabilities (exact for huge logits), a Python float."""
    m = z.max(axis=1, keepdims=True)
    logp = z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))
    n = len(z)
    onehot = np.eye(z.shape[1])[labels]
    return float(-(onehot * logp).sum() / n), (np.exp(logp) - onehot) / n


def softmax_ce_add_at(z, labels):
    """np.add.at for the one-hot, loss as a 1-element array, float32 arithmetic."""
    z32 = z.astype(np.float32)
    shifted = z32 - z32.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    dz = np.exp(logp)
    np.add.at(dz, (np.arange(len(z)), labels), -1)
    return np.array([-logp[np.arange(len(z)), labels].mean()]), dz / len(z)


def test_softmax_cross_entropy_names_an_underflowed_log():
    def log_of_softmax(z, labels):  # max-shifted, but log(p) of a p that underflowed in float32
        z32 = z.astype(np.float32)
        e = np.exp(z32 - z32.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore"):
            loss = -np.log(p[np.arange(len(z)), labels]).mean()
        return loss, (p - np.eye(z.shape[1])[labels]) / len(z)

    assert_rejected(check_softmax_cross_entropy(log_of_softmax), "case 3", "underflowed to 0",
                    "log p = (z - max z) - log(sum(exp(z - max z)))")


@pytest.mark.parametrize("solution", [softmax_ce_solution, softmax_ce_logsumexp, softmax_ce_add_at],
                         ids=lambda f: f.__name__)
def test_softmax_cross_entropy_accepts_every_correct_formulation(solution):
    result = check_softmax_cross_entropy(solution)
    assert result, str(result)


def network_einsum_tanh(x, t, W1, b1, W2, b2):
    """einsum, a tanh-based sigmoid, the mean written as N * D_out, an extra key in the dict."""
    h = _sigmoid(np.einsum("ni,ih->nh", x, W1) + b1)
    y = np.einsum("nh,ho->no", h, W2) + b2
    dy = 2 * (y - t) / (t.shape[0] * t.shape[1])
    dz = np.einsum("no,ho->nh", dy, W2) * h * (1 - h)
    return {"W1": np.einsum("ni,nh->ih", x, dz), "b1": dz.sum(0), "W2": np.einsum("nh,no->ho", h, dy),
            "b2": dy.sum(0), "loss": float(np.mean((y - t) ** 2))}


def network_float32(x, t, W1, b1, W2, b2):
    return network_solution(*(a.astype(np.float32) for a in (x, t, W1, b1, W2, b2)))


@pytest.mark.parametrize("solution", [network_solution, network_einsum_tanh, network_float32],
                         ids=lambda f: f.__name__)
def test_network_backward_accepts_every_correct_formulation(solution):
    result = check_network_backward(solution)
    assert result, str(result)


def momentum_in_place_arrays(w, dw, state, lr, momentum):
    """Velocity as an array updated in place, w updated in place and returned."""
    if "v" not in state:
        state["v"] = np.zeros_like(w)
    state["v"] *= momentum
    state["v"] += dw
    w -= lr * state["v"]
    return w


def momentum_torch_first_step(w, dw, state, lr, momentum):
    """torch.optim.SGD's buffer: v = dw at the first step, momentum * v + dw afterwards."""
    state["v"] = dw.copy() if "v" not in state else momentum * state["v"] + dw
    return w - lr * state["v"]


@pytest.mark.parametrize("solution", [momentum_solution, momentum_sutskever, momentum_in_place_arrays,
                                      momentum_torch_first_step], ids=lambda f: f.__name__)
def test_momentum_checker_accepts_every_correct_formulation(solution):
    result = check_momentum_step(solution)
    assert result, str(result)


@pytest.mark.parametrize("solution", [
    lambda n, k, stride=1, padding=0, dilation=1: (n + 2 * padding - dilation * (k - 1) - 1) // stride + 1,
    lambda n, k, stride=1, padding=0, dilation=1: math.floor((n + 2 * padding - dilation * (k - 1) - 1) / stride) + 1,
    lambda n, k, stride=1, padding=0, dilation=1: int(np.floor((n + 2 * padding - (dilation * (k - 1) + 1)) / stride
                                                               + 1)),
    lambda n, k, stride=1, padding=0, dilation=1: np.int64((n + 2 * padding - dilation * (k - 1) - 1) // stride + 1),
    lambda n, k, stride=1, padding=0, dilation=1: np.floor((n + 2 * padding - dilation * (k - 1) - 1) / stride) + 1,
    lambda n, k, stride=1, padding=0, dilation=1: len(range(0, n + 2 * padding - dilation * (k - 1), stride)),
], ids=["floordiv", "math.floor", "int(np.floor)", "np.int64", "whole float", "count the positions"])
def test_output_size_accepts_every_correct_formulation(solution):
    result = check_output_size(solution)
    assert result, str(result)


def conv2d_backward_vectorized(dy, x, W, stride):
    """sliding_window_view + einsum for dW, np.add.at-free scatter for dx: no loops over pixels."""
    K, C, R, S = W.shape
    Ho, Wo = dy.shape[2:]
    windows = np.lib.stride_tricks.sliding_window_view(x, (R, S), axis=(2, 3))[:, :, ::stride, ::stride][:, :, :Ho, :Wo]
    dW = np.einsum("nkij,ncijrs->kcrs", dy, windows)
    dx = np.zeros_like(x)
    for r in range(R):
        for s in range(S):
            rows, cols = slice(r, r + stride * Ho, stride), slice(s, s + stride * Wo, stride)
            dx[:, :, rows, cols] += np.einsum("nkij,kc->ncij", dy, W[:, :, r, s])
    return dx, dW, np.einsum("nkij->k", dy)


def conv2d_backward_float32(dy, x, W, stride):
    return conv2d_backward_solution(*(a.astype(np.float32) for a in (dy, x, W)), stride)


@pytest.mark.parametrize("solution", [conv2d_backward_solution, conv2d_backward_vectorized, conv2d_backward_float32],
                         ids=lambda f: f.__name__)
def test_conv_backward_accepts_every_correct_formulation(solution):
    result = check_conv2d_backward(solution)
    assert result, str(result)


def receptive_field_backwards(layers):
    """From each layer back to the input: r <- s r + d (k - 1), a tuple of numpy ints."""
    fields = []
    for last in range(len(layers)):
        r = 1
        for k, s, d in reversed(layers[:last + 1]):
            r = s * r + d * (k - 1) - (s - 1)
        fields.append(np.int64(r))
    return tuple(fields)


def receptive_field_jump_product(layers):
    """r = 1 + sum_i d_i (k_i - 1) prod_{j < i} s_j, as a numpy array."""
    jumps = np.cumprod([1] + [s for _, s, _ in layers])[:-1]
    return 1 + np.cumsum([d * (k - 1) * j for (k, _, d), j in zip(layers, jumps)])


@pytest.mark.parametrize("solution", [receptive_field_backwards, receptive_field_jump_product],
                         ids=lambda f: f.__name__)
def test_receptive_field_accepts_every_correct_formulation(solution):
    result = check_receptive_field(solution)
    assert result, str(result)


def regularized_where(w, dw, wd, l1):
    sign = np.where(w > 0, 1.0, np.where(w < 0, -1.0, 0.0))
    g = dw.copy()
    g += wd * w
    g += l1 * sign
    return g


@pytest.mark.parametrize("solution", [
    lambda w, dw, wd, l1: dw + wd * w + l1 * np.sign(w),
    lambda w, dw, wd, l1: np.sign(w) * l1 + w * wd + dw,
    regularized_where,
    lambda w, dw, wd, l1: np.add(dw, wd * w + l1 * np.sign(w), dtype=np.float64),
    lambda w, dw, wd, l1: (dw + wd * w + l1 * np.sign(w)).tolist(),
], ids=["textbook", "reordered", "where-sign, in place on a copy", "np.add", "nested list"])
def test_regularized_gradient_accepts_every_correct_formulation(solution):
    result = check_regularized_gradient(solution)
    assert result, str(result)


def early_stopping_keras(val_losses, patience, min_delta):
    """Keras' bookkeeping: best starts at +inf, the wait counter checked after incrementing, numpy ints."""
    best, best_epoch, wait = np.inf, -1, 0
    for epoch, value in enumerate(val_losses):
        wait += 1
        if value - min_delta < best and value < best - min_delta:
            best, best_epoch, wait = value, np.int64(epoch), 0
        if wait >= patience:
            return np.int64(epoch), best_epoch
    return None, best_epoch


def early_stopping_history(val_losses, patience, min_delta):
    """No counter: the epochs since the best one."""
    best_epoch = 0
    for epoch in range(1, len(val_losses)):
        if val_losses[epoch] < val_losses[best_epoch] - min_delta:
            best_epoch = epoch
        elif epoch - best_epoch >= patience:
            return epoch, best_epoch
    return None, best_epoch


@pytest.mark.parametrize("solution", [early_stopping_solution, early_stopping_keras, early_stopping_history],
                         ids=lambda f: f.__name__)
def test_early_stopping_accepts_every_correct_formulation(solution):
    result = check_early_stopping(solution)
    assert result, str(result)


def dropout_keep_mask(x, rate, training, rng):
    if not training:
        return x.copy()
    keep = 1 - rate
    return np.where(rng.random(x.shape) < keep, x / keep, 0.0)


def dropout_binomial(x, rate, training, rng):
    return x * rng.binomial(1, 1 - rate, size=x.shape) / (1 - rate) if training else x


def dropout_cs231n_pair(x, rate, training, rng):
    """CS231n's convention, as hp.layers.dropout_forward: return (y, cache)."""
    if not training:
        return x, None
    mask = (rng.random(x.shape) >= rate) / (1 - rate)
    return x * mask, mask


def dropout_float32(x, rate, training, rng):
    if not training:
        return x
    return x.astype(np.float32) * (rng.random(x.shape, dtype=np.float32) >= rate) / np.float32(1 - rate)


@pytest.mark.parametrize("solution", [dropout_solution, dropout_keep_mask, dropout_binomial, dropout_cs231n_pair,
                                      dropout_float32], ids=lambda f: f.__name__)
def test_dropout_checker_accepts_every_correct_formulation(solution):
    result = check_dropout(solution)
    assert result, str(result)


@pytest.mark.parametrize("conv, dense", [
    (lambda c, f, k: f * (c * k * k + 1), lambda d, u: u * (d + 1)),
    (lambda c, f, k: int(np.prod((f, c, k, k))) + f, lambda d, u: np.int64(d * u + u)),
    (lambda c, f, k: float(f * c * k**2 + f), lambda d, u: float(d * u + u)),
    (lambda c, f, k: hp.layers.Conv2D(f, k).build((c, 8, 8)) and None or (f * c * k * k + f),
     lambda d, u: d * u + u),
], ids=["factored", "numpy ints", "whole floats", "with a side effect"])
def test_parameter_counts_accepts_every_correct_formulation(conv, dense):
    result = check_parameter_counts(conv, dense)
    assert result, str(result)


def segmentation_scores_indexing(prediction, vessels, fov):
    """Boolean indexing by the FOV first, numpy floats, an extra key."""
    p, v = prediction[fov.astype(bool)].astype(bool), vessels[fov.astype(bool)].astype(bool)
    tp, fp, fn = np.sum(p & v), np.sum(p & ~v), np.sum(~p & v)
    tn = p.size - tp - fp - fn
    return {"dice": np.float64(2 * tp / (2 * tp + fp + fn)), "sensitivity": tp / (tp + fn),
            "specificity": tn / (tn + fp), "accuracy": np.mean(p == v), "iou": tp / (tp + fp + fn)}


def segmentation_scores_library(prediction, vessels, fov):
    """The library's metrics, with a float prediction."""
    m = hp.metrics
    pred = prediction.astype(np.float32)
    return {"dice": m.dice(pred, vessels, mask=fov), "sensitivity": m.sensitivity(pred, vessels, mask=fov),
            "specificity": m.specificity(pred, vessels, mask=fov),
            "accuracy": m.pixel_accuracy(pred, vessels, mask=fov)}


@pytest.mark.parametrize("solution", [segmentation_scores_solution, segmentation_scores_indexing,
                                      segmentation_scores_library], ids=lambda f: f.__name__)
def test_segmentation_scores_accepts_every_correct_formulation(solution):
    result = check_segmentation_scores(solution)
    assert result, str(result)


@pytest.mark.parametrize("solution", [
    lambda W, shape: W.T.reshape(W.shape[1], *shape),
    lambda W, shape: W.T.reshape(-1, *shape),
    lambda W, shape: W.reshape(*shape, W.shape[1]).transpose(3, 0, 1, 2),
    lambda W, shape: np.moveaxis(W.reshape(*shape, -1), -1, 0),
    lambda W, shape: np.einsum("chwk->kchw", W.reshape(*shape, W.shape[1])),
    lambda W, shape: np.ascontiguousarray(W.T).reshape(W.shape[1], shape[0], shape[1], shape[2]).astype(np.float32),
], ids=["W.T.reshape", "-1", "reshape+transpose", "moveaxis", "einsum", "float32"])
def test_dense_to_conv_accepts_every_correct_formulation(solution):
    result = check_dense_to_conv(solution)
    assert result, str(result)


@pytest.mark.parametrize("solution", [
    conv3d_solution,
    lambda input_shape, filters, k, stride=1, padding=0: (
        [filters] + [math.floor((n + 2 * padding - k) / stride) + 1 for n in input_shape[1:]],
        np.int64(filters * (input_shape[0] * k**3 + 1))),
    lambda input_shape, filters, k, stride=1, padding=0: (
        np.array([filters, *((np.array(input_shape[1:]) + 2 * padding - k) // stride + 1)]),
        hp.layers.Conv3D(filters, k, stride=stride, padding=padding).build(tuple(input_shape)) and 0
        or filters * input_shape[0] * k * k * k + filters),
], ids=["tuple", "list and numpy int", "numpy array"])
def test_conv3d_accepts_every_correct_formulation(solution):
    result = check_conv3d_shape_and_params(solution)
    assert result, str(result)


def triplanar_zeros(volume, centre, size):
    """A zero canvas filled by hand (no np.pad), returned as a list."""
    h = size // 2
    C, D, H, W = volume.shape
    out = []
    for axes in ((1,), (2,), (3,)):
        patch = np.zeros((C, size, size), dtype=volume.dtype)
        for a in range(size):
            for b in range(size):
                idx = list(centre)
                free = [i for i in range(3) if i + 1 not in axes]
                idx[free[0]] += a - h
                idx[free[1]] += b - h
                if all(0 <= i < n for i, n in zip(idx, (D, H, W))):
                    patch[:, a, b] = volume[:, idx[0], idx[1], idx[2]]
        out.append(patch)
    return out


def triplanar_stacked(volume, centre, size):
    """The three patches stacked into one (3, C, size, size) array."""
    return np.stack(triplanar_solution(volume, centre, size))


@pytest.mark.parametrize("solution", [triplanar_solution, triplanar_zeros, triplanar_stacked],
                         ids=lambda f: f.__name__)
def test_triplanar_accepts_every_correct_formulation(solution):
    result = check_triplanar_patches(solution)
    assert result, str(result)


def test_float32_answers_still_get_their_mistake_named():
    """The float32 tolerance (1e-4) accepts rounding, not the mistakes: each still gets its hint."""
    def f32(*arrays):
        return (a.astype(np.float32) for a in arrays)

    assert_rejected(check_dense_backward(lambda dy, x, W: (lambda dy, x, W: (dy @ W.T, x.T @ dy / len(x),
                                                                             dy.sum(axis=0)))(*f32(dy, x, W))),
                    "averaged over the batch")
    assert_rejected(check_dense_backward(lambda dy, x, W: (lambda dy, x, W: (-(dy @ W.T), x.T @ dy,
                                                                             dy.sum(axis=0)))(*f32(dy, x, W))),
                    "wrong sign")

    def conv_flipped_float32(dy, x, W, stride):
        dy, x, W = f32(dy, x, W)
        dx = conv2d_backward_solution(dy, x, W[:, :, ::-1, ::-1], stride)[0]
        return (dx, *conv2d_backward_solution(dy, x, W, stride)[1:])

    assert_rejected(check_conv2d_backward(conv_flipped_float32), "kernel flipped")
    assert_rejected(check_dense_to_conv(lambda W, shape: W.reshape(W.shape[1], *shape).astype(np.float32)),
                    "transpose it first")
    assert_rejected(check_dropout(lambda x, rate, training, rng: x.astype(np.float32)
                                  * (rng.random(x.shape) >= rate) * np.float32(1 - rate) if training else x),
                    "do not multiply")


def network_dh_without_transpose(x, t, W1, b1, W2, b2):
    h = 1 / (1 + np.exp(-(x @ W1 + b1)))
    y = h @ W2 + b2
    dy = 2 * (y - t) / y.size
    dz = (dy @ W2) * h * (1 - h)
    return {"W1": x.T @ dz, "b1": dz.sum(axis=0), "W2": h.T @ dy, "b2": dy.sum(axis=0)}


def test_shape_errors_get_a_diagnosis_not_a_numpy_message():
    result = check_network_backward(network_dh_without_transpose)
    assert_rejected(result, "shapes do not fit", "`dz = (dy @ W2) * h * (1 - h)`", "W2 is (H, D_out) = (4, 2)",
                    "dW2 and db2 are right", "dh = dy @ W2.T")

    def labels_as_onehot(z, labels):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        return -np.log(p[np.arange(len(z)), labels]).mean(), (p - labels) / len(z)

    result2 = check_softmax_cross_entropy(labels_as_onehot)
    assert_rejected(result2, "shapes do not fit", "labels is (N,) = (5,)", "not one-hot rows",
                    "np.eye(classes)[labels]")
    for r in (result, result2):
        assert "gufunc" not in str(r) and "operands could not be broadcast" not in str(r)


def test_conv_backward_shape_error_is_diagnosed():
    def window_off_by_one(dy, x, W, stride):
        dx, dW = np.zeros_like(x), np.zeros_like(W)
        R, S = W.shape[2:]
        for n in range(x.shape[0]):
            for k in range(W.shape[0]):
                for i in range(dy.shape[2]):
                    for j in range(dy.shape[3]):
                        window = x[n, :, i * stride:i * stride + R + 1, j * stride:j * stride + S]
                        dW[k] += window * dy[n, k, i, j]
        return dx, dW, dy.sum(axis=(0, 2, 3))

    result = check_conv2d_backward(window_off_by_one)
    assert_rejected(result, "shapes do not fit", "W is (K, C, R, S)", "i s + R")
    assert "operands could not be broadcast" not in str(result)


def test_momentum_diagnosis_holds_in_every_case():
    """With lr = 0.1 and momentum = 0.9, (1 - momentum) dw = lr dw: the first case alone would call
    lr-twice 'dampened'; the hint must reproduce the student's path in both cases."""
    def lr_twice(w, dw, state, lr, momentum):
        state["v"] = momentum * state.get("v", 0.0) + lr * dw
        return w - lr * state["v"]

    result = check_momentum_step(lr_twice)
    assert_rejected(result, "lr is applied twice")
    assert "averaged" not in str(result)


def test_early_stopping_plateau_and_regularization_half():
    def ties_improve(val_losses, patience, min_delta):
        best, best_epoch, wait = float("inf"), None, 0
        for epoch, value in enumerate(val_losses):
            if value <= best - min_delta:
                best, best_epoch, wait = value, epoch, 0
            else:
                wait += 1
                if wait >= patience:
                    return epoch, best_epoch
        return None, best_epoch

    assert_rejected(check_early_stopping(ties_improve), "a plateau of equal losses", "an equal loss is no improvement")
    assert_rejected(check_regularized_gradient(lambda w, dw, wd, l1: dw + wd / 2 * w + l1 * np.sign(w)),
                    "the 1/2 cancels")
