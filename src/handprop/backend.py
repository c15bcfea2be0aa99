"""Array modules and engine selection.

Two independent choices live here:

* the **array module** (``numpy`` or ``cupy``): where the numbers are stored. Code that is not a
  kernel asks ``xp = get_array_module(x)`` and then writes ``xp.exp(x)``, so one line works on
  the CPU and on a CUDA GPU (the Chainer idiom).
* the **engine** (``"reference"``, ``"numpy"``, ``"numba"``, ``"cupy"``): which implementation of
  the heavy kernels (convolution, pooling) runs. ``reference`` is the readable loop definition;
  the others must agree with it.

CuPy is optional: importing handprop never imports CuPy unless it is installed, and nothing
here fails without it. The engines' thread counts are :mod:`handprop.threads`'
(``hp.set_num_threads``, ``hp.thread_settings``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys

import numpy as np

ENGINES = ("reference", "numpy", "numba", "cupy")


def _try_import_cupy():
    if importlib.util.find_spec("cupy") is None:
        return None
    try:
        import cupy  # noqa: F401

        cupy.cuda.runtime.getDeviceCount()
        return cupy
    except Exception:  # CuPy installed but no usable GPU/driver: behave as if absent.
        return None


_cupy = None
_cupy_checked = False


def cupy_module():
    """Return the ``cupy`` module if it is installed *and* a CUDA device is usable, else None."""
    global _cupy, _cupy_checked
    if not _cupy_checked:
        _cupy = _try_import_cupy()
        _cupy_checked = True
    return _cupy


def gpu_available() -> bool:
    return cupy_module() is not None


def numba_available() -> bool:
    """Is Numba installed (and not blocked)? Looked up without importing it (importing takes ~0.5 s)."""
    try:
        return importlib.util.find_spec("numba") is not None
    except (ImportError, ValueError):  # an import hook that refuses it; sys.modules["numba"] = None
        return False


def is_gpu_array(x) -> bool:
    """True for a CuPy array (checked without importing CuPy)."""
    return type(x).__module__.split(".")[0] == "cupy"


def get_array_module(*arrays):
    """``numpy`` or ``cupy``, whichever module the arrays belong to (numpy for plain scalars)."""
    for a in arrays:
        if is_gpu_array(a):
            return cupy_module()
    return np


def to_numpy(x):
    """Copy a CuPy array to the host; return NumPy arrays (and scalars) unchanged."""
    if is_gpu_array(x):
        return x.get()
    return np.asarray(x)


def to_device(x, device: str):
    """Move an array to ``"cpu"`` (NumPy) or ``"gpu"`` (CuPy)."""
    if device == "cpu":
        return to_numpy(x)
    if device == "gpu":
        cp = cupy_module()
        if cp is None:
            raise RuntimeError("to_device('gpu'): CuPy with a usable CUDA GPU is not available")
        return cp.asarray(x)
    raise ValueError(f"device must be 'cpu' or 'gpu', got {device!r}")


# ----------------------------------------------------------------------------- engines
def default_engine() -> str:
    """The CPU default: ``numba`` when Numba is installed, else ``numpy``."""
    return "numba" if numba_available() else "numpy"


NO_NUMBA_NOTICE = ("handprop: Numba is not installed here, so the default engine is 'numpy' (the same results to "
                   "rounding, slower convolutions); `pip install numba` where it is available gives the 'numba' engine")
"""The one line on stderr, once per process (on importing handprop), where Numba is missing: a
line and not a warning, because nothing is wrong (JupyterLite has no Numba) and a test suite that
turns warnings into errors must still run there."""

if not numba_available():
    print(NO_NUMBA_NOTICE, file=sys.stderr, flush=True)


_engine = None


def set_engine(name: str) -> None:
    """Choose the kernel engine: ``"reference" | "numpy" | "numba" | "cupy"``."""
    global _engine
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; choose one of {ENGINES}")
    if name == "numba" and not numba_available():
        raise RuntimeError("engine 'numba' needs the numba package (pip install numba)")
    if name == "cupy" and not gpu_available():
        raise RuntimeError("engine 'cupy' needs CuPy and a CUDA GPU (pip install handprop[gpu])")
    _engine = name


def get_engine() -> str:
    """The engine in force (the CPU default until ``set_engine`` is called)."""
    return _engine if _engine is not None else default_engine()


@contextlib.contextmanager
def engine(name: str):
    """``with hp.engine("reference"): ...`` runs the block on one engine, then restores the old one."""
    global _engine
    previous = _engine
    set_engine(name)
    try:
        yield
    finally:
        _engine = previous


def engine_for(x, strict: bool = True) -> str:
    """The engine that will run a kernel on array ``x``.

    CuPy arrays always run on the ``cupy`` engine (GPU data cannot go through CPU kernels).
    NumPy arrays run on the engine in force; asking the ``cupy`` engine to run NumPy data is an
    error that tells the learner how to move the model (with ``strict=False``: the ``numpy`` engine).
    """
    if is_gpu_array(x):
        return "cupy"
    name = get_engine()
    if name == "cupy" and not strict:
        return "numpy"
    if name == "cupy":
        raise RuntimeError(
            "engine is 'cupy' but the data is a NumPy array: move the model and data to the GPU "
            "(model.to_gpu(), hp.backend.to_device(x, 'gpu'))"
        )
    return name
