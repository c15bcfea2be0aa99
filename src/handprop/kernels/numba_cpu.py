"""The ``numba`` engine: convolution and pooling compiled by Numba, in parallel, with no im2col.

Same functions and shapes as :mod:`handprop.kernels.reference` (the definition); read that first.
This file is about *speed*, and each trick is explained where it is used. The big picture:

**A convolution is a stack of dot products.** Every output ``y[n, k, i, j]`` is the dot product of
filter ``k`` (``C R S`` numbers) with the receptive field of pixel ``(i, j)`` (``C R S`` numbers).
A CPU core computes dot products fastest when

1. both operands are *contiguous* in memory, so the compiler can load 8 floats per instruction
   (SIMD) and multiply-add them in one fused instruction (FMA), and
2. each loaded number is used more than once: the micro-kernel :func:`_dot_4x4` computes a 4 x 4
   block of dot products (4 filters x 4 receptive fields) in one pass, so 8 loads feed 16 FMAs
   and the 16 running sums stay in registers.

**Packing instead of im2col.** A receptive field is not contiguous in NCHW memory. im2col copies
*all* of them into one huge matrix first (``R S`` copies of the input). Here each thread packs
only **one output row's worth** into a small scratch buffer (a few KB, it stays in the L1/L2
cache), runs the micro-kernel on it, and moves on. The buffer ``T`` of output row ``i`` holds,
for every padded column ``t`` of the input, the ``C R`` pixels a filter column touches::

    T[t, (c, r)] = xpad[n, c, i sh + r dh, t]              (C R numbers per column, contiguous)

With the filter stored in the matching ``(s, c, r)`` order, the receptive field of output column
``j`` is the ``S`` consecutive rows ``t = j sw + s dw`` of ``T``: with ``dw = 1`` they are one
contiguous run of ``S C R`` numbers. For a dilation ``dw > 1`` the rows of ``T`` are stored by
*phase* (``t mod dw`` first, then ``t // dw``), which makes the taps of a dilated filter
neighbours again. So every dot product of the forward pass is over contiguous memory.

**The three passes share one kernel.**

* forward: :func:`_correlate` on ``x`` with the filters, packed ``(K, S C R)``.
* input gradient: the adjoint of a stride-1 correlation is a correlation of ``dy`` with the
  flipped filters, channels swapped (``W[k, c, R-1-r, S-1-s]`` read as ``(C, K, R, S)``), padded by
  ``(R-1) dh - ph``. A stride ``sh > 1`` is handled by reading ``dy`` as if ``sh - 1`` zero rows
  sat between its rows (no zero-filled copy is made, but the zeros are multiplied: a stride-2
  input gradient does 4x the needed arithmetic; correct, not optimal).
* weight gradient: :func:`_weight_grad` packs the classic im2col layout ``cols[(c, r, s), q]`` for
  a band of output rows (``q`` runs over output pixels), and takes dot products along ``q`` with
  the rows of ``dy``, which are contiguous already.

**Threads.** ``prange`` spreads output rows (or row bands) over the cores; each thread allocates
its scratch buffer once and handles every ``nthreads``-th task, so no two threads write the same
output (the weight gradient keeps one partial sum per thread, added at the end).

**Floating point.** ``fastmath={"contract", "reassoc"}`` lets LLVM fuse ``a * b + c`` into FMA
and reorder a sum into 8 SIMD lanes. Results therefore differ from the reference in the last
float32 bits (as PyTorch's do); NaN and inf are still handled exactly (no ``nnan``/``ninf``).

**Compilation.** Each function is compiled on first use for the dtypes it meets (float32 and
float64 are separate machine code; the output dtype is the input dtype) and cached on disk
(``cache=True``). Call :func:`warmup` to pay that once, e.g. before timing.

**What limits it** (measured, ``benchmarks/README.md``): the micro-kernel alone runs at ~75 GFLOP/s
per core on long dot products, close to the peak of 8-float (256-bit) FMA. LLVM prefers 256-bit
vectors even on CPUs with AVX-512, where PyTorch's oneDNN uses 512-bit ones, so on such CPUs
PyTorch can be ~2x faster on large convolutions. Short dot products (one input channel: ``C R S
= 9``) and the packing of few-channel layers cost more than the arithmetic.

Beyond the engine API (see :mod:`handprop.kernels`) this module offers
:func:`conv2d_backward_bias` and :func:`prelu_forward` / :func:`prelu_backward`, parallel versions
of what layers otherwise compute with NumPy reductions and ``where``.
"""

