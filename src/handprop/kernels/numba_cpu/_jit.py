"""What every numba kernel module shares: whether compiled kernels can be cached on disk, the
dtypes Numba computes in, and the one line that says the kernels are compiling.

**Caching.** ``@njit(cache=True)`` keeps compiled machine code next to the source (in
``__pycache__``) or in the user's cache folder (``~/.cache/numba``), so a new process skips the
compilation (seconds). On a read-only install -- a shared JupyterHub: the package folder not
writable, no writable home -- Numba finds no place for it and *decorating* a kernel fails
("cannot cache function '_im2col': no locator available"). So this module asks Numba once, with a
probe function that lives beside the kernels: when it cannot cache, the kernels are compiled
without caching (in every new process) and a :class:`handprop.errors.NumbaCacheWarning` says so
once. Set ``NUMBA_CACHE_DIR`` to a writable folder before starting Python to get the cache back.
(A shared temporary folder is not used on purpose: Numba's cache index is pickled, and loading
files that another user could have planted would run their code.)
"""

from __future__ import annotations

import sys
import warnings

import numba
import numpy as np
from numba.core import event, types

from ...errors import NumbaCacheWarning


def _probe():
    return 0


def _caching_possible():
    """``(True, "")`` when Numba can cache a function of this folder, else ``(False, Numba's reason)``."""
    try:
        numba.njit(cache=True)(_probe)
    except RuntimeError as e:  # "cannot cache function ...: no locator available for file ..."
        return False, str(e)
    return True, ""


CACHE, _REASON = _caching_possible()
"""The ``cache=`` argument of every ``@njit`` in the numba engine."""

if not CACHE:
    warnings.warn(
        "handprop's numba engine cannot cache its compiled kernels on disk (read-only install and no writable "
        f"cache folder: {_REASON}); it compiles them in each new process instead (a few seconds at the first "
        "training step). Set NUMBA_CACHE_DIR to a writable folder before starting Python to cache them.",
        NumbaCacheWarning, stacklevel=2,
    )

COMPILE_SECONDS = 5
"""About how long compiling every kernel for one dtype takes, quoted in the notice below
(``warmup((np.float32,))`` with an empty cache: 4.9 s on the quiet 2-core AMD EPYC development
machine, 6-13 s on a loaded one)."""


class _CompilingNotice(event.Listener):
    """Says in one line on stderr, once per dtype and process, that the numba engine's kernels are
    compiling. Numba fires its ``numba:compile`` event only for a real compilation, not when it
    loads a kernel from the disk cache, so a cached install prints nothing."""

    def __init__(self):
        self.told = set()

    def on_start(self, ev):
        dispatcher = ev.data["dispatcher"]
        if not getattr(dispatcher.py_func, "__module__", "").startswith(__name__.rpartition(".")[0]):
            return  # someone else's Numba function
        dtype = next((str(a.dtype) for a in ev.data["args"] if isinstance(a, types.Array)), None)
        if dtype is None or dtype in self.told:
            return
        self.told.add(dtype)
        where = "once per install" if CACHE else "in every process: no disk cache"
        print(f"handprop: compiling the numba kernels for {dtype} ({where}, ~{COMPILE_SECONDS} s in all, "
              "each kernel on its first use)...", file=sys.stderr, flush=True)

    def on_end(self, ev):
        pass


_NOTICE = _CompilingNotice()
event.register("numba:compile", _NOTICE)

DTYPES = (np.float32, np.float64)


def check_dtype(op, *arrays):
    """Raise a TypeError naming ``op`` unless every array is float32 or float64 (Numba has no
    float16 arithmetic; integers would silently truncate)."""
    for a in arrays:
        if a is not None and a.dtype not in DTYPES:
            raise TypeError(
                f"{op}: the numba engine computes in float32 or float64, got {a.dtype}. Cast the data "
                "(x.astype(np.float32)), or run this dtype on the numpy engine: with hp.engine('numpy'): ..."
            )
