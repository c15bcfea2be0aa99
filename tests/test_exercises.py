"""Exercise checkers: each accepts the worked solution and rejects typical wrong answers with the right hint."""

import numpy as np
import pytest

import handprop as hp
from handprop.exercises import (
    CheckResult,
    check_adam_step,
    check_conv2d_backward,
    check_largest_stable_lr,
    check_momentum_step,
    check_output_size,
    check_receptive_field,
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
def test_largest_stable_lr():
    assert check_largest_stable_lr(1.0)
    assert "converges" in str(check_largest_stable_lr(1.0))
    assert_rejected(check_largest_stable_lr(2.0), "not y")
    assert_rejected(check_largest_stable_lr(20), "limit along x")
    assert_rejected(check_largest_stable_lr(0.3), "one SGD step for y alone")
    assert_rejected(check_largest_stable_lr("one"), "expected a number")


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
