"""``p -= a * g`` in one pass over memory: the last line of SGD's update, on the ``numba`` engine.

The equation stays in :meth:`handprop.optimizers.SGD._update`; that code calls
:func:`subtract_scaled` through :func:`handprop.kernels.fast_kernel` and runs its own NumPy line
when this declines. NumPy evaluates ``p -= a * g`` in two passes with a temporary the size of
``p`` (a fresh 10 MB array for the tutorial ConvNet's 2.5 M-weight Dense layer, every step).
Benchmark row: the tutorial ConvNet's training step (``benchmarks/bench_convnet.py``, plain SGD).
Measured in one process, alternating with the NumPy line, 2 threads, shared 2-core machine
(issue 20): the NumPy line made the step 1.07-1.82x slower at the fastest step and 1.29-1.36x at
the median in two runs of 300 steps each (two earlier, shorter runs: within noise); the update
alone took 0.9 ms with NumPy and 0.45 ms here. (A fused Adam was measured within noise on the
U-Net, whose weights are small, and removed.)

**Bit for bit NumPy's.** ``a`` is cast to ``p``'s dtype (as NumPy does with a Python float), the
product is rounded before the subtraction, and there is no ``fastmath``, so LLVM may not fuse the
two into one FMA (which rounds once instead of twice). ``tests/test_optimizers.py`` compares bits.
"""

from __future__ import annotations

import numpy as np
from numba import njit, uint64

from . import _pool
from ._jit import CACHE

MIN_SIZE = 2**17
"""Smaller arrays are left to NumPy (a few microseconds either way)."""


@njit(nogil=True, cache=CACHE)
def _subtract_scaled(p, g, a, i0, i1):
    """``p[i] = p[i] - a * g[i]`` for the flat numbers ``i0 : i1``."""
    for i in range(uint64(i0), uint64(i1)):  # unsigned: no wrap-around test per index, so LLVM vectorizes
        p[i] = p[i] - a * g[i]


def subtract_scaled(p, g, a):
    """``p -= a * g`` in place, in one pass on the engine's threads. Returns False, having done
    nothing, unless ``p`` and ``g`` are C-contiguous float32 or float64 arrays of one dtype and
    shape with at least :data:`MIN_SIZE` numbers: the caller then runs its own NumPy line."""
    if not (p.dtype in (np.float32, np.float64) and p.size >= MIN_SIZE and g.dtype == p.dtype
            and g.shape == p.shape and p.flags.c_contiguous and g.flags.c_contiguous):  # fmt: skip
        return False
    _pool.each_range(_subtract_scaled, p.size, 1, p.reshape(-1), g.reshape(-1), p.dtype.type(a))
    return True
