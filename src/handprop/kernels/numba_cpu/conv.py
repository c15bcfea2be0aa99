"""Convolution on the ``numba`` engine: three algorithms, chosen by the shape.

Same functions and shapes as :mod:`handprop.kernels.reference` (the definition); read that first.
This file is about *speed*, and each trick is explained where it is used. Which algorithm runs
(:func:`algorithm`):

==========================================  ==============================================================
``1 x 1``, stride 1, no padding              a plain matrix product per image (:func:`_gemm_conv2d`): the
                                             input *is* its own column matrix, nothing to pack
``3 x 3``, stride 1, no dilation, >= 4       Winograd F(4 x 4, 3 x 3) (:mod:`.winograd`): 4x fewer
channels in and out, output >= 16 wide       multiplications (the U-Net's convolutions)
everything else                              chunked im2col + one GEMM per chunk (below; the tutorial
                                             ConvNet's 5 x 5 and small 3 x 3 layers, strides, dilations)
==========================================  ==============================================================

All three agree with the reference to rounding (Winograd's rounding is larger: its docstring
says why); ``tests/test_engines.py`` checks each on its own geometries.

**im2col: a convolution is a matrix product.** Copy every receptive field (``C R S`` numbers) into a
column and the forward pass is ``y[n] = W2 @ col[n]`` with ``W2 = W.reshape(K, C R S)``; the
input gradient is ``dcol = W2.T @ dy[n]`` added back onto the pixels (col2im); the weight
gradient is ``dW2 = sum_n dy[n] @ col[n].T`` (the :mod:`handprop.kernels.im2col` engine explains
the idea). Matrix products are what a CPU does best: OpenBLAS runs them at ~150-200 GFLOP/s on
two cores here, with 512-bit vectors and register blocking no Numba loop matches. So Numba only
does the data movement -- packing the columns (:func:`_im2col`) and adding them back
(:func:`_col2im`), spread over the engine's threads (:mod:`._pool`) -- and NumPy's ``matmul``
does all the arithmetic.

**Chunks, not one huge im2col.** ``col`` holds ``R S`` copies of the input (~390 MB for a
64-channel 584 x 565 retina image, 3 x 3). So the work is cut into chunks whose columns fit in
:data:`CHUNK_BYTES` (16 MB): a group of whole images, or a band of output rows of one big image.
One scratch buffer is allocated per call and reused by every chunk; the forward product writes
straight into ``y`` (``matmul(..., out=)`` on a view). Peak memory above inputs and outputs is
about one chunk.

**The bias rides along.** The forward columns get one extra row of ones and ``W2`` the bias as
its last column, so ``W2 @ col`` adds it for free (no second pass over ``y``).

**Packing fast in Numba.** The copy loops index flat arrays with *unsigned* integers: Numba
checks every signed index for a negative (wrap-around) value, which blocks vectorization, and
slicing a view per row instead costs an atomic reference-count update per row. Both were 3-6x
slower. Tasks are ``(image, channel)`` pairs, cut into one contiguous range per thread, so in
:func:`_col2im` no two threads add into the same pixel.

**What limits it** (measured on 2 cores, ``benchmarks/README.md``): the products run at
~150-200 GFLOP/s when the output is wide (forward, input gradient); the weight gradient's
product has a tiny output (``C R S x K``, e.g. 75 x 20) and a long inner dimension, where
OpenBLAS reaches only ~50-70 GFLOP/s. Packing writes ``R S`` copies of the input (memory
bound), and a stride-1 forward pass spends ~1/3 of its time there. PyTorch's oneDNN avoids the
copies with direct convolution kernels on a blocked (NCHW16c) layout; Winograd avoids most of
the multiplications instead.

**Floating point.** The products are OpenBLAS's: results differ from the reference in the last
bits (as PyTorch's do); NaN and inf propagate as in any matrix product.

**The pairs.** :func:`conv2d_forward` in training keeps the im2col columns it packed (when they
are small, <= :data:`CHUNK_BYTES`) in the cache's ``extra`` field, because the weight gradient
multiplies the very same columns: :func:`conv2d_backward` then skips packing them again.
Winograd keeps nothing (transforming the input again, chunk by chunk in cache, was faster than
keeping 2.25x the input in memory).
"""

from __future__ import annotations

import numpy as np
from numba import njit, uint64

