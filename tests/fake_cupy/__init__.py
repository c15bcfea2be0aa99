"""A strict CuPy stand-in for the test suite: device arrays kept in NumPy, refusing what CuPy refuses.

``tests/conftest.py`` installs this module as ``sys.modules["cupy"]`` when real CuPy with a usable
CUDA GPU is not importable, so the ``cupy`` engine's tests run on every machine. It is not a GPU
emulator: it checks that the library keeps host and device apart the way CuPy forces it to.

What it refuses, as CuPy 14 does (``cupy/_core/core.pyx``):

* implicit conversion to NumPy: ``np.asarray(dev)`` / ``np.array(dev)`` raise ``TypeError``
  (``ndarray.__array__``); ``dev.get()`` and ``cupy.asnumpy(dev)`` are the only ways back,
  ``cupy.asarray``/``cupy.array`` the way in (always a copy of host data);
* any NumPy array (0-d ones included) in arithmetic, a ufunc (``np.exp(dev) + host``) or a CuPy
  function (``cupy.concatenate([dev, host])``): ``TypeError``; Python and NumPy *scalars* mix
  freely, and a 0-d NumPy array may be compared with a device array, as in CuPy;
* a non-scalar host value assigned into a device array (``dev[...] = host``): ``ValueError``;
* ``operator.index`` (CuPy arrays have no ``__index__``), hashing, iteration over 0-d arrays;
* every name real CuPy lacks: the module exposes exactly :data:`NAMES`, device arrays exactly
  :data:`NDARRAY_NAMES`, and ``tests/test_fake_cupy.py`` checks both lists against real CuPy's
  API (``tests/fake_cupy/cupy_api.txt``, written from CuPy's source by ``api_check.py``).

What CuPy allows, it allows: ``float(dev0d)``, ``int``, ``bool`` (size 1), ``format``, ``repr``;
``np.exp(dev)`` and ``np.sum(dev)`` dispatch to the device (``__array_ufunc__`` /
``__array_function__``) and return device arrays; reductions return 0-d device arrays, never
NumPy scalars; NumPy arrays and lists are accepted as *indices*. Type promotion is NumPy's (NEP 50;
CuPy 14 follows NumPy 2 as well).
"""

from __future__ import annotations

import functools
import importlib.machinery
import sys
import types
import warnings

import numpy as np

# ---------------------------------------------------------------------------------------- the lists
NUMPY_OBJECTS = (  # CuPy re-exports these NumPy objects themselves (``from numpy import ...``)
    "e", "inf", "nan", "newaxis", "pi",
    "bool_", "int8", "int16", "int32", "int64", "intp", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
    "generic", "number", "integer", "signedinteger", "unsignedinteger", "inexact", "floating",
    "dtype", "finfo", "iinfo", "promote_types", "issubdtype",
)
UFUNCS = (  # element-wise: every input a device array or a scalar
    "add", "subtract", "multiply", "divide", "true_divide", "floor_divide", "negative", "positive",
    "power", "remainder", "mod", "absolute", "fabs", "sign", "sqrt", "square", "reciprocal",
    "exp", "expm1", "exp2", "log", "log1p", "log2", "log10", "logaddexp",
    "sin", "cos", "tan", "arctan", "arctan2", "sinh", "cosh", "tanh",
    "maximum", "minimum", "fmax", "fmin", "floor", "ceil", "rint", "trunc",
    "equal", "not_equal", "less", "less_equal", "greater", "greater_equal",
    "logical_and", "logical_or", "logical_not", "logical_xor", "isnan", "isinf", "isfinite",
    "bitwise_and", "bitwise_or", "bitwise_xor", "invert", "left_shift", "right_shift", "matmul",
)
UFUNC_ALIASES = {"abs": "absolute"}  # ``cupy.abs`` is ``cupy.absolute``
FUNCTIONS = (  # the first argument must be a device array (or a scalar); host arrays nowhere
    "sum", "prod", "mean", "var", "std", "max", "min", "amax", "amin", "argmax", "argmin", "all", "any",
    "cumsum", "cumprod", "count_nonzero", "allclose", "isclose", "array_equal", "where", "clip",
    "round", "around", "dot", "vdot", "tensordot", "inner", "outer", "reshape", "ravel", "transpose",
    "moveaxis", "swapaxes", "expand_dims", "squeeze", "broadcast_to", "broadcast_arrays", "flip",
    "pad", "tile", "repeat", "take", "take_along_axis", "put_along_axis", "split", "array_split",
    "sort", "argsort", "unique", "nonzero", "flatnonzero", "bincount", "diag", "trace", "copy",
    "ascontiguousarray", "nan_to_num", "zeros_like", "ones_like", "empty_like", "full_like",
    "atleast_1d", "atleast_2d",
)
SEQUENCE_FUNCTIONS = ("concatenate", "stack", "vstack", "hstack")  # first argument: device arrays
CREATION_FUNCTIONS = ("zeros", "ones", "empty", "full", "eye", "identity", "arange", "linspace", "einsum")
OWN = (  # written here, below
    "ndarray", "ufunc", "array", "asarray", "asnumpy", "get_array_module", "result_type", "can_cast",
    "is_available", "cuda", "__version__",
)
NAMES = (*NUMPY_OBJECTS, *UFUNCS, *UFUNC_ALIASES, *FUNCTIONS, *SEQUENCE_FUNCTIONS, *CREATION_FUNCTIONS,
         *OWN)
