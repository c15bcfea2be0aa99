"""Optimizer updates on the ``numba`` engine: SGD fused into one pass over memory.

:func:`optimizer_update` is the engine's one optimizer hook (see :mod:`handprop.kernels`): for a
big float SGD parameter it runs :func:`sgd_update`, bit for bit the same numbers as
:meth:`handprop.optimizers.SGD._update` (the torch.optim equations), in one pass over memory;
everything else runs the optimizer's own equations.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._jit import CACHE

SGD_MIN_SIZE = 2**17
"""Smaller parameters are left to NumPy: waking the threads (~0.05 ms) costs more than one
pass over them saves. Measured on 2 cores: 270 000 float32 numbers took 0.13 ms with NumPy,
0.07 ms fused; 9 000 took 0.003 ms and 0.06 ms."""


@njit(parallel=True, cache=CACHE)
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
    arrays of one dtype with at least :data:`SGD_MIN_SIZE` numbers: the caller then runs the
    optimizer's own equations.
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




def optimizer_update(optimizer, p, g, state, lr):
    """One optimizer step on one parameter, in place: fused for SGD (:func:`sgd_update`) when it
    can be, otherwise the optimizer's own equations (``optimizer._update``)."""
    from ...optimizers import SGD  # here: the optimizers import the kernels

    if isinstance(optimizer, SGD) and (optimizer.momentum == 0.0 or "momentum_buffer" in state):
        buf = state.get("momentum_buffer")
        if sgd_update(p, g, buf, lr, optimizer.momentum, optimizer.dampening, optimizer.nesterov,
                      first=state["step"] == 1):
            return
    optimizer._update(p, g, state, lr, np)
