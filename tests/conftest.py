"""Shared test setup: a headless matplotlib backend, an optional ``torch`` fixture, tolerances."""

import matplotlib

matplotlib.use("Agg")  # before anything imports pyplot: tests never open windows

import numpy as np  # noqa: E402
import pytest  # noqa: E402

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
