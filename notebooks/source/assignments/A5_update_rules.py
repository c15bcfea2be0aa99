# %% [markdown]
# # Assignment 5 — Update rules: Nesterov momentum, RMSprop, AdaGrad
#
# Chapter 2 walked the optimizers across test surfaces; here you write three of them as pure
# update rules, the form CS231n's `optim.py` uses: one step of one parameter array,
#
# ```python
# new_w = rule(w, dw, state, lr, ...)
# ```
#
# where `state` is a dict that starts empty and comes back at every step, so the rule can keep its
# velocity or running averages there (under any names). The equations are PyTorch's (handprop's
# optimizers follow `torch.optim`):
#
# | rule | state | step |
# |---|---|---|
# | Nesterov momentum | $v \leftarrow \mu v + g$ ($v = g$ at the first step) | $w \leftarrow w - \eta\,(g + \mu v)$ |
# | RMSprop | $s \leftarrow \alpha s + (1 - \alpha) g^2$ ($s = 0$ at first) | $w \leftarrow w - \eta\, g / (\sqrt{s} + \epsilon)$ |
# | AdaGrad | $G \leftarrow G + g^2$ ($G = 0$ at first) | $w \leftarrow w - \eta\, g / (\sqrt{G} + \epsilon)$ |
#
# Each checker walks 8 steps on a quadratic bowl next to `hp.optimizers` (whose `step` is switched
# off while your code runs) and names the mistake when the paths part.

# %% tags=["setup"]
import numpy as np

import handprop as hp

# %% [markdown] tags=["exercises"]
# ## Task 1 — Nesterov momentum (4 points)

# %% tags=["exercise"]
def nesterov_step(w, dw, state, lr, momentum):
    # your answer
    raise NotImplementedError


# %% tags=["solution"]
def nesterov_step(w, dw, state, lr, momentum):
    v = state["v"] = momentum * state["v"] + dw if "v" in state else dw.copy()
    return w - lr * (dw + momentum * v)


# %% tags=["check"]
hp.exercises.check_nesterov_step(nesterov_step)

# %% [markdown]
# ## Task 2 — RMSprop (4 points)

# %% tags=["exercise"]
def rmsprop_step(w, dw, state, lr, alpha, eps):
    # your answer
    raise NotImplementedError


# %% tags=["solution"]
def rmsprop_step(w, dw, state, lr, alpha, eps):
    s = state["s"] = alpha * state.get("s", 0.0) + (1 - alpha) * dw**2
    return w - lr * dw / (np.sqrt(s) + eps)


# %% tags=["check"]
hp.exercises.check_rmsprop_step(rmsprop_step)

# %% [markdown]
# ## Task 3 — AdaGrad (4 points)

# %% tags=["exercise"]
def adagrad_step(w, dw, state, lr, eps):
    # your answer
    raise NotImplementedError


# %% tags=["solution"]
def adagrad_step(w, dw, state, lr, eps):
    G = state["G"] = state.get("G", 0.0) + dw**2
    return w - lr * dw / (np.sqrt(G) + eps)


# %% tags=["check"]
hp.exercises.check_adagrad_step(adagrad_step)

# %% [markdown]
# ## Your three rules on the bowl of chapter 2
#
# Once they pass, this cell walks each of your rules 60 steps on $f(x, y) = x^2/20 + y^2$ from
# $(-7, 2)$ and prints where it ended.

# %% [markdown]
# The next cell is plain NumPy: your rule, a gradient, a loop.

# %%
def walk(rule, steps=60, **hyper):
    w, state = np.array([-7.0, 2.0]), {}
    for _ in range(steps):
        w = rule(w, np.array([w[0] / 10, 2 * w[1]]), state, **hyper)
    return w


for name, rule, hyper in [("Nesterov", nesterov_step, {"lr": 0.1, "momentum": 0.9}),
                          ("RMSprop", rmsprop_step, {"lr": 0.1, "alpha": 0.99, "eps": 1e-8}),
                          ("AdaGrad", adagrad_step, {"lr": 1.0, "eps": 1e-10})]:
    try:
        print(f"{name:9s} ends at {np.round(walk(rule, **hyper), 3)}")
    except NotImplementedError:
        print(f"{name:9s} not written yet")