from ..geometry import output_size
from ..pairs import ConvCache, conv_pairs
from . import _pool, winograd
from ._jit import CACHE, check_dtype

CHUNK_BYTES = 16 * 2**20
"""Size limit of one chunk's column buffer, in bytes (a single output row of a huge image may
exceed it). Measured on 2 cores: 2-4 MB chunks (cache-sized) made each matrix product a little
faster but paid a thread hand-over per chunk; 16 MB was best on S1-S5."""



def algorithm(W_shape, geometry, out_width):
    """``"gemm"``, ``"winograd"`` or ``"im2col"``: which algorithm runs this convolution (module
    docstring). ``out_width`` is the output's width ``Wo``."""
    K, C, R, S = W_shape
    stride, padding, _ = geometry
    if (R, S) == (1, 1) and tuple(stride) == (1, 1) and tuple(padding) == (0, 0):
        return "gemm"
    if winograd.eligible(W_shape, geometry, out_width):
        return "winograd"
    return "im2col"


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
@njit(nogil=True, cache=CACHE)
def _im2col(x, col, sp, sn, n0, nb, i0, i1, Wo, R, S, sh, sw, ph, pw, dh, dw, task0, task1):
    """Pack the columns of images ``n0 : n0 + nb``, output rows ``i0 : i1``, into flat ``col``::

        col[(c R + r) S + s) sp + (n - n0) sn + (i - i0) Wo + j] = xpad[n, c, i sh + r dh, j sw + s dw]

    x (N, C, H, W). ``sp`` and ``sn`` are the steps between taps and between images, so one
    kernel writes both layouts: ``(C R S, nb, band)`` (``sp = nb band``, ``sn = band``) and
    ``(nb, C R S, band)`` (``sp = band``, ``sn = C R S band``), with ``band = (i1 - i0) Wo``.

    Tasks ``task0 : task1`` of the ``nb C`` pairs ``(n, c)`` (one thread's share); for a fixed
    tap ``(r, s)`` and output row ``i`` the numbers are one (strided) run of an input row: a copy
    loop that LLVM vectorizes when ``sw = 1``.
    """
    C, H, Wd = x.shape[1], x.shape[2], x.shape[3]
    xf = x.reshape(-1)
    z = col.dtype.type(0)
    # Flat indices of type uint64: Numba checks every *signed* index for a negative
    # (wrap-around) value, which stops vectorization. This was 3-6x faster than views.
    for task in range(task0, task1):
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


@njit(nogil=True, cache=CACHE)
def _col2im(col, dx, sp, sn, n0, nb, i0, i1, Wo, R, S, sh, sw, ph, pw, dh, dw, task0, task1):
    """The adjoint of :func:`_im2col`: add every entry of ``col`` onto the pixel it came from::

        dx[n, c, i sh + r dh - ph, j sw + s dw - pw] += col[(c R + r) S + s) sp + (n - n0) sn + (i - i0) Wo + j]

    dx (N, C, H, W); entries that fall on padding are dropped. Tasks are ``(n, c)`` planes, so
    two threads with different task ranges never add into the same pixel.
    """
    C, H, Wd = dx.shape[1], dx.shape[2], dx.shape[3]
    dxf = dx.reshape(-1)
    for task in range(task0, task1):
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


GEMM_SPLIT_FLOPS = 5e7
"""A product is split over the threads only when each piece gets at least this many floating-point
operations (~0.3 ms); smaller ones run in the calling thread on OpenBLAS's own threads. Measured
on 2 cores: splitting the tutorial ConvNet's small products cost ~20% of its step, not splitting
S1/S4's large ones (each OpenBLAS thread spinning beside a packing thread) up to 3x."""


