"""How many CPU threads handprop's engines use, and how to change it on a shared machine.

Two thread pools do the work on the CPU: Numba's (the ``numba`` engine's parallel loops: packing
convolution columns, pooling, PReLU, the fused SGD update) and the BLAS library's that NumPy
links (OpenBLAS, MKL: every matrix product). Both start one thread per core by default. On a
shared server (a JupyterHub with many students, a 2-core CI machine with a busy neighbour) that
oversubscribes the cores, and training can be several times slower than with fewer threads::

    hp.set_num_threads(1)         # both pools: one thread each (a good default on a busy server)
    hp.get_num_threads()          # {"numba": 1, "blas": 1}
    hp.thread_settings()          # what is in force, including the environment variables

Numba cannot go *above* the number it started with (``NUMBA_NUM_THREADS``, default: the cores);
set that variable before starting Python for more. BLAS threads are set through
`threadpoolctl <https://github.com/joblib/threadpoolctl>`_ when it is installed (it comes with
scikit-learn); without it, ``set_num_threads`` says so and leaves BLAS alone -- then set
``OPENBLAS_NUM_THREADS`` / ``MKL_NUM_THREADS`` / ``OMP_NUM_THREADS`` before starting Python.
"""

from __future__ import annotations

import importlib.util
import os
import warnings

from .errors import HandpropWarning

_blas_limiter = None  # keeps threadpoolctl's limit in force until the next set_num_threads


def _have(module):
    return importlib.util.find_spec(module) is not None


def set_num_threads(n):
    """Use ``n`` threads in Numba's parallel loops and in BLAS matrix products; returns
    :func:`get_num_threads` afterwards.

    ``n`` must be a positive int, at most ``NUMBA_NUM_THREADS`` (the number of cores unless that
    variable says otherwise) when Numba is installed. Without ``threadpoolctl`` the BLAS thread
    count cannot be changed from inside Python: a :class:`handprop.HandpropWarning` says so.
    """
    global _blas_limiter
    from .checks import check_int

    n = check_int(n, "set_num_threads: n", 1)
    if _have("numba"):
        import numba

        maximum = numba.config.NUMBA_NUM_THREADS
        if n > maximum:
            raise ValueError(f"set_num_threads: n={n} exceeds Numba's maximum of {maximum} threads "
                             "(set NUMBA_NUM_THREADS before starting Python to allow more)")
        numba.set_num_threads(n)
    if _have("threadpoolctl"):
        import numpy  # noqa: F401  (loads the BLAS library that threadpoolctl will find)
        from threadpoolctl import threadpool_limits

        _blas_limiter = threadpool_limits(limits=n, user_api="blas")
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
        import numba

        out["numba"] = numba.get_num_threads()
    if _have("threadpoolctl"):
        import numpy  # noqa: F401
        from threadpoolctl import threadpool_info

        counts = [lib["num_threads"] for lib in threadpool_info() if lib.get("user_api") == "blas"]
        out["blas"] = min(counts) if counts else None
    return out


def thread_settings() -> dict:
    """A report of everything that decides the threads: the counts in force, Numba's maximum
    and threading layer, the BLAS libraries loaded, and the relevant environment variables."""
    report = {"cores": os.cpu_count(), **get_num_threads()}
    if _have("numba"):
        import numba

        report["numba_max"] = numba.config.NUMBA_NUM_THREADS
        report["numba_threading_layer"] = numba.config.THREADING_LAYER
    if _have("threadpoolctl"):
        from threadpoolctl import threadpool_info

        report["blas_libraries"] = [f"{lib.get('internal_api')} {lib.get('version')} ({lib['num_threads']} threads)"
                                    for lib in threadpool_info() if lib.get("user_api") == "blas"]
    report["environment"] = {k: os.environ.get(k) for k in (
        "NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY",
        "NUMBA_CACHE_DIR")}
    return report


__all__ = ["set_num_threads", "get_num_threads", "thread_settings"]