from __future__ import annotations

import os

# Numba's OpenMP threads busy-wait after every parallel loop. On a small machine they then steal
# the cores that OpenBLAS needs for the next matmul (a Dense layer), and OpenBLAS's own waiting
# threads steal them back: a training step of the tutorial ConvNet ran 8x slower on 2 cores.
# Sleeping threads cost nothing measurable here. Set before Numba starts its thread pool; a value
# the user chose is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
from numba import get_num_threads, njit, prange  # noqa: E402

from .reference import check_pool_padding, output_size

FASTMATH = {"contract", "reassoc"}
"""LLVM flags: fuse multiply-add, reassociate sums (so they vectorize). No finite-math assumptions."""

LMAX = 512
"""Target length of the weight-gradient dot products (output pixels per packed band)."""


# ----------------------------------------------------------------------------- the micro-kernel
@njit(fastmath=FASTMATH, cache=True)
def _dot_4x4(A, a0, a1, a2, a3, B, b0, b1, b2, b3, L, acc):
    """Add 16 dot products of length ``L`` to ``acc``: ``acc[4u + v] + sum_l A[au + l] * B[bv + l]``.

    ``A`` and ``B`` are flat 1-D arrays; ``a0..a3`` and ``b0..b3`` are where the 4 + 4 vectors
    start; ``acc`` is a 16-tuple of running sums (row by row, ``s00, s01, ..., s33``), returned
    updated. Each pass of the loop loads 4 numbers of ``A`` and 4 of ``B`` and does 16
    multiply-adds; LLVM vectorizes the loop over ``l`` (8 float32 per instruction), so the sums
    live in 16 vector registers and are reduced across lanes once, at the end.
    """
    # Slices, not ``A[a0 + l]``: an index that may be negative makes Numba emit a wrap-around
    # check per load, which stops vectorization (5x slower); a loop index into a view cannot be.
    r0, r1, r2, r3 = A[a0 : a0 + L], A[a1 : a1 + L], A[a2 : a2 + L], A[a3 : a3 + L]
    c0, c1, c2, c3 = B[b0 : b0 + L], B[b1 : b1 + L], B[b2 : b2 + L], B[b3 : b3 + L]
    s00, s01, s02, s03, s10, s11, s12, s13, s20, s21, s22, s23, s30, s31, s32, s33 = acc
    for l in range(L):
        x0 = r0[l]
        x1 = r1[l]
        x2 = r2[l]
        x3 = r3[l]
        y0 = c0[l]
        y1 = c1[l]
        y2 = c2[l]
        y3 = c3[l]
        s00 += x0 * y0
        s01 += x0 * y1
        s02 += x0 * y2
        s03 += x0 * y3
        s10 += x1 * y0
        s11 += x1 * y1
        s12 += x1 * y2
        s13 += x1 * y3
        s20 += x2 * y0
        s21 += x2 * y1
        s22 += x2 * y2
        s23 += x2 * y3
        s30 += x3 * y0
        s31 += x3 * y1
        s32 += x3 * y2
        s33 += x3 * y3
    return (s00, s01, s02, s03, s10, s11, s12, s13, s20, s21, s22, s23, s30, s31, s32, s33)


