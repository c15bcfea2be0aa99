"""Compiling in the background, with the ``numpy`` engine standing in until the kernels are ready.

Numba compiles a kernel the first time it is called with a new dtype: ~0.5-1 s per kernel, some 6-20
seconds for the whole engine in one dtype (measured 6.5 s on a quiet 2-core machine), and ~0.3-0.5 s
to load a layer's kernels from the disk cache once compiled. A new user's first ``fit`` used to
stall on that. So, the first time a kernel meets a dtype (float32 or float64), the engine looks into
Numba's disk cache:

* every group of kernels (:data:`GROUPS`) that is **cached** for this dtype and this CPU is simply
  loaded when first called, in the caller's thread (a few hundred milliseconds for a conv
  layer's kernels): the compiled kernels run from the first call, and two runs of a script give
  the same bits;
* the groups that are **not** (the first run after installing or upgrading; every run of a
  read-only install) are compiled by one background thread, convolutions first, by running each
  kernel on tiny arrays; until a group is ready its functions run the ``numpy`` engine's version
  (the same API, the same numbers to rounding: both are tested against the reference). So the
  first step costs no compilation, and the compiled kernels take over, mid-epoch, when ready.
  (Which steps ran on which engine then depends on timing: bits can differ from a later run.)

:func:`compiling` says what is being compiled (``fit`` prints it once when it takes more than a
second); :func:`wait` waits for it; :func:`handprop.kernels.numba_cpu.warmup` compiles everything
in the calling thread instead (benchmarks call it before timing); :func:`set_background` switches
the background off: every kernel then compiles on its first call, in the caller's thread (the
test suite does this, so that numba tests always run numba code).

The thread is a daemon: it never keeps Python from exiting (an unfinished compilation is simply
dropped; Numba writes each cache file whole or not at all). A compilation error is not hidden:
the group is marked ready anyway, so the next call runs the kernel and raises the error itself.
Whether a kernel is cached is read from Numba's cache index (``numba.core.caching``, not a
public API): if that ever fails, the group counts as not cached, which is only slower.
"""

from __future__ import annotations

import threading
import time

import numpy as np

GROUPS = ("convolution", "activations", "pooling", "optimizer")
"""The kernel groups, in the order they are compiled."""

DTYPES = ("float32", "float64")

_background = True
_lock = threading.Lock()
_ready = {}  # (dtype name, group) -> threading.Event
_started = {}  # dtype name -> time.perf_counter() when its compilation began
_finished = {}  # dtype name -> seconds it took
_errors = {}  # (dtype name, group) -> the exception of a failed compilation
_compilers = {}  # group -> function(dtype) that runs every kernel of the group once
_kernels = {}  # group -> the Numba dispatchers of the group
_names = {}  # dtype as the kernels pass it -> its name (ready() runs at every kernel call)


def register(group, compiler, kernels=()):
    """``compiler(dtype)`` runs every kernel of ``group`` once on tiny arrays of ``dtype``;
    ``kernels`` are the group's Numba dispatchers, whose disk cache decides whether to compile
    in the background."""
    _compilers[group] = compiler
    _kernels[group] = tuple(kernels)


def _cached(group, name):
    """Does Numba's disk cache hold every kernel of ``group`` for dtype ``name`` on this CPU?"""
    try:
        for kernel in _kernels[group]:
            index = kernel._cache._cache_file._load_index()  # {(signature, CPU, code hashes): file}
            cpu = kernel.targetctx.codegen().magic_tuple()
            dtypes = [{str(getattr(arg, "dtype", "")) for arg in key[0]} - {""} for key in index if key[1] == cpu]
            if not any(name in found or not found for found in dtypes):  # (helpers on ints have no dtype)
                return False
        return bool(_kernels[group])
    except Exception:  # no disk cache (read-only install), or Numba's internals changed: compile
        return False


def set_background(on):
    """Compile in a background thread (``True``, the default) or in the caller's thread, on first use."""
    global _background
    _background = bool(on)


def _begin(name):
    """The first request for dtype ``name``: the cached groups are ready (they load on first call),
    the others are compiled by a background thread."""
    with _lock:
        if name in _started:
            return
        cold = [group for group in GROUPS if not _cached(group, name)]
        for group in GROUPS:
            _ready[name, group] = threading.Event()
            if group not in cold:
                _ready[name, group].set()
        _started[name] = time.perf_counter()
        if cold:
            threading.Thread(target=_compile, args=(name, cold), daemon=True,
                             name=f"handprop-numba-compile-{name}").start()  # fmt: skip
        else:
            _finished[name] = 0.0


def ready(group, dtype):
    """Can ``group``'s compiled kernels run on ``dtype``? Starts compiling them when not begun.
    True for dtypes the engine does not compute in (its kernels then raise the TypeError)."""
    if not _background:
        return True
    name = _names.get(dtype) or _names.setdefault(dtype, np.dtype(dtype).name)  # (np.dtype().name: ~3 us)
    if name not in DTYPES:
        return True
    event = _ready.get((name, group))
    if event is None:
        _begin(name)
        event = _ready[name, group]
    return event.is_set()


def _compile(name, groups):
    """The background thread: ``groups`` of dtype ``name``, in order."""
    for group in groups:
        try:
            _compilers[group](np.dtype(name).type)
        except BaseException as e:  # noqa: B036 -- recorded; the caller's next call raises it for real
            _errors[name, group] = e
        finally:
            _ready[name, group].set()
    _finished[name] = time.perf_counter() - _started[name]


def mark_ready(dtype):
    """Everything of ``dtype`` is compiled (by :func:`handprop.kernels.numba_cpu.warmup`)."""
    name = np.dtype(dtype).name
    with _lock:
        for group in GROUPS:
            _ready.setdefault((name, group), threading.Event()).set()
        if name not in _started:
            _started[name] = time.perf_counter()
            _finished[name] = 0.0


def compiling(min_seconds=0.0):
    """A sentence saying what is being compiled in the background (begun at least ``min_seconds``
    ago), or None when nothing is."""
    now = time.perf_counter()
    busy = []
    for name, t0 in list(_started.items()):
        pending = [g for g in GROUPS if not _ready[name, g].is_set()]
        if pending and now - t0 >= min_seconds:
            done = [g for g in GROUPS if g not in pending]
            busy.append(f"{name} for {now - t0:.1f} s ({', '.join(done) + ' ready; ' if done else ''}"
                        f"{', '.join(pending)} to go)")
    if not busy:
        return None
    return ("handprop: compiling the numba engine's kernels in the background: " + "; ".join(busy)
            + ". The numpy engine runs meanwhile (the same results to rounding), and later processes load "
            "them from Numba's cache.")


def wait(timeout=None):
    """Wait until every compilation begun is finished; True if so (False after ``timeout`` seconds)."""
    end = None if timeout is None else time.perf_counter() + timeout
    for event in list(_ready.values()):
        left = None if end is None else max(0.0, end - time.perf_counter())
        if not event.wait(left):
            return False
    return True


def status():
    """``{dtype name: {"seconds": ..., "ready": [groups], "errors": {group: repr}}}`` of every
    compilation begun."""
    now = time.perf_counter()
    return {name: {"seconds": _finished.get(name, now - t0),
                   "ready": [g for g in GROUPS if _ready[name, g].is_set()],
                   "errors": {g: repr(e) for (n, g), e in _errors.items() if n == name}}
            for name, t0 in list(_started.items())}  # fmt: skip
