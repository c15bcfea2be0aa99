"""The CuPy stand-in (tests/fake_cupy): only names real CuPy has, and as strict as CuPy about host
and device. The behaviour tests run on the stand-in everywhere and, on a machine with a GPU, on real
CuPy too: the stand-in must refuse and allow what CuPy refuses and allows."""

from __future__ import annotations

import importlib.util
import operator

import numpy as np
import pytest

import fake_cupy
import handprop.backend as backend
from fake_cupy import api_check


def _real_cupy():
    if fake_cupy.installed() or importlib.util.find_spec("cupy") is None:
        return None
    import cupy

    return cupy


MODULES = [pytest.param(fake_cupy.cupy, id="stand-in")]
if _real_cupy() is not None:  # a GPU machine: the same checks on CuPy itself
    MODULES.append(pytest.param(_real_cupy(), id="cupy", marks=pytest.mark.gpu))


def test_every_name_of_the_stand_in_exists_in_cupy():
    """Module, ndarray, ufunc, flags and cuda names, against CuPy 14's source (cupy_api.txt) and, on a
    GPU machine, against the installed CuPy."""
    assert api_check.missing_from(api_check.read_record()) == []
    real = _real_cupy()
    if real is not None:
        assert [n for n in fake_cupy.NAMES if not hasattr(real, n)] == []
        assert [n for n in fake_cupy.NDARRAY_NAMES if not hasattr(real.ndarray, n)] == []


def test_the_name_check_reports_a_name_cupy_lacks():
    api = api_check.read_record()
    api["cupy"] = api["cupy"] - {"bincount"}
    api["cupy.ndarray"] = api["cupy.ndarray"] - {"__richcmp__"}
    assert api_check.missing_from(api) == ["cupy: bincount"] + ["cupy.ndarray: __richcmp__"]
    assert "cupy: sum" in api_check.missing_from({})


def test_the_suite_runs_the_cupy_engine():
    """conftest.py: the stand-in when no GPU is usable (HANDPROP_FAKE_CUPY=0 turns it off)."""
    if fake_cupy.installed():
        assert backend.cupy_module() is fake_cupy.cupy and backend.gpu_available()
        assert backend.is_gpu_array(fake_cupy.cupy.zeros(2)) and not backend.is_gpu_array(np.zeros(2))
    else:  # real CuPy with a GPU, or the stand-in turned off without one
        assert backend.cupy_module() is _real_cupy()


@pytest.fixture(params=MODULES)
def cp(request):
    return request.param


def test_implicit_conversion_to_numpy_is_refused(cp):
    dev = cp.arange(6.0).reshape(2, 3)
    for convert in (np.asarray, np.array, lambda a: np.ascontiguousarray(a), lambda a: np.float64(1) * np.ones(3) + a):
        with pytest.raises(TypeError):
            convert(dev)
    with pytest.raises(TypeError):
        operator.index(cp.asarray(1))  # no __index__: a device integer is no list index
    with pytest.raises(TypeError):
        hash(dev)
    host = dev.get()
    host[0, 0] = 99.0  # get() is a copy
    assert isinstance(host, np.ndarray) and float(dev[0, 0]) == 0.0
    np.testing.assert_array_equal(cp.asnumpy(dev), np.arange(6.0).reshape(2, 3))


def test_mixing_host_and_device_arrays_is_refused(cp):
    dev, host = cp.ones((2, 3)), np.ones((2, 3))
    mixes = (lambda: dev + host, lambda: host + dev, lambda: host * dev, lambda: dev @ host.T,
             lambda: np.add(dev, host), lambda: dev + np.array(1.0), lambda: cp.exp(dev) - host,
             lambda: cp.maximum(dev, host), lambda: cp.concatenate([dev, host]),
             lambda: cp.where(host > 0, dev, 0), lambda: cp.matmul(dev, host.T))
    for i, mix in enumerate(mixes):
        with pytest.raises(TypeError):
            mix()
            pytest.fail(f"mix {i} ran")
    with pytest.raises(ValueError):
        dev[0] = host[0]  # assignment from a host array (CuPy: "non-scalar numpy.ndarray cannot be used for fill")
    dev2 = dev.copy()
    with pytest.raises(TypeError):
        dev2 += host


def test_unknown_names_raise_attribute_error(cp):
    for name in ("no_such_function", "to_numpy"):
        with pytest.raises(AttributeError):
            getattr(cp, name)
    with pytest.raises(AttributeError):
        cp.zeros(2).numpy()
    if cp is fake_cupy.cupy:  # nothing of the stand-in's own machinery leaks into ``cupy``
        for name in ("np", "install", "installed", "NAMES", "functools", "sys"):
            with pytest.raises(AttributeError):
                getattr(cp, name)
        assert sorted(dir(cp)) == sorted(fake_cupy.NAMES)


def test_what_cupy_allows_the_stand_in_allows(cp):
    """Scalars mix; NumPy's functions and ufuncs dispatch to the device; reductions stay on it;
    host arrays and lists may index; 0-d device arrays convert with float()/int()/bool()/format."""
    host = np.arange(6.0).reshape(2, 3)
    dev = cp.asarray(host)
    total = dev.sum()
    assert isinstance(total, cp.ndarray) and total.shape == () and float(total) == 15.0 and int(total) == 15
    assert f"{total:.1f}" == "15.0" and bool(cp.asarray([True]))
    for result, expected in ((dev * np.float32(2) + 1, host * 2 + 1), (np.exp(dev), np.exp(host)),
                             (np.sum(dev, axis=0), host.sum(axis=0)), (dev > np.array(2.0), host > 2.0),
                             (dev[np.array([1, 0])], host[[1, 0]]), (dev[:, [2]], host[:, [2]]),
                             (cp.where(dev > 2, dev, 0.0), np.where(host > 2, host, 0.0)),
                             (cp.bincount(cp.asarray([0, 2, 2]), minlength=4), np.array([1, 0, 2, 0]))):
        assert isinstance(result, cp.ndarray)
        np.testing.assert_array_equal(result.get(), expected)
    assert (dev == None).shape == (2, 3)  # noqa: E711  (CuPy allows comparing with None)
    dev[0, 1:] = 7.0
    dev[1] = cp.zeros(3)
    np.testing.assert_array_equal(dev.get(), [[0.0, 7.0, 7.0], [0.0, 0.0, 0.0]])
    assert host[0, 1] == 1.0  # cupy.asarray copied the host array
    assert cp.get_array_module(dev) is cp and cp.get_array_module(host) is np