# ----------------------------------------------------------------------------- correlation
@njit(parallel=True, fastmath=FASTMATH, cache=True)
def _correlate(x, Wp, bias, y, R, S, sh, sw, ph, pw, dh, dw, uh, uw, nthreads):
    """``y[n, k, i, j] = bias[k] + sum_{s,c,r} Wp[k, (s,c,r)] xu[n, c, i sh - ph + r dh, j sw - pw + s dw]``.

    x (N, C, H, W); Wp flat (K * S * C * R), filter ``k`` in ``(s, c, r)`` order; bias (K,);
    y (N, K, Ho, Wo) is overwritten. ``xu`` is ``x`` with ``uh - 1`` zero rows between its rows
    and ``uw - 1`` zero columns between its columns (``uh = uw = 1`` for the forward pass; the
    stride for the input gradient); outside ``xu`` reads are zero (padding).

    Tasks are output rows ``(n, i)``. For each, the thread packs ``T`` (see the module docstring;
    padded column ``t`` goes to slot ``(t mod dw) * M + t // dw``) and then sweeps 4 filters x 4
    output columns at a time through :func:`_dot_4x4`, one dot product of length ``S C R`` each.
    At the right and bottom edges the last filter/column is repeated to fill the 4 x 4 block;
    the duplicate sums are simply not stored.
    """
    N, C, H, Wd = x.shape
    K, Ho, Wo = y.shape[1], y.shape[2], y.shape[3]
    CR = C * R
    L = S * CR  # dot-product length: numbers per filter
    Hu = (H - 1) * uh + 1  # extent of the zero-interleaved input
    Wu = (Wd - 1) * uw + 1
    Wt = (Wo - 1) * sw + (S - 1) * dw + 1  # padded columns read by one output row
    M = (Wt + dw - 1) // dw  # slots per phase
    # Column map, computed once: padded column t is stored at T[slot[t] : slot[t] + C R] and
    # reads input column src[t] (-1: padding or an interleaved zero). No division when packing.
    slot = np.empty(Wt, dtype=np.int64)
    src = np.empty(Wt, dtype=np.int64)
    for t in range(Wt):
        slot[t] = ((t % dw) * M + t // dw) * CR
        wu = t - pw
        src[t] = wu // uw if wu >= 0 and wu < Wu and wu % uw == 0 else -1
    z = y.dtype.type(0)
    zero16 = (z, z, z, z, z, z, z, z, z, z, z, z, z, z, z, z)
    for tid in prange(nthreads):
        T = np.zeros(dw * M * CR, dtype=x.dtype)  # this thread's scratch buffer
        for task in range(tid, N * Ho, nthreads):
            n = task // Ho
            i = task - n * Ho
            # 1. pack T[slot(t) + (c, r)] = xu[n, c, i sh - ph + r dh, t - pw]
            for c in range(C):
                for r in range(R):
                    q = c * R + r
                    hu = i * sh - ph + r * dh
                    if hu < 0 or hu >= Hu or hu % uh != 0:  # a padding row (or interleaved zero)
                        for t in range(Wt):
                            T[slot[t] + q] = 0
                        continue
                    xrow = x[n, c, hu // uh]
                    for t in range(Wt):
                        w = src[t]
                        T[slot[t] + q] = xrow[w] if w >= 0 else 0
            # 2. 4 filters x 4 output columns per micro-kernel call
            for k0 in range(0, K, 4):
                a1 = min(k0 + 1, K - 1) * L
                a2 = min(k0 + 2, K - 1) * L
                a3 = min(k0 + 3, K - 1) * L
                for j0 in range(0, Wo, 4):
                    b1 = slot[min(j0 + 1, Wo - 1) * sw]
                    b2 = slot[min(j0 + 2, Wo - 1) * sw]
                    b3 = slot[min(j0 + 3, Wo - 1) * sw]
                    s = _dot_4x4(Wp, k0 * L, a1, a2, a3, T, slot[j0 * sw], b1, b2, b3, L, zero16)
                    for u in range(4):
                        k = k0 + u
                        if k < K:
                            for v in range(4):
                                if j0 + v < Wo:
                                    y[n, k, i, j0 + v] = s[4 * u + v] + bias[k]


def _pack_filters(W):
    """(K, C, R, S) -> flat (K * S * C * R): each filter in the ``(s, c, r)`` order of ``T``."""
    return np.ascontiguousarray(W.transpose(0, 3, 1, 2)).reshape(-1)


def _correlate_call(x, Wp, bias, y, kernel, stride, padding, dilation, interleave):
    """Run :func:`_correlate` (y is filled in place)."""
    (R, S), (sh, sw), (ph, pw), (dh, dw), (uh, uw) = kernel, stride, padding, dilation, interleave
    _correlate(x, Wp, bias, y, R, S, sh, sw, ph, pw, dh, dw, uh, uw, get_num_threads())


def conv2d_forward(x, W, b, stride, padding, dilation):
    """2-D convolution. x (N, C, H, W), W (K, C, R, S), b (K,) or None -> y (N, K, Ho, Wo), x's dtype."""
    N, C, H, Wd = x.shape
    K, _, R, S = W.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    Ho, Wo = output_size(H, R, sh, ph, dh), output_size(Wd, S, sw, pw, dw)
    dtype = x.dtype
    y = np.empty((N, K, Ho, Wo), dtype=dtype)
    bias = np.zeros(K, dtype) if b is None else np.ascontiguousarray(b, dtype=dtype)
    if y.size:
        Wp = _pack_filters(W.astype(dtype, copy=False))
        _correlate_call(np.ascontiguousarray(x), Wp, bias, y, (R, S), stride, padding, dilation, (1, 1))
    return y


def conv2d_backward_input(dy, W, x_shape, stride, padding, dilation):
    """dL/dx: correlate ``dy`` (zero-interleaved by the stride) with the flipped, channel-swapped
    filters, padding ``(R-1) dh - ph``. dy (N, K, Ho, Wo), W (K, C, R, S) -> dx ``x_shape``."""
    N, C, H, Wd = x_shape
    K, _, R, S = W.shape
    (ph, pw), (dh, dw) = padding, dilation
    dtype = dy.dtype
    # W'[c, k, r, s] = W[k, c, R-1-r, S-1-s]: the filters of the adjoint correlation
    Wflip = W.astype(dtype, copy=False)[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
    dx = np.empty((N, C, H, Wd), dtype=dtype)
    if dx.size:
        pad = ((R - 1) * dh - ph, (S - 1) * dw - pw)
        _correlate_call(
            np.ascontiguousarray(dy), _pack_filters(Wflip), np.zeros(C, dtype), dx, (R, S), (1, 1), pad,
            dilation, stride,
        )  # fmt: skip
    return dx


# ----------------------------------------------------------------------------- weight gradient
@njit(parallel=True, fastmath=FASTMATH, cache=True)
def _weight_grad(dy, x, R, S, sh, sw, ph, pw, dh, dw, rows, nthreads):
    """``dW2[k, (c,r,s)] = sum_{n,i,j} dy[n, k, i, j] xpad[n, c, i sh + r dh, j sw + s dw]`` -> (K, C R S).

    dy (N, K, Ho, Wo), x (N, C, H, W). Tasks are bands of ``rows`` output rows of one image; a
    band has ``L = rows * Wo`` output pixels ``q``. The thread packs the band's im2col block
    ``cols[(c,r,s), q]`` (contiguous along ``q``, like a row of ``dy``) and adds 4 x 4 blocks of
    dot products ``dy[n, k, band] . cols[(c,r,s), :]`` into its own partial ``dW2``.
    """
    N, K, Ho, Wo = dy.shape
    C, H, Wd = x.shape[1], x.shape[2], x.shape[3]
    P = C * R * S
    bands = (Ho + rows - 1) // rows
    tasks = N * bands
    dyf = dy.reshape(-1)  # row (n, k) of the band starts at ((n K + k) Ho + i0) Wo
    partial = np.zeros((nthreads, K, P), dtype=dy.dtype)
    z = dy.dtype.type(0)
    zero16 = (z, z, z, z, z, z, z, z, z, z, z, z, z, z, z, z)
    for tid in prange(nthreads):
        cols = np.empty(P * rows * Wo, dtype=x.dtype)  # this thread's scratch buffer
        acc = partial[tid]
        for task in range(tid, tasks, nthreads):
            n = task // bands
            i0 = (task - n * bands) * rows
            i1 = min(i0 + rows, Ho)
            L = (i1 - i0) * Wo
            # 1. pack cols[p, q]: for a fixed tap (c, r, s) and output row i the numbers are one
            #    strided slice of an input row (a vectorized copy), zeros where it hits padding
            for c in range(C):
                for r in range(R):
                    for s in range(S):
                        base = ((c * R + r) * S + s) * L
                        off = s * dw - pw  # output column j reads input column j sw + off
                        jlo = min(Wo, max(0, (-off + sw - 1) // sw))
                        jhi = max(jlo, min(Wo, (Wd - 1 - off) // sw + 1))
                        for i in range(i0, i1):
                            q0 = base + (i - i0) * Wo
                            h = i * sh - ph + r * dh
                            dst = cols[q0 : q0 + Wo]  # views: non-negative indices vectorize
                            if h < 0 or h >= H:
                                for j in range(Wo):
                                    dst[j] = 0
                                continue
                            for j in range(jlo):
                                dst[j] = 0
                            xrow = x[n, c, h, jlo * sw + off :]
                            for j in range(jhi - jlo):
                                dst[jlo + j] = xrow[j * sw]
                            for j in range(jhi, Wo):
                                dst[j] = 0
            # 2. 4 filters x 4 taps per micro-kernel call, dot products along the band
            for k0 in range(0, K, 4):
                a0 = ((n * K + k0) * Ho + i0) * Wo
                a1 = ((n * K + min(k0 + 1, K - 1)) * Ho + i0) * Wo
                a2 = ((n * K + min(k0 + 2, K - 1)) * Ho + i0) * Wo
                a3 = ((n * K + min(k0 + 3, K - 1)) * Ho + i0) * Wo
                for p0 in range(0, P, 4):
                    b1 = min(p0 + 1, P - 1) * L
                    b2 = min(p0 + 2, P - 1) * L
                    b3 = min(p0 + 3, P - 1) * L
                    s = _dot_4x4(dyf, a0, a1, a2, a3, cols, p0 * L, b1, b2, b3, L, zero16)
                    for u in range(4):
                        if k0 + u < K:
                            for v in range(4):
                                if p0 + v < P:
                                    acc[k0 + u, p0 + v] += s[4 * u + v]
    return partial.sum(axis=0)


def conv2d_backward_weight(dy, x, W_shape, stride, padding, dilation):
    """dL/dW. dy (N, K, Ho, Wo), x (N, C, H, W) -> dW ``W_shape`` (K, C, R, S), dy's dtype."""
    K, C, R, S = W_shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    N, _, Ho, Wo = dy.shape
    dtype = dy.dtype
    if dy.size == 0:
        return np.zeros(W_shape, dtype=dtype)
    # bands of ~LMAX output pixels, balanced: 25 rows of 25 -> 2 bands of 13 and 12 rows
    nbands = -(-Ho * Wo // LMAX)
    rows = -(-Ho // nbands)
    dy, x = np.ascontiguousarray(dy), np.ascontiguousarray(x, dtype=dtype)
    dW2 = _weight_grad(dy, x, R, S, sh, sw, ph, pw, dh, dw, rows, get_num_threads())
    return dW2.reshape(K, C, R, S)


def conv2d_backward_bias(dy):
    """dL/db = ``dy.sum(axis=(0, 2, 3))``, computed in parallel. dy (N, K, Ho, Wo) -> (K,)."""
    return _bias_grad(np.ascontiguousarray(dy))


@njit(parallel=True, cache=True)
def _bias_grad(dy):
    N, K = dy.shape[0], dy.shape[1]
    out = np.zeros(K, dtype=dy.dtype)
    for k in prange(K):
        total = 0.0  # float64 accumulator: exact enough for any batch
        for n in range(N):
            total += dy[n, k].sum()
        out[k] = total
    return out


# ----------------------------------------------------------------------------- pooling
@njit(parallel=True, cache=True)
def _maxpool_forward(x, y, argmax, R, S, sh, sw, ph, pw):
    """One thread per channel plane; the window loop is the reference's, padding never wins."""
    N, C, H, Wd = x.shape
    Ho, Wo = y.shape[2], y.shape[3]
    for plane in prange(N * C):
        n = plane // C
        c = plane - n * C
        for i in range(Ho):
            h0 = i * sh - ph
            for j in range(Wo):
                w0 = j * sw - pw
                best = -np.inf
                where = max(h0, 0) * Wd + max(w0, 0)  # the first real pixel, as PyTorch
                for r in range(max(0, -h0), min(R, H - h0)):
                    for s in range(max(0, -w0), min(S, Wd - w0)):
                        v = x[n, c, h0 + r, w0 + s]
                        if v > best or np.isnan(v):  # strict '>': the first of equal maxima wins
                            best = v
                            where = (h0 + r) * Wd + w0 + s
                y[n, c, i, j] = best
                argmax[n, c, i, j] = where


def maxpool2d_forward(x, pool, stride, padding):
    """Max pooling. x (N, C, H, W) -> ``(y, argmax)`` (N, C, Ho, Wo); argmax is ``h * W + w``."""
    N, C, H, Wd = x.shape
    (R, S), (sh, sw), (ph, pw) = pool, stride, padding
    check_pool_padding(pool, padding)
    Ho, Wo = output_size(H, R, sh, ph), output_size(Wd, S, sw, pw)
    y = np.empty((N, C, Ho, Wo), dtype=x.dtype)
    argmax = np.empty((N, C, Ho, Wo), dtype=np.int64)
    if y.size:
        _maxpool_forward(np.ascontiguousarray(x), y, argmax, R, S, sh, sw, ph, pw)
    return y, argmax


@njit(parallel=True, cache=True)
def _maxpool_backward(dy, argmax, dx):
    """dx (planes, H W): each plane is one thread's, so the scatter-add ``+=`` never races."""
    planes, Q = dy.shape
    for p in prange(planes):
        for q in range(Q):
            dx[p, argmax[p, q]] += dy[p, q]


def maxpool2d_backward(dy, argmax, x_shape):
    """Route each ``dy`` to its window's winner; shared winners add up. -> dx ``x_shape``."""
    N, C, H, Wd = x_shape
    dx = np.zeros((N * C, H * Wd), dtype=dy.dtype)
    if dy.size:
        _maxpool_backward(
            np.ascontiguousarray(dy).reshape(N * C, -1),
            np.ascontiguousarray(argmax, dtype=np.int64).reshape(N * C, -1), dx,
        )  # fmt: skip
    return dx.reshape(N, C, H, Wd)


@njit(parallel=True, cache=True)
def _avgpool_forward(x, y, R, S, sh, sw, ph, pw):
    N, C, H, Wd = x.shape
    Ho, Wo = y.shape[2], y.shape[3]
    scale = 1.0 / (R * S)  # padding zeros count: always divide by the full window
    for plane in prange(N * C):
        n = plane // C
        c = plane - n * C
        for i in range(Ho):
            h0 = i * sh - ph
            for j in range(Wo):
                w0 = j * sw - pw
                total = 0.0
                for r in range(max(0, -h0), min(R, H - h0)):
                    for s in range(max(0, -w0), min(S, Wd - w0)):
                        total += x[n, c, h0 + r, w0 + s]
                y[n, c, i, j] = total * scale


def avgpool2d_forward(x, pool, stride, padding):
    """Average pooling (padding zeros counted, as PyTorch). x (N, C, H, W) -> y (N, C, Ho, Wo)."""
    N, C, H, Wd = x.shape
    (R, S), (sh, sw), (ph, pw) = pool, stride, padding
    check_pool_padding(pool, padding)
    y = np.empty((N, C, output_size(H, R, sh, ph), output_size(Wd, S, sw, pw)), dtype=x.dtype)
    if y.size:
        _avgpool_forward(np.ascontiguousarray(x), y, R, S, sh, sw, ph, pw)
    return y


@njit(parallel=True, cache=True)
def _avgpool_backward(dy, dx, R, S, sh, sw, ph, pw):
    N, C, H, Wd = dx.shape
    Ho, Wo = dy.shape[2], dy.shape[3]
    scale = 1.0 / (R * S)
    for plane in prange(N * C):
        n = plane // C
        c = plane - n * C
        for i in range(Ho):
            h0 = i * sh - ph
            for j in range(Wo):
                w0 = j * sw - pw
                share = dy[n, c, i, j] * scale
                for r in range(max(0, -h0), min(R, H - h0)):
                    for s in range(max(0, -w0), min(S, Wd - w0)):
                        dx[n, c, h0 + r, w0 + s] += share


def avgpool2d_backward(dy, x_shape, pool, stride, padding):
    """Each pixel of a window receives ``dy / (R S)``. dy (N, C, Ho, Wo) -> dx ``x_shape``."""
    (R, S), (sh, sw), (ph, pw) = pool, stride, padding
    dx = np.zeros(x_shape, dtype=dy.dtype)
    if dy.size:
        _avgpool_backward(np.ascontiguousarray(dy), dx, R, S, sh, sw, ph, pw)
    return dx


# ----------------------------------------------------------------------------- PReLU
@njit(parallel=True, cache=True)
def _prelu_forward(x, alpha, y):
    """x, y (N, C, M); alpha (C,). One thread per channel."""
    N, C, M = x.shape
    for c in prange(C):
        a = alpha[c]
        for n in range(N):
            for m in range(M):
                v = x[n, c, m]
                y[n, c, m] = v if v > 0 else a * v


@njit(parallel=True, cache=True)
def _prelu_backward(dy, x, alpha, dx, dalpha):
    """dy, x, dx (N, C, M); alpha, dalpha (C,). One thread per channel, so dalpha[c] never races."""
    N, C, M = x.shape
    for c in prange(C):
        a = alpha[c]
        total = 0.0
        for n in range(N):
            for m in range(M):
                v = x[n, c, m]
                g = dy[n, c, m]
                if v > 0:
                    dx[n, c, m] = g
                else:
                    dx[n, c, m] = a * g
                    total += g * v
        dalpha[c] = total


def _channels_view(x, alpha):
    """(N, C, ...) -> contiguous (N, C, M) for per-channel ``alpha`` (C,), or (N, 1, rest) when shared."""
    C = alpha.size
    if C != 1 and (x.ndim < 2 or x.shape[1] != C):
        raise ValueError(f"PReLU: {C} slopes do not match input shape {x.shape}")
    return np.ascontiguousarray(x).reshape(x.shape[0], C, -1)


def prelu_forward(x, alpha):
    """``y = x`` where x > 0, ``alpha * x`` elsewhere. x (N, C, ...) or (N, F); alpha (C,) or (1,)."""
    x3 = _channels_view(x, alpha)
    y = np.empty_like(x3)
    if y.size:
        _prelu_forward(x3, np.ascontiguousarray(alpha.reshape(-1), dtype=x.dtype), y)
    return y.reshape(x.shape)


def prelu_backward(dy, x, alpha):
    """-> ``(dx, dalpha)``: ``dx = dy`` where x > 0, ``alpha dy`` elsewhere;
    ``dalpha = sum(dy * min(x, 0))`` over everything but the channel axis (all axes if shared)."""
    x3 = _channels_view(x, alpha)
    dy3 = np.ascontiguousarray(dy, dtype=x3.dtype).reshape(x3.shape)
    dx = np.empty_like(x3)
    dalpha = np.zeros(alpha.size, dtype=x3.dtype)
    if dx.size:
        _prelu_backward(dy3, x3, np.ascontiguousarray(alpha.reshape(-1), dtype=x3.dtype), dx, dalpha)
    return dx.reshape(x.shape), dalpha.reshape(alpha.shape)


# ----------------------------------------------------------------------------- warm-up
def warmup(dtypes=(np.float32, np.float64)):
    """Compile (or load from the disk cache) every kernel for ``dtypes``; returns the seconds spent.

    Numba compiles on the first call with a new dtype; call this before timing anything.
    """
    import time

    start = time.perf_counter()
    for dtype in dtypes:
        x = np.ones((1, 2, 5, 5), dtype)
        W = np.ones((3, 2, 3, 3), dtype)
        geometry = ((1, 1), (1, 1), (1, 1))
        y = conv2d_forward(x, W, np.zeros(3, dtype), *geometry)
        conv2d_backward_input(y, W, x.shape, *geometry)
        conv2d_backward_weight(y, x, W.shape, *geometry)
        conv2d_backward_bias(y)
        p, idx = maxpool2d_forward(x, (2, 2), (2, 2), (0, 0))
        maxpool2d_backward(p, idx, x.shape)
        a = avgpool2d_forward(x, (2, 2), (2, 2), (0, 0))
        avgpool2d_backward(a, x.shape, (2, 2), (2, 2), (0, 0))
        alpha = np.full(2, 0.25, dtype)
        prelu_backward(x, prelu_forward(x, alpha), alpha)
    return time.perf_counter() - start