"""Everything this module exposes as ``cupy.<name>``; each exists in real CuPy (test_fake_cupy.py)."""

NDARRAY_METHODS = (  # called on the host copy, device arrays in and out
    "astype", "copy", "view", "fill", "reshape", "transpose", "swapaxes", "flatten", "ravel", "squeeze",
    "take", "repeat", "sort", "argsort", "nonzero", "max", "min", "argmax", "argmin", "clip", "round",
    "sum", "cumsum", "mean", "var", "std", "prod", "all", "any", "conj", "dot", "diagonal", "trace",
    "item", "tolist",
)
NDARRAY_ATTRIBUTES = ("shape", "dtype", "size", "ndim", "itemsize", "nbytes", "strides", "T", "flags",
                      "real", "imag", "device", "get", "set")
NDARRAY_NAMES = (*NDARRAY_METHODS, *NDARRAY_ATTRIBUTES)
"""Public attributes of device arrays; each exists on real ``cupy.ndarray``."""

CUDA_NAMES = ("Device", "runtime", "is_available")
RUNTIME_NAMES = ("getDeviceCount", "getDeviceProperties", "deviceSynchronize", "memGetInfo")
DEVICE_NAMES = ("id", "synchronize", "use", "compute_capability", "mem_info")

cupy = types.ModuleType("cupy", "A strict NumPy-backed stand-in for CuPy (tests/fake_cupy); see NAMES.")
"""The module ``import cupy`` gives once :func:`install` ran: exactly :data:`NAMES`, nothing else."""
_API = cupy.__dict__
_PYTHON_SCALARS = (bool, int, float, complex)


def _is_scalar(x):
    """CuPy's ``scalar_type_set``: Python and NumPy scalars (a 0-d NumPy *array* is not one)."""
    return type(x) in _PYTHON_SCALARS or (isinstance(x, np.generic) and x.dtype.kind in "biufc")


def _refuse_host(x):
    raise TypeError(f"Unsupported type {type(x)}: a NumPy array cannot be mixed with CuPy arrays "
                    "(cupy.asarray moves it to the device, .get() brings a device array back)")


def _to_host(x):
    """The host data behind device arrays, recursively through lists and tuples; NumPy arrays refused."""
    if isinstance(x, ndarray):
        return x._host
    if isinstance(x, np.ndarray):
        _refuse_host(x)
    if isinstance(x, (list, tuple)):
        return type(x)(_to_host(v) for v in x)
    if isinstance(x, dict):  # keyword arguments
        return {k: _to_host(v) for k, v in x.items()}
    return x


def _to_device(r, numbers=False):
    """NumPy results as device arrays; NumPy scalars (and Python numbers when ``numbers``) as 0-d ones,
    as CuPy's reductions give; tuples and lists of results likewise."""
    if isinstance(r, np.ndarray):
        return ndarray._wrap(r)
    if isinstance(r, np.generic) or (numbers and type(r) in _PYTHON_SCALARS):
        return ndarray._wrap(np.asarray(r))
    if isinstance(r, (list, tuple)):
        return type(r)(_to_device(v, numbers) for v in r)
    return r