def _matmul(a, b, out):
    """``out[...] = a @ b`` (batched over leading axes like ``np.matmul``). A large product is cut
    along the columns of ``b``, one slice per thread, each on one-thread OpenBLAS (see
    :data:`GEMM_SPLIT_FLOPS`)."""
    per_column = 2 * a.shape[-2] * a.shape[-1] * max(1, out.size // (out.shape[-2] * out.shape[-1]))
    pieces = _pool.ranges(b.shape[-1], int(GEMM_SPLIT_FLOPS // per_column) + 1)
    if len(pieces) <= 1:
        return np.matmul(a, b, out=out)
    _pool.run(lambda r: np.matmul(a, b[..., r[0] : r[1]], out=out[..., r[0] : r[1]]), pieces)
    return out


def _matmul_long(a, b):
    """``a @ b`` for a long inner dimension (a (m, L), b (L, k)): when large, each thread multiplies
    a slice of it, and the partial products are added."""
    pieces = _pool.ranges(a.shape[1], int(GEMM_SPLIT_FLOPS // (2 * a.shape[0] * b.shape[1])) + 1)
    if len(pieces) <= 1:
        return a @ b
    return sum(_pool.run(lambda r: a[:, r[0] : r[1]] @ b[r[0] : r[1]], pieces))


def _pack(kernel, src, dst, sp, sn, n0, nb, i0, i1, Wo, W_shape, geometry):
    """Run ``_im2col`` / ``_col2im`` on the engine's threads, each taking a range of ``(n, c)`` planes."""
    _, C, R, S = W_shape
    (sh, sw), (ph, pw), (dh, dw) = geometry
    per_plane = R * S * (i1 - i0) * Wo  # column entries of one (n, c) plane
    _pool.each_range(kernel, nb * C, per_plane, src, dst, sp, sn, n0, nb, i0, i1, Wo, R, S, sh, sw, ph, pw, dh, dw)


# ----------------------------------------------------------------------------- im2col: the three passes
def _im2col_conv2d(x, W, b, geometry):
    """Per chunk: pack ``col`` (nb, C R S + 1, band) -- the extra row is all ones, so the bias is
    the last column of ``W2 = [W.reshape(K, C R S) | b]`` -- then one batched matrix product
    ``y[n, :, band] = W2 @ col[n]`` (OpenBLAS) written straight into ``y``."""
    N, C, H, Wd = x.shape
    K, _, R, S = W.shape
    (sh, sw), (ph, pw), (dh, dw) = geometry
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
        _pack(_im2col, x, col, band, P * band, n0, nb, i0, i1, Wo, W.shape, geometry)
        _matmul(W2, col3, y3[n0 : n0 + nb, :, i0 * Wo : i1 * Wo])
    return y


def _im2col_input_grad(dy, W, x_shape, geometry):
    """Per chunk: ``dcol[n] = W2.T @ dy[n, :, band]`` (nb, C R S, band), one batched matrix product,
    then :func:`_col2im` adds each column entry back onto its pixel."""
    N, C, H, Wd = x_shape
    K, _, R, S = W.shape
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
        _matmul(W2T, dy3[n0 : n0 + nb, :, i0 * Wo : i1 * Wo], dcol.reshape(nb, P, band))
        _pack(_col2im, dcol, dx, band, P * band, n0, nb, i0, i1, Wo, W.shape, geometry)
    return dx


def _im2col_weight_grad(dy, x, W_shape, geometry):
    """Per chunk: pack ``col`` (C R S, nb band) with the chunk's images side by side, gather the
    matching ``g = dy`` (K, nb band), and add one matrix product ``dW2.T += col @ g.T``: a single
    product with a long inner dimension (``nb band``), in the orientation OpenBLAS runs fastest."""
    K, C, R, S = W_shape
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
        _pack(_im2col, x, col, nb * band, band, n0, nb, i0, i1, Wo, W_shape, geometry)
        if nb == 1:  # a view of dy, no copy
            g = dy3[n0, :, i0 * Wo : i1 * Wo]
        else:
            if gbuf is None:
                gbuf = np.empty(K * columns, dtype)
            g = gbuf[: K * nb * band].reshape(K, nb * band)
            g.reshape(K, nb, band)[...] = dy3[n0 : n0 + nb].transpose(1, 0, 2)
        dW2T += _matmul_long(col.reshape(P, nb * band), g.T)
    return np.ascontiguousarray(dW2T.T).reshape(K, C, R, S)


def _conv2d_keeping_columns(x, W, b, geometry):
    """:func:`_im2col_conv2d` that also returns its packed columns -> ``(y, cols)``: y (N, K, Ho, Wo)
    and ``cols`` (C R S + 1, N Ho Wo), all images side by side with the row of ones last; or
    ``(y, None)`` when the columns would exceed :data:`CHUNK_BYTES`.

    The layout is the weight gradient's: one product ``W2 @ cols`` (K, N Ho Wo) for the whole
    batch, transposed into y (N, K, Ho Wo) by one copy.
    """
    N, C, H, Wd = x.shape
    K, _, R, S = W.shape
    (sh, sw), (ph, pw), (dh, dw) = geometry
    Ho, Wo = output_size(H, R, sh, ph, dh), output_size(Wd, S, sw, pw, dw)
    P = C * R * S + 1
    dtype = x.dtype
    band = Ho * Wo
    if N * band == 0 or P * N * band * dtype.itemsize > CHUNK_BYTES:
        return _im2col_conv2d(x, W, b, geometry), None
    W2 = np.empty((K, P), dtype)
    W2[:, :-1] = W.reshape(K, P - 1)
    W2[:, -1] = 0 if b is None else b
    cols = np.empty((P, N * band), dtype)
    cols[-1] = 1
    _pack(_im2col, np.ascontiguousarray(x), cols.reshape(-1), N * band, band, 0, N, 0, Ho, Wo, W.shape, geometry)
    y = np.empty((N, K, band), dtype)
    y[...] = _matmul(W2, cols, np.empty((K, N * band), dtype)).reshape(K, N, band).transpose(1, 0, 2)
    return y.reshape(N, K, Ho, Wo), cols


def _weight_grad_from_columns(dy, cols, W_shape):
    """dL/dW and dL/db from the columns of :func:`_conv2d_keeping_columns`. -> ``(dW, db)``.

    dy (N, K, Ho, Wo), cols (C R S + 1, N Ho Wo) -> dW ``W_shape`` (K, C, R, S), db (K,).
    One product ``cols @ g.T`` with ``g = dy`` as (K, N Ho Wo); the row of ones sums dy, so its
    last row is the bias gradient ``db = dy.sum over (n, i, j)``.
    """
    N, K, Ho, Wo = dy.shape
    g = np.empty((K, N * Ho * Wo), dy.dtype)
    g.reshape(K, N, Ho * Wo)[...] = dy.reshape(N, K, Ho * Wo).transpose(1, 0, 2)
    dWb = _matmul_long(cols, g.T)  # (C R S + 1, K)
    return np.ascontiguousarray(dWb[:-1].T).reshape(W_shape), dWb[-1].copy()


# ----------------------------------------------------------------------------- 1 x 1: plain matrix products
def _gemm_conv2d(x, W, b):
    """``y[n] = W2 @ x[n] + b`` with ``W2 = W.reshape(K, C)`` and ``x[n]`` as (C, H W): a 1 x 1
    convolution is a product with the image itself, nothing to pack."""
    N, C, H, Wd = x.shape
    K = W.shape[0]
    y = np.empty((N, K, H, Wd), x.dtype)
    y3 = y.reshape(N, K, H * Wd)
    _matmul(np.ascontiguousarray(W.reshape(K, C), dtype=x.dtype), np.ascontiguousarray(x).reshape(N, C, H * Wd), y3)
    if b is not None:
        y3 += np.asarray(b, dtype=x.dtype).reshape(1, K, 1)
    return y


def _gemm_input_grad(dy, W, x_shape):
    """``dx[n] = W2.T @ dy[n]`` (C, H W)."""
    N, K, H, Wd = dy.shape
    C = x_shape[1]
    W2T = np.ascontiguousarray(W.reshape(K, C).T, dtype=dy.dtype)
    dx = np.empty(x_shape, dy.dtype)
    if dx.size:
        _matmul(W2T, np.ascontiguousarray(dy).reshape(N, K, H * Wd), dx.reshape(N, C, H * Wd))
    return dx


def _gemm_weight_grad(dy, x, W_shape):
    """``dW2 = sum_n dy[n] @ x[n].T`` (K, C): one product per image, long inner dimension H W."""
    N, K, H, Wd = dy.shape
    dy3 = np.ascontiguousarray(dy).reshape(N, K, H * Wd)
    x3 = np.ascontiguousarray(x, dtype=dy.dtype).reshape(N, x.shape[1], H * Wd)
    dW = np.zeros((K, x3.shape[1]), dy.dtype)
    for n in range(N):
        dW += _matmul_long(dy3[n], x3[n].T)
    return dW.reshape(W_shape)


# ----------------------------------------------------------------------------- the three linear maps
def conv2d(x, W, b, geometry):
    """2-D convolution. x (N, C, H, W), W (K, C, R, S), b (K,) or None -> y (N, K, Ho, Wo), x's dtype."""
    check_dtype("conv2d", x, W)
    N, C, H, Wd = x.shape
    K, _, R, S = W.shape
    stride, padding, dilation = geometry
    Wo = output_size(Wd, S, stride[1], padding[1], dilation[1])
    way = algorithm(W.shape, geometry, Wo)
    if way == "gemm":
        return _gemm_conv2d(x, W, b)
    if way == "winograd":
        return winograd.conv2d(x, W, b, padding)
    return _im2col_conv2d(x, W, b, geometry)


def conv2d_input_grad(dy, W, x_shape, geometry):
    """dL/dx. dy (N, K, Ho, Wo), W (K, C, R, S) -> dx ``x_shape``, dy's dtype."""
    check_dtype("conv2d_input_grad", dy, W)
    way = algorithm(W.shape, geometry, dy.shape[3])
    if way == "gemm":
        return _gemm_input_grad(dy, W, x_shape)
    if way == "winograd" and dy.size:
        return winograd.conv2d_input_grad(dy, W, x_shape, geometry[1])
    return _im2col_input_grad(dy, W, x_shape, geometry)


def conv2d_weight_grad(dy, x, W_shape, geometry):
    """dL/dW. dy (N, K, Ho, Wo), x (N, C, H, W) -> dW ``W_shape`` (K, C, R, S), dy's dtype."""
    check_dtype("conv2d_weight_grad", dy, x)
    return _weight_and_bias_grad(dy, x, W_shape, geometry, False)[0]


def _weight_and_bias_grad(dy, x, W_shape, geometry, want_db):
    """``(dW, db or None)``; Winograd sums db in its pass over dy, the others with NumPy."""
    way = algorithm(W_shape, geometry, dy.shape[3])
    if way == "winograd" and dy.size:
        return winograd.conv2d_weight_grad(dy, x, geometry[1])
    if way == "gemm":
        dW = _gemm_weight_grad(dy, x, W_shape)
    else:
        dW = _im2col_weight_grad(dy, x, W_shape, geometry)
    return dW, (dy.sum(axis=(0, 2, 3)) if want_db else None)


# ----------------------------------------------------------------------------- the pairs layers call
def conv2d_forward(x, W, b, geometry, training=True):
    """``y = conv2d(x, W, b)`` -> ``(y, ConvCache)``; in training on the im2col path the cache keeps
    the packed columns (``extra``) when they fit in :data:`CHUNK_BYTES`, for :func:`conv2d_backward`."""
    check_dtype("conv2d_forward", x, W)
    cols = None
    Wo = output_size(x.shape[3], W.shape[3], geometry[0][1], geometry[1][1], geometry[2][1])
    if training and algorithm(W.shape, geometry, Wo) == "im2col":
        y, cols = _conv2d_keeping_columns(x, W, b, geometry)
    else:
        y = conv2d(x, W, b, geometry)
    return y, ConvCache(x, W, b is not None, geometry, cols)


def conv2d_backward(dy, cache, need_dx=True):
    """``(dx, dW, db)`` of :func:`conv2d_forward` (dx None unless ``need_dx``, db None without bias).

    With the forward pass's columns at hand, ``dW`` and ``db`` are one product with them (their
    row of ones sums ``dy``, giving ``db``); otherwise the chosen algorithm computes them.
    """
    check_dtype("conv2d_backward", dy)
    x, W, has_bias, geometry, cols = cache
    dy = np.ascontiguousarray(dy)  # once for both gradients (e.g. a slice of a concatenation's gradient)
    if cols is not None and cols.dtype == dy.dtype:
        dW, db = _weight_grad_from_columns(dy, cols, W.shape)
    else:
        dW, db = _weight_and_bias_grad(dy, x, W.shape, geometry, has_bias)
    dx = conv2d_input_grad(dy, W, x.shape, geometry) if need_dx else None
    return dx, dW, (db if has_bias else None)


# the transposed convolution reuses the three passes (kernels/pairs.py explains the duality)
_, _, conv2d_transpose_forward, conv2d_transpose_backward = conv_pairs(conv2d, conv2d_input_grad, conv2d_weight_grad)
