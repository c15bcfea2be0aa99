"""The ``numba`` engine: convolution as chunked im2col + OpenBLAS, pooling compiled by Numba.

Same functions and shapes as :mod:`handprop.kernels.reference` (the definition); read that first.
This file is about *speed*, and each trick is explained where it is used. The big picture:

**A convolution is a matrix product.** Copy every receptive field (``C R S`` numbers) into a
column and the forward pass is ``y[n] = W2 @ col[n]`` with ``W2 = W.reshape(K, C R S)``; the
input gradient is ``dcol = W2.T @ dy[n]`` added back onto the pixels (col2im); the weight
gradient is ``dW2 = sum_n dy[n] @ col[n].T`` (the :mod:`handprop.kernels.im2col` engine explains
the idea). Matrix products are what a CPU does best: OpenBLAS runs them at ~150-200 GFLOP/s on
two cores here, with 512-bit vectors and register blocking no Numba loop matches. So Numba only
does the data movement -- packing the columns (:func:`_im2col`) and adding them back
(:func:`_col2im`), in parallel -- and NumPy's ``matmul`` does all the arithmetic.

**Chunks, not one huge im2col.** ``col`` holds ``R S`` copies of the input (~390 MB for a
64-channel 584 x 565 retina image, 3 x 3). So the work is cut into chunks whose columns fit in
:data:`CHUNK_BYTES` (16 MB): a group of whole images, or a band of output rows of one big image.
One scratch buffer is allocated per call and reused by every chunk; the forward product writes
straight into ``y`` (``matmul(..., out=)`` on a view). Peak memory above inputs and outputs is
about one chunk.

**The bias rides along.** The forward columns get one extra row of ones and ``W2`` the bias as
its last column, so ``W2 @ col`` adds it for free (no second pass over ``y``).

**Why the chunks are not smaller.** Cache-sized chunks (1-4 MB) make each product slightly
faster, but on two cores every switch between Numba's threads and OpenBLAS's costs a thread
wake-up (~0.05-0.1 ms: both pools sleep when idle, see ``OMP_WAIT_POLICY`` below); with fewer,
bigger chunks that cost disappears.

**Packing fast in Numba.** The copy loops index flat arrays with *unsigned* integers: Numba
checks every signed index for a negative (wrap-around) value, which blocks vectorization, and
slicing a view per row instead costs an atomic reference-count update that the threads fight
over. Both were 3-6x slower. Tasks are ``(image, channel)`` pairs, so in :func:`_col2im` no two
threads add into the same pixel.

**What limits it** (measured on 2 cores, ``benchmarks/README.md``): the products run at
~150-200 GFLOP/s when the output is wide (forward, input gradient); the weight gradient's
product has a tiny output (``C R S x K``, e.g. 75 x 20) and a long inner dimension, where
OpenBLAS reaches only ~50-70 GFLOP/s. Packing writes ``R S`` copies of the input (memory
bound), and a stride-1 forward pass spends ~1/3 of its time there. PyTorch's oneDNN avoids the
copies with direct convolution kernels on a blocked (NCHW16c) layout.

**Floating point.** The products are OpenBLAS's: results differ from the reference in the last
bits (as PyTorch's do); NaN and inf propagate as in any matrix product.

**Compilation.** Each kernel is compiled on first use for the dtypes it meets (float32 and
float64 are separate machine code; the output dtype is the input dtype) and cached on disk
(``cache=True``). Call :func:`warmup` to pay that once, e.g. before timing.

Beyond the engine API (see :mod:`handprop.kernels`) this module offers
:func:`conv2d_backward_bias` and :func:`prelu_forward` / :func:`prelu_backward`, parallel versions
of what layers otherwise compute with NumPy reductions and ``where``; :func:`conv2d_forward_cols`
/ :func:`conv2d_backward_weight_cols`, which let a training step pack the columns once for the
forward pass and the weight gradient; and :func:`sgd_update`, SGD's update in one pass over memory.
Layers and optimizers look these up with :func:`handprop.kernels.get_optional` and keep their
own code as the fallback.
"""

from __future__ import annotations

import os

# Numba's OpenMP threads busy-wait after every parallel loop. On a small machine they then steal
# the cores that OpenBLAS needs for the next matmul (a Dense layer), and OpenBLAS's own waiting
# threads steal them back: a training step of the tutorial ConvNet ran 8x slower on 2 cores.
# Sleeping threads cost a wake-up (~0.05 ms) per parallel loop instead, which the chunk size
# (CHUNK_BYTES) keeps rare. Set before Numba starts its thread pool; a value
# the user chose is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
from numba import njit, prange, uint64  # noqa: E402

