"""The notebooks run top to bottom in a fresh Jupyter kernel and show their figures.

* Every notebook in ``notebooks/`` and ``notebooks/solutions/`` is executed in quick mode
  (``HANDPROP_QUICK=1``) in a new ipykernel of this Python, and its outputs are checked by the
  rules of ``notebooks/build.py`` (:func:`check_outputs`): no error and nothing on stderr; a cell
  tagged ``figure``, or whose last statement is a bare ``hp.viz.plot_*(...)`` call, shows an
  ``image/png``; an ``animation`` cell an ``image/gif``; no image twice; checker cells say
  ``PASSED`` in the solutions and ``NOT YET`` (placeholders) in the lessons.
* The committed notebooks match their sources (``notebooks/source/*.py``), were executed (with
  outputs, so a repository browser shows them) and stay small.
* In a real kernel every ``hp.viz`` figure displays exactly once as a cell's last value, before
  and after the inline backend is active, and ``tqdm.auto`` gives a widget without a warning.

Run only these with ``pytest -m notebooks``; skip them with ``-m "not notebooks"``.
"""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("notebook_build", ROOT / "notebooks" / "build.py")
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)

pytestmark = pytest.mark.notebooks
MAX_KB = 1100  # a committed notebook, outputs included


def _name(path):
    return str(path.relative_to(build.HERE))


@pytest.mark.parametrize("path", build.all_notebooks(), ids=_name)
def test_notebook_runs_and_shows_its_figures(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    build.execute(nb, quick=True)
    problems = build.check_outputs(nb, solutions=path.parent == build.SOLUTIONS)
    assert not problems, f"{_name(path)}:\n" + "\n".join(problems)


def test_committed_notebooks_match_their_sources_and_were_executed():
    expected = set()
    for source in build.sources():
        for path, nb in build.build(source).items():
            expected.add(path)
            assert path.exists(), f"{_name(path)} is missing: run make notebooks"
            committed = nbformat.read(path, as_version=4)
            assert build.same_cells(committed, nb), f"{_name(path)} differs from {source.name}: run make notebooks"
            code = [c for c in committed.cells if c.cell_type == "code"]
            assert all(c.execution_count for c in code), f"{_name(path)} is not executed: run make notebooks"
            problems = build.check_outputs(committed, solutions=path.parent == build.SOLUTIONS)
            assert not problems, f"{_name(path)}:\n" + "\n".join(problems)
            assert build.size_kb(path) < MAX_KB, f"{_name(path)}: {build.size_kb(path):.0f} KB"
            if path.parent == build.HERE:  # a lesson: its README thumbnail and line
                assert build.thumbnail_path(path).exists(), f"no thumbnail for {_name(path)}: run make notebooks"
                readme = (build.HERE / "README.md").read_text()
                assert f"]({path.name})" in readme and f"thumbnails/{path.stem}.png" in readme, path.name
    assert set(build.all_notebooks()) == expected, "a notebook without a source in notebooks/source/"
    assert len(expected) >= 4


def test_figure_rule():
    def cell(source, tags=()):
        c = nbformat.v4.new_code_cell(source)
        if tags:
            c.metadata["tags"] = list(tags)
        return c

    assert build.cell_kind(cell("h = 1\nhp.viz.plot_history(h)")) == "figure"
    assert build.cell_kind(cell("hp.viz.plot_trajectories(\n    opts,\n    'quadratic')")) == "figure"
    assert build.cell_kind(cell("fig = hp.viz.plot_history(h)")) is None  # assigned: shows nothing
    assert build.cell_kind(cell("plt.plot([1, 2])\nplt.show()", ["figure"])) == "figure"
    assert build.cell_kind(cell("hp.viz.animate_trajectories(o)")) == "animation"
    assert build.cell_kind(cell("%matplotlib inline\nhp.viz.plot_history(h)")) is None  # magics: tags only
    executed = cell("hp.viz.plot_history(h)")
    executed.outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "<Figure>"})]
    nb = nbformat.v4.new_notebook(cells=[executed])
    assert build.check_outputs(nb, solutions=False) == [
        "cell 0 ('hp.viz.plot_history(h)'): draws a figure but shows no image/png"]
    checker = cell("hp.exercises.check_adam_step(adam_step)", ["check"])
    checker.outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "NOT YET: Adam step"}),
                       nbformat.v4.new_output("stream", name="stderr", text="UserWarning: careful")]
    nb = nbformat.v4.new_notebook(cells=[checker])
    problems = build.check_outputs(nb, solutions=True)
    assert len(problems) == 2 and "should say PASSED" in problems[1] and "wrote to stderr" in problems[0]
    assert len(build.check_outputs(nb, solutions=False)) == 1  # in a lesson NOT YET is expected


