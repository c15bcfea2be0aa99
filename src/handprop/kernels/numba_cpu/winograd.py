"""3 x 3 convolutions by Winograd's F(4 x 4, 3 x 3) algorithm: 36 multiplications where the
direct sum needs 144.

Used by :mod:`.conv` for 3 x 3, stride-1, undilated convolutions with at least
:data:`MIN_CHANNELS` input and output channels and outputs at least :data:`MIN_WIDTH` columns wide
(the U-Net's layers); the readable definition stays :func:`handprop.kernels.reference.conv2d`,
and the tests compare the two.

**One dimension first: F(2, 3).** Two outputs of a 3-tap filter ``g`` on four inputs ``d``::

    y0 = d0 g0 + d1 g1 + d2 g2          6 multiplications, done directly
    y1 = d1 g0 + d2 g1 + d3 g2

Winograd (1980) computes them with 4: ``m1 = (d0 - d2) g0``, ``m2 = (d1 + d2) (g0 + g1 + g2) / 2``,
``m3 = (d2 - d1) (g0 - g1 + g2) / 2``, ``m4 = (d1 - d3) g2``; then ``y0 = m1 + m2 + m3`` and
``y1 = m2 - m3 - m4``. The sums of ``g`` are computed once per filter, the sums of ``d`` are
additions only. It is polynomial multiplication in disguise: evaluate the data and the filter
at a few points (0, 1, -1, infinity), multiply the values pointwise, interpolate back.

**F(4 x 4, 3 x 3)** does the same in two dimensions with the points 0, +-1, +-2, infinity (Lavin &
Gray, 2016). Cut the output into 4 x 4 tiles; each reads a 6 x 6 patch ``d`` of the padded input,
and for one channel and one filter ``g`` (3 x 3)::

    tile = A^T [ (G g G^T) * (B^T d B) ] A         (* elementwise: 36 products for 16 outputs)

            [ 4  0 -5  0  1  0 ]            [ 1/4     0     0  ]           [ 1  1  1  1  1  0 ]
            [ 0 -4 -4  1  1  0 ]            [ -1/6 -1/6  -1/6  ]    A^T =  [ 0  1 -1  2 -2  0 ]
    B^T =   [ 0  4 -4 -1  1  0 ]     G =    [ -1/6  1/6  -1/6  ]           [ 0  1  1  4  4  0 ]
            [ 0 -2 -1  2  1  0 ]            [ 1/24  1/12  1/6  ]           [ 0  1 -1  8 -8  1 ]
            [ 0  2 -1 -2  1  0 ]            [ 1/24 -1/12  1/6  ]
            [ 0  4  0 -5  0  1 ]            [   0     0     1  ]

The direct sum needs 16 x 9 = 144 multiplications for the same tile: 4x fewer.

**Many channels: 36 matrix products.** The sum over input channels ``c`` can be taken *inside*
the transformed domain, because the transforms are linear. So, with ``xi`` one of the 36
positions of the 6 x 6 transform and ``t`` a tile::

    U[xi, k, c] = (G W[k, c] G^T)[xi]      (36, K, C)   the filters, transformed once per call
    V[xi, c, t] = (B^T d[c, t] B)[xi]      (36, C, T)   every input tile      (:func:`_input_transform`)
    M[xi]       = U[xi] @ V[xi]            (36, K, T)   36 matrix products (OpenBLAS)
    y[k, t]     = A^T M[:, k, t] A  + b[k]               (:func:`_output_transform`)

**Backward.** The input gradient of a stride-1 convolution is itself a convolution: of ``dy``
with the filters flipped and transposed (``W[:, :, ::-1, ::-1]`` as (C, K, 3, 3)), padding
``2 - p`` (a negative padding crops ``dy``). So it runs the forward code. For the weights, with
``Yhat[xi, k, t] = (A dy_tile A^T)[xi]`` (:func:`_dy_transform`, the adjoint of the output
transform; it also sums ``dy`` for the bias gradient)::

    dU[xi] = sum over chunks of Yhat[xi] @ V[xi]^T        (K, C): 36 products, long inner dimension
    dW[k, c] = G^T dU[:, k, c] G                             (6 x 6 -> 3 x 3, the adjoint of U's transform)

**Why the numbers differ in the last bits.** The transforms multiply by 4, 5, 8 and divide by 6
and 24, so intermediate values are up to ~100 times larger than the inputs and partly cancel
again. Each rounding error is relative to those larger values: float32 results differ from the
direct sum by ~1e-6 to 1e-5 relative (the direct sum: ~1e-7), float64 by ~1e-14. The tests allow
for that (float32 tolerance 1e-4), as cuDNN's and oneDNN's Winograd kernels do. NaN and inf still
propagate (wherever the direct sum is inf or NaN, so is this), but an inf or NaN pixel may spread
NaN further within the 4 x 4 output tiles whose 6 x 6 input patch contains it (up to four tiles;
inf - inf), where the direct sum gives inf or NaN only where the filter touches it. Both are
tested (``tests/test_engine_numba.py``: the float32 error, ~3e-6 of the output's scale against
im2col's ~3e-7, and the inf/NaN spread).

**Speed** -- why this file exists. Benchmark rows: the U-Net training step (``bench_unet.py``
``train4``) and the conv benchmark's S3 (``bench_conv.py``). Replacing Winograd by im2col made the
U-Net step 1.09-1.22x slower at the fastest step and 2.4-3.5x at the median (two runs of 12 and 20
rounds; 2 threads, the two alternating in one process on a loaded 2-core
machine, issue 20); S3 went from 2.9-3.0x PyTorch's time on im2col to 1.35-1.6x
(``benchmarks/README.md``). The transforms are memory passes written in Numba; all the
multiplications are in the 36 products. Tiles are processed in chunks of whole images or bands of
tile rows whose ``V`` and ``M`` fit in :data:`CHUNK_BYTES` (cache-sized); each chunk is one task
for the engine's thread pool (:mod:`._pool`): transform, multiply with one-thread OpenBLAS,
transform back, all while the data is in that core's cache. Two details mattered: the 36
matrices of ``V`` and ``M`` start one cache line apart (:func:`_staggered`; 36 streams a power
of two apart fell into the same cache set, 25x slower), and the transforms first *deinterleave*
each row (``D[m, tj] = row[4 tj + m]``), so that every step is arithmetic on contiguous arrays
over tiles, which LLVM vectorizes. The input transform deinterleaves each input row once, into
4 phases (the patch's columns 4 and 5 are the next tile's 0 and 1), and reuses the 2 rows that
vertically adjacent patches share: 1.2x faster than gathering all 6 x 6, the U-Net step 5 % less
CPU (issue 20).
"""

