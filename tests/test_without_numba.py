"""Numba (and the compiled safetensors package) are optional: where they are missing -- Pyodide /
JupyterLite, some Windows and conda setups -- handprop imports, says once on stderr that the
default engine is ``numpy``, trains to the same numbers as the ``numba`` engine (to rounding), and
saves and loads models. Simulated in a subprocess whose ``sitecustomize`` refuses to import them."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import handprop as hp
from handprop.backend import NO_NUMBA_NOTICE

BLOCKER = textwrap.dedent('''
    import sys
    BLOCKED = {"numba", "safetensors"}

    class RefuseBlocked:
        """An import hook that makes the blocked packages look uninstalled."""
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
            return None

    sys.meta_path.insert(0, RefuseBlocked())
''')

TRAIN = textwrap.dedent('''
    import json, sys, warnings
    warnings.simplefilter("error")
    import numpy as np
    import handprop as hp
    L = hp.layers
    if len(sys.argv) > 2:
        hp.set_engine(sys.argv[2])
    rng = np.random.default_rng(0)
    x = rng.random((16, 1, 10, 10)).astype(np.float32)
    y = np.arange(16) % 2
    model = hp.Sequential([L.Conv2D(4, 3, padding="same"), L.PReLU(), L.MaxPool2D(), L.Conv2D(4, 3), L.ReLU(),
                           L.Flatten(), L.Dense(2)], seed=0)
    model.compile(hp.losses.SoftmaxCrossEntropy(), hp.optimizers.SGD(lr=0.05, momentum=0.9))
    history = model.fit(x, y, epochs=3, batch_size=8, verbose=0)
    model.save(sys.argv[1])
    again = hp.load_model(sys.argv[1])
    same = all(np.array_equal(a, b) for a, b in zip(model.get_weights().values(), again.get_weights().values()))
    print(json.dumps({"engine": hp.get_engine(), "loss": history.history["loss"], "reloaded_same": same,
                      "numba_imported": "numba" in sys.modules, "safetensors_imported": "safetensors" in sys.modules,
                      "threads": hp.get_num_threads()}))
''')


def _run(tmp_path, block, *args):
    folder = tmp_path / ("blocked" if block else "plain")
    folder.mkdir()
    (folder / "train.py").write_text(TRAIN)
    paths = [os.path.dirname(os.path.dirname(hp.__file__))]
    if block:
        (folder / "sitecustomize.py").write_text(BLOCKER)
        paths.insert(0, str(folder))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    run = subprocess.run([sys.executable, "-W", "error", str(folder / "train.py"), str(folder / "m.safetensors"),
                          *args], capture_output=True, text=True, env=env, cwd=str(folder), timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1]), run.stderr


def test_without_numba_handprop_says_numpy_once_trains_the_same_and_saves(tmp_path):
    got, stderr = _run(tmp_path, True)
    assert got["engine"] == "numpy"
    assert not got["numba_imported"] and not got["safetensors_imported"]
    assert stderr.count(NO_NUMBA_NOTICE) == 1, stderr
    assert "Warning" not in stderr and "Traceback" not in stderr, stderr  # a line, not a warning
    assert got["reloaded_same"]
    assert got["threads"]["numba"] is None
    if not hp.backend.numba_available():
        pytest.skip("Numba is not installed here: no numba run to compare with")
    reference, stderr = _run(tmp_path, False, "numba")
    assert NO_NUMBA_NOTICE not in stderr
    assert reference["engine"] == "numba"
    np.testing.assert_allclose(got["loss"], reference["loss"], rtol=1e-5, atol=1e-6)


def test_the_notice_is_not_printed_where_numba_is_installed():
    if not hp.backend.numba_available():
        pytest.skip("Numba is not installed here")
    run = subprocess.run([sys.executable, "-c", "import handprop"], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(hp.__file__))})
    assert run.returncode == 0 and NO_NUMBA_NOTICE not in run.stderr, run.stderr


def test_numba_available_is_false_for_a_refused_import(monkeypatch):
    monkeypatch.setitem(sys.modules, "numba", None)  # what `import numba` then refuses
    assert hp.backend.numba_available() is False
    assert hp.backend.default_engine() == "numpy"
    with pytest.raises(RuntimeError, match="engine 'numba' needs the numba package"):
        hp.set_engine("numba")