def _returning_out(out, result):
    """CuPy returns the ``out=`` array itself."""
    if isinstance(out, tuple) and len(out) == 1:
        out = out[0]
    return out if isinstance(out, ndarray) else _to_device(result, True)


# ------------------------------------------------------------------------------------ device arrays
class _Flags:
    """``cupy._core.flags.Flags``: contiguity, nothing writable."""

    def __init__(self, host):
        self.c_contiguous = bool(host.flags.c_contiguous)
        self.f_contiguous = bool(host.flags.f_contiguous)
        self.owndata = bool(host.flags.owndata)

    def __getitem__(self, name):
        return {"C_CONTIGUOUS": self.c_contiguous, "F_CONTIGUOUS": self.f_contiguous,
                "OWNDATA": self.owndata}[name]


class ndarray:  # noqa: N801  (CuPy's name)
    """A "device" array: a private NumPy array that only ``get()`` hands out (a copy)."""

    __slots__ = ("_host",)
    __array_priority__ = 100
    __hash__ = None  # unhashable, as CuPy's and NumPy's arrays

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        if memptr is not None or strides is not None:
            raise NotImplementedError("the CuPy stand-in allocates its own memory")
        self._host = np.empty(shape, dtype, order=order)

    @classmethod
    def _wrap(cls, host):
        dtype = host.dtype
        if dtype.kind not in "biufc":
            raise ValueError(f"Unsupported dtype {dtype}")  # CuPy holds numbers only
        out = object.__new__(cls)
        out._host = host
        return out

    # the way back, and the way in for a whole array
    def get(self, stream=None, order="C", out=None, blocking=True):
        if out is not None:
            out[...] = self._host
            return out
        return np.array(self._host, order=order, copy=True)

    def set(self, arr, stream=None):
        if not isinstance(arr, np.ndarray):
            raise TypeError("Only numpy.ndarray can be set to cupy.ndarray")
        if arr.dtype != self.dtype:
            raise TypeError(f"{arr.dtype} array cannot be set to {self.dtype} array")
        if arr.shape != self.shape:
            raise ValueError("Shape mismatch")
        self._host[...] = arr

    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. "
                        "Please use `.get()` to construct a NumPy array explicitly.")

    # attributes
    shape = property(lambda self: self._host.shape)
    dtype = property(lambda self: self._host.dtype)
    size = property(lambda self: self._host.size)
    ndim = property(lambda self: self._host.ndim)
    itemsize = property(lambda self: self._host.itemsize)
    nbytes = property(lambda self: self._host.nbytes)
    strides = property(lambda self: self._host.strides)
    T = property(lambda self: ndarray._wrap(self._host.T))
    real = property(lambda self: ndarray._wrap(self._host.real))
    imag = property(lambda self: ndarray._wrap(self._host.imag))
    flags = property(lambda self: _Flags(self._host))
    device = property(lambda self: cuda.Device(0))

    # conversions CuPy allows (through get())
    def __int__(self):
        return int(self.get())

    def __float__(self):
        return float(self.get())

    def __complex__(self):
        return complex(self.get())

    def __bool__(self):
        if self.size == 0:
            warnings.warn("The truth value of an empty array is ambiguous. Returning False, but in future "
                          "this will result in an error. Use `array.size > 0` to check that an array is "
                          "not empty.", DeprecationWarning, stacklevel=2)
            return False
        if self.size == 1:
            return bool(self.get())
        raise ValueError("The truth value of an array with more than one element is ambiguous. "
                         "Use a.any() or a.all()")

    def __repr__(self):
        return repr(self.get())

    def __str__(self):
        return str(self.get())

    def __format__(self, spec):
        return format(self.get(), spec)

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    def __reduce__(self):
        return array, (self.get(),)

    # containers
    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of unsized object")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self.shape[0]))

    def __getitem__(self, key):
        return _to_device(self._host[_index(key)])

    def __setitem__(self, key, value):
        if isinstance(value, ndarray):
            value = value._host
        elif not _is_scalar(value):
            host = np.asarray(value)  # CuPy refuses assignment from CPU arrays (cupy gh-2079): fill()
            if host.shape != ():
                raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
            value = host[()]
        self._host[_index(key)] = value

    # NumPy's entry points: to the device functions, as CuPy does
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        func = _UFUNC_OBJECTS.get(ufunc.__name__)
        if func is None or method not in ("__call__", "outer", "at", "reduce", "accumulate"):
            return NotImplemented
        out = kwargs.get("out", ())
        for x in inputs + (out if isinstance(out, tuple) else (out,)):
            if not (_is_scalar(x) or isinstance(x, (ndarray, np.ndarray))):
                return NotImplemented
        if ufunc.__name__ in ("greater", "greater_equal", "less", "less_equal", "equal", "not_equal"):
            inputs = tuple(x.item() if isinstance(x, np.ndarray) and x.ndim == 0 else x for x in inputs)
        return (func if method == "__call__" else getattr(func, method))(*inputs, **kwargs)

    def __array_function__(self, func, types_, args, kwargs):
        if func.__module__ != "numpy" or func.__name__ not in _FUNCTION_NAMES:
            return NotImplemented
        if not all(issubclass(t, (ndarray, np.ndarray)) for t in types_):
            return NotImplemented
        return _API[func.__name__](*args, **kwargs)

    # comparisons
    def _compare(self, other, name):
        if isinstance(other, np.ndarray) and other.ndim == 0:
            other = other.item()
        if name in ("equal", "not_equal") and (other is None or type(other).__eq__ is object.__eq__):
            return _API["zeros" if name == "equal" else "ones"](self.shape, dtype=bool)
        return getattr(np, name)(self, other)

    def __eq__(self, other):
        return self._compare(other, "equal")

    def __ne__(self, other):
        return self._compare(other, "not_equal")

    def __lt__(self, other):
        return self._compare(other, "less")

    def __le__(self, other):
        return self._compare(other, "less_equal")

    def __gt__(self, other):
        return self._compare(other, "greater")

    def __ge__(self, other):
        return self._compare(other, "greater_equal")