from .reference import check_pool_padding, output_size

CHUNK_BYTES = 16 * 2**20
"""Size limit of one chunk's column buffer, in bytes (a single output row of a huge image may
exceed it). Measured on 2 cores: 2-4 MB chunks (cache-sized) made each matrix product a little
faster but paid ~0.1 ms per chunk to wake the threads up; 16 MB was best on S1-S5."""


# ----------------------------------------------------------------------------- chunks
def _chunks(N, Ho, Wo, rows, itemsize):
    """Yield ``(n0, nb, i0, i1)``: images ``n0 : n0 + nb``, output rows ``i0 : i1`` of one chunk.

    ``rows`` is the height of the column matrix (``C R S``, +1 with the bias row). Whole images
    are grouped while their columns fit in :data:`CHUNK_BYTES`; a bigger image is cut into bands
    of output rows (one image per chunk). Chunks are balanced: 128 images of which 89 fit make
    2 chunks of 64, not 89 + 39.
    """
    image = rows * Ho * Wo * itemsize
    if image <= CHUNK_BYTES:
        per = max(1, CHUNK_BYTES // image)
        per = -(-N // -(-N // per))
        for n0 in range(0, N, per):
            yield n0, min(per, N - n0), 0, Ho
    else:
        band = max(1, CHUNK_BYTES // (rows * Wo * itemsize))
        band = -(-Ho // -(-Ho // band))
        for n0 in range(N):
            for i0 in range(0, Ho, band):
                yield n0, 1, i0, min(Ho, i0 + band)


def _max_columns(N, Ho, Wo, rows, itemsize):
    """The widest chunk's number of columns (output pixels): the scratch buffers' size."""
    return max(nb * (i1 - i0) * Wo for _, nb, i0, i1 in _chunks(N, Ho, Wo, rows, itemsize))


# ----------------------------------------------------------------------------- im2col / col2im
@njit(parallel=True, cache=True)
def _im2col(x, col, sp, sn, n0, nb, i0, i1, Wo, R, S, sh, sw, ph, pw, dh, dw):
    """Pack the columns of images ``n0 : n0 + nb``, output rows ``i0 : i1``, into flat ``col``::

        col[(c R + r) S + s) sp + (n - n0) sn + (i - i0) Wo + j] = xpad[n, c, i sh + r dh, j sw + s dw]

    x (N, C, H, W). ``sp`` and ``sn`` are the steps between taps and between images, so one
    kernel writes both layouts: ``(C R S, nb, band)`` (``sp = nb band``, ``sn = band``) and
    ``(nb, C R S, band)`` (``sp = band``, ``sn = C R S band``), with ``band = (i1 - i0) Wo``.

    One task per ``(n, c)``; for a fixed tap ``(r, s)`` and output row ``i`` the numbers are one
    (strided) run of an input row: a copy loop that LLVM vectorizes when ``sw = 1``.
    """
    C, H, Wd = x.shape[1], x.shape[2], x.shape[3]
    xf = x.reshape(-1)
    z = col.dtype.type(0)
    # Flat indices of type uint64: Numba checks every *signed* index for a negative
    # (wrap-around) value, which stops vectorization; views (x[n, c, h, a:]) avoid that but
    # cost an atomic reference-count update each, which two threads fight over. Both were 3-6x
    # slower than this.
    for task in prange(nb * C):
        nn = task // C
        c = task - nn * C
        xbase = ((n0 + nn) * C + c) * H * Wd
        for r in range(R):
            for s in range(S):
                base = ((c * R + r) * S + s) * sp + nn * sn
                off = s * dw - pw  # output column j reads input column j sw + off ...
                jlo = min(Wo, max(0, (-off + sw - 1) // sw))  # ... inside the image for
                jhi = max(jlo, min(Wo, (Wd - 1 - off) // sw + 1))  # jlo <= j < jhi
                for i in range(i0, i1):
                    q = uint64(base + (i - i0) * Wo)
                    h = i * sh - ph + r * dh
                    if h < 0 or h >= H:  # a padding row
                        for j in range(uint64(Wo)):
                            col[q + j] = z
                        continue
                    for j in range(uint64(jlo)):
                        col[q + j] = z
                    src = uint64(xbase + h * Wd + jlo * sw + off)
                    dst = q + uint64(jlo)
                    if sw == 1:
                        for j in range(uint64(jhi - jlo)):
                            col[dst + j] = xf[src + j]
                    else:
                        step = uint64(sw)
                        for j in range(uint64(jhi - jlo)):
                            col[dst + j] = xf[src + j * step]
                    for j in range(uint64(jhi), uint64(Wo)):
                        col[q + j] = z


@njit(parallel=True, cache=True)
def _col2im(col, dx, sp, sn, n0, nb, i0, i1, Wo, R, S, sh, sw, ph, pw, dh, dw):
    """The adjoint of :func:`_im2col`: add every entry of ``col`` onto the pixel it came from::

        dx[n, c, i sh + r dh - ph, j sw + s dw - pw] += col[(c R + r) S + s) sp + (n - n0) sn + (i - i0) Wo + j]

    dx (N, C, H, W); entries that fall on padding are dropped. One task per ``(n, c)`` plane, so
    no two threads ever add into the same pixel.
    """
    C, H, Wd = dx.shape[1], dx.shape[2], dx.shape[3]
    dxf = dx.reshape(-1)
    for task in prange(nb * C):
        nn = task // C
        c = task - nn * C
        xbase = ((n0 + nn) * C + c) * H * Wd
        for r in range(R):
            for s in range(S):
                base = ((c * R + r) * S + s) * sp + nn * sn
                off = s * dw - pw
                jlo = min(Wo, max(0, (-off + sw - 1) // sw))
                jhi = max(jlo, min(Wo, (Wd - 1 - off) // sw + 1))
                for i in range(i0, i1):
                    h = i * sh - ph + r * dh
                    if h < 0 or h >= H:
                        continue
                    src = uint64(base + (i - i0) * Wo + jlo)
                    dst = uint64(xbase + h * Wd + jlo * sw + off)
                    if sw == 1:
                        for j in range(uint64(jhi - jlo)):
                            dxf[dst + j] += col[src + j]
                    else:
                        step = uint64(sw)
                        for j in range(uint64(jhi - jlo)):
                            dxf[dst + j * step] += col[src + j]


# ----------------------------------------------------------------------------- the three passes
def conv2d_forward(x, W, b, stride, padding, dilation):
    """2-D convolution. x (N, C, H, W), W (K, C, R, S), b (K,) or None -> y (N, K, Ho, Wo), x's dtype.

    Per chunk: pack ``col`` (nb, C R S + 1, band) -- the extra row is all ones, so the bias is
    the last column of ``W2 = [W.reshape(K, C R S) | b]`` -- then one batched matrix product
    ``y[n, :, band] = W2 @ col[n]`` (OpenBLAS) written straight into ``y``.
    """
    N, C, H, Wd = x.shape
    K, _, R, S = W.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    Ho, Wo = output_size(H, R, sh, ph, dh), output_size(Wd, S, sw, pw, dw)
    dtype = x.dtype
    y = np.empty((N, K, Ho, Wo), dtype=dtype)
    if y.size == 0:
        return y
    x = np.ascontiguousarray(x)
    P = C * R * S + 1  # rows of col: the taps, then the ones of the bias
    W2 = np.empty((K, P), dtype)
    W2[:, :-1] = W.reshape(K, P - 1)
    W2[:, -1] = 0 if b is None else b
    y3 = y.reshape(N, K, Ho * Wo)
    buf = np.empty(P * _max_columns(N, Ho, Wo, P, dtype.itemsize), dtype)
    for n0, nb, i0, i1 in _chunks(N, Ho, Wo, P, dtype.itemsize):
        band = (i1 - i0) * Wo
        col = buf[: nb * P * band]
        col3 = col.reshape(nb, P, band)
        col3[:, -1] = 1
        _im2col(x, col, band, P * band, n0, nb, i0, i1, Wo, R, S, sh, sw, ph, pw, dh, dw)
        np.matmul(W2, col3, out=y3[n0 : n0 + nb, :, i0 * Wo : i1 * Wo])
    return y


def conv2d_backward_input(dy, W, x_shape, stride, padding, dilation):
    """dL/dx. dy (N, K, Ho, Wo), W (K, C, R, S) -> dx ``x_shape``, dy's dtype.

    Per chunk: ``dcol[n] = W2.T @ dy[n, :, band]`` (nb, C R S, band), one batched matrix product,
    then :func:`_col2im` adds each column entry back onto its pixel.
    """
    N, C, H, Wd = x_shape
    K, _, R, S = W.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    Ho, Wo = dy.shape[2], dy.shape[3]
    dtype = dy.dtype
    dx = np.zeros((N, C, H, Wd), dtype=dtype)
    if dx.size == 0 or dy.size == 0:
        return dx
    P = C * R * S
    W2T = np.ascontiguousarray(W.reshape(K, P).T, dtype=dtype)
    dy3 = np.ascontiguousarray(dy).reshape(N, K, Ho * Wo)
    buf = np.empty(P * _max_columns(N, Ho, Wo, P, dtype.itemsize), dtype)
    for n0, nb, i0, i1 in _chunks(N, Ho, Wo, P, dtype.itemsize):
        band = (i1 - i0) * Wo
        dcol = buf[: nb * P * band]
        np.matmul(W2T, dy3[n0 : n0 + nb, :, i0 * Wo : i1 * Wo], out=dcol.reshape(nb, P, band))
        _col2im(dcol, dx, band, P * band, n0, nb, i0, i1, Wo, R, S, sh, sw, ph, pw, dh, dw)
    return dx


def conv2d_backward_weight(dy, x, W_shape, stride, padding, dilation):
    """dL/dW. dy (N, K, Ho, Wo), x (N, C, H, W) -> dW ``W_shape`` (K, C, R, S), dy's dtype.

    Per chunk: pack ``col`` (C R S, nb band) with the chunk's images side by side, gather the
    matching ``g = dy`` (K, nb band), and add one matrix product ``dW2.T += col @ g.T``: a single
    product with a long inner dimension (``nb band``), in the orientation OpenBLAS runs fastest.
    """
    K, C, R, S = W_shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    N, _, Ho, Wo = dy.shape
    dtype = dy.dtype
    if dy.size == 0:
        return np.zeros(W_shape, dtype=dtype)
    P = C * R * S
    x = np.ascontiguousarray(x, dtype=dtype)
    dy3 = np.ascontiguousarray(dy).reshape(N, K, Ho * Wo)
    columns = _max_columns(N, Ho, Wo, P, dtype.itemsize)
    buf = np.empty(P * columns, dtype)
    gbuf = None
    dW2T = np.zeros((P, K), dtype)
    for n0, nb, i0, i1 in _chunks(N, Ho, Wo, P, dtype.itemsize):
        band = (i1 - i0) * Wo
        col = buf[: P * nb * band]
        _im2col(x, col, nb * band, band, n0, nb, i0, i1, Wo, R, S, sh, sw, ph, pw, dh, dw)
        if nb == 1:  # a view of dy, no copy
            g = dy3[n0, :, i0 * Wo : i1 * Wo]
        else:
            if gbuf is None:
                gbuf = np.empty(K * columns, dtype)
            g = gbuf[: K * nb * band].reshape(K, nb * band)
            g.reshape(K, nb, band)[...] = dy3[n0 : n0 + nb].transpose(1, 0, 2)
        dW2T += col.reshape(P, nb * band) @ g.T
    return np.ascontiguousarray(dW2T.T).reshape(K, C, R, S)


# ----------------------------------------------------------------------------- reusing the columns
def conv2d_forward_cols(x, W, b, stride, padding, dilation):
    """:func:`conv2d_forward` that also returns its packed columns, for :func:`conv2d_backward_weight_cols`.

    -> ``(y, cols)``: y (N, K, Ho, Wo) and ``cols`` (C R S + 1, N Ho Wo), all images side by side
    with the row of ones last; or ``(y, None)`` (from :func:`conv2d_forward`) when the columns
    would exceed :data:`CHUNK_BYTES`.

    The weight gradient multiplies the very columns the forward pass packed; a training step
    that keeps them (a few MB for small images) saves packing them again. The layout is the
    weight gradient's: one product ``W2 @ cols`` (K, N Ho Wo) for the whole batch, transposed
    into y (N, K, Ho Wo) by one copy.
    """
    N, C, H, Wd = x.shape
    K, _, R, S = W.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    Ho, Wo = output_size(H, R, sh, ph, dh), output_size(Wd, S, sw, pw, dw)
    P = C * R * S + 1
    dtype = x.dtype
    band = Ho * Wo
    if N * band == 0 or P * N * band * dtype.itemsize > CHUNK_BYTES:
        return conv2d_forward(x, W, b, stride, padding, dilation), None
    W2 = np.empty((K, P), dtype)
    W2[:, :-1] = W.reshape(K, P - 1)
    W2[:, -1] = 0 if b is None else b
    cols = np.empty((P, N * band), dtype)
    cols[-1] = 1
    x = np.ascontiguousarray(x)
    _im2col(x, cols.reshape(-1), N * band, band, 0, N, 0, Ho, Wo, R, S, sh, sw, ph, pw, dh, dw)
    y = np.empty((N, K, band), dtype)
    y[...] = (W2 @ cols).reshape(K, N, band).transpose(1, 0, 2)
    return y.reshape(N, K, Ho, Wo), cols


def conv2d_backward_weight_cols(dy, cols, W_shape):
    """dL/dW and dL/db from the columns of :func:`conv2d_forward_cols`. -> ``(dW, db)``.

    dy (N, K, Ho, Wo), cols (C R S + 1, N Ho Wo) -> dW ``W_shape`` (K, C, R, S), db (K,).
    One product ``cols @ g.T`` with ``g = dy`` as (K, N Ho Wo); the row of ones sums dy, so its
    last row is the bias gradient ``db = dy.sum over (n, i, j)``.
    """
    N, K, Ho, Wo = dy.shape
    g = np.empty((K, N * Ho * Wo), dy.dtype)
    g.reshape(K, N, Ho * Wo)[...] = dy.reshape(N, K, Ho * Wo).transpose(1, 0, 2)
    dWb = cols @ g.T  # (C R S + 1, K)
    return np.ascontiguousarray(dWb[:-1].T).reshape(W_shape), dWb[-1].copy()


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


@njit(parallel=True, cache=True)
def _maxpool_forward_unpadded(x, y, argmax, R, S, sh, sw):
    """:func:`_maxpool_forward` without padding, where every window lies inside the image.

    The same comparisons (so the same winner, NaN included), ~2.5x faster: flat unsigned
    indices (see :func:`_im2col`), the window starts from its first pixel instead of ``-inf``,
    and ``best``/``where`` are chosen by ``take`` without a branch. With random data the
    branch ``if v > best`` is mispredicted about once per window, ~15 cycles each time.
    """
    N, C, H, Wd = x.shape
    Ho, Wo = y.shape[2], y.shape[3]
    xf, yf, af = x.reshape(-1), y.reshape(-1), argmax.reshape(-1)
    step, row_step = uint64(sw), uint64(Wd)
    for plane in prange(N * C):
        xbase = uint64(plane * H * Wd)
        for i in range(Ho):
            q = uint64((plane * Ho + i) * Wo)
            for j in range(uint64(Wo)):
                first = uint64(i * sh * Wd) + j * step  # h * W + w of the window's first pixel
                best = xf[xbase + first]
                where = first
                for r in range(uint64(R)):
                    for s in range(uint64(S)):
                        t = first + r * row_step + s
                        v = xf[xbase + t]
                        take = (v > best) | (v != v)  # v != v: NaN wins, as in np.isnan above
                        best = v if take else best
                        where = t if take else where
                yf[q + j] = best
                af[q + j] = where


def maxpool2d_forward(x, pool, stride, padding):
    """Max pooling. x (N, C, H, W) -> ``(y, argmax)`` (N, C, Ho, Wo); argmax is ``h * W + w``."""
    N, C, H, Wd = x.shape
    (R, S), (sh, sw), (ph, pw) = pool, stride, padding
    check_pool_padding(pool, padding)
    Ho, Wo = output_size(H, R, sh, ph), output_size(Wd, S, sw, pw)
    y = np.empty((N, C, Ho, Wo), dtype=x.dtype)
    argmax = np.empty((N, C, Ho, Wo), dtype=np.int64)
    if y.size == 0:
        return y, argmax
    x = np.ascontiguousarray(x)
    if ph == 0 and pw == 0:
        _maxpool_forward_unpadded(x, y, argmax, R, S, sh, sw)
    else:
        _maxpool_forward(x, y, argmax, R, S, sh, sw, ph, pw)
    return y, argmax


@njit(parallel=True, cache=True)
def _maxpool_backward(dy, argmax, dx):
    """dx (planes, H W), uninitialized: each plane is one thread's, which zeroes it (in parallel,
    while it is in cache) and then scatter-adds ``+=`` into it without races."""
    planes, Q = dy.shape
    z = dx.dtype.type(0)
    for p in prange(planes):
        for m in range(dx.shape[1]):
            dx[p, m] = z
        for q in range(Q):
            dx[p, argmax[p, q]] += dy[p, q]


def maxpool2d_backward(dy, argmax, x_shape):
    """Route each ``dy`` to its window's winner; shared winners add up. -> dx ``x_shape``."""
    N, C, H, Wd = x_shape
    if dy.size == 0:
        return np.zeros(x_shape, dtype=dy.dtype)
    dx = np.empty((N * C, H * Wd), dtype=dy.dtype)
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


@njit(parallel=True, cache=True, fastmath={"reassoc"})
def _prelu_backward(dy, x, alpha, dx, dalpha):
    """dy, x, dx (N, C, M); alpha, dalpha (C,). One thread per channel, so dalpha[c] never races.

    ``fastmath={"reassoc"}`` lets LLVM split the float64 sum into several vector accumulators
    (~2x faster: one accumulator is a chain of dependent additions, 4 cycles each). It changes
    only the order of the additions, never NaN or inf handling.
    """
    N, C, M = x.shape
    z = x.dtype.type(0)
    for c in prange(C):
        a = alpha[c]
        total = 0.0
        for n in range(N):
            for m in range(M):
                v = x[n, c, m]
                g = dy[n, c, m]
                positive = v > 0
                dx[n, c, m] = g if positive else a * g
                total += z if positive else g * v
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


# ----------------------------------------------------------------------------- SGD
SGD_MIN_SIZE = 2**17
"""Smaller parameters are left to NumPy: waking the threads (~0.05 ms) costs more than one
pass over them saves. Measured on 2 cores: 270 000 float32 numbers took 0.13 ms with NumPy,
0.07 ms fused; 9 000 took 0.003 ms and 0.06 ms."""


@njit(parallel=True, cache=True)
def _sgd_update(p, g, buf, lr, momentum, keep, nesterov, first):
    """One pass over flat p, g (and buf when momentum != 0), in the operation order of
    :class:`handprop.optimizers.SGD` -- so the result is bit for bit NumPy's::

        buf <- g  (first step)   or   buf * momentum + keep * g     (keep = 1 - dampening)
        p   <- p - lr * (g + momentum * buf  if nesterov  else  buf)
    """
    for i in prange(p.size):
        step = g[i]
        if momentum != 0:
            v = step if first else buf[i] * momentum + keep * step
            buf[i] = v
            step = step + momentum * v if nesterov else v
        p[i] = p[i] - lr * step


def sgd_update(p, g, buf, lr, momentum=0.0, dampening=0.0, nesterov=False, first=False):
    """SGD's in-place update of ``p`` (and of the momentum buffer ``buf``, or None) in one pass.

    NumPy's ``p -= lr * g`` reads g, writes the temporary ``lr * g``, reads both back and writes p
    (and allocates the temporary): ~3x the memory traffic of one fused loop, for a memory-bound
    update (1.5 ms -> 0.45 ms for the tutorial ConvNet's 2.5 M-weight Dense layer on 2 cores).

    Returns False, having done nothing, unless p, g (and buf) are C-contiguous float32 or float64
    arrays of one dtype with at least :data:`SGD_MIN_SIZE` numbers: the caller then runs its own code.
    """
    arrays = (p, g) if buf is None else (p, g, buf)
    if p.dtype not in (np.float32, np.float64) or p.size < SGD_MIN_SIZE:
        return False
    if momentum != 0.0 and (buf is None or buf.shape != p.shape):
        return False  # no buffer to update: the kernel would write out of bounds
    if any(a.dtype != p.dtype or not a.flags.c_contiguous for a in arrays):
        return False
    real = p.dtype.type  # float32 scalars keep the arithmetic in float32, as NumPy's weak scalars
    flat = np.empty(0, p.dtype) if buf is None else buf.reshape(-1)
    _sgd_update(p.reshape(-1), g.reshape(-1), flat, real(lr), real(momentum), real(1.0 - dampening),
                bool(nesterov), bool(first))  # fmt: skip
    return True


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
        maxpool2d_forward(x, (3, 3), (2, 2), (1, 1))  # the padded kernel
        maxpool2d_backward(p, idx, x.shape)
        a = avgpool2d_forward(x, (2, 2), (2, 2), (0, 0))
        avgpool2d_backward(a, x.shape, (2, 2), (2, 2), (0, 0))
        alpha = np.full(2, 0.25, dtype)
        prelu_backward(x, prelu_forward(x, alpha), alpha)
        p = np.zeros(SGD_MIN_SIZE, dtype)
        sgd_update(p, p.copy(), None, 0.1)
    return time.perf_counter() - start