from __future__ import annotations

import threading

import numpy as np
from numba import njit

from . import _pool
from ._jit import CACHE

CHUNK_BYTES = 8 * 2**20
"""Bytes of ``V`` + ``M`` per chunk. Measured on the U-Net's layers (1 and 2 threads): 1 MB 10-20%
slower than 8 MB (36 small products), 2 MB 5-10%, 4-8 MB best, 16 MB and more slower again
(out of cache)."""

MIN_CHANNELS = 4
"""Fewer input or output channels go to im2col: the 36 tiny products and the transforms cost
more than the one product they replace (S5, C = 1: 10x slower)."""

MIN_WIDTH = 16
"""Narrower outputs go to im2col: partial tiles and per-chunk overheads made F(4x4) 1.6x slower
on the tutorial's 10 x 10 maps (S2)."""

STAGGER = 16
"""Numbers between the end of one of the 36 matrices and the start of the next (one cache line
of float32): see :func:`_staggered`."""

_G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
               [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]])  # fmt: skip
"""G (6, 3): the filter transform ``U = G g G^T``."""


def eligible(W_shape, geometry, out_width):
    """Is this convolution Winograd's? 3 x 3, stride 1, no dilation, enough channels, wide enough."""
    K, C, R, S = W_shape
    stride, _, dilation = geometry
    return (R == 3 and S == 3 and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1)
            and min(K, C) >= MIN_CHANNELS and out_width >= MIN_WIDTH)  # fmt: skip


