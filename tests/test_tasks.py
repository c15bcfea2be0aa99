"""One test per gradable task, marked ``task_<id>`` (MiniTorch style, for GitHub Classroom):

    pytest -m task_bn_backward                                    # grades the worked solutions
    HANDPROP_SUBMISSION=path/to/notebooks pytest -m task_bn_backward tests/test_tasks.py

``HANDPROP_SUBMISSION`` is a notebook or a folder (every notebook below it); each notebook is
executed once, in quick mode, by the autograder (:mod:`handprop.exercises.autograder`), and a task
passes when its checker passed. A task whose notebook is not in the submission is skipped. The
markers are registered in ``tests/conftest.py`` from :data:`handprop.exercises.tasks.TASKS`.
"""

import os
from pathlib import Path

import pytest

from handprop.exercises import autograder
from handprop.exercises.tasks import TASKS, notebook_of_name

pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
SUBMISSION = Path(os.environ.get("HANDPROP_SUBMISSION", ROOT / "notebooks" / "solutions"))
_graded = {}


def _results(notebook):
    """The results of the submission's notebook with id ``notebook`` (graded once per session)."""
    if notebook not in _graded:
        _graded[notebook] = None
        for path in autograder.find_notebooks(SUBMISSION):
            if notebook_of_name(path.stem) == notebook or path.suffix == ".ipynb" and \
                    autograder.notebook_id(path, _read(path)) == notebook:
                _graded[notebook] = {r["task"]: r for r in autograder.grade_notebook(path, quick=True)}
                break
    return _graded[notebook]


def _read(path):
    import nbformat

    try:
        return nbformat.read(path, as_version=4)
    except (OSError, ValueError):  # unreadable or not a notebook (NotJSONError is a ValueError): named by its file
        return None


@pytest.mark.slow
@pytest.mark.notebooks
@pytest.mark.parametrize("task", [pytest.param(t, id=t.id, marks=getattr(pytest.mark, f"task_{t.id}"))
                                  for t in TASKS])
def test_task(task):
    results = _results(task.notebook)
    if results is None:
        pytest.skip(f"no {task.notebook} notebook in {SUBMISSION}")
    result = results[task.id]
    assert result["passed"], f"{task.id}: {result['mistake'] or result['feedback']}"
    assert result["earned"] == task.points
