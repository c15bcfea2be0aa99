"""Sphinx configuration of handprop's documentation site (``make docs``: offline, warnings are errors).

What the site is made of:

* pages written here: ``index.md`` (the quick start), ``mistakes.md`` (its examples run as doctests
  in ``make test``: tests/test_doctests.py), ``api.md``;
* an API reference generated from the docstrings (reStructuredText, as the code writes them): one
  page per module of :data:`API_MODULES`, written into ``_generated/api/`` before the build; at the
  end, :func:`check_contract` fails the build if a name of the public contract (/shared/DESIGN.md,
  :data:`CONTRACT`) has no entry;
* copied into ``_generated/`` before the build (:func:`copy_sources`), links to files outside the
  site turned into links to the repository (``[project.urls] Repository``): the chapter notebooks
  and their solutions, rendered from their committed outputs (nothing is executed),
  notebooks/README.md, benchmarks/README.md and its tables, ``experiments/`` of this folder and
  CHANGELOG.md; ``gallery/`` is read where it is.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT / "src"))  # document this checkout, not an installed handprop
os.environ.setdefault("MPLBACKEND", "Agg")

import handprop  # noqa: E402

project = "handprop"
author = "the handprop authors"
copyright = "the handprop authors, MIT licence"
release = version = handprop.__version__

extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.mathjax", "sphinx.ext.viewcode"]
exclude_patterns = ["_build", "demo", "experiments", "**/.ipynb_checkpoints"]  # experiments: copied
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
html_theme = "alabaster"
html_title = f"handprop {release}"
html_static_path = []
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
nb_execution_mode = "off"  # the notebooks as committed, with their outputs (make notebooks runs them)
nb_merge_streams = True
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the docstrings say the types and shapes in words

# ------------------------------------------------------------------------------ the API reference
API_MODULES = {
    "handprop": "the package: models, engines, threads, saving (``import handprop as hp``)",
    "handprop.layers": "layers: ``build``, ``forward``, ``backward``; ``params``, ``grads``, ``state``",
    "handprop.losses": "losses: ``forward(pred, target) -> float``, ``backward() -> dpred``",
    "handprop.optimizers": "optimizers: ``step(params, grads)`` over dicts of named arrays",
    "handprop.schedules": "learning-rate schedules",
    "handprop.callbacks": "callbacks for ``fit``",
    "handprop.training": "the training loop behind ``fit``, ``evaluate``, ``predict``",
    "handprop.model": "``Sequential``",
    "handprop.graph": "graph models: ``Input``, ``Model``",
    "handprop.saving": "model files (safetensors, no pickle)",
    "handprop.export": "export to PyTorch",
    "handprop.gradcheck": "gradient checks in float64",
    "handprop.init": "weight initializers",
    "handprop.backend": "array modules and engines",
    "handprop.threads": "threads of the numba engine and BLAS",
    "handprop.errors": "handprop's warnings and errors",
    "handprop.metrics": "segmentation and classification metrics, inside a mask",
    "handprop.data": "data: synthetic retinas, DRIVE, digits, patches, augmentation, splits",
    "handprop.preprocessing": "fundus preprocessing",
    "handprop.segmentation": "the vessel-segmentation pipeline (``handprop demo``, ``handprop predict``)",
    "handprop.inference": "dense prediction: sliding windows, fully convolutional nets, tiles",
    "handprop.architectures": "architectures of the tutorial",
    "handprop.surfaces": "optimizer test surfaces",
    "handprop.viz": "figures",
    "handprop.kernels": "the kernel registry and engine API",
    "handprop.kernels.reference": "the reference kernels: the definitions, as loops",
    "handprop.exercises": "the notebooks' exercise checkers",
    "handprop.keras1": "the deck's 2016 Keras spellings",
}
"""Modules with a page in the API reference, and the line that introduces each; a module that does
not import (``handprop.keras1`` before it exists) is left out."""

# members that the page of their own module documents, and that a package re-exports
_OWN_PAGE = {"handprop": ["Sequential", "Model", "Input", "load_model", "receptive_field", "receptive_field_table",
                          "set_engine", "get_engine", "engine", "set_num_threads", "get_num_threads", "thread_settings",
                          "DataError", "DataNotFoundError", "ModelFileError", "DivergenceWarning", "HandpropWarning"]}

CONTRACT = [
    "handprop.Sequential", "handprop.Model", "handprop.Input", "handprop.load_model", "handprop.set_engine",
    "handprop.get_engine", "handprop.engine", "handprop.receptive_field", "handprop.set_num_threads",
    "handprop.layers.Layer", "handprop.layers.Dense", "handprop.layers.Conv2D", "handprop.layers.Conv3D",
    "handprop.layers.MaxPool2D", "handprop.layers.AvgPool2D", "handprop.layers.MaxPool3D", "handprop.layers.BatchNorm",
    "handprop.layers.Dropout", "handprop.layers.Flatten", "handprop.layers.UpSampling2D",
    "handprop.layers.Conv2DTranspose", "handprop.layers.Sigmoid", "handprop.layers.Tanh", "handprop.layers.Linear",
    "handprop.layers.ReLU", "handprop.layers.LeakyReLU", "handprop.layers.ELU", "handprop.layers.PReLU",
    "handprop.layers.Softmax", "handprop.losses.MeanSquaredError", "handprop.losses.SoftmaxCrossEntropy",
    "handprop.losses.BinaryCrossEntropy", "handprop.optimizers.SGD", "handprop.optimizers.RMSprop",
    "handprop.optimizers.AdaGrad", "handprop.optimizers.AdaDelta", "handprop.optimizers.Adam",
    "handprop.export.to_torch", "handprop.callbacks.EarlyStopping", "handprop.gradcheck.check_layer",
    "handprop.gradcheck.check_model", "handprop.viz.plot_trajectories", "handprop.data.synthetic_retina",
    "handprop.data.load_drive", "handprop.data.split_patients", "handprop.metrics.roc_auc", "handprop.metrics.dice",
    "handprop.metrics.accuracy", "handprop.metrics.sensitivity", "handprop.metrics.specificity",
    "handprop.architectures.unet", "handprop.segmentation.vessel_unet",
    "handprop.segmentation.predict_probabilities",
]
"""The public names of /shared/DESIGN.md's contract: each must have an entry in the API reference
(module methods such as ``model.fit`` are documented on their class)."""


def _public(module, name):
    if hasattr(module, "__all__"):
        return [n for n in module.__all__ if n not in _OWN_PAGE.get(name, [])
                and not isinstance(getattr(module, n, None), type(module))]
    return None


def write_api_pages(out):
    """One page per importable module of :data:`API_MODULES`, and the index; returns the modules."""
    out.mkdir(parents=True, exist_ok=True)
    done = []
    for name, line in API_MODULES.items():
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        title = f"``{name}``"
        text = [title, "=" * len(title), "", line[0].upper() + line[1:] + ".", "",
                f".. automodule:: {name}"]
        members = _public(module, name)
        if members is not None:  # the names the package exports, wherever they are defined
            text += [f"   :members: {', '.join(members)}" if members else "   :no-members:", "   :imported-members:"]
        if name == "handprop":
            text += ["", *(f".. autofunction:: handprop.{n}" if callable(getattr(handprop, n)) and not isinstance(
                getattr(handprop, n), type) else f".. autoclass:: handprop.{n}" for n in _OWN_PAGE["handprop"]
                if n not in ("Sequential", "Model", "Input"))]
            text += ["", ".. autoclass:: handprop.Sequential", "   :members:", "   :inherited-members:", "",
                     ".. autoclass:: handprop.Model", "   :members:", "", ".. autofunction:: handprop.Input"]
        (out / f"{name}.rst").write_text("\n".join(text) + "\n")
        done.append(name)
    return done


# ------------------------------------------------------------------------ copies of other folders
GENERATED = DOCS / "_generated"
_LINK = re.compile(r"(\]\()([^)\s#]+)(#[^)\s]*)?(\))")


def repository_url():
    """``[project.urls] Repository`` of pyproject.toml: where links to files outside the site point."""
    text = (ROOT / "pyproject.toml").read_text()
    return re.search(r'^Repository\s*=\s*"([^"]+)"', text, re.M)[1].rstrip("/")


def _copies():
    """``{file in the repository: its copy in _generated/}``: what the site shows from other folders."""
    notebooks = ROOT / "notebooks"
    copies = {path: GENERATED / "notebooks" / path.name for path in sorted(notebooks.glob("[0-9]*.ipynb"))}
    copies.update({path: GENERATED / "notebooks" / "solutions" / path.name
                   for path in sorted((notebooks / "solutions").glob("*.ipynb"))})
    copies.update({path: GENERATED / "notebooks" / "thumbnails" / path.name
                   for path in sorted((notebooks / "thumbnails").glob("*.png"))})
    copies[notebooks / "README.md"] = GENERATED / "notebooks" / "index.md"
    copies[ROOT / "benchmarks" / "README.md"] = GENERATED / "benchmarks" / "index.md"
    copies[ROOT / "benchmarks" / "results.md"] = GENERATED / "benchmarks" / "results.md"
    copies.update({path: GENERATED / "experiments" / path.relative_to(DOCS / "experiments")
                   for path in sorted((DOCS / "experiments").rglob("*")) if path.suffix in (".md", ".png")})
    copies[ROOT / "CHANGELOG.md"] = GENERATED / "changelog.md"
    return copies


def _relink(text, source, copies, repo):
    """Links of a copied Markdown file: to another copied file, relative between the copies; to any
    other file of the repository, the repository's web page of it (the site has no copy)."""
    def fix(match):
        target = match[2]
        if re.match(r"^[a-z]+:", target) or target.startswith("/"):
            return match[0]
        original = (source.parent / target).resolve()
        if original in copies:
            new = os.path.relpath(copies[original], copies[source].parent)
        elif original.exists():
            kind = "tree" if original.is_dir() else "blob"
            new = f"{repo}/{kind}/main/{original.relative_to(ROOT).as_posix()}"
        else:
            return match[0]
        return f"{match[1]}{new}{match[3] or ''}{match[4]}"
    return _LINK.sub(fix, text)