# ----------------------------------------------------------------------------- the transforms, per column of 6
# Multiples are written as sums (d + d): an int constant times a float32 would compute in float64.
@njit(inline="always")
def _bt(d0, d1, d2, d3, d4, d5):
    """``B^T d`` for one column ``d`` of 6 numbers (the rows of ``B^T`` in the module docstring)."""
    d1x2, d2x2, d3x2 = d1 + d1, d2 + d2, d3 + d3
    d1x4, d2x4 = d1x2 + d1x2, d2x2 + d2x2
    d0x4 = (d0 + d0) + (d0 + d0)
    return (d0x4 - (d2x4 + d2) + d4,
            d3 + d4 - d1x4 - d2x4,
            d1x4 - d2x4 - d3 + d4,
            d3x2 - d1x2 - d2 + d4,
            d1x2 - d2 - d3x2 + d4,
            d1x4 - (d3x2 + d3x2 + d3) + d5)  # fmt: skip


@njit(inline="always")
def _at(m0, m1, m2, m3, m4, m5):
    """``A^T m`` for one column ``m`` of 6 numbers -> 4."""
    a, b = m1 + m2, m1 - m2
    c, d = m3 + m4, m3 - m4
    c2, d2 = c + c, d + d
    c4, d4 = c2 + c2, d2 + d2
    return m0 + a + c, b + d2, a + c4, b + (d4 + d4) + m5


@njit(inline="always")
def _a(g0, g1, g2, g3):
    """``A g`` for one column ``g`` of 4 numbers -> 6 (the adjoint of :func:`_at`)."""
    g1x2, g2x2, g3x2 = g1 + g1, g2 + g2, g3 + g3
    g2x4, g3x4 = g2x2 + g2x2, g3x2 + g3x2
    g3x8 = g3x4 + g3x4
    return g0, g0 + g1 + g2 + g3, g0 - g1 + g2 - g3, g0 + g1x2 + g2x4 + g3x8, g0 - g1x2 + g2x4 - g3x8, g3


# ----------------------------------------------------------------------------- the three passes (serial, GIL released)
@njit(nogil=True, cache=CACHE)
def _input_transform(x, V, n0, nb, ti0, ti1, TW, ph, pw):
    """``V[6 a + b, c, t] = (B^T d B)[a, b]`` for the tiles ``t`` of images ``n0 : n0 + nb``, tile
    rows ``ti0 : ti1``; ``d`` is the 6 x 6 patch of the padded input at (4 ti, 4 tj), zeros outside.
    x (N, C, H, W); V (36, C, nb (ti1 - ti0) TW), tiles in row-major order per image. The same
    numbers in the same order of operations as gathering each 6 x 6 patch afresh."""
    C, H, Wd = x.shape[1], x.shape[2], x.shape[3]
    band = (ti1 - ti0) * TW
    z = x.dtype.type(0)
    Q = np.empty((4, TW + 1), x.dtype)  # one padded input row, deinterleaved: Q[q, j] = column 4 j + q
    Hh = np.empty((6, 6, TW), x.dtype)  # B^T along each of the patch's 6 rows: Hh[r, b, tj]
    for nn in range(nb):
        for c in range(C):
            for ti in range(ti0, ti1):
                first = 0
                if ti > ti0:  # rows 0, 1 of these patches are rows 4, 5 of the previous ones: reuse them
                    for r in range(2):
                        for b in range(6):
                            for tj in range(TW):
                                Hh[r, b, tj] = Hh[r + 4, b, tj]
                    first = 2
                for r in range(first, 6):
                    h = 4 * ti + r - ph
                    inside = 0 <= h < H
                    for q in range(4):
                        for j in range(TW + 1):
                            w = 4 * j + q - pw
                            Q[q, j] = x[n0 + nn, c, h, w] if (inside and 0 <= w < Wd) else z
                    for tj in range(TW):  # the patch's columns 0..5 are Q[0..3, tj], Q[0..1, tj + 1]
                        v0, v1, v2, v3, v4, v5 = _bt(Q[0, tj], Q[1, tj], Q[2, tj], Q[3, tj], Q[0, tj + 1],
                                                     Q[1, tj + 1])
                        Hh[r, 0, tj] = v0
                        Hh[r, 1, tj] = v1
                        Hh[r, 2, tj] = v2
                        Hh[r, 3, tj] = v3
                        Hh[r, 4, tj] = v4
                        Hh[r, 5, tj] = v5
                base = nn * band + (ti - ti0) * TW
                for b in range(6):  # then B^T down each column
                    for tj in range(TW):
                        v0, v1, v2, v3, v4, v5 = _bt(Hh[0, b, tj], Hh[1, b, tj], Hh[2, b, tj], Hh[3, b, tj],
                                                     Hh[4, b, tj], Hh[5, b, tj])
                        V[b, c, base + tj] = v0
                        V[6 + b, c, base + tj] = v1
                        V[12 + b, c, base + tj] = v2
                        V[18 + b, c, base + tj] = v3
                        V[24 + b, c, base + tj] = v4
                        V[30 + b, c, base + tj] = v5


