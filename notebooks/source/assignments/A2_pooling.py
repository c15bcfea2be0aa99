# %% [markdown]
# # Assignment 2 — Pooling, forward and backward
#
# A pooling layer summarizes each window of a feature map by one number: its largest value (max
# pooling) or its mean (average pooling). It has no weights, but it has a backward pass: the
# gradient of each output goes back to the pixels of its window. You write both poolings as
# CS231n-style pairs, for square windows of size `pool` moved by `stride`, without padding:
#
# $$H_o = \left\lfloor \frac{H - \text{pool}}{\text{stride}} \right\rfloor + 1,\qquad
# y[n, c, i, j] = \max_{r, s < \text{pool}} x[n, c, i\,\text{stride} + r, j\,\text{stride} + s].$$
#
# The checkers compare your functions with handprop's reference engine
# (`hp.kernels.reference.maxpool2d_forward` & co., switched off while your code runs) on
# non-overlapping windows, overlapping windows (pool 3, stride 2) and windows whose maximum is tied
# (the first maximum in row-major order wins, as in PyTorch and `np.argmax`).

# %% tags=["setup"]
import numpy as np

import handprop as hp

# %% [markdown] tags=["exercises"]
# ## Task 1 — max-pool forward (3 points)
#
# `maxpool_forward(x, pool, stride) -> (y, cache)` for `x` of shape `(N, C, H, W)`. Keep in the
# cache what the backward needs (the input, or where each maximum was).

# %% tags=["exercise"]
def maxpool_forward(x, pool, stride):
    # your answer
    raise NotImplementedError


# %% tags=["solution"]
def maxpool_forward(x, pool, stride):
    N, C, H, W = x.shape
    Ho, Wo = (H - pool) // stride + 1, (W - pool) // stride + 1
    y = np.empty((N, C, Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            window = x[:, :, i * stride: i * stride + pool, j * stride: j * stride + pool]
            y[:, :, i, j] = window.max(axis=(2, 3))
    return y, (x, pool, stride)


# %% tags=["check"]
hp.exercises.check_maxpool_forward(maxpool_forward)

# %% [markdown]
# ## Task 2 — max-pool backward (7 points)
#
# `maxpool_backward(dy, cache) -> dx`: each `dy[n, c, i, j]` goes to the one pixel that won window
# `(i, j)` (the first maximum when several are equal); the other pixels did not change the output.
# A pixel in two overlapping windows collects both gradients.

# %% tags=["exercise"]
def maxpool_backward(dy, cache):
    # your answer
    raise NotImplementedError


# %% tags=["solution"]
def maxpool_backward(dy, cache):
    x, pool, stride = cache
    N, C, Ho, Wo = dy.shape
    dx = np.zeros_like(x, dtype=dy.dtype)
    for i in range(Ho):
        for j in range(Wo):
            rows = slice(i * stride, i * stride + pool)
            cols = slice(j * stride, j * stride + pool)
            window = x[:, :, rows, cols].reshape(N, C, -1)
            first = window.argmax(axis=2)  # the first maximum in row-major order
            mask = np.zeros_like(window)
            np.put_along_axis(mask, first[..., None], 1.0, axis=2)
            dx[:, :, rows, cols] += mask.reshape(N, C, pool, pool) * dy[:, :, i, j][:, :, None, None]
    return dx


# %% tags=["check"]
hp.exercises.check_maxpool_backward(maxpool_forward, maxpool_backward)

# %% [markdown]
# ## Task 3 — average-pool forward (3 points)
#
# `avgpool_forward(x, pool, stride) -> (y, cache)`: the mean of each window.

# %% tags=["exercise"]
def avgpool_forward(x, pool, stride):
    # your answer
    raise NotImplementedError


# %% tags=["solution"]
def avgpool_forward(x, pool, stride):
    N, C, H, W = x.shape
    Ho, Wo = (H - pool) // stride + 1, (W - pool) // stride + 1
    y = np.empty((N, C, Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            y[:, :, i, j] = x[:, :, i * stride: i * stride + pool, j * stride: j * stride + pool].mean(axis=(2, 3))
    return y, (x.shape, pool, stride)


# %% tags=["check"]
hp.exercises.check_avgpool_forward(avgpool_forward)

# %% [markdown]
# ## Task 4 — average-pool backward (7 points)
#
# `avgpool_backward(dy, cache) -> dx`: every pixel of window `(i, j)` counted `1 / pool²` in its
# mean.

# %% tags=["exercise"]
def avgpool_backward(dy, cache):
    # your answer
    raise NotImplementedError


# %% tags=["solution"]
def avgpool_backward(dy, cache):
    shape, pool, stride = cache
    dx = np.zeros(shape, dtype=dy.dtype)
    for i in range(dy.shape[2]):
        for j in range(dy.shape[3]):
            share = dy[:, :, i, j][:, :, None, None] / pool**2
            dx[:, :, i * stride: i * stride + pool, j * stride: j * stride + pool] += share
    return dx


# %% tags=["check"]
hp.exercises.check_avgpool_backward(avgpool_forward, avgpool_backward)
