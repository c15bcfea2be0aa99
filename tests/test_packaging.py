"""Packaging (issue 22): one version, package data that covers every data file, Numba and the
compiled safetensors package optional at install time, the build tools out of the runtime
dependencies. CI (.ci/package.sh) builds the wheel and runs it in a fresh venv."""

import fnmatch
import importlib.metadata
import re
from pathlib import Path

import pytest

import handprop as hp

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
tomllib = pytest.importorskip("tomllib")  # Python 3.11+


@pytest.fixture(scope="module")
def project():
    if not PYPROJECT.exists():
        pytest.skip("no pyproject.toml here (an installed copy of the tests)")
    return tomllib.loads(PYPROJECT.read_text())


def test_the_version_has_one_place(project):
    assert "version" in project["project"]["dynamic"] and "version" not in project["project"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "handprop._version.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+(?:\.dev\d+|rc\d+)?", hp.__version__)
    try:
        installed = importlib.metadata.version("handprop")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("handprop is not installed here (only on the path)")
    assert installed == hp.__version__
    assert f"## {hp.__version__}" in (ROOT / "CHANGELOG.md").read_text()


def test_package_data_covers_every_data_file(project):
    patterns = project["tool"]["setuptools"]["package-data"]["handprop"]
    package = ROOT / "src" / "handprop"
    data = [p.relative_to(package).as_posix() for p in package.rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
            and not p.name.endswith((".nbi", ".nbc"))]
    assert data, "no data files found"
    missing = [f for f in data if not any(fnmatch.fnmatch(f, pattern) for pattern in patterns)]
    assert not missing, f"files the wheel would leave out (add them to [tool.setuptools.package-data]): {missing}"


def test_numba_is_optional_and_the_build_tools_are_not_runtime_dependencies(project):
    deps = project["project"]["dependencies"]
    numba = [d for d in deps if d.startswith("numba")]
    assert numba and all("platform_system != 'Emscripten'" in d for d in numba)
    assert not any(d.startswith(("safetensors", "build", "twine", "sphinx", "torch")) for d in deps)
    extras = project["project"]["optional-dependencies"]
    assert {"build", "twine"} <= {re.split(r"[<>=; \[]", d)[0] for d in extras["release"]}
    assert {"sphinx", "myst-nb"} <= {re.split(r"[<>=; \[]", d)[0] for d in extras["docs"]}
    urls = project["project"]["urls"]
    assert urls["Release"].startswith(urls["Repository"].rstrip("/") + "/tree/")
