"""Build the chapter notebooks from their sources, execute them, and check their outputs.

Sources: ``notebooks/source/NN_name.py``, in the "percent" cell format (as Jupytext, VS Code
and Spyder read it)::

    # %% [markdown]
    # # A title, then Markdown, each line behind "# "
    # %%
    code
    # %% tags=["figure"]
    hp.viz.plot_history(history)

Each source gives two notebooks:

* ``notebooks/NN_name.ipynb``: the lesson, every cell except those tagged ``solution``;
* ``notebooks/solutions/NN_name_solutions.ipynb``: a title, the cells tagged ``setup``, and the
  exercise section (from the cell tagged ``exercises`` to the end) with each ``exercise`` cell
  (the student's placeholder) replaced by the ``solution`` cell that follows it.

Both start with two generated cells (:func:`opening_cells`), so that a notebook opens anywhere: an
"Open in Colab" badge, and an install cell that installs handprop only where it is missing (a
no-op in the repository's environment). The repository and the release they point at come from
``[project.urls]`` in ``pyproject.toml`` (``Repository`` and ``Release``), the one place to change
when the repository is published or a release is tagged.

Tags and what the checks require of an executed notebook (:func:`check_outputs`):

* ``figure``: the cell shows at least one ``image/png``. A cell whose last statement is a bare
  ``hp.viz.plot_*(...)`` call counts as tagged; ``animation`` (or a bare ``hp.viz.animate_*``)
  asks for an ``image/gif``.
* ``check``: a checker cell; in a solutions notebook its verdict must start with ``PASSED``, in a
  lesson (placeholders unwritten) with ``NOT YET``.
* ``thumbnail``: one figure cell per lesson, saved small as ``notebooks/thumbnails/NN_name.png``
  for the README.
* Every cell: no error, nothing on stderr (warnings included), no image shown twice.

Assignments (``source/assignments/A1_name.py``, the same tags) give
``notebooks/assignments/A1_name.ipynb`` and ``notebooks/solutions/A1_name_solutions.ipynb``. Every
built notebook records its id in ``metadata.handprop.notebook`` (how the autograder,
``python -m handprop.exercises grade``, knows which tasks it holds).

The student release (``make student``) writes loose notebooks to ``student/``: every lesson and
assignment without its solution cells (the executed lesson when the committed copy matches its
source, else the unexecuted build), and no solutions notebook.

Usage (``make notebooks`` runs the first)::

    python notebooks/build.py               # build and execute every notebook in place (full mode)
    python notebooks/build.py --quick 02    # a trial run in quick mode (HANDPROP_QUICK=1), not saved
    python notebooks/build.py 01 04         # build and execute only chapters 1 and 4 (full mode)
    python notebooks/build.py --check       # only compare the committed notebooks with their sources
    python notebooks/build.py --student student   # the release without solutions
    python notebooks/build.py --jupyterlite DIR   # the notebooks for a JupyterLite site (make lite)
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import sys
import time
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "source"
SOLUTIONS = HERE / "solutions"
ASSIGNMENT_SOURCES = SOURCES / "assignments"
ASSIGNMENTS = HERE / "assignments"
THUMBNAILS = HERE / "thumbnails"
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
_HEADER = re.compile(r"^# %%(?P<markdown> \[markdown\])?(?: tags=(?P<tags>\[.*\]))?\s*$")


# ---------------------------------------------------------------------------------------- sources
def parse_source(path):
    """The cells of a percent-format file: a list of ``nbformat`` cells with their tags."""
    cells, kind, tags, lines = [], None, [], []

    def flush():
        if kind is None:
            return
        while lines and not lines[-1].strip():
            lines.pop()
        while lines and not lines[0].strip():
            lines.pop(0)
        if kind == "markdown":
            text = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in lines)
            cell = nbformat.v4.new_markdown_cell(text)
        else:
            cell = nbformat.v4.new_code_cell("\n".join(lines))
        if tags:
            cell.metadata["tags"] = list(tags)
        cells.append(cell)

    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        match = _HEADER.match(line)
        if match:
            flush()
            kind = "markdown" if match["markdown"] else "code"
            tags = json.loads(match["tags"]) if match["tags"] else []
            lines = []
        elif kind is None:
            if line.strip():
                raise ValueError(f"{path}:{number}: text before the first '# %%' cell marker")
        else:
            lines.append(line)
    flush()
    return cells


# --------------------------------------------------------------------------------- opening cells
PYPROJECT = HERE.parent / "pyproject.toml"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"


def _project_urls(text):
    """The ``[project.urls]`` table of pyproject.toml (tomllib from Python 3.11; before it, its
    ``Key = "value"`` lines, which is all that table holds)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        section = re.search(r"^\[project\.urls\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
        return dict(re.findall(r'^\s*([\w.-]+)\s*=\s*"([^"]*)"', section[1] if section else "", re.M))
    return tomllib.loads(text)["project"]["urls"]


def release():
    """``(owner/name on GitHub, release tag)`` from ``[project.urls]`` in pyproject.toml: ``Repository``
    is ``https://github.com/OWNER/NAME``, ``Release`` is ``.../tree/TAG``."""
    urls = _project_urls(PYPROJECT.read_text())
    match = re.fullmatch(r"https://github\.com/([\w.-]+/[\w.-]+?)(?:\.git)?/?", urls["Repository"])
    if match is None:
        raise ValueError(f"{PYPROJECT.name}: [project.urls] Repository must be https://github.com/OWNER/NAME "
                         f"(the Colab badges open notebooks from GitHub), got {urls['Repository']!r}")
    tag = re.fullmatch(rf"{re.escape(urls['Repository'].rstrip('/'))}/tree/([\w.\-/]+)", urls["Release"])
    if tag is None:
        raise ValueError(f"{PYPROJECT.name}: [project.urls] Release must be {urls['Repository']}/tree/TAG, "
                         f"got {urls['Release']!r}")
    return match[1], tag[1]


def install_requirement():
    """What the install cell gives to pip: this release of handprop, from its git tag."""
    repository, tag = release()
    return f"handprop @ git+https://github.com/{repository}@{tag}"


def opening_cells(notebook_path):
    """The two cells every notebook starts with: an "Open in Colab" badge (Markdown), and a code cell
    that installs handprop where it is missing -- Colab, a fresh Jupyter -- and does nothing where it
    is installed (this repository's ``.venv``). Plain Python (no ``%pip`` magic), so that a grader
    or linter that reads the cells as a script can run it too."""
    repository, tag = release()
    where = Path(notebook_path).resolve().relative_to(HERE.parent).as_posix()
    badge = nbformat.v4.new_markdown_cell(
        f"[![Open In Colab]({COLAB_BADGE})](https://colab.research.google.com/github/{repository}/blob/{tag}/{where})"
        "  \nIn Colab or a Jupyter without handprop, the next cell installs it first (nothing happens "
        "where it is installed already).")
    install = nbformat.v4.new_code_cell(
        "# Install handprop where it is missing (Colab, a fresh Jupyter); a no-op where it is installed.\n"
        "import importlib.util\n"
        "import subprocess\n"
        "import sys\n"
        "\n"
        "if importlib.util.find_spec(\"handprop\") is None:\n"
        f"    subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"--quiet\", \"{install_requirement()}\"], "
        "check=True)")
    badge.metadata["tags"] = ["open-anywhere"]
    install.metadata["tags"] = ["open-anywhere"]
    return [badge, install]


def jupyterlite_notebook(nb):
    """A copy of a notebook for a JupyterLite site (Pyodide in the browser): its opening cells
    replaced by one that installs handprop with ``%pip`` where it is missing -- JupyterLite's kernel
    turns that into ``piplite``, which installs the wheel the site was built with (``make lite``).
    Pyodide has no subprocess and no Numba: handprop runs there on the numpy engine."""
    lite = nbformat.reads(nbformat.writes(nb), as_version=4)  # a deep copy
    lite.cells = [c for c in lite.cells if "open-anywhere" not in _tags(c)]
    install = nbformat.v4.new_code_cell(
        "# JupyterLite: install handprop from this site's wheel where it is missing (numpy engine, no Numba).\n"
        "import importlib.util\n"
        "\n"
        "if importlib.util.find_spec(\"handprop\") is None:\n"
        "    %pip install -q handprop")
    install.metadata["tags"] = ["open-anywhere"]
    install["id"] = "jupyterlite-install"
    lite.cells.insert(0, install)
    return lite


def write_jupyterlite_contents(folder):
    """The lessons and their solutions, as committed (with outputs), for ``jupyter lite build --contents``."""
    folder = Path(folder)
    for path in all_notebooks():
        target = folder / path.relative_to(HERE)
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(jupyterlite_notebook(nbformat.read(path, as_version=4)), target)
        print(f"{target}: for JupyterLite")


def _tags(cell):
    return set(cell.metadata.get("tags", []))


def _notebook(cells, notebook_id=None):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    if notebook_id:
        nb.metadata["handprop"] = {"notebook": notebook_id}  # read by the autograder
    nb.cells = [nbformat.from_dict(cell) for cell in cells]  # copies
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:03d}"  # stable ids: rebuilding does not churn the diff
    return nb