def test_parse_source_and_split(tmp_path):
    source = tmp_path / "09_demo.py"
    source.write_text('# %% [markdown]\n# # Demo\n#\n# text\n\n# %% tags=["setup"]\nimport handprop as hp\n\n'
                      '# %%\nx = 1\n\n# %% [markdown] tags=["exercises"]\n# ## Exercises\n\n'
                      '# %% tags=["exercise"]\nanswer = None\n\n# %% tags=["solution"]\nanswer = 42\n\n'
                      '# %% tags=["check"]\nanswer\n')
    cells = build.parse_source(source)
    assert [c.cell_type for c in cells] == ["markdown", "code", "code", "markdown", "code", "code", "code"]
    assert cells[0].source == "# Demo\n\ntext"
    lesson = build.lesson_notebook(cells)
    solutions = build.solutions_notebook(cells, "09_demo")
    assert [c.source for c in lesson.cells if c.cell_type == "code"] == ["import handprop as hp", "x = 1",
                                                                         "answer = None", "answer"]
    assert [c.source for c in solutions.cells if c.cell_type == "code"] == ["import handprop as hp", "answer = 42",
                                                                            "answer"]
    assert solutions.cells[0].source.startswith("# Worked solutions: Demo")


DISPLAY_CELLS = [  # (source, number of image/png outputs, number of image/gif outputs)
    ("import sys\nimport numpy as np\nimport handprop as hp\nfrom handprop.optimizers import SGD, Adam\n"
     "h = {'loss': [3.0, 2.0, 1.0], 'val_loss': [3.0, 2.5, 2.0]}\n"
     "model = hp.Sequential([hp.layers.Conv2D(4, 3)], seed=0)\nmodel.build((1, 8, 8))\n"
     "x = np.random.default_rng(0).random((1, 1, 8, 8)).astype(np.float32)\nprint(sys.prefix)", 0, 0),
    ("hp.viz.plot_history(h)", 1, 0),
    ("hp.viz.plot_trajectories({'SGD': SGD(lr=0.1)}, 'quadratic', (-7.0, 2.0), 10)", 1, 0),
    ("hp.viz.plot_filters(model.layers_list()[0])", 1, 0),
    ("hp.viz.plot_feature_maps(model, x, 0)", 1, 0),
    ("fig = hp.viz.plot_history(h)", 0, 0),
    ("fig", 1, 0),
    # a pyplot figure activates the inline backend, which shows it at the end of the cell; ours still shows once
    ("import matplotlib.pyplot as plt\nfig2, ax = plt.subplots()\nax.plot([1, 2])\nhp.viz.plot_history(h)", 2, 0),
    ("hp.viz.plot_history(h)", 1, 0),
    ("%matplotlib inline\nhp.viz.plot_history(h)", 1, 0),
    ("display(hp.viz.plot_history(h))", 1, 0),
    ("hp.viz.animate_trajectories({'SGD': SGD(lr=0.1), 'Adam': Adam(lr=0.3)}, 'quadratic', (-7.0, 2.0), 10, "
     "frames=3, dpi=30, figsize=(5, 2))", 0, 1),
]


def test_figures_display_exactly_once_in_a_real_kernel():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source, _, _ in DISPLAY_CELLS])
    build.execute(nb, quick=True)
    first = nb.cells[0].outputs
    assert first and first[0]["text"].strip() == sys.prefix  # the kernel runs this environment's Python
    for cell, (source, pngs, gifs) in zip(nb.cells, DISPLAY_CELLS, strict=True):
        got_png, got_gif = len(build._mime(cell, "image/png")), len(build._mime(cell, "image/gif"))
        assert (got_png, got_gif) == (pngs, gifs), f"{source!r}: {got_png} png, {got_gif} gif; {cell.outputs}"
    assert not build.check_outputs(nb, solutions=False)


