"""What every chapter notebook must respect, read from its source and its committed outputs.

* **The test patients stay out of training.** The test set is looked at once, at the end: an
  array that holds test data is named ``*test*`` and goes only to ``evaluate``, ``predict`` and the
  metrics. A scan of the syntax tree of ``notebooks/source/*.py`` fails if any name containing
  "test" appears in the arguments of a training call (``fit``, ``train_on_batch``,
  ``seg.train_segmenter``: the data, ``validation_data``, the callbacks), or in the body of a
  ``Callback`` subclass (a callback that evaluates on test data monitors training on it).
* **Figures that can be projected.** Every ``image/png`` of a committed lesson is at least
  400 px wide, and their median at least 750 px (``hp.lesson.lecture_style``: 100 dpi).

The scan is deliberately about names: the course's rule is that test arrays are *named* so.
"""

import ast
import base64
import io
import re
import statistics
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "notebooks" / "source").glob("[0-9]*.py"))
LESSONS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
TRAINING_CALLS = {"fit", "fit_generator", "train_on_batch", "train_segmenter", "train_step"}
TEST_NAME = re.compile("test", re.IGNORECASE)
MIN_WIDTH, MIN_MEDIAN_WIDTH = 400, 750


def _called_name(call):
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)


def _names(node):
    """Every identifier used inside ``node``: variable names and attribute names."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            yield sub.id
        elif isinstance(sub, ast.Attribute):
            yield sub.attr


def _is_callback_class(node):
    return isinstance(node, ast.ClassDef) and any("Callback" in ast.unparse(base) for base in node.bases)


def test_data_leaks(source):
    """``(line, what)`` for each place where the code of ``source`` trains or monitors on test data."""
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _called_name(node) in TRAINING_CALLS:
            arguments = [*node.args, *(k.value for k in node.keywords)]
            for name in {n for arg in arguments for n in _names(arg) if TEST_NAME.search(n)}:
                found.append((node.lineno, f"{_called_name(node)}(...) is given {name}"))
        if _is_callback_class(node):
            for name in {n for n in _names(node) if TEST_NAME.search(n)}:
                found.append((node.lineno, f"callback class {node.name} uses {name}"))
    return sorted(found)


test_data_leaks.__test__ = False  # a helper, not a test


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_notebook_trains_or_monitors_on_test_data(path):
    leaks = test_data_leaks(path.read_text())
    assert not leaks, f"{path.name}: the test patients must only be evaluated, once, at the end:\n" + "\n".join(
        f"  line {line}: {what} (train on training data, monitor on validation data)" for line, what in leaks)


def test_the_scan_catches_each_way_of_leaking():
    leaky = (
        "model.fit(x_train, y_train, validation_data=(x_test, y_test))\n"
        "model.fit(data.images[test_ids], y)\n"
        "seg.train_segmenter(unet, x_train, train, x_test, test)\n"
        "model.fit(x, y, callbacks=[PeekAtTest()])\n"
        "class Peek(hp.callbacks.Callback):\n"
        "    def on_epoch_end(self, epoch, logs=None):\n"
        "        logs['acc'] = self.model.evaluate(x_test, y_test)[1]\n")
    lines = {line for line, _ in test_data_leaks(leaky)}
    assert lines == {1, 2, 3, 4, 5}
    clean = ("model.fit(x_train, y_train, validation_data=(x_val, y_val))\n"
             "accuracy = model.evaluate(x_test, y_test)[1]\nscores = model.predict(x_test)\n")
    assert test_data_leaks(clean) == []


def _png_widths(path):
    import nbformat
    from PIL import Image

    widths = []
    for cell in nbformat.read(path, as_version=4).cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" in data:
                with Image.open(io.BytesIO(base64.b64decode(data["image/png"]))) as image:
                    widths.append(image.size[0])
    return widths


def test_committed_figures_are_lecture_sized():
    pytest.importorskip("nbformat")
    pytest.importorskip("PIL")
    widths = {path.name: _png_widths(path) for path in LESSONS}
    narrow = [f"{name}: figure {k} is {w} px wide" for name, ws in widths.items() for k, w in enumerate(ws)
              if w < MIN_WIDTH]
    assert not narrow, f"figures under {MIN_WIDTH} px (rebuild with hp.lesson.lecture_style()):\n" + "\n".join(narrow)
    every = [w for ws in widths.values() for w in ws]
    assert len(every) >= 20, "the lessons should show their figures"
    assert statistics.median(every) >= MIN_MEDIAN_WIDTH, (
        f"median figure width {statistics.median(every)} px < {MIN_MEDIAN_WIDTH}: "
        + ", ".join(f"{name} {sorted(ws)}" for name, ws in widths.items()))