def lesson_notebook(cells, notebook_id=None, path=None):
    """The lesson: every cell but the solutions (after the opening cells when ``path`` is given)."""
    opening = opening_cells(path) if path is not None else []
    return _notebook([*opening, *(c for c in cells if "solution" not in _tags(c))], notebook_id)


def solutions_notebook(cells, source_name, path=None):
    start = next((i for i, c in enumerate(cells) if "exercises" in _tags(c)), None)
    if start is None:
        raise ValueError(f"{source_name}: no cell tagged 'exercises' (where the exercise section starts)")
    title = cells[0].source.splitlines()[0].lstrip("# ").strip() if cells[0].cell_type == "markdown" else source_name
    head = nbformat.v4.new_markdown_cell(
        f"# Worked solutions: {title}\n\nThe exercises of `{source_name}.ipynb` with a worked answer in place of "
        "each placeholder; every checker below should say **PASSED**. Try them yourself first!")
    body = [c for c in cells[:start] if "setup" in _tags(c)]
    body += [c for c in cells[start:] if "exercise" not in _tags(c)]
    opening = opening_cells(path) if path is not None else []
    return _notebook([*opening, head, *body], source_name)


def is_assignment(source):
    return Path(source).parent == ASSIGNMENT_SOURCES


def targets(source):
    """``(lesson path, solutions path)`` of a source file."""
    folder = ASSIGNMENTS if is_assignment(source) else HERE
    return folder / f"{source.stem}.ipynb", SOLUTIONS / f"{source.stem}_solutions.ipynb"


