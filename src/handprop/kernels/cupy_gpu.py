"""The ``cupy`` engine: the NumPy engine's algorithms, run by CuPy on a CUDA GPU.

Nothing here is new arithmetic. :mod:`handprop.kernels.im2col` is written on the *array module*
(``xp = get_array_module(x)``): given CuPy arrays, its slicing runs as CUDA copy kernels and its one
``matmul`` per chunk runs on cuBLAS, which is where a convolution spends its time. So each kernel
of this engine is the im2col kernel of the same name; given CuPy arrays it uses a bigger chunk
budget (``im2col.GPU_CHUNK_BYTES``): a GPU has gigabytes of memory and wants few, large GEMMs,
while the CPU budget is sized for caches and RAM.

Pooling is the same story (tap slices, ``where``, and ``bincount`` as a scatter-add for the max
pool's backward pass). No hand-written CUDA kernel is needed, which keeps this engine as readable
as the NumPy one and lets it be tested on machines without a GPU by reading the NumPy engine.

CuPy is imported by nobody here: the functions only ever see arrays, and the arrays know their
module. ``import handprop`` therefore works without CuPy; this engine is chosen automatically for
CuPy arrays (see :func:`handprop.backend.engine_for`).
"""

from __future__ import annotations

from .im2col import (  # noqa: F401  (re-exported: this engine's kernels)
    GPU_CHUNK_BYTES,
    avgpool2d_backward,
    avgpool2d_forward,
    avgpool3d_backward,
    avgpool3d_forward,
    conv2d,
    conv2d_backward,
    conv2d_forward,
    conv2d_input_grad,
    conv2d_transpose_backward,
    conv2d_transpose_forward,
    conv2d_weight_grad,
    conv3d,
    conv3d_backward,
    conv3d_forward,
    conv3d_input_grad,
    conv3d_weight_grad,
    depthwise_conv2d_backward,
    depthwise_conv2d_forward,
    maxpool2d_backward,
    maxpool2d_forward,
    maxpool3d_backward,
    maxpool3d_forward,
    upsample2d_backward,
    upsample2d_forward,
)


def warmup(dtypes=("float32", "float64")):
    """Run every kernel once on tiny GPU arrays (cuBLAS handles, CuPy's kernel cache); -> seconds."""
    import time

    from ..backend import cupy_module
    from .geometry import ConvGeometry, PoolGeometry

    cp = cupy_module()
    if cp is None:
        raise RuntimeError("the cupy engine needs CuPy and a CUDA GPU")
    start = time.perf_counter()
    for dtype in dtypes:
        x = cp.ones((1, 2, 5, 5), dtype)
        W = cp.ones((3, 2, 3, 3), dtype)
        y, cache = conv2d_forward(x, W, cp.zeros(3, dtype), ConvGeometry((1, 1), (1, 1), (1, 1)))
        conv2d_backward(y, cache)
        pool = PoolGeometry((2, 2), (2, 2), (0, 0))
        p, cache = maxpool2d_forward(x, pool)
        maxpool2d_backward(p, cache)
        a, cache = avgpool2d_forward(x, pool)
        avgpool2d_backward(a, cache)
    cp.cuda.Device().synchronize()
    return time.perf_counter() - start
