# %% [markdown]
# # Assignment 3 — Convolution as one matrix product (im2col)
#
# Chapter 3 computed a convolution with loops. Fast engines copy every window the filter reads into
# a column of a matrix (**im2col**), so the whole convolution becomes one matrix product that BLAS
# runs at full speed; the backward pass is two more products, and **col2im** adds the columns of
# the input gradient back onto the image (a pixel read by several windows gets the sum). This is
# what handprop's `numpy` engine does (`hp.kernels.im2col`), chunked to bound memory.
#
# Conventions: `x (N, C, H, W)`, `W (K, C, R, S)`, `b (K,)`, square stride and zero padding `pad`,
# output `Ho = (H + 2 pad - R) // stride + 1` (likewise `Wo`). The checkers compare your functions
# with the reference engine's loops (`hp.kernels.reference.conv2d_forward` / `conv2d_backward`,
# switched off while your code runs, with every engine's convolution).

# %% tags=["setup"]
import time

import numpy as np

import handprop as hp

# %% [markdown] tags=["exercises"]
# ## Task 1 — im2col (5 points)
#
# `im2col(x, R, S, stride, pad) -> cols` of shape `(C R S, N Ho Wo)`: column `n Ho Wo + i Wo + j`
# holds the padded window that output `(n, i, j)` reads, flattened in `(c, r, s)` order (the order
# of `W.reshape(K, -1)`).

# %% tags=["exercise"]
def im2col(x, R, S, stride, pad):
    # your answer
    raise NotImplementedError


# %% tags=["solution"]
def im2col(x, R, S, stride, pad):
    N, C, H, W = x.shape
    Ho, Wo = (H + 2 * pad - R) // stride + 1, (W + 2 * pad - S) // stride + 1
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    cols = np.empty((C, R, S, N, Ho, Wo), dtype=x.dtype)
    for r in range(R):  # one strided slice per tap: R S copies instead of N Ho Wo windows
        for s in range(S):
            cols[:, r, s] = xp[:, :, r: r + stride * Ho: stride, s: s + stride * Wo: stride].transpose(1, 0, 2, 3)
    return cols.reshape(C * R * S, N * Ho * Wo)


# %% tags=["check"]
hp.exercises.check_im2col(im2col)

# %% [markdown]
# ## Task 2 — the forward pass as one product (5 points)
#
# `conv_forward_im2col(x, W, b, stride, pad) -> (y, cache)`: `W.reshape(K, -1) @ cols` plus the
# bias gives `(K, N Ho Wo)`; turn it into `y (N, K, Ho, Wo)`.

# %% tags=["exercise"]
def conv_forward_im2col(x, W, b, stride, pad):
    # your answer
    raise NotImplementedError


# %% tags=["solution"]
def conv_forward_im2col(x, W, b, stride, pad):
    N, C, H, Wd = x.shape
    K, _, R, S = W.shape
    Ho, Wo = (H + 2 * pad - R) // stride + 1, (Wd + 2 * pad - S) // stride + 1
    cols = im2col(x, R, S, stride, pad)
    out = W.reshape(K, -1) @ cols + b[:, None]  # (K, N Ho Wo)
    y = out.reshape(K, N, Ho, Wo).transpose(1, 0, 2, 3)
    return y, (x.shape, W, cols, stride, pad)


# %% tags=["check"]
hp.exercises.check_conv_forward_im2col(conv_forward_im2col)

# %% [markdown]
# ## Task 3 — the backward pass with col2im (10 points)
#
# `conv_backward_im2col(dy, cache) -> (dx, dW, db)`. With `dy_cols = dy` as `(K, N Ho Wo)`:
# `dW = dy_cols @ cols.T`, `db` the sum of `dy`, and `dcols = W.reshape(K, -1).T @ dy_cols`, which
# **col2im** adds back onto the (padded) image before the padding is cut off.

# %% tags=["exercise"]
def conv_backward_im2col(dy, cache):
    # your answer
    raise NotImplementedError


# %% tags=["solution"]
def conv_backward_im2col(dy, cache):
    (N, C, H, Wd), W, cols, stride, pad = cache
    K, _, R, S = W.shape
    Ho, Wo = dy.shape[2:]
    dy_cols = dy.transpose(1, 0, 2, 3).reshape(K, -1)
    dW = (dy_cols @ cols.T).reshape(W.shape)
    db = dy.sum(axis=(0, 2, 3))
    dcols = (W.reshape(K, -1).T @ dy_cols).reshape(C, R, S, N, Ho, Wo)
    dxp = np.zeros((N, C, H + 2 * pad, Wd + 2 * pad), dtype=dy.dtype)
    for r in range(R):  # col2im: every tap adds its slice back (+=: windows overlap)
        for s in range(S):
            dxp[:, :, r: r + stride * Ho: stride, s: s + stride * Wo: stride] += dcols[:, r, s].transpose(1, 0, 2, 3)
    return dxp[:, :, pad: pad + H, pad: pad + Wd], dW, db


# %% tags=["check"]
hp.exercises.check_conv_backward_im2col(conv_forward_im2col, conv_backward_im2col)

# %% [markdown]
# ## How much faster?
#
# Time your im2col forward against chapter 3's loops (handprop's reference engine) on a batch of
# the size a small CNN sees. This cell runs once your Task 2 is written.

# %%
rng = np.random.default_rng(0)
x, W, b = rng.standard_normal((8, 8, 32, 32)), rng.standard_normal((16, 8, 3, 3)), np.zeros(16)
geometry = hp.kernels.geometry.ConvGeometry((1, 1), (1, 1), (1, 1))
start = time.perf_counter()
y_loops = hp.kernels.reference.conv2d_forward(x, W, b, geometry)[0]
loops = time.perf_counter() - start
try:
    start = time.perf_counter()
    y_gemm = conv_forward_im2col(x, W, b, 1, 1)[0]
    gemm = time.perf_counter() - start
    print(f"reference loops {loops * 1e3:.1f} ms, im2col + GEMM {gemm * 1e3:.1f} ms, "
          f"max difference {np.abs(y_loops - y_gemm).max():.1e}")
except NotImplementedError:
    print(f"reference loops {loops * 1e3:.1f} ms; write Task 2 to time yours")