def build(source):
    """The two notebooks of one source, unexecuted: ``{path: notebook}``."""
    cells = parse_source(source)
    lesson, solutions = targets(source)
    return {lesson: lesson_notebook(cells, source.stem, lesson),
            solutions: solutions_notebook(cells, source.stem, solutions)}


def sources(pattern=None):
    """The chapter sources, then the assignments' (``A1_...``)."""
    found = sorted(SOURCES.glob("[0-9]*.py")) + sorted(ASSIGNMENT_SOURCES.glob("A[0-9]*.py"))
    return [p for p in found if pattern is None or pattern in p.stem]


def all_notebooks():
    """Every notebook the repository has (committed or not), lessons first."""
    return sorted(HERE.glob("*.ipynb")) + sorted(ASSIGNMENTS.glob("*.ipynb")) + sorted(SOLUTIONS.glob("*.ipynb"))


def solution_code(cells):
    """The code lines of the cells tagged ``solution`` that are not also in another cell (what a
    student release must not contain)."""
    other = {line.strip() for c in cells if "solution" not in _tags(c) for line in c.source.splitlines()}
    return {line.strip() for c in cells if "solution" in _tags(c) for line in c.source.splitlines()
            if line.strip() and not line.strip().startswith("#") and line.strip() not in other}


