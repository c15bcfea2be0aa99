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
so small arrays pay no hand-over.

**Deterministic.** Which thread computes an item is decided at run time (a shared counter: a
thread that the OS delays takes fewer items), but it never changes a number: each item writes its
own part of the output or returns its own result, results come back in item order, and every
caller that adds partial results (Winograd's weight gradient, ``conv._matmul_long``) adds them
in that order. The items themselves depend only on the shapes and the thread count. So the same
call gives the same bits (``tests/test_determinism.py``).

**The hand-over.** Each worker sleeps on its own lock; ``run`` releases the locks, works along,
and waits for each worker's "done" lock: ~10-20 microseconds back to back on 2 cores, where
``concurrent.futures`` took ~75 (a Future, a queue and a condition per task); up to ~100 when the
worker's core was idle on a virtual machine (it is woken, then takes the GIL). That is why kernels
split only pieces of at least ~2**17 numbers: the tutorial ConvNet's step takes ~15 ms and its
kernels 0.1-0.4 ms each. A second Python thread
calling in while the pool is busy runs its work itself, serially.

**Why not ``concurrent.futures``** (issue 20 asked for the simplest thing that keeps the speed).
A ``ThreadPoolExecutor`` version with a fixed assignment of items to threads (175 lines, same
BLAS handling) was measured against this pool in one process, alternating, 2 threads, on a
shared 2-core machine: the tutorial ConvNet's training step (``benchmarks/bench_convnet.py``) was
4-7 % slower at the 25th percentile and 10-25 % at the fastest step in two runs at load 8-11
(160 and 400 steps each; the same CPU time: the Future's wake-up latency), and equal (0.99-1.00)
in a run at load ~2; the U-Net step (``bench_unet.py`` ``train4``) was within noise (0.85-1.13).
Above the 5 % the issue allows on a busy machine (where students run), so this pool stays, for
those two benchmark rows.

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

import numpy as np  # noqa: F401  (loads the BLAS library before threadpoolctl looks for it)
from threadpoolctl import ThreadpoolController

from ... import threads as _threads


class _Workers:
    """Daemon threads, each asleep on its own lock until :meth:`run` hands it a job. The pool only
    grows (to the largest thread count asked for); a smaller count uses the first workers, so a
    change of thread count never stops a worker that another caller is waiting for."""

    def __init__(self):
        self._go, self._done = [], []
        self._job = None
        self.busy = threading.Lock()  # one run() at a time

    @property
    def size(self):
        return len(self._go)

    def grow(self, n):
        """At least ``n`` workers (call under the module's ``_lock``)."""
        while len(self._go) < n:
            i = len(self._go)
            go, done = threading.Lock(), threading.Lock()
            go.acquire()
            done.acquire()
            self._go.append(go)
            self._done.append(done)
            threading.Thread(target=self._loop, args=(i,), daemon=True, name=f"handprop-numba-{i + 1}").start()

    def _loop(self, i):
        while True:
            self._go[i].acquire()
            try:
                self._job()
            finally:
                self._done[i].release()

    def run(self, job, helpers):
        """``job()`` in the calling thread and in the first ``helpers`` workers at once; returns when
        all are done. Waiting for the workers cannot be interrupted (a Ctrl-C is raised once they
        are done): a worker still running would otherwise leave its "done" signal to the next run."""
        self._job = job
        for i in range(helpers):
            self._go[i].release()
        interrupted = None
        try:
            job()
        finally:
            for i in range(helpers):
                while True:
                    try:
                        self._done[i].acquire()
                        break
                    except KeyboardInterrupt as e:  # keep waiting; raise it afterwards
                        interrupted = e
        if interrupted is not None:
            raise interrupted


_workers = None
_lock = threading.Lock()

_controller = None  # threadpoolctl's controllers of the BLAS libraries
_blas_users = 0  # threads currently inside a one-thread-BLAS section (several callers may overlap)
_blas_lock = threading.Lock()
_blas_saved = []  # their thread counts before the first user came in
_inside = threading.local()  # .busy: this thread is inside run() already (no nested hand-over)


def _reset_after_fork():
    """A forked child has none of the parent's threads: start afresh (lazily) there."""
    global _workers, _lock, _blas_users, _blas_lock
    _workers, _blas_users = None, 0
    _lock, _blas_lock = threading.Lock(), threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def num_threads() -> int:
    """The engine's thread count in force (:func:`handprop.set_num_threads`)."""
    return _threads.engine_threads()


def _pool(helpers):
    """The workers, at least ``helpers`` of them."""
    global _workers
    with _lock:
        if _workers is None:
            _workers = _Workers()
        if _workers.size < helpers:
            _workers.grow(helpers)
        return _workers


class _OneThreadBlas:
    """``with _OneThreadBlas():`` BLAS runs one thread per caller; the first caller in sets the limit,
    the last one out restores the counts (so overlapping callers cannot leave them at 1). Through
    threadpoolctl's controllers of the BLAS libraries loaded (~10 microseconds in and out)."""

    def __enter__(self):
        global _controller, _blas_users, _blas_saved
        with _blas_lock:
            if _blas_users == 0:
                if _controller is None:
                    _controller = [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]
                _blas_saved = [lib.get_num_threads() for lib in _controller]
                for lib, n in zip(_controller, _blas_saved):
                    if n != 1:
                        lib.set_num_threads(1)
            _blas_users += 1

    def __exit__(self, *exc):
        global _blas_users
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                for lib, n in zip(_controller, _blas_saved):
                    if n != 1:
                        lib.set_num_threads(n)


def blas_threads_changed(n):
    """:func:`handprop.set_num_threads` set BLAS to ``n`` threads: a one-thread-BLAS section in
    progress (another Python thread's) keeps BLAS at 1 and restores ``n``, not the old count."""
    global _blas_saved
    with _blas_lock:
        if _blas_users:
            _blas_saved = [n] * len(_blas_saved)
            for lib in _controller:
                lib.set_num_threads(1)


class _Nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def run(work, items, blas=True):
    """``[work(item) for item in items]``, spread over the engine's threads; results in order.

    The calling thread works too. With ``blas=True`` (the work calls matrix products) BLAS is
    limited to one thread meanwhile. An exception in any item is raised here.
    """
    items = list(items)
    threads = min(num_threads(), len(items))
    if threads <= 1 or getattr(_inside, "busy", False):  # a nested call runs where it is
        return [work(item) for item in items]
    workers = _pool(threads - 1)
    if not workers.busy.acquire(blocking=False):  # another Python thread is using the pool
        return [work(item) for item in items]
    results = [None] * len(items)
    errors = []
    counter = itertools.count()  # next() on it is atomic under the GIL: each item is taken once

    def drain():
        _inside.busy = True
        try:
            while (i := next(counter)) < len(items):
                results[i] = work(items[i])
        except BaseException as e:  # noqa: B036 -- re-raised in the calling thread
            errors.append(e)
        finally:
            _inside.busy = False

    try:
        with _OneThreadBlas() if blas else _Nothing():
            workers.run(drain, threads - 1)
    finally:
        workers.busy.release()
    if errors:
        raise errors[0]
    return results


def ranges(n, grain=1):
    """``range(n)`` cut into at most :func:`num_threads` contiguous ``(lo, hi)`` pieces of at least
    ``grain`` (fewer pieces when ``n`` is small; one piece, ``[(0, n)]``, runs in the calling thread)."""
    parts = max(1, min(num_threads(), n // max(1, grain)))
    step = -(-n // parts) if n else 0
    return [(lo, min(n, lo + step)) for lo in range(0, n, step)] if n else []


MIN_WORK = 2**17
"""A piece of work handed to a thread has at least this many numbers (less: the calling thread does
it all). A hand-over costs 10-100 us on a 2-core virtual machine, about what a memory pass over
2**17 numbers takes."""


def each_range(kernel, n, numbers_per_item, *args):
    """``kernel(*args, lo, hi)`` for the pieces ``(lo, hi)`` of :func:`ranges` over ``n`` items
    (planes, channels, numbers) of ``numbers_per_item`` numbers each, on the threads (no BLAS);
    each piece has at least :data:`MIN_WORK` numbers."""
    grain = -(-MIN_WORK // max(1, numbers_per_item))
    run(lambda r: kernel(*args, r[0], r[1]), ranges(n, grain), blas=False)
