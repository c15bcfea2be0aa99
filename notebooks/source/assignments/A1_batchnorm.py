# %% [markdown]
# # Assignment 1 — Batch normalization, forward and backward
#
# Batch normalization (Ioffe & Szegedy, 2015; chapter 4) standardizes every feature over the batch
# and then lets the network choose a scale $\gamma$ and a shift $\beta$:
#
# $$\mu = \frac{1}{N}\sum_n x_n,\qquad \sigma^2 = \frac{1}{N}\sum_n (x_n - \mu)^2,\qquad
# \hat x = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}},\qquad y = \gamma \hat x + \beta .$$
#
# You write the forward pass, its backward pass twice (once node by node through the computational
# graph, once from a simplified formula you derive), and the spatial version for images. Each
# function is a CS231n-style pair: the forward returns `(y, cache)`, the backward takes
# `(dy, cache)`; what goes into the cache is up to you.
#
# Every task has a checker cell that compares your answer with handprop's own pair
# (`handprop.layers.normalization.batchnorm_forward` / `batchnorm_backward`, which the library's
# `BatchNorm` layer calls) and names the likely mistake. While your code runs, the library's pair is
# switched off: an answer that calls it is rejected. `python -m handprop.exercises grade
# A1_batchnorm.ipynb` grades the whole notebook the way your teacher will.

# %% tags=["setup"]
import numpy as np

import handprop as hp

# %% [markdown] tags=["exercises"]
# ## Task 1 — the forward pass (5 points)
#
# Write `batchnorm_forward(x, gamma, beta, eps=1e-5)` for `x` of shape `(N, D)` in training mode:
# one mean and one (biased) variance per feature, over the batch. Return `(y, cache)`.

# %% tags=["exercise"]
def batchnorm_forward(x, gamma, beta, eps=1e-5):
    # your answer: mu, var, x_hat, y; keep in the cache what the backward will need
    raise NotImplementedError


# %% tags=["solution"]
def batchnorm_forward(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=0)
    xc = x - mu
    var = (xc**2).mean(axis=0)  # biased: divides by N
    std = np.sqrt(var + eps)
    x_hat = xc / std
    y = gamma * x_hat + beta
    return y, (xc, std, x_hat, gamma)


# %% tags=["check"]
hp.exercises.check_bn_forward(batchnorm_forward)

# %% [markdown]
# ## Task 2 — the backward pass through the computational graph (10 points)
#
# Write `batchnorm_backward(dy, cache) -> (dx, dgamma, dbeta)` by walking the graph of the forward
# pass backwards, one node at a time: $y = \gamma\hat x + \beta$, $\hat x = (x - \mu)\cdot s$,
# $s = (\sigma^2 + \epsilon)^{-1/2}$, $\sigma^2 = \mathrm{mean}((x - \mu)^2)$, $\mu = \mathrm{mean}(x)$.
# $x$ reaches the loss along three paths: through $\hat x$ directly, through $\mu$ and through
# $\sigma^2$.

# %% tags=["exercise"]
def batchnorm_backward(dy, cache):
    # your answer
    raise NotImplementedError


# %% tags=["solution"]
def batchnorm_backward(dy, cache):
    xc, std, x_hat, gamma = cache
    N = dy.shape[0]
    dbeta = dy.sum(axis=0)
    dgamma = (dy * x_hat).sum(axis=0)
    dx_hat = dy * gamma
    dxc = dx_hat / std                                      # x_hat = xc * (1 / std)
    dstd = -(dx_hat * xc).sum(axis=0) / std**2              # ... and through 1 / std
    dvar = dstd / (2 * std)                                 # std = sqrt(var + eps)
    dxc += dvar * 2 * xc / N                                # var = mean(xc ** 2)
    dmu = -dxc.sum(axis=0)                                  # xc = x - mu
    dx = dxc + dmu / N                                      # mu = mean(x)
    return dx, dgamma, dbeta


# %% tags=["check"]
hp.exercises.check_bn_backward(batchnorm_forward, batchnorm_backward)

# %% [markdown]
# ## Task 3 — the simplified backward (5 points)
#
# Collect the three paths on paper into one expression for $dx$ in terms of $g = dy\,\gamma$,
# $\hat x$ and $1/\sqrt{\sigma^2 + \epsilon}$, and write `batchnorm_backward_alt(dy, cache)` with it
# (without calling `batchnorm_backward`). It returns the same three gradients.

# %% tags=["exercise"]
def batchnorm_backward_alt(dy, cache):
    # your answer
    raise NotImplementedError


# %% tags=["solution"]
def batchnorm_backward_alt(dy, cache):
    xc, std, x_hat, gamma = cache
    g = dy * gamma
    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    return dx, (dy * x_hat).sum(axis=0), dy.sum(axis=0)


# %% tags=["check"]
hp.exercises.check_bn_backward_alt(batchnorm_forward, batchnorm_backward_alt)

# %% [markdown]
# ## Task 4 — spatial batch normalization (5 points)
#
# In a convolutional network a channel's filter is the same at every position, so batch norm takes
# one mean and variance **per channel**, over the batch and both spatial axes. Write
# `spatial_batchnorm_forward(x, gamma, beta, eps=1e-5)` for `x` of shape `(N, C, H, W)` (gamma
# and beta of shape `(C,)`), reusing your `batchnorm_forward`. Return `(y, cache)`.

# %% tags=["exercise"]
def spatial_batchnorm_forward(x, gamma, beta, eps=1e-5):
    # your answer
    raise NotImplementedError


# %% tags=["solution"]
def spatial_batchnorm_forward(x, gamma, beta, eps=1e-5):
    N, C, H, W = x.shape
    flat = x.transpose(0, 2, 3, 1).reshape(-1, C)  # channels last: one column per channel
    y, cache = batchnorm_forward(flat, gamma, beta, eps)
    return y.reshape(N, H, W, C).transpose(0, 3, 1, 2), cache


# %% tags=["check"]
hp.exercises.check_bn_spatial(spatial_batchnorm_forward)
