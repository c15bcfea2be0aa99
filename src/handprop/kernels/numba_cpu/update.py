"""Optimizer updates on the ``numba`` engine: SGD and Adam fused into one pass over memory.

:func:`optimizer_update` is the engine's one optimizer hook (see :mod:`handprop.kernels`): for a
float SGD or Adam parameter it runs :func:`sgd_update` or :func:`adam_update`, bit for bit the
same numbers as :meth:`handprop.optimizers.SGD._update` / :meth:`handprop.optimizers.Adam._update`
(the torch.optim equations), in one pass over memory; everything else runs the optimizer's own
equations.

**Bit for bit.** NumPy evaluates ``p -= lr * g`` one operation at a time, each rounded to p's
dtype, with Python scalars cast to that dtype first (NumPy's "weak" scalars). The kernels repeat
exactly those operations in the same order, with the scalars cast the same way, and without
``fastmath`` -- so LLVM may not fuse a multiply and an add into one FMA, which rounds once
instead of twice. The tests compare the bits.
"""

from __future__ import annotations

import numpy as np
from numba import njit, uint64

from . import _pool
from ._jit import CACHE

SGD_MIN_SIZE = 2**17
"""Smaller SGD parameters are left to NumPy (a few microseconds either way)."""



@njit(nogil=True, cache=CACHE)
def _sgd_update(p, g, buf, lr, momentum, keep, nesterov, first, i0, i1):
    """Numbers ``i0 : i1`` of flat p, g (and buf when momentum != 0), in the operation order of
    :class:`handprop.optimizers.SGD` -- so the result is bit for bit NumPy's::

        buf <- g  (first step)   or   buf * momentum + keep * g     (keep = 1 - dampening)
        p   <- p - lr * (g + momentum * buf  if nesterov  else  buf)
    """
    for i in range(uint64(i0), uint64(i1)):  # unsigned: no wrap-around test per index (2.5x faster: vectorized)
        step = g[i]
        if momentum != 0:
            v = step if first else buf[i] * momentum + keep * step
            buf[i] = v
            step = step + momentum * v if nesterov else v
        p[i] = p[i] - lr * step


def _fusable(arrays, min_size=0):
    """Same float dtype, same size, C-contiguous, at least ``min_size`` numbers?"""
    p = arrays[0]
    return (p.dtype in (np.float32, np.float64) and p.size >= min_size
            and all(a.dtype == p.dtype and a.shape == p.shape and a.flags.c_contiguous for a in arrays))  # fmt: skip


def sgd_update(p, g, buf, lr, momentum=0.0, dampening=0.0, nesterov=False, first=False):
    """SGD's in-place update of ``p`` (and of the momentum buffer ``buf``, or None) in one pass.

    NumPy's ``p -= lr * g`` reads g, writes the temporary ``lr * g``, reads both back and writes p
    (and allocates the temporary): ~3x the memory traffic of one fused loop, for a memory-bound
    update (1.5 ms -> 0.45 ms for the tutorial ConvNet's 2.5 M-weight Dense layer on 2 cores).

    Returns False, having done nothing, unless p, g (and buf) are C-contiguous float32 or float64
    arrays of one dtype and shape with at least :data:`SGD_MIN_SIZE` numbers: the caller then runs
    the optimizer's own equations.
    """
    if momentum != 0.0 and buf is None:
        return False  # no buffer to update
    if not _fusable((p, g) if buf is None else (p, g, buf), SGD_MIN_SIZE):
        return False
    real = p.dtype.type  # float32 scalars keep the arithmetic in float32, as NumPy's weak scalars
    flat = np.empty(0, p.dtype) if buf is None else buf.reshape(-1)
    _pool.each_range(_sgd_update, p.size, 1, p.reshape(-1), g.reshape(-1), flat, real(lr), real(momentum),
                     real(1.0 - dampening), bool(nesterov), bool(first))  # fmt: skip
    return True


@njit(nogil=True, cache=CACHE)
def _adam_update(p, g, m, v, one_minus_beta1, beta2, one_minus_beta2, step_size, bc2_sqrt, eps, i0, i1):
    """Numbers ``i0 : i1`` of flat p, g, m, v, in the operation order of
    :meth:`handprop.optimizers.Adam._update`::

        m <- m + (1 - beta1) (g - m)
        v <- v beta2;   v <- v + ((1 - beta2) g) g
        p <- p - step_size (m / (sqrt(v) / bc2_sqrt + eps))      step_size = lr / (1 - beta1^t)
    """
    for i in range(uint64(i0), uint64(i1)):
        gi = g[i]
        mi = m[i] + one_minus_beta1 * (gi - m[i])
        vi = v[i] * beta2
        vi = vi + (one_minus_beta2 * gi) * gi
        m[i] = mi
        v[i] = vi
        p[i] = p[i] - step_size * (mi / (np.sqrt(vi) / bc2_sqrt + eps))


def adam_update(p, g, m, v, lr, betas, eps, step):
    """Adam's in-place update of ``p`` and its moments ``m``, ``v`` in one pass (no ``amsgrad``):
    NumPy's version makes 10 passes over memory and 4 temporaries. Returns False, having done
    nothing, unless p, g, m, v are C-contiguous float32 or float64 arrays of one dtype and shape."""
    if not _fusable((p, g, m, v)):
        return False
    beta1, beta2 = betas
    real = p.dtype.type
    bias_correction1, bias_correction2 = 1.0 - beta1**step, 1.0 - beta2**step
    _pool.each_range(_adam_update, p.size, 1, p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1),
                     real(1.0 - beta1), real(beta2), real(1.0 - beta2), real(lr / bias_correction1),
                     real(bias_correction2**0.5), real(eps))  # fmt: skip
    return True


def optimizer_update(optimizer, p, g, state, lr):
    """One optimizer step on one parameter, in place: fused for SGD (:func:`sgd_update`) and Adam
    without amsgrad (:func:`adam_update`) when they can be, otherwise the optimizer's own
    equations (``optimizer._update``)."""
    from ...optimizers import SGD, Adam  # here: the optimizers import the kernels

    if type(optimizer) is SGD and (optimizer.momentum == 0.0 or "momentum_buffer" in state):
        if sgd_update(p, g, state.get("momentum_buffer"), lr, optimizer.momentum, optimizer.dampening,
                      optimizer.nesterov, first=state["step"] == 1):  # fmt: skip
            return
    if type(optimizer) is Adam and not optimizer.amsgrad:
        if adam_update(p, g, state["exp_avg"], state["exp_avg_sq"], lr, optimizer.betas, optimizer.eps,
                       state["step"]):  # fmt: skip
            return
    optimizer._update(p, g, state, lr, np)