def write_student_release(out):
    """Write every lesson and assignment without solutions to ``out`` (chapters at the top, the
    assignments in ``out/assignments``); returns the paths written. The executed lesson is used
    when the committed copy has the same cells as its source (students see the figures), else the
    unexecuted build."""
    out = Path(out)
    written = []
    for source in sources():
        lesson_path, _ = targets(source)
        nb = build(source)[lesson_path]
        if lesson_path.exists():
            committed = nbformat.read(lesson_path, as_version=4)
            if same_cells(committed, nb):
                committed.metadata["handprop"] = dict(nb.metadata["handprop"])
                nb = committed
        target = out / lesson_path.relative_to(HERE)
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
        written.append(target)
    return written


def same_cells(a, b):
    """True when two notebooks have the same cells (type, source, tags), outputs ignored."""
    def key(nb):
        return [(c.cell_type, c.source, sorted(_tags(c))) for c in nb.cells]
    return key(a) == key(b)


# -------------------------------------------------------------------------------------- execution
def execute(nb, cwd=HERE, quick=False, timeout=600):
    """Run ``nb`` top to bottom in a fresh kernel of this very Python (sys.executable); returns it with outputs.

    The kernel gets ``HANDPROP_QUICK=1`` in quick mode and no ``MPLBACKEND`` (so matplotlib picks
    the inline backend, as in a user's Jupyter). Raises ``nbclient.exceptions.CellExecutionError``
    on the first error. The kernel runner is the autograder's
    (:func:`handprop.exercises.autograder.run_notebook`).
    """
    from handprop.exercises.autograder import run_notebook

    env = dict(os.environ)
    env.pop("MPLBACKEND", None)
    env["HANDPROP_QUICK"] = "1" if quick else "0"
    # hp.lesson.Results.save writes notebooks/results/<chapter>.json (what tests/test_claims.py
    # reads) in the committed full-mode run only.
    env.pop("HANDPROP_RESULTS_DIR", None)
    if not quick:
        env["HANDPROP_RESULTS_DIR"] = str(HERE / "results")
    run_notebook(nb, cwd, env, timeout)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)  # what a reader's Jupyter should use
    nb.metadata.pop("widgets", None)
    return nb


def _last_statement_call(source):
    """``"hp.viz.plot_history"``-style dotted name of the call that is a cell's last statement, or None."""
    try:
        body = ast.parse(source).body
    except SyntaxError:  # IPython magics
        return None
    if not body or not isinstance(body[-1], ast.Expr) or not isinstance(body[-1].value, ast.Call):
        return None
    try:
        return ast.unparse(body[-1].value.func)
    except Exception:  # pragma: no cover - ast.unparse handles every expression
        return None


def cell_kind(cell):
    """``"figure"``, ``"animation"`` or None: what the notebook checks require the cell to show."""
    tags = _tags(cell)
    if "animation" in tags:
        return "animation"
    if "figure" in tags:
        return "figure"
    call = _last_statement_call(cell.source) or ""
    if call.startswith("hp.viz.animate_"):
        return "animation"
    if call.startswith("hp.viz.plot_"):
        return "figure"
    return None


def _mime(cell, mime):
    return [o["data"][mime] for o in cell.get("outputs", []) if mime in o.get("data", {})]


def _text(output):
    if output.get("output_type") == "stream":
        return output.get("text", "")
    return output.get("data", {}).get("text/plain", "")