def _index(key):
    """Indices: device arrays give their host data; NumPy arrays and lists are accepted, as CuPy copies
    them to the device."""
    if isinstance(key, tuple):
        return tuple(k._host if isinstance(k, ndarray) else k for k in key)
    return key._host if isinstance(key, ndarray) else key


def _should_use_rop(self, other):
    other_ufunc = getattr(other, "__array_ufunc__", _index)
    if other_ufunc is not _index:
        return other_ufunc is None
    return getattr(other, "__array_priority__", 0) > self.__array_priority__


def _binary(name, reflected=False, inplace=False):
    """``x + y`` and friends: CuPy calls the NumPy ufunc, which comes back to ``__array_ufunc__``."""
    ufunc = getattr(np, name)

    def op(self, other):
        if not (isinstance(other, ndarray) or _is_scalar(other)) and _should_use_rop(self, other):
            return NotImplemented
        if inplace:
            return ufunc(self, other, out=(self,))
        return ufunc(other, self) if reflected else ufunc(self, other)

    return op


for _dunder, _name in (("add", "add"), ("sub", "subtract"), ("mul", "multiply"), ("matmul", "matmul"),
                       ("truediv", "true_divide"), ("floordiv", "floor_divide"), ("mod", "remainder"),
                       ("pow", "power"), ("and", "bitwise_and"), ("or", "bitwise_or"),
                       ("xor", "bitwise_xor"), ("lshift", "left_shift"), ("rshift", "right_shift")):
    setattr(ndarray, f"__{_dunder}__", _binary(_name))
    setattr(ndarray, f"__r{_dunder}__", _binary(_name, reflected=True))
    if _dunder != "matmul":  # CuPy has no in-place ``@=``
        setattr(ndarray, f"__i{_dunder}__", _binary(_name, inplace=True))
for _dunder, _name in (("neg", "negative"), ("pos", "positive"), ("abs", "absolute"), ("invert", "invert")):
    setattr(ndarray, f"__{_dunder}__", functools.partialmethod(lambda self, _n: getattr(np, _n)(self), _name))


