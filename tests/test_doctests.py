"""The examples in the docstrings, and on the documentation's "mistakes" page, run as doctests: an
example that no longer works fails here (issue 22)."""

import doctest
import importlib
from pathlib import Path

import pytest

import handprop

PACKAGE = Path(handprop.__file__).parent
ROOT = Path(__file__).resolve().parents[1]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _modules_with_examples():
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if ">>>" in path.read_text(encoding="utf-8"):
            parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


MODULES = _modules_with_examples()


def test_there_are_examples_to_run():
    assert "handprop" in MODULES and "handprop.optimizers" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    tests = [t for t in finder.find(module, name) if t.examples]
    assert tests, f"{name}: '>>>' in the source but no doctest found"
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed (output above)"


def test_the_mistakes_page():
    page = ROOT / "docs" / "mistakes.md"
    if not page.exists():
        pytest.skip("no docs/ here (an installed copy of the tests)")
    result = doctest.testfile(str(page), module_relative=False, optionflags=FLAGS, verbose=False)
    assert result.attempted >= 20 and result.failed == 0, result
