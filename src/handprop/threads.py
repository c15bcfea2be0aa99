"""How many CPU threads handprop's engines use, and how to change it on a shared machine.

Two sets of threads do the work on the CPU: the ``numba`` engine's own pool (Python threads
running compiled kernels that release the GIL: convolution chunks, packing, pooling, ReLU,
PReLU, SGD's update; :mod:`handprop.kernels.numba_cpu._pool`) and the BLAS library's that
NumPy links (OpenBLAS, MKL: every matrix product). Both use one thread per core by default. On a
shared server (a JupyterHub with many students, a 2-core CI machine with a busy neighbour) that
oversubscribes the cores, and training can be several times slower than with fewer threads::

    hp.set_num_threads(1)         # both: one thread each (a good default on a busy server)
    hp.get_num_threads()          # {"numba": 1, "blas": 1}
    hp.thread_settings()          # what is in force, including the environment variables

The engine's pool starts with ``NUMBA_NUM_THREADS`` threads when that variable is set, else one
per core this process may use, and cannot go above that number. BLAS threads are set through
`threadpoolctl <https://github.com/joblib/threadpoolctl>`_ when it is installed (a dependency of
handprop); without it, ``set_num_threads`` says so and leaves BLAS alone -- then set
``OPENBLAS_NUM_THREADS`` / ``MKL_NUM_THREADS`` / ``OMP_NUM_THREADS`` before starting Python.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings

from .checks import check_int
from .errors import HandpropWarning

_blas_limiter = None  # keeps threadpoolctl's limit in force until the next set_num_threads
_engine_threads = None  # the numba engine's thread count; None: max_engine_threads()
_cores = None  # the cores this process may run on, counted on first use


def _have(module):
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # an import hook that refuses it; sys.modules[module] = None
        return False


def max_engine_threads() -> int:
    """The numba engine's default and largest thread count: ``NUMBA_NUM_THREADS`` when set, else
    the number of cores this process may run on."""
    global _cores
    value = os.environ.get("NUMBA_NUM_THREADS", "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    if _cores is None:  # asked once: the engine reads this at every parallel call (~2 us each)
        try:
            _cores = max(1, len(os.sched_getaffinity(0)))
        except (AttributeError, OSError):
            _cores = max(1, os.cpu_count() or 1)
    return _cores


def engine_threads() -> int:
    """The numba engine's thread count in force."""
    return _engine_threads if _engine_threads is not None else max_engine_threads()


def set_num_threads(n):
    """Use ``n`` threads in the numba engine and in BLAS matrix products; returns
    :func:`get_num_threads` afterwards.

    ``n`` must be a positive int, at most :func:`max_engine_threads` (``NUMBA_NUM_THREADS``, or
    the number of cores) when Numba is installed. Without ``threadpoolctl`` the BLAS thread count
    cannot be changed from inside Python: a :class:`handprop.HandpropWarning` says so.
    """
    global _blas_limiter, _engine_threads
    n = check_int(n, "set_num_threads: n", 1)
    if _have("numba"):
        maximum = max_engine_threads()
        if n > maximum:
            raise ValueError(f"set_num_threads: n={n} exceeds the numba engine's maximum of {maximum} threads "
                             "(set NUMBA_NUM_THREADS before starting Python to allow more)")
        _engine_threads = n
    if _have("threadpoolctl"):
        import numpy  # noqa: F401  (loads the BLAS library that threadpoolctl will find)
        from threadpoolctl import threadpool_limits

        _blas_limiter = threadpool_limits(limits=n, user_api="blas")
        pool = sys.modules.get("handprop.kernels.numba_cpu._pool")
        if pool is not None:  # a one-thread-BLAS section of another thread restores n, not the old count
            pool.blas_threads_changed(n)
    else:
        warnings.warn("set_num_threads: threadpoolctl is not installed, so the BLAS thread count is unchanged; "
                      "pip install threadpoolctl, or set OPENBLAS_NUM_THREADS before starting Python",
                      HandpropWarning, stacklevel=2)
    return get_num_threads()


def get_num_threads() -> dict:
    """``{"numba": n or None, "blas": n or None}``: the thread counts in force (None when that
    library is absent, or BLAS's count is unknown without threadpoolctl)."""
    out = {"numba": None, "blas": None}
    if _have("numba"):
        out["numba"] = engine_threads()
    if _have("threadpoolctl"):
        import numpy  # noqa: F401
        from threadpoolctl import threadpool_info

        counts = [lib["num_threads"] for lib in threadpool_info() if lib.get("user_api") == "blas"]
        out["blas"] = min(counts) if counts else None
    return out


def thread_settings() -> dict:
    """A report of everything that decides the threads: the counts in force, the numba engine's
    maximum and how it runs, the BLAS libraries loaded (with version and kernel type), and the
    relevant environment variables."""
    report = {"cores": os.cpu_count(), **get_num_threads()}
    if _have("numba"):
        report["numba_max"] = max_engine_threads()
        report["numba_threads"] = "a pool of Python threads running nogil kernels, one-thread BLAS inside"
    if _have("threadpoolctl"):
        from threadpoolctl import threadpool_info

        report["blas_libraries"] = [f"{lib.get('internal_api')} {lib.get('version')} {lib.get('architecture')} "
                                    f"({lib['num_threads']} threads)"
                                    for lib in threadpool_info() if lib.get("user_api") == "blas"]
    report["environment"] = {k: os.environ.get(k) for k in (
        "NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY",
        "NUMBA_CACHE_DIR", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    return report


__all__ = ["set_num_threads", "get_num_threads", "thread_settings", "engine_threads", "max_engine_threads"]