def copy_sources():
    """The notebooks (with their outputs), notebooks/README.md, the experiments, the benchmark tables
    and the changelog into ``_generated/``, where Sphinx reads them; then the API pages."""
    if GENERATED.exists():
        shutil.rmtree(GENERATED)
    copies, repo = _copies(), repository_url()
    for source, copy in copies.items():
        copy.parent.mkdir(parents=True, exist_ok=True)
        if source.suffix == ".md":
            copy.write_text(_relink(source.read_text(encoding="utf-8"), source, copies, repo), encoding="utf-8")
        else:
            shutil.copy2(source, copy)
    write_api_pages(GENERATED / "api")


copy_sources()


# ------------------------------------------------------------------------------ the contract check
def check_contract(app, exception):
    """A warning (an error under -W) for each name of :data:`CONTRACT` without an API entry."""
    if exception is not None:
        return
    objects = app.env.get_domain("py").objects
    from sphinx.util import logging

    for name in CONTRACT:
        if name not in objects:
            logging.getLogger(__name__).warning(f"the API reference has no entry for {name} (DESIGN.md's contract)")


# ----------------------------------------------------------------- the docstrings' NumPy-like sections
_SECTIONS = {"Parameters", "Returns", "Yields", "Raises", "Attributes", "Other Parameters", "Notes", "Examples",
             "See Also", "References", "Shapes"}
