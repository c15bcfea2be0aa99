"""The ``cupy`` engine: the NumPy engine's algorithms, run by CuPy on a CUDA GPU.

Nothing here is new arithmetic. :mod:`handprop.kernels.im2col` is written on the *array module*
(``xp = get_array_module(x)``): given CuPy arrays, its slicing runs as CUDA copy kernels and its one
``matmul`` per chunk runs on cuBLAS, which is where a convolution spends its time. So each kernel
of this engine is the im2col kernel of the same name, called with a bigger chunk budget
(:data:`GPU_CHUNK_BYTES`): a GPU has gigabytes of memory and wants few, large GEMMs, while the
CPU budget is sized for caches and RAM.

Pooling is the same story (tap slices, ``where``, and ``bincount`` as a scatter-add for the max
pool's backward pass). No hand-written CUDA kernel is needed, which keeps this engine as readable
as the NumPy one and lets it be tested on machines without a GPU by reading the NumPy engine.

CuPy is imported by nobody here: the functions only ever see arrays, and the arrays know their
module. ``import handprop`` therefore works without CuPy; this engine is chosen automatically for
CuPy arrays (see :func:`handprop.backend.engine_for`).
"""

from __future__ import annotations

import contextlib
import functools

from . import im2col

GPU_CHUNK_BYTES = 512 * 2**20
"""Column-buffer budget per chunk on the GPU (the CPU engine uses ``im2col.CHUNK_BYTES``)."""


@contextlib.contextmanager
def _chunk_budget(nbytes):
    """Let the im2col kernels use ``nbytes`` per chunk for the duration of one call."""
    saved = im2col.CHUNK_BYTES
    im2col.CHUNK_BYTES = nbytes
    try:
        yield
    finally:
        im2col.CHUNK_BYTES = saved


def _on_gpu(kernel):
    """The im2col ``kernel`` with the GPU chunk budget; same signature and docstring."""

    @functools.wraps(kernel)
    def run(*args, **kwargs):
        with _chunk_budget(GPU_CHUNK_BYTES):
            return kernel(*args, **kwargs)

    return run


conv2d_forward = _on_gpu(im2col.conv2d_forward)
conv2d_backward_input = _on_gpu(im2col.conv2d_backward_input)
conv2d_backward_weight = _on_gpu(im2col.conv2d_backward_weight)

# pooling buffers are the size of the input: no chunking involved
maxpool2d_forward = im2col.maxpool2d_forward
maxpool2d_backward = im2col.maxpool2d_backward
avgpool2d_forward = im2col.avgpool2d_forward
avgpool2d_backward = im2col.avgpool2d_backward


def conv2d_backward_bias(dy):
    """dL/db = ``dy.sum(axis=(0, 2, 3))`` (a CuPy reduction). dy (N, K, Ho, Wo) -> (K,)."""
    return dy.sum(axis=(0, 2, 3))


def warmup(dtypes=("float32", "float64")):
    """Run every kernel once on tiny GPU arrays (cuBLAS handles, CuPy's kernel cache); -> seconds."""
    import time

    from ..backend import cupy_module

    cp = cupy_module()
    if cp is None:
        raise RuntimeError("the cupy engine needs CuPy and a CUDA GPU")
    start = time.perf_counter()
    for dtype in dtypes:
        x = cp.ones((1, 2, 5, 5), dtype)
        W = cp.ones((3, 2, 3, 3), dtype)
        geometry = ((1, 1), (1, 1), (1, 1))
        y = conv2d_forward(x, W, cp.zeros(3, dtype), *geometry)
        conv2d_backward_input(y, W, x.shape, *geometry)
        conv2d_backward_weight(y, x, W.shape, *geometry)
        p, idx = maxpool2d_forward(x, (2, 2), (2, 2), (0, 0))
        maxpool2d_backward(p, idx, x.shape)
        a = avgpool2d_forward(x, (2, 2), (2, 2), (0, 0))
        avgpool2d_backward(a, x.shape, (2, 2), (2, 2), (0, 0))
    cp.cuda.Device().synchronize()
    return time.perf_counter() - start
