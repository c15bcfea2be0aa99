"""Grading machinery: switch the library's own answer off while a student's code runs, and run a
notebook's tasks on the student's objects.

**The library is open**, so "write ``batchnorm_backward``" could be answered with
``return handprop.layers.normalization.batchnorm_backward(dy, cache)``. While a checker calls the
student's code, every library function that answers the task (:attr:`Task.disables`, e.g.
``"handprop.layers.normalization:batchnorm_backward"`` or a method ``"handprop.losses:
SoftmaxCrossEntropy.backward"``) is replaced by a stand-in that raises :class:`LibraryDisabled`
*when called from inside the student's code* (through a layer too: the layer looks its pair up at
call time) and otherwise calls the original, so the checker itself can still compute the expected
answer with it::

    with disabled(task.disables):              # the stand-ins are in place
        result = checker(as_student(answer))   # student code runs with the library switched off

A name the student bound before grading (``from ... import batchnorm_backward as lib``) is the
original object and is not caught; the grader documents that limit instead of inspecting source.

:func:`emit` is what the autograder appends to an executed notebook: it runs one task's checker on
the objects the notebook defined and prints one line ``HANDPROP-GRADE {json}``.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import json
import threading

__all__ = ["LibraryDisabled", "disabled", "as_student", "student_running", "grades", "run_task", "emit", "MARK"]

MARK = "HANDPROP-GRADE "
_state = threading.local()


class LibraryDisabled(RuntimeError):
    """Raised by a switched-off library function called from a student's answer."""


def student_running() -> bool:
    """True while a function wrapped by :func:`as_student` runs (in this thread)."""
    return getattr(_state, "depth", 0) > 0


def as_student(function):
    """``function`` wrapped so that, while it runs, the switched-off library functions refuse to
    work. Anything but a function or method (a number, a model the notebook trained) is returned
    as it is."""
    if not (inspect.isfunction(function) or inspect.ismethod(function)) or getattr(function, "_handprop_student",
                                                                                      False):
        return function

    @functools.wraps(function)
    def student(*args, **kwargs):
        _state.depth = getattr(_state, "depth", 0) + 1
        try:
            return function(*args, **kwargs)
        finally:
            _state.depth -= 1

    student._handprop_student = True
    return student


def _resolve(target):
    """``"pkg.module:attr"`` or ``"pkg.module:Class.attr"`` -> (owner object, attribute name)."""
    module_name, _, path = target.partition(":")
    owner = importlib.import_module(module_name)
    *parents, attr = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    return owner, attr


def _stand_in(original, target):
    name = target.partition(":")[2]

    @functools.wraps(original)
    def switched_off(*args, **kwargs):
        if student_running():
            raise LibraryDisabled(
                f"handprop's own {name} is switched off while your answer is graded: an answer that calls "
                "the library is not yours. Write the computation yourself")
        return original(*args, **kwargs)

    switched_off._handprop_original = original
    return switched_off


@contextlib.contextmanager
def disabled(targets):
    """Replace each target (see the module docstring) by a stand-in for the duration of the block;
    targets whose module cannot be imported (e.g. an engine whose library is missing) are skipped."""
    saved = []
    try:
        for target in targets:
            try:
                owner, attr = _resolve(target)
            except (ImportError, AttributeError):
                continue
            own = attr in vars(owner) if isinstance(owner, type) else True
            original = getattr(owner, attr)
            if getattr(original, "_handprop_original", None) is not None:
                continue  # already switched off by an enclosing block
            saved.append((owner, attr, original, own))
            setattr(owner, attr, _stand_in(original, target))
        yield
    finally:
        for owner, attr, original, own in reversed(saved):
            if own:
                setattr(owner, attr, original)
            else:
                delattr(owner, attr)  # an inherited method: remove the class's own stand-in


def grades(task_id):
    """Decorator for a checker: while it runs, the library functions of task ``task_id`` are
    switched off for the student's code (so a notebook's checker cell rejects a library-calling
    answer as the autograder does)."""
    def decorate(checker):
        @functools.wraps(checker)
        def checked(*args, **kwargs):
            from .tasks import task_by_id

            with disabled(task_by_id(task_id).disables):
                return checker(*args, **kwargs)
        return checked
    return decorate


def run_task(task, namespace):
    """Grade one :class:`~handprop.exercises.tasks.Task` on ``namespace`` (a notebook's globals).

    Returns a dict: ``task``, ``points``, ``earned``, ``passed``, ``status`` (``passed``,
    ``unsolved``: a placeholder or a missing name, ``failed``), ``feedback`` (the checker's text)
    and ``mistake`` (its hint, or its first finding), and ``scores`` for a project.
    """
    from .result import CheckResult

    out = {"task": task.id, "notebook": task.notebook, "title": task.title, "points": task.points,
           "earned": 0, "passed": False, "status": "failed", "feedback": "", "mistake": "", "scores": None}
    missing = [name for name in task.names if name not in namespace]
    if missing:
        out.update(status="unsolved", mistake=f"`{missing[0]}` is not defined: run (or restore) the cell that "
                                              "defines it", feedback=f"NOT YET: {task.title}")
        return out
    args = [as_student(namespace[name]) for name in task.names]
    try:
        with disabled(task.disables):
            result = task.checker()(*args)
    except Exception as error:  # a checker must not crash the grade; say what happened, no traceback
        result = CheckResult(task.title, False, [f"the checker could not grade this answer: "
                                                 f"{type(error).__name__}: {error}"])
    text = str(result)
    passed = bool(result)
    out.update(passed=passed, earned=task.points if passed else 0, feedback=text,
               scores=getattr(result, "scores", None))
    if not passed:
        out["status"] = "unsolved" if "not written yet" in text or "not trained yet" in text else "failed"
        out["mistake"] = result.hint or next(iter(result.findings[-1:]), "") if isinstance(result, CheckResult) \
            else text
    else:
        out["status"] = "passed"
    return out


def emit(namespace, task_id, seed=None):
    """Grade ``task_id`` on ``namespace`` and print the result as one ``HANDPROP-GRADE {json}`` line.
    ``seed``: the hidden test seed, set as ``HANDPROP_GRADE_SEED`` for this checker only."""
    import os

    from .tasks import task_by_id

    saved = os.environ.get("HANDPROP_GRADE_SEED")
    if seed is not None:
        os.environ["HANDPROP_GRADE_SEED"] = str(seed)
    try:
        result = run_task(task_by_id(task_id), namespace)
    finally:
        if seed is not None:
            if saved is None:
                del os.environ["HANDPROP_GRADE_SEED"]
            else:
                os.environ["HANDPROP_GRADE_SEED"] = saved
    print(MARK + json.dumps(result, default=float))