@njit(nogil=True, cache=CACHE)
def _output_transform(M, y, bias, n0, nb, ti0, ti1, TW):
    """``y[n, k, 4 ti + i, 4 tj + j] = (A^T M[:, k, t] A)[i, j] + bias[k]``, cropped at the edges.
    M (36, K, nb (ti1 - ti0) TW); y (N, K, Ho, Wo)."""
    K, Ho, Wo = y.shape[1], y.shape[2], y.shape[3]
    band = (ti1 - ti0) * TW
    S = np.empty((4, 6, TW), y.dtype)  # A^T down each column: S[i, b, tj]
    Y = np.empty((4, 4, TW), y.dtype)  # the 4 x 4 tiles: Y[i, j, tj]
    for nn in range(nb):
        for k in range(K):
            bk = bias[k]
            for ti in range(ti0, ti1):
                base = nn * band + (ti - ti0) * TW
                for b in range(6):
                    for tj in range(TW):
                        t = base + tj
                        s0, s1, s2, s3 = _at(M[b, k, t], M[6 + b, k, t], M[12 + b, k, t], M[18 + b, k, t],
                                             M[24 + b, k, t], M[30 + b, k, t])
                        S[0, b, tj] = s0
                        S[1, b, tj] = s1
                        S[2, b, tj] = s2
                        S[3, b, tj] = s3
                for i in range(4):  # then A^T along each row
                    for tj in range(TW):
                        y0, y1, y2, y3 = _at(S[i, 0, tj], S[i, 1, tj], S[i, 2, tj], S[i, 3, tj], S[i, 4, tj],
                                             S[i, 5, tj])
                        Y[i, 0, tj] = y0 + bk
                        Y[i, 1, tj] = y1 + bk
                        Y[i, 2, tj] = y2 + bk
                        Y[i, 3, tj] = y3 + bk
                for i in range(min(4, Ho - 4 * ti)):
                    row = 4 * ti + i
                    for w in range(Wo):
                        y[n0 + nn, k, row, w] = Y[i, w % 4, w // 4]


@njit(nogil=True, cache=CACHE)
def _dy_transform(dy, Yh, db, n0, nb, ti0, ti1, TW):
    """``Yh[6 a + b, k, t] = (A g A^T)[a, b]`` for the 4 x 4 tile ``g`` of dy (zeros past the edge),
    and ``db[nn, k] = the sum of those tiles`` (float64; db (nb, K) belongs to this chunk alone).
    dy (N, K, Ho, Wo)."""
    K, Ho, Wo = dy.shape[1], dy.shape[2], dy.shape[3]
    band = (ti1 - ti0) * TW
    z = dy.dtype.type(0)
    D = np.empty((4, 4, TW), dy.dtype)  # D[i, j, tj] = dy[4 ti + i, 4 tj + j]
    S = np.empty((4, 6, TW), dy.dtype)  # A along each row: S[i, b, tj]
    for nn in range(nb):
        for k in range(K):
            total = 0.0
            for ti in range(ti0, ti1):
                for i in range(4):
                    h = 4 * ti + i
                    inside = h < Ho
                    for j in range(4):
                        for tj in range(TW):
                            w = 4 * tj + j
                            D[i, j, tj] = dy[n0 + nn, k, h, w] if (inside and w < Wo) else z
                    for tj in range(TW):
                        d0, d1, d2, d3 = D[i, 0, tj], D[i, 1, tj], D[i, 2, tj], D[i, 3, tj]
                        total += (d0 + d1) + (d2 + d3)
                        s0, s1, s2, s3, s4, s5 = _a(d0, d1, d2, d3)
                        S[i, 0, tj] = s0
                        S[i, 1, tj] = s1
                        S[i, 2, tj] = s2
                        S[i, 3, tj] = s3
                        S[i, 4, tj] = s4
                        S[i, 5, tj] = s5
                base = nn * band + (ti - ti0) * TW
                for b in range(6):  # then A down each column
                    for tj in range(TW):
                        v0, v1, v2, v3, v4, v5 = _a(S[0, b, tj], S[1, b, tj], S[2, b, tj], S[3, b, tj])
                        Yh[b, k, base + tj] = v0
                        Yh[6 + b, k, base + tj] = v1
                        Yh[12 + b, k, base + tj] = v2
                        Yh[18 + b, k, base + tj] = v3
                        Yh[24 + b, k, base + tj] = v4
                        Yh[30 + b, k, base + tj] = v5
            db[nn, k] = total


# ----------------------------------------------------------------------------- chunks and scratch
def _chunks(N, TH, TW, per_tile, parts):
    """``[(n0, nb, ti0, ti1), ...]``: images ``n0 : n0 + nb``, tile rows ``ti0 : ti1``, each chunk's
    V + M at most :data:`CHUNK_BYTES` (``per_tile`` bytes per tile; a single tile row may exceed
    it), and as many chunks as that needs, rounded up to a multiple of ``parts`` (the threads)
    where the work allows, so that no thread waits for another's extra chunk."""
    image = TH * TW * per_tile
    if N >= parts and image <= CHUNK_BYTES:  # groups of whole images
        count = max(-(-N * image // CHUNK_BYTES), parts)
        count = min(N, -(-count // parts) * parts)
        per = -(-N // count)
        return [(n0, min(per, N - n0), 0, TH) for n0 in range(0, N, per)]
    count = max(-(-N * image // CHUNK_BYTES), parts)  # bands of tile rows, within one image each
    count = -(-count // parts) * parts
    band = max(1, -(-TH // -(-count // N)))
    return [(n0, 1, t0, min(TH, t0 + band)) for n0 in range(N) for t0 in range(0, TH, band)]


_scratch = threading.local()


def _buffers(n_first, n_second, dtype):
    """Two flat scratch arrays of this thread, grown on demand and kept between calls (fresh
    multi-megabyte arrays on every call cost page faults: measured slower)."""
    store = getattr(_scratch, "arrays", None)
    if store is None:
        store = _scratch.arrays = {}
    key = np.dtype(dtype).str
    first, second = store.get(key, (np.empty(0, dtype), np.empty(0, dtype)))
    if first.size < n_first:
        first = np.empty(n_first, dtype)
    if second.size < n_second:
        second = np.empty(n_second, dtype)
    store[key] = (first, second)
    return first, second


def _staggered(buf, X, R, T):
    """A (X, R, T) view of flat ``buf`` in which matrix ``x + 1`` starts :data:`STAGGER` numbers
    after matrix ``x`` ends. The passes read or write all 36 matrices at the same offset; were they
    a power of two apart, those 36 streams would compete for the same cache set."""
    step = R * T + STAGGER
    it = buf.itemsize
    return np.lib.stride_tricks.as_strided(buf[: X * step], (X, R, T), (step * it, T * it, it))


def _scratch_size(R, T):
    return 36 * (R * T + STAGGER)


# ----------------------------------------------------------------------------- the three linear maps
def _transformed_filters(W, dtype):
    """U (36, K, C) = G W[k, c] G^T for every filter, computed in float64, stored in ``dtype``."""
    K, C = W.shape[:2]
    U = np.einsum("ar,kcrs,bs->abkc", _G, W.astype(np.float64), _G, optimize=True)
    return np.ascontiguousarray(U.reshape(36, K, C), dtype=dtype)


def conv2d(x, W, b, padding):
    """Stride-1 3 x 3 convolution, padding ``(ph, pw)`` >= 0. x (N, C, H, W), W (K, C, 3, 3),
    b (K,) or None -> y (N, K, H + 2 ph - 2, W + 2 pw - 2), x's dtype."""
    N, C, H, Wd = x.shape
    K = W.shape[0]
    ph, pw = padding
    Ho, Wo = H + 2 * ph - 2, Wd + 2 * pw - 2
    dtype = x.dtype
    y = np.empty((N, K, Ho, Wo), dtype)
    if y.size == 0:
        return y
    TH, TW = -(-Ho // 4), -(-Wo // 4)
    U = _transformed_filters(W, dtype)
    bias = np.zeros(K, dtype) if b is None else np.ascontiguousarray(b, dtype=dtype)
    x = np.ascontiguousarray(x)

    def chunk(c):
        n0, nb, t0, t1 = c
        T = nb * (t1 - t0) * TW
        vbuf, mbuf = _buffers(_scratch_size(C, T), _scratch_size(K, T), dtype)
        V, M = _staggered(vbuf, 36, C, T), _staggered(mbuf, 36, K, T)
        _input_transform(x, V, n0, nb, t0, t1, TW, ph, pw)
        np.matmul(U, V, out=M)
        _output_transform(M, y, bias, n0, nb, t0, t1, TW)

    _pool.run(chunk, _chunks(N, TH, TW, 36 * (C + K) * dtype.itemsize, _pool.num_threads()))
    return y


def conv2d_input_grad(dy, W, x_shape, padding):
    """dL/dx: the convolution of ``dy`` with the flipped, transposed filters, padding ``2 - p``
    (negative: ``dy`` cropped). dy (N, K, Ho, Wo), W (K, C, 3, 3) -> dx ``x_shape``, dy's dtype."""
    ph, pw = padding
    Wt = np.ascontiguousarray(W[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))  # (C, K, 3, 3)
    ch, cw = max(0, ph - 2), max(0, pw - 2)
    g = dy[:, :, ch : dy.shape[2] - ch, cw : dy.shape[3] - cw]
    return conv2d(g, Wt, None, (max(0, 2 - ph), max(0, 2 - pw)))  # (N, C, H, W) = x_shape


def conv2d_weight_grad(dy, x, padding):
    """dL/dW and dL/db. dy (N, K, Ho, Wo), x (N, C, H, W) -> ``(dW (K, C, 3, 3), db (K,))``, dy's dtype.

    Per chunk: V of x again (cheaper than keeping it: kept, the 2.25 x input went out to memory
    and made the step 1.6x slower), Yhat of dy, and the chunk's own ``Yhat @ V^T`` and bias sums.

    **Deterministic.** Each chunk returns its partial sums; they are added in chunk order (the
    chunks depend only on the shapes and the thread count), never in the order threads finish,
    so the same call gives the same bits every time."""
    N, C = x.shape[:2]
    K, Ho, Wo = dy.shape[1:]
    ph, pw = padding
    dtype = dy.dtype
    TH, TW = -(-Ho // 4), -(-Wo // 4)
    x = np.ascontiguousarray(x, dtype=dtype)
    dy = np.ascontiguousarray(dy)

    def chunk(c):
        n0, nb, t0, t1 = c
        T = nb * (t1 - t0) * TW
        vbuf, ybuf = _buffers(_scratch_size(C, T), _scratch_size(K, T), dtype)
        V, Yh = _staggered(vbuf, 36, C, T), _staggered(ybuf, 36, K, T)
        db = np.zeros((nb, K))  # float64 sums of this chunk's tiles, per image
        _input_transform(x, V, n0, nb, t0, t1, TW, ph, pw)
        _dy_transform(dy, Yh, db, n0, nb, t0, t1, TW)
        return np.matmul(Yh, V.transpose(0, 2, 1)), db

    chunks = _chunks(N, TH, TW, 36 * (C + K) * dtype.itemsize, _pool.num_threads())
    dU, db = np.zeros((36, K, C)), np.zeros((N, K))
    for (n0, nb, _, _), (dU_part, db_part) in zip(chunks, _pool.run(chunk, chunks)):  # in chunk order
        dU += dU_part
        db[n0 : n0 + nb] += db_part
    dW = np.einsum("ar,abkc,bs->kcrs", _G, dU.reshape(6, 6, K, C), _G, optimize=True)
    return dW.astype(dtype), db.sum(axis=0).astype(dtype)
