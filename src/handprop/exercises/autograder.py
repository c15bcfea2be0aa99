"""The autograder: execute a student's notebook in a fresh kernel and grade every task in it.

    python -m handprop.exercises list                            every task and its points
    python -m handprop.exercises grade NOTEBOOK_OR_FOLDER [--json] [--seed S]
    python -m handprop.exercises leaderboard FOLDER [--seed S]   (the project's scores, best first)

``grade`` runs the notebook top to bottom (errors in the student's cells are recorded, not fatal;
a cell that runs past ``--timeout`` seconds is interrupted), then one extra cell per task of that
notebook runs the task's checker on the objects the notebook defined, with the library's own
answer switched off (:mod:`handprop.exercises.grading`). The table says, per task, the points, the
result and the mistake the checker named -- never a traceback. Exit status 1 if any task failed
(or no notebook was found), else 0.

A notebook is recognised by its metadata (``metadata.handprop.notebook``, written by
``notebooks/build.py``) or by a known id in its file name (``smith_A1_batchnorm.ipynb``).
``HANDPROP_QUICK`` is passed on to the kernel; the hidden seed (``--seed``, else
``HANDPROP_GRADE_SEED``) is not: it reaches only the checker cells appended after the student's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from .grading import MARK
from .tasks import NOTEBOOKS, TASKS, notebook_of_name, tasks_of

__all__ = ["notebook_id", "find_notebooks", "execute", "grade_notebook", "grade", "main"]

KERNEL_NAME = "handprop-grader"


def notebook_id(path, nb=None):
    """The notebook id of ``path`` (metadata first, then the file name), or None."""
    if nb is not None:
        found = nb.metadata.get("handprop", {}).get("notebook")
        if found in NOTEBOOKS:
            return found
    return notebook_of_name(Path(path).stem)


def find_notebooks(target):
    """``target`` itself, or every ``*.ipynb`` below a folder (checkpoints skipped), sorted."""
    target = Path(target)
    if target.is_dir():
        return sorted(p for p in target.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    return [target]


def execute(nb, cwd, timeout=600, env_extra=None):
    """Run ``nb`` in a fresh kernel of this Python; errors are kept as outputs and a cell past
    ``timeout`` seconds is interrupted. Returns the notebook with outputs."""
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)
    env.pop("HANDPROP_GRADE_SEED", None)  # the hidden seed reaches the checker only, never the student's cells
    env.update(env_extra or {})
    return run_notebook(nb, cwd, env, timeout, allow_errors=True)


def run_notebook(nb, cwd, env, timeout=600, allow_errors=False):
    """Run ``nb`` top to bottom in a fresh kernel of this very Python (``sys.executable``) with the
    environment ``env``, in the folder ``cwd``; returns it with outputs. ``allow_errors=False``:
    raise ``nbclient.exceptions.CellExecutionError`` at the first error (and at a cell past
    ``timeout`` seconds, which is interrupted); ``True``: keep errors as outputs and go on.

    The kernel spec is our own, written to a temporary folder: a "python3" spec in the user's
    Jupyter folders could point at another Python, without handprop or with another version. Local
    sockets (ipc) instead of TCP ports: nothing listens on the network, and the kernel does not warn
    about unencrypted TCP on stderr. The grader and ``notebooks/build.py`` both run notebooks here.
    """
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient
    from traitlets import default
    from traitlets.config import Config

    env = {**env, "PYDEVD_DISABLE_FILE_VALIDATION": "1"}  # silences a debugger notice on stderr
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp, "kernels", KERNEL_NAME)
        spec.mkdir(parents=True)
        spec.joinpath("kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "handprop (this Python)", "language": "python"}))
        config = Config()
        if os.name == "posix":
            config.KernelManager.transport = "ipc"
            config.KernelManager.ip = os.path.join(tmp, "kernel")

        class ThisPythonKernelManager(AsyncKernelManager):
            @default("kernel_spec_manager")
            def _only_our_spec(self):
                return KernelSpecManager(kernel_dirs=[str(spec.parent)])

        client = NotebookClient(nb, timeout=timeout, kernel_name=KERNEL_NAME, config=config,
                                kernel_manager_class=ThisPythonKernelManager, allow_errors=allow_errors,
                                interrupt_on_timeout=True, resources={"metadata": {"path": str(cwd)}},
                                record_timing=False, store_widget_state=False)
        client.execute(env=env)  # starts a kernel, runs every cell, shuts the kernel down
    return nb


def _unsolved(task, why):
    return {"task": task.id, "notebook": task.notebook, "title": task.title, "points": task.points, "earned": 0,
            "passed": False, "status": "failed", "feedback": why, "mistake": why, "scores": None}


def grade_notebook(path, timeout=600, seed=None, quick=None):
    """Grade one notebook: a list of per-task result dicts (see :func:`handprop.exercises.grading.run_task`)
    plus ``"file"``; an empty list for a notebook with no known tasks."""
    import nbformat

    path = Path(path)
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as error:  # not a notebook: one line, no traceback
        nid = notebook_of_name(path.stem)
        return [dict(_unsolved(t, f"{path.name} could not be read as a notebook: {error}"), file=str(path))
                for t in tasks_of(nid)] if nid else []
    nid = notebook_id(path, nb)
    tasks = tasks_of(nid) if nid else []
    if not tasks:
        return []
    for cell in nb.cells:  # a fresh run: the student's outputs do not count
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    n_student = len(nb.cells)
    if seed is None and os.environ.get("HANDPROP_GRADE_SEED", "").strip():
        seed = int(os.environ["HANDPROP_GRADE_SEED"])
    for task in tasks:
        nb.cells.append(nbformat.v4.new_code_cell(
            f"import handprop.exercises.grading as _handprop_grading\n"
            f"_handprop_grading.emit(globals(), {task.id!r}, seed={seed!r})"))
    env = {}
    if quick is not None:
        env["HANDPROP_QUICK"] = "1" if quick else "0"
    try:
        execute(nb, path.parent, timeout=timeout, env_extra=env)
    except Exception as error:  # the kernel died or would not start
        return [dict(_unsolved(t, f"the notebook could not be executed: {type(error).__name__}: "
                                  f"{str(error).splitlines()[0] if str(error) else ''}"), file=str(path))
                for t in tasks]
    results = []
    for task, cell in zip(tasks, nb.cells[n_student:]):
        found = None
        for output in cell.get("outputs", []):
            text = output.get("text", "") if output.get("output_type") == "stream" else ""
            for line in text.splitlines():
                if line.startswith(MARK):
                    found = json.loads(line[len(MARK):])
        if found is None:
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            why = (f"grading stopped: {errors[0].get('ename')}: {errors[0].get('evalue')}" if errors
                   else "grading this task produced no result (did the kernel die or run out of time?)")
            found = _unsolved(task, why)
        found["file"] = str(path)
        results.append(found)
    return results


def grade(target, timeout=600, seed=None, quick=None):
    """Grade every notebook of ``target``: ``{notebook path: [results]}`` (notebooks without tasks left out)."""
    out = {}
    for path in find_notebooks(target):
        results = grade_notebook(path, timeout=timeout, seed=seed, quick=quick)
        if results:
            out[str(path)] = results
    return out


def _short(text, width):
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def format_table(graded):
    lines = []
    total = earned = 0
    for path, results in graded.items():
        lines.append(f"{path}")
        lines.append(f"  {'task':<30} {'points':>7}  {'result':<8} mistake")
        for r in results:
            total += r["points"]
            earned += r["earned"]
            result = "PASSED" if r["passed"] else ("NOT YET" if r["status"] == "unsolved" else "FAILED")
            mistake = "" if r["passed"] else _short(r["mistake"] or r["feedback"], 240)
            score = ""
            if r.get("scores"):
                score = "  " + ", ".join(f"{k} {v:.4f}" for k, v in r["scores"].items())
            lines.append(f"  {r['task']:<30} {r['earned']:>3}/{r['points']:<3}  {result:<8} {mistake}{score}")
    lines.append(f"total: {earned}/{total} points")
    return "\n".join(lines)


def _list():
    lines = [f"{'task':<30} {'points':>6}  {'notebook':<28} title", "-" * 100]
    for task in TASKS:
        lines.append(f"{task.id:<30} {task.points:>6}  {task.notebook:<28} {task.title}")
    lines.append(f"{len(TASKS)} tasks, {sum(t.points for t in TASKS)} points; "
                 "the pytest marker of a task is task_<task>")
    return "\n".join(lines)


def leaderboard(graded, key="auc"):
    """Rows ``(file, task, score dict)`` of every result with scores, best ``key`` first."""
    rows = [(r["file"], r["task"], r["scores"]) for results in graded.values() for r in results
            if r.get("scores") and key in r["scores"]]
    return sorted(rows, key=lambda row: -float(row[2].get(key, float("-inf"))))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m handprop.exercises", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="every chapter exercise and assignment task, with its points")
    for name in ("grade", "leaderboard"):
        p = sub.add_parser(name, help="grade a notebook or every notebook below a folder" if name == "grade"
                           else "grade a folder of project submissions and rank them")
        p.add_argument("target", help="a notebook, or a folder (every notebook below it)")
        p.add_argument("--seed", type=int, default=None,
                       help="the hidden test patients' seed (else HANDPROP_GRADE_SEED, else the public one)")
        p.add_argument("--timeout", type=int, default=600, help="seconds one cell may run (default 600)")
        p.add_argument("--quick", action="store_true", help="HANDPROP_QUICK=1 in the kernel (smaller runs)")
        if name == "grade":
            p.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = parser.parse_args(argv)
    if args.command == "list":
        print(_list())
        return 0
    try:
        import ipykernel  # noqa: F401
        import nbclient  # noqa: F401
        import nbformat  # noqa: F401
    except ImportError as error:
        print(f"grading runs notebooks in a Jupyter kernel and needs {error.name}: pip install 'handprop[notebooks]'",
              file=sys.stderr)
        return 1
    if not Path(args.target).exists():
        print(f"{args.target}: no such notebook or folder", file=sys.stderr)
        return 1
    start = time.perf_counter()
    graded = grade(args.target, timeout=args.timeout, seed=args.seed, quick=True if args.quick else None)
    if not graded:
        print(f"{args.target}: no notebook with gradable tasks (names: {', '.join(NOTEBOOKS)})", file=sys.stderr)
        return 1
    failed = any(not r["passed"] for results in graded.values() for r in results)
    if args.command == "leaderboard":
        rows = leaderboard(graded)
        print(f"{'rank':<5} {'submission':<60} scores")
        for rank, (file, _task, scores) in enumerate(rows, 1):
            values = ", ".join(f"{k} {v:.4f}" for k, v in scores.items())
            print(f"{rank:<5} {_short(Path(file).name, 60):<60} {values}")
        if not rows:
            print("(no project results)")
        return 0
    if args.json:
        print(json.dumps({"results": graded, "failed": failed, "seconds": round(time.perf_counter() - start, 1)},
                         indent=1))
    else:
        print(format_table(graded))
        print(textwrap.fill(f"graded {len(graded)} notebook(s) in {time.perf_counter() - start:.0f} s", 100))
    return 1 if failed else 0