def _method(name):
    def method(self, *args, **kwargs):
        result = getattr(self._host, name)(*_to_host(args), **_to_host(kwargs))
        return self if result is self._host else _to_device(result)  # astype(copy=False) gives self

    method.__name__ = name
    return method


for _name in NDARRAY_METHODS:
    setattr(ndarray, _name, _method(_name))
ndarray.__module__ = "cupy"  # what handprop.backend.is_gpu_array looks at, as for real CuPy arrays


# ------------------------------------------------------------------------------------------ ufuncs
class ufunc:  # noqa: N801  (CuPy's name)
    """A NumPy ufunc whose inputs must be device arrays or scalars; returns device arrays."""

    def __init__(self, numpy_ufunc):
        self._ufunc = numpy_ufunc
        self.__name__ = self.name = numpy_ufunc.__name__
        self.nin, self.nout, self.nargs = numpy_ufunc.nin, numpy_ufunc.nout, numpy_ufunc.nargs

    def _run(self, method, args, kwargs):
        out = kwargs.get("out")
        result = getattr(self._ufunc, method)(*_to_host(args), **_to_host(kwargs))
        return _returning_out(out, result) if out is not None else _to_device(result, True)

    def __call__(self, *args, **kwargs):
        return self._run("__call__", args, kwargs)

    def reduce(self, *args, **kwargs):
        return self._run("reduce", args, kwargs)

    def accumulate(self, *args, **kwargs):
        return self._run("accumulate", args, kwargs)

    def outer(self, *args, **kwargs):
        return self._run("outer", args, kwargs)

    def at(self, a, indices, b=None):
        if not isinstance(a, ndarray):
            raise TypeError(f"{self.name}.at needs a cupy.ndarray, got {type(a)}")
        args = (a._host, _index(indices)) + (() if b is None else (_to_host(b),))
        self._ufunc.at(*args)

    def __repr__(self):
        return f"<ufunc '{self.name}'>"


ufunc.__module__ = "cupy"
_UFUNC_OBJECTS = {name: ufunc(getattr(np, name)) for name in UFUNCS}
for _name, _target in UFUNC_ALIASES.items():
    _UFUNC_OBJECTS[_name] = _UFUNC_OBJECTS[_target]
_API.update(_UFUNC_OBJECTS)


# --------------------------------------------------------------------------------------- functions
def _device_function(name, first):
    """The NumPy function of the same name, strict: ``first`` says what its first argument must be."""
    numpy_function = getattr(np, name)

    @functools.wraps(numpy_function)
    def function(*args, **kwargs):
        if args and first == "array" and not (isinstance(args[0], ndarray) or _is_scalar(args[0])):
            raise TypeError(f"cupy.{name}: expected a cupy.ndarray, got {type(args[0])}")
        if args and first == "arrays" and not all(isinstance(a, ndarray) for a in args[0]):
            raise TypeError(f"cupy.{name}: only cupy arrays can be joined, got "
                            f"{sorted({type(a).__name__ for a in args[0]})}")
        out = kwargs.get("out")
        result = numpy_function(*_to_host(args), **_to_host(kwargs))
        return _returning_out(out, result) if out is not None else _to_device(result, True)

    function.__module__ = "cupy"
    return function


for _names, _first in ((FUNCTIONS, "array"), (SEQUENCE_FUNCTIONS, "arrays"), (CREATION_FUNCTIONS, None)):
    for _name in _names:
        _API[_name] = _device_function(_name, _first)
_FUNCTION_NAMES = frozenset(FUNCTIONS + SEQUENCE_FUNCTIONS + CREATION_FUNCTIONS)
_API.update({name: getattr(np, name) for name in NUMPY_OBJECTS})


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    """Host data (or device arrays) to a new device array."""
    if isinstance(obj, ndarray):
        return ndarray._wrap(np.array(obj._host, dtype=dtype, copy=copy, order=order, ndmin=ndmin))
    if isinstance(obj, (list, tuple)) and any(isinstance(v, ndarray) for v in obj):
        obj = [v.get() if isinstance(v, ndarray) else v for v in obj]
    return ndarray._wrap(np.array(obj, dtype=dtype, order=order, ndmin=ndmin))  # always a copy