def test_tqdm_auto_is_a_widget_without_warnings_in_a_kernel():
    """With ipywidgets installed (a notebook dependency), tqdm.auto, which model.fit's bars should use,
    draws a widget in Jupyter and warns about nothing."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import warnings\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    from tqdm.auto import tqdm\n"
        "    from tqdm.notebook import tqdm as notebook_tqdm\n"
        "    for _ in tqdm(range(3), desc='epoch 1/1'):\n"
        "        pass\n"
        "print(issubclass(tqdm, notebook_tqdm), [str(w.message) for w in caught])")])
    build.execute(nb, quick=True)
    outputs = nb.cells[0].outputs
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs), outputs
    assert [o["text"].strip() for o in outputs if o["output_type"] == "stream"] == ["True []"]


def test_every_notebook_opens_with_the_colab_badge_and_the_guarded_install():
    """Issue 22: each built notebook, lesson or solutions, starts with the badge and the install cell,
    both pointing at the repository and release tag of [project.urls] in pyproject.toml."""
    repository, tag = build.release()
    assert repository and tag
    built = {path: nb for source in build.sources() for path, nb in build.build(source).items()}
    assert len(built) >= 4
    for path, nb in built.items():
        badge, install = nb.cells[0], nb.cells[1]
        where = path.relative_to(ROOT).as_posix()
        assert badge.cell_type == "markdown" and build.COLAB_BADGE in badge.source, _name(path)
        assert f"https://colab.research.google.com/github/{repository}/blob/{tag}/{where})" in badge.source
        assert install.cell_type == "code", _name(path)
        assert 'if importlib.util.find_spec("handprop") is None:' in install.source
        assert f'"{build.install_requirement()}"' in install.source and f"@{tag}" in install.source
        assert build.cell_kind(install) is None
        assert sum(build.COLAB_BADGE in c.source for c in nb.cells) == 1, _name(path)


def test_release_reads_project_urls(tmp_path, monkeypatch):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\n[project.urls]\nRepository = "https://github.com/someone/course"\n'
                         'Release = "https://github.com/someone/course/tree/v2.0"\n[tool.x]\na = 1\n')
    monkeypatch.setattr(build, "PYPROJECT", pyproject)
    assert build.release() == ("someone/course", "v2.0")
    assert build.install_requirement() == "handprop @ git+https://github.com/someone/course@v2.0"
    pyproject.write_text('[project.urls]\nRepository = "https://gitlab.com/a/b"\nRelease = "x"\n')
    with pytest.raises(ValueError, match="Repository must be https://github.com/OWNER/NAME"):
        build.release()


def test_the_install_cell_is_a_no_op_here_and_installs_where_handprop_is_missing():
    """In this environment's kernel the install cell runs nothing and prints nothing; in a kernel
    where handprop cannot be found, it runs pip on the release of pyproject.toml (pip itself is
    replaced by a recorder: the test installs nothing)."""
    install = build.opening_cells(build.HERE / "01_x.ipynb")[1]
    record = nbformat.v4.new_code_cell(
        "import importlib.util, json, subprocess\n"
        "calls = []\n"
        "subprocess.run = lambda *args, **kwargs: calls.append(args[0])")
    missing = nbformat.v4.new_code_cell(
        "real_find_spec = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda name, *a: None if name == 'handprop' else real_find_spec(name, *a)")
    cells = [record, install.source, "print(json.dumps(calls))", missing, install.source, "print(json.dumps(calls))"]
    nb = nbformat.v4.new_notebook(cells=[c if not isinstance(c, str) else nbformat.v4.new_code_cell(c) for c in cells])
    build.execute(nb, quick=True)
    assert nb.cells[1].outputs == []  # the install cell in this environment: silent
    assert json.loads(nb.cells[2].outputs[0]["text"]) == []
    assert json.loads(nb.cells[5].outputs[0]["text"]) == [
        [sys.executable, "-m", "pip", "install", "--quiet", build.install_requirement()]]
    assert not build.check_outputs(nb, solutions=False)


def test_the_readme_colab_link_is_the_release_of_pyproject():
    repository, tag = build.release()
    readme = (ROOT / "README.md").read_text()
    assert f"https://colab.research.google.com/github/{repository}/blob/{tag}/notebooks/01_neural_networks.ipynb" \
        in readme
    assert f'"{build.install_requirement()}"' in readme


def test_the_jupyterlite_copy_installs_with_piplite_and_keeps_the_lesson():
    source = build.sources("01")[0]
    lesson_path, _ = build.targets(source)
    nb = build.build(source)[lesson_path]
    lite = build.jupyterlite_notebook(nb)
    install = [c for c in lite.cells if "open-anywhere" in build._tags(c)]
    assert len(install) == 1 and lite.cells[0] is install[0]
    assert "%pip install -q handprop" in install[0].source and "subprocess" not in install[0].source
    assert [c.source for c in lite.cells[1:]] == [c.source for c in nb.cells if "open-anywhere" not in build._tags(c)]
    assert sum("open-anywhere" in build._tags(c) for c in nb.cells) == 2  # the original is unchanged
