"""Shared test setup: a headless matplotlib backend, CuPy or its stand-in, an optional ``torch``
fixture, tolerances."""

import importlib.util
import os

import matplotlib

matplotlib.use("Agg")  # before anything imports pyplot: tests never open windows

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import fake_cupy  # noqa: E402  (tests/fake_cupy: the strict NumPy-backed CuPy stand-in)


def _real_cupy_works():
    """CuPy installed and a CUDA device usable (what handprop.backend.cupy_module asks)."""
    if importlib.util.find_spec("cupy") is None:
        return False
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # CuPy installed but no GPU or driver
        return False


# The cupy engine's tests (``-m gpu``) run on real CuPy when it finds a GPU, else on the stand-in, so
# that they run on every machine. HANDPROP_FAKE_CUPY=1 forces the stand-in, =0 forbids it (then they
# skip without a GPU). Chosen before anything asks handprop.backend for CuPy (it caches the answer).
_FAKE_CUPY = os.environ.get("HANDPROP_FAKE_CUPY", "")
if _FAKE_CUPY == "1" or (_FAKE_CUPY != "0" and not _real_cupy_works()):
    fake_cupy.install()

# Tolerances for comparisons with PyTorch, per dtype: (rtol, atol).
TOLERANCES = {np.float64: (1e-10, 1e-12), np.float32: (1e-4, 1e-5)}


@pytest.fixture(scope="session")
def torch():
    """PyTorch, or skip the test when it is not installed (it is an optional dependency)."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)  # the test machines are small and shared
    return torch


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def assert_close(actual, expected, dtype=np.float64, scale=1.0):
    """``np.testing.assert_allclose`` with the tolerance of ``dtype`` (torch tensors accepted)."""
    if hasattr(expected, "detach"):
        expected = expected.detach().cpu().numpy()
    if hasattr(actual, "detach"):
        actual = actual.detach().cpu().numpy()
    rtol, atol = TOLERANCES[np.dtype(dtype).type]
    np.testing.assert_allclose(actual, expected, rtol=rtol * scale, atol=atol * scale)


def pytest_terminal_summary(terminalreporter):
    """One line that says how many tests were skipped and why (grouped by reason), so that a run
    without PyTorch (the parity reference) or without a GPU cannot pass for a full one."""
    if fake_cupy.installed():
        terminalreporter.write_line("handprop: the cupy engine ran on the NumPy stand-in tests/fake_cupy (no usable "
                                    "CUDA GPU); benchmarks/gpu_check.sh runs its tests on a real card")
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    reasons = {}
    for report in skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    total = sum(len(terminalreporter.stats.get(k, [])) for k in ("passed", "failed", "error", "skipped"))
    parts = "; ".join(f"{n} {reason}" for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]))
    terminalreporter.write_line(f"handprop: {len(skipped)} of {total} tests skipped: {parts}")
    if any("torch" in reason for reason in reasons):
        terminalreporter.write_line("handprop: PyTorch (the parity reference) is missing; `make test` installs "
                                    "torch==2.13.0 (CPU)")


def pytest_configure(config):
    """One marker per gradable task, ``task_<id>`` (tests/test_tasks.py): ``pytest -m task_bn_backward``."""
    from handprop.exercises.tasks import TASKS

    for task in TASKS:
        config.addinivalue_line("markers", f"task_{task.id}: {task.title} ({task.notebook}, {task.points} points)")
