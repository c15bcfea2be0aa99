"""The numba engine's threads: a small pool of Python threads running compiled kernels that
release the GIL, with one-thread BLAS inside.

**Why not Numba's parallel loops.** ``@njit(parallel=True)`` runs ``prange`` loops on Numba's
OpenMP (or TBB, or workqueue) pool, and every matrix product then wakes OpenBLAS's own pool: two
pools taking turns on the same cores, three fork/joins per convolution chunk plus one per GEMM.
OpenMP threads also *spin* after each loop, stealing the cores OpenBLAS needs next (a ConvNet
step ran 8x slower on 2 cores until ``OMP_WAIT_POLICY=PASSIVE`` was set). Measured on a loaded
2-core machine, one level of parallelism was faster and far steadier: each thread of a plain
Python pool takes a whole piece of work (a chunk of images, a band of rows), runs serial
kernels compiled with ``nogil=True`` on it, and calls one-thread OpenBLAS for its products.
Nothing spins, no environment variable is needed, and serial kernels compile ~2.5x faster.

**Use.** ``run(work, items)`` calls ``work(item)`` for every item, spread over the threads (the
calling thread takes items too), and returns the results in order. ``ranges(n, grain)`` cuts
``range(n)`` into at most one contiguous ``(lo, hi)`` piece per thread, each at least ``grain``
long, for loops over planes or numbers. Work that fits in one piece runs in the calling thread,
so small arrays pay no hand-over (~0.05 ms).

**BLAS.** While the pool works, BLAS is limited to one thread (:mod:`threadpoolctl`), so two
workers' products do not each start more threads; outside, BLAS keeps the count that
:func:`handprop.set_num_threads` gave it (the big products that layers call from the main thread,
e.g. Dense, still use every core).

**How many threads.** :func:`handprop.set_num_threads` (default: ``NUMBA_NUM_THREADS`` if set,
else the cores this process may use), read at every call.
"""

from __future__ import annotations

import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np  # noqa: F401  (loads the BLAS library before threadpoolctl looks for it)
from threadpoolctl import ThreadpoolController

from ... import threads as _threads

_executor = None
_executor_size = 0
_lock = threading.Lock()

_controller = None
_blas_users = 0  # threads currently inside a one-thread-BLAS section (several callers may overlap)
_blas_lock = threading.Lock()
_blas_limiter = None
_worker = threading.local()  # .busy: this thread is inside run() already (no nested hand-over)


def _reset_after_fork():
    """A forked child has none of the parent's threads: start afresh (lazily) there."""
    global _executor, _executor_size, _lock, _blas_users, _blas_lock, _blas_limiter
    _executor, _executor_size, _blas_users, _blas_limiter = None, 0, 0, None
    _lock, _blas_lock = threading.Lock(), threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def num_threads() -> int:
    """The engine's thread count in force (:func:`handprop.set_num_threads`)."""
    return _threads.engine_threads()


def _pool(workers):
    """The executor with ``workers`` threads (recreated when the count changes)."""
    global _executor, _executor_size
    with _lock:
        if _executor is None or _executor_size != workers:
            if _executor is not None:
                _executor.shutdown(wait=False)
            _executor = ThreadPoolExecutor(workers, thread_name_prefix="handprop-numba")
            _executor_size = workers
        return _executor


class _OneThreadBlas:
    """``with _OneThreadBlas():`` BLAS runs one thread per caller; the first caller in sets the limit,
    the last one out restores the count (so overlapping callers cannot leave it at 1)."""

    def __enter__(self):
        global _controller, _blas_users, _blas_limiter
        with _blas_lock:
            if _blas_users == 0:
                if _controller is None:
                    _controller = ThreadpoolController()
                _blas_limiter = _controller.limit(limits=1, user_api="blas")
            _blas_users += 1

    def __exit__(self, *exc):
        global _blas_users, _blas_limiter
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0 and _blas_limiter is not None:
                _blas_limiter.restore_original_limits()
                _blas_limiter = None


def run(work, items, blas=True):
    """``[work(item) for item in items]``, spread over the engine's threads; results in order.

    The calling thread works too. With ``blas=True`` (the work calls matrix products) BLAS is
    limited to one thread meanwhile. An exception in any item is raised here.
    """
    items = list(items)
    threads = min(num_threads(), len(items))
    if threads <= 1 or getattr(_worker, "busy", False):  # a nested call runs where it is
        return [work(item) for item in items]
    results = [None] * len(items)
    counter = itertools.count()  # next() on it is atomic under the GIL: each item is taken once

    def drain():
        _worker.busy = True
        try:
            while (i := next(counter)) < len(items):
                results[i] = work(items[i])
        finally:
            _worker.busy = False

    with _OneThreadBlas() if blas else _nothing():
        helpers = [_pool(num_threads() - 1).submit(drain) for _ in range(threads - 1)]
        try:
            drain()
        finally:
            for h in helpers:
                h.result()  # waits; re-raises a worker's exception
    return results


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def ranges(n, grain=1):
    """``range(n)`` cut into at most :func:`num_threads` contiguous ``(lo, hi)`` pieces of at least
    ``grain`` (fewer pieces when ``n`` is small; one piece, ``[(0, n)]``, runs in the calling thread)."""
    parts = max(1, min(num_threads(), n // max(1, grain)))
    step = -(-n // parts) if n else 0
    return [(lo, min(n, lo + step)) for lo in range(0, n, step)] if n else []


def each_range(kernel, n, grain, *args):
    """``kernel(*args, lo, hi)`` for the pieces ``(lo, hi)`` of :func:`ranges`, on the threads (no BLAS)."""
    run(lambda r: kernel(*args, r[0], r[1]), ranges(n, grain), blas=False)