_LISTS = {"Parameters", "Returns", "Yields", "Raises", "Attributes", "Other Parameters"}
_ENTRY = re.compile(r"^[\w*]+(?:, [\w*]+)*(?: *(?::|--|\u2014)(?: |$)|$)")


def numpy_sections(app, what, name, obj, options, lines):
    """The docstrings write NumPy-style sections loosely (``name : type -- text`` on one line, prose
    after the entries; napoleon garbles them): each ``Parameters`` / ``Returns`` / ... heading becomes
    a rubric and each of its entries a bullet, with the entry's indented lines as its text."""
    out, i, in_list, shift = [], 0, False, 0
    while i < len(lines):
        line, following = lines[i], lines[i + 1] if i + 1 < len(lines) else ""
        if (line.strip() in _SECTIONS and not line.startswith(" ") and len(following.strip()) >= 3
                and set(following.strip()) == {"-"}):
            if out and out[-1].strip():
                out.append("")
            out += [f".. rubric:: {line.strip()}", ""]
            in_list, i = line.strip() in _LISTS, i + 2
            while i < len(lines) and not lines[i].strip():
                i += 1
            continue
        if in_list and not line.strip():
            rest = next((t for t in lines[i + 1:] if t.strip()), None)
            if rest is not None and not rest.startswith(" ") and not _ENTRY.match(rest):
                in_list = False  # prose after the entries
            out.append("")
        elif in_list and not line.startswith(" "):
            out.append(f"* {line}")
            shift = None
        elif in_list:
            indent = len(line) - len(line.lstrip())
            shift = indent - 2 if shift is None else shift
            out.append(" " * max(2, indent - shift) + line.lstrip())
        else:
            out.append(line)
        i += 1
    lines[:] = out


def skip_foreign_members(app, what, name, obj, skip, options):
    """Leave out what a class inherits from another library (matplotlib's ``Figure.set``)."""
    module = getattr(obj, "__module__", None)
    if what == "class" and isinstance(module, str) and not module.startswith("handprop"):
        return True
    return None


def setup(app):
    app.connect("autodoc-process-docstring", numpy_sections)
    app.connect("autodoc-skip-member", skip_foreign_members)
    app.connect("build-finished", check_contract)
    return {"parallel_read_safe": True}