def asarray(a, dtype=None, order=None, *, copy=None, blocking=False):
    """A device array as it is (or cast), anything else copied to the device."""
    if isinstance(a, ndarray) and copy is not True:
        return a if dtype is None or np.dtype(dtype) == a.dtype else a.astype(dtype)
    return array(a, dtype=dtype, order=order or "K")


def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    """A device array's copy on the host; anything else through ``numpy.asarray``."""
    if isinstance(a, ndarray):
        return a.get(stream=stream, order=order, out=out, blocking=blocking)
    host = np.asarray(a, order=order)
    if out is not None:
        out[...] = host
        return out
    return host


def get_array_module(*args):
    return cupy if any(isinstance(a, ndarray) for a in args) else np


def result_type(*arrays_and_dtypes):
    return np.result_type(*(a.dtype if isinstance(a, ndarray) else a for a in arrays_and_dtypes))


def can_cast(from_, to, casting="safe"):
    return np.can_cast(from_.dtype if isinstance(from_, ndarray) else from_, to, casting=casting)


def is_available():
    return True


# ------------------------------------------------------------------------------------- cupy.cuda
class _Device:
    """``cupy.cuda.Device``: one device, 0; nothing to wait for."""

    def __init__(self, device=None):
        self.id = 0 if device is None else int(device)
        if self.id != 0:
            raise ValueError(f"the CuPy stand-in has one device, 0 (asked for {device})")

    def use(self):
        pass

    def synchronize(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *args):
        pass

    compute_capability = property(lambda self: "90")
    mem_info = property(lambda self: _runtime.memGetInfo())


_MEMORY = 16 * 2**30


def _device_properties(device):
    return {"name": b"CuPy stand-in (NumPy, tests/fake_cupy)", "totalGlobalMem": _MEMORY, "major": 9, "minor": 0}


_runtime = types.SimpleNamespace(getDeviceCount=lambda: 1, getDeviceProperties=_device_properties,
                                 deviceSynchronize=lambda: None, memGetInfo=lambda: (_MEMORY, _MEMORY))
cuda = types.ModuleType("cupy.cuda", "The pieces of ``cupy.cuda`` the engine and tests use.")
cuda.Device, cuda.runtime, cuda.is_available = _Device, _runtime, is_available
_Device.__name__ = "Device"
_Device.__module__ = "cupy.cuda"


def _missing(name):
    raise AttributeError(f"module 'cupy' has no attribute {name!r} (the CuPy stand-in tests/fake_cupy exposes "
                         "only names real CuPy has, listed in its NAMES)")


for _name, _value in (("ndarray", ndarray), ("ufunc", ufunc), ("array", array), ("asarray", asarray),
                      ("asnumpy", asnumpy), ("get_array_module", get_array_module), ("result_type", result_type),
                      ("can_cast", can_cast), ("is_available", is_available), ("cuda", cuda),
                      ("__version__", "14.2.0")):  # the release whose API cupy_api.txt records
    _API[_name] = _value
    if callable(_value) and not isinstance(_value, types.ModuleType):
        _value.__module__ = "cupy"  # pickling a device array finds cupy.array
assert set(NAMES) == {n for n in _API if not n.startswith("__") or n == "__version__"}, "NAMES is the whole API"
cupy.__getattr__ = _missing
cupy.__dir__ = lambda: sorted(NAMES)
cupy.__spec__ = importlib.machinery.ModuleSpec("cupy", None)  # importlib.util.find_spec("cupy") finds it


def install():
    """Make ``import cupy`` give the stand-in (tests/conftest.py calls this); -> the module."""
    for name in [m for m in sys.modules if m == "cupy" or m.startswith(("cupy.", "cupyx", "cupy_backends"))]:
        del sys.modules[name]  # a real CuPy that imported but found no GPU
    sys.modules["cupy"] = cupy
    sys.modules["cupy.cuda"] = cuda
    return cupy


def installed():
    """Is ``import cupy`` the stand-in?"""
    return sys.modules.get("cupy") is cupy
