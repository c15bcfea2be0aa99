"""Installs and machines: a read-only install (shared JupyterHub) trains; thread counts for shared
servers; `make test` brings its own PyTorch reference."""

import os
import shutil
import site
import stat
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

import handprop as hp
from handprop import threads

numba = pytest.importorskip("numba")

NOBODY = 65534
READ_ONLY_SCRIPT = textwrap.dedent("""
    import sys, warnings
    warnings.simplefilter("default")
    import numpy as np
    import handprop as hp
    assert hp.__file__.startswith(sys.argv[1]), hp.__file__      # the read-only copy, not the checkout
    L = hp.layers
    x = np.random.default_rng(0).standard_normal((16, 5)).astype(np.float32)
    model = hp.Sequential([L.Dense(8), L.PReLU(), L.Dense(2)], seed=0)   # PReLU: numba kernels compile
    model.compile(hp.losses.SoftmaxCrossEntropy(), hp.optimizers.SGD(lr=0.1, momentum=0.9))
    history = model.fit(x, np.arange(16) % 2, epochs=2, batch_size=8, verbose=0)
    from handprop.kernels.numba_cpu import _jit
    print("engine", hp.get_engine(), "cache", _jit.CACHE, "loss", history.history["loss"][-1])
""")


def _interpreter_for(uid):
    """A Python of this version that user ``uid`` can run, or None (root's own Python often lives
    under /root, which other users cannot enter)."""
    candidates = [sys.executable, os.path.realpath(sys.executable), f"/usr/bin/python{sys.version_info[0]}."
                  f"{sys.version_info[1]}", f"/usr/local/bin/python{sys.version_info[0]}.{sys.version_info[1]}"]
    for python in candidates:
        if not os.path.exists(python):
            continue
        try:
            probe = subprocess.run([python, "-c", "import sys; print(sys.version_info[:2])"], user=uid,
                                   capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, cwd="/")
        except PermissionError:
            continue
        if probe.returncode == 0 and probe.stdout.strip() == str(tuple(sys.version_info[:2])):
            return python
    return None


def _make_read_only(path):
    for root, _dirs, files in os.walk(path):
        for name in files:
            os.chmod(os.path.join(root, name), 0o444)
        os.chmod(root, 0o555)


def test_read_only_install_trains_and_says_once_that_it_cannot_cache():
    """The package folder is not writable and there is no writable home, as on a shared
    JupyterHub: Numba's ``cache=True`` used to fail with "no locator available". Root ignores file
    permissions, so as root the copy is run as user ``nobody``."""
    kwargs, python = {}, sys.executable
    if os.geteuid() == 0:
        python = _interpreter_for(NOBODY)
        if python is None:
            pytest.skip("running as root, and user 'nobody' can run no Python of this version")
        kwargs["user"] = NOBODY
    base = Path(tempfile.mkdtemp(prefix="handprop-readonly-"))
    try:
        os.chmod(base, 0o755)
        package = base / "site"
        shutil.copytree(Path(hp.__file__).parent, package / "handprop",
                        ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
        home = base / "home"
        home.mkdir()
        script = base / "train.py"
        script.write_text(READ_ONLY_SCRIPT)
        _make_read_only(base)
        env = {k: v for k, v in os.environ.items()
               if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME", "PYTHONPATH", "HOME")}
        env["HOME"] = str(home)
        env["PYTHONPATH"] = os.pathsep.join([str(package), *site.getsitepackages()])
        env["MPLCONFIGDIR"] = str(home / "matplotlib")  # (not writable either; matplotlib is not imported)
        if kwargs:  # as 'nobody': can it read this environment's packages at all?
            probe = subprocess.run([python, "-c", "import numpy, numba"], capture_output=True, text=True, env=env,
                                   cwd=str(base), timeout=120, **kwargs)
            if probe.returncode != 0:  # e.g. a venv inside a 0700 folder (mktemp -d, /root)
                pytest.skip("running as root, and user 'nobody' cannot import numpy/numba from this environment "
                            f"({probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else 'no output'})")
        run = subprocess.run([python, "-B", str(script), str(package)], capture_output=True, text=True,
                             env=env, cwd=str(base), timeout=300, **kwargs)
    finally:
        for root, _dirs, _files in os.walk(base):
            os.chmod(root, stat.S_IRWXU)
        shutil.rmtree(base)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "engine numba cache False" in run.stdout
    assert run.stderr.count("cannot cache its compiled kernels") == 1, run.stderr
    assert "NUMBA_CACHE_DIR" in run.stderr and "no locator" not in run.stdout


def test_a_writable_checkout_caches():
    from handprop.kernels.numba_cpu import _jit

    assert _jit.CACHE is True


@pytest.fixture
def restore_threads():
    before = threads._engine_threads
    yield
    threads._engine_threads = before
    if threads._blas_limiter is not None:
        threads._blas_limiter.restore_original_limits()
        threads._blas_limiter = None


def test_set_num_threads_sets_numba_and_blas(restore_threads):
    from handprop.kernels.numba_cpu import _pool

    got = hp.set_num_threads(1)
    assert got["numba"] == 1 and _pool.num_threads() == 1
    if threads._have("threadpoolctl"):
        assert got["blas"] == 1
    report = hp.thread_settings()
    assert report["numba"] == 1 and report["numba_max"] >= 1 and "OPENBLAS_CORETYPE" in report["environment"]
    assert all(("openblas" in lib or "mkl" in lib) for lib in report.get("blas_libraries", ["openblas"]))


def test_importing_the_numba_engine_leaves_the_environment_alone():
    """Issue 8: no OMP_WAIT_POLICY (or anything else) set behind the user's back; the engine runs
    no OpenMP pool, so there is nothing to tune (handprop/kernels/numba_cpu/_pool.py)."""
    script = ("import os; before = dict(os.environ); import handprop.kernels.numba_cpu as k; import numpy as np; "
              "y, c = k.conv2d_forward(np.ones((1, 4, 8, 20), np.float32), np.ones((4, 4, 3, 3), np.float32), None, "
              "((1, 1), (1, 1), (1, 1))); assert dict(os.environ) == before, set(os.environ) ^ set(before)")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    run = subprocess.run([sys.executable, "-W", "error", "-c", script], capture_output=True, text=True, env=env,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]


def test_set_num_threads_without_threadpoolctl_says_so(restore_threads, monkeypatch):
    real = threads._have
    monkeypatch.setattr(threads, "_have", lambda module: module != "threadpoolctl" and real(module))
    with pytest.warns(hp.HandpropWarning, match="threadpoolctl is not installed.*OPENBLAS_NUM_THREADS"):
        got = hp.set_num_threads(1)
    assert got == {"numba": 1, "blas": None}


def test_set_num_threads_arguments(restore_threads):
    with pytest.raises(ValueError, match="n must be an int >= 1, got 0"):
        hp.set_num_threads(0)
    with pytest.raises(TypeError, match="n must be an int"):
        hp.set_num_threads(1.5)
    with pytest.raises(ValueError, match="exceeds the numba engine's maximum.*NUMBA_NUM_THREADS"):
        hp.set_num_threads(threads.max_engine_threads() + 1)


def test_make_test_installs_the_pinned_pytorch_reference():
    makefile = (Path(__file__).parents[1] / "Makefile").read_text()
    assert "TORCH_PIN := torch==2.13.0" in makefile
    assert "test: $(TORCH)" in makefile and "pip install --quiet $(TORCH_PIN)" in makefile