def check_outputs(nb, solutions):
    """Problems in an executed notebook (an empty list when it is fine); see the module docstring."""
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        where = f"cell {i} ({cell.source.strip().splitlines()[0][:60] if cell.source.strip() else 'empty'!r})"
        outputs = cell.get("outputs", [])
        for output in outputs:
            if output.get("output_type") == "error":
                problems.append(f"{where}: {output.get('ename')}: {output.get('evalue')}")
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                problems.append(f"{where}: wrote to stderr: {output.get('text', '')[:300]!r}")
        kind = cell_kind(cell)
        if kind == "figure" and not _mime(cell, "image/png"):
            problems.append(f"{where}: draws a figure but shows no image/png")
        if kind == "animation" and not _mime(cell, "image/gif"):
            problems.append(f"{where}: makes an animation but shows no image/gif")
        images = _mime(cell, "image/png") + _mime(cell, "image/gif")
        if len(images) != len(set(images)):
            problems.append(f"{where}: shows the same image twice")
        if "check" in _tags(cell):
            verdicts = [_text(o) for o in outputs if _text(o).startswith(("PASSED", "NOT YET"))]
            want = "PASSED" if solutions else "NOT YET"
            if not verdicts or not all(v.startswith(want) for v in verdicts):
                problems.append(f"{where}: a checker cell should say {want}, got {verdicts or 'no verdict'}")
    return problems


def size_kb(path):
    return Path(path).stat().st_size / 1024


def thumbnail_path(lesson_path):
    return THUMBNAILS / f"{Path(lesson_path).stem}.png"


def write_thumbnail(nb, lesson_path, width=360):
    """Save the first image of the cell tagged ``thumbnail`` as a small PNG for the README; its path."""
    import base64
    import io

    from PIL import Image

    for cell in nb.cells:
        if "thumbnail" in _tags(cell):
            images = _mime(cell, "image/png")
            if not images:
                raise ValueError(f"{lesson_path.name}: the cell tagged 'thumbnail' shows no image/png")
            with Image.open(io.BytesIO(base64.b64decode(images[0]))) as image:
                image = image.convert("RGB")
                image.thumbnail((width, width))
                path = thumbnail_path(lesson_path)
                path.parent.mkdir(exist_ok=True)
                image.save(path, optimize=True)
                return path
    raise ValueError(f"{lesson_path.name}: no cell tagged 'thumbnail' (the figure shown in the README)")


# ------------------------------------------------------------------------------------------ main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pattern", nargs="*", help="only sources whose name contains one of these, e.g. 02 04")
    parser.add_argument("--quick", action="store_true",
                        help="HANDPROP_QUICK=1 (smaller runs, as the tests); a trial run, nothing is saved")
    parser.add_argument("--check", action="store_true", help="only check that the committed notebooks match")
    parser.add_argument("--student", metavar="DIR", help="write the student release (no solutions) to DIR")
    parser.add_argument("--jupyterlite", metavar="DIR",
                        help="write the committed notebooks, with JupyterLite's install cell, into DIR (make lite)")
    args = parser.parse_args(argv)
    if args.student:
        written = write_student_release(args.student)
        print(f"{args.student}: {len(written)} notebooks without solutions "
              f"({', '.join(str(p.relative_to(args.student)) for p in written)})")
        return 0
    if args.jupyterlite:
        write_jupyterlite_contents(args.jupyterlite)
        return 0
    failed = False
    chosen = [s for s in sources() if not args.pattern or any(p in s.stem for p in args.pattern)]
    for source in chosen:
        for path, nb in build(source).items():
            name = path.relative_to(HERE)
            if args.check:
                ok = path.exists() and same_cells(nbformat.read(path, as_version=4), nb)
                print(f"{name}: {'matches its source' if ok else 'OUT OF DATE: run make notebooks'}")
                failed |= not ok
                continue
            start = time.perf_counter()
            execute(nb, quick=args.quick)
            seconds = time.perf_counter() - start
            problems = check_outputs(nb, solutions=path.parent == SOLUTIONS)
            if args.quick:  # a trial run: the committed copies keep their full-mode outputs
                saved = "not saved"
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                nbformat.write(nb, path)
                if path.parent == HERE:
                    write_thumbnail(nb, path)
                saved = f"saved, {size_kb(path):.0f} KB"
            print(f"{name}: executed in {seconds:.1f} s ({'quick' if args.quick else 'full'} mode), {saved}"
                  + "".join(f"\n  PROBLEM {p}" for p in problems))
            failed |= bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
