# Two commands do everything, from a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TORCH  := $(VENV)/.torch
# The test-time reference for the PyTorch parity tests: pinned, CPU (an unpinned `pip install
# torch` pulls a multi-GB CUDA build). Never a runtime dependency of handprop.
TORCH_PIN := torch==2.13.0

.PHONY: demo test notebooks gallery bench experiments lint clean student

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)          ## the main job: segment retinal vessels (synthetic patients), in-FOV metrics, figures
	$(BIN)/handprop demo --overwrite   # its default folder: the last run replaces the one before

$(TORCH): $(STAMP)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet $(TORCH_PIN)
	touch $(TORCH)

test: $(TORCH)          ## the whole test suite, with PyTorch (installed here) as the parity reference
	$(BIN)/python -m pytest -q

notebooks: $(STAMP)     ## build notebooks/*.ipynb from notebooks/source/ and execute them in place, with outputs
	$(BIN)/python notebooks/build.py

student: $(STAMP)       ## the student release in student/: lessons and assignments without solutions
	rm -rf student
	$(BIN)/python notebooks/build.py --student student

gallery: $(STAMP)       ## only the optimizer-trajectory figures
	$(BIN)/handprop gallery

bench: $(STAMP)         ## benchmarks against PyTorch (pip install torch==2.13.0 first)
	$(BIN)/python benchmarks/run_all.py

experiments: $(STAMP)   ## the tutorial's comparisons: tables and figures in docs/experiments/ (~20 min on 2 cores)
	$(BIN)/python -m handprop.experiments all

# ---- packaging and documentation (issue 22)
.PHONY: docs wheel lite
DOCS_STAMP := $(VENV)/.docs
RELEASE_STAMP := $(VENV)/.release

$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)     ## the documentation site, offline, warnings are errors: docs/_build/html/index.html
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html
	@echo "docs: docs/_build/html/index.html"

$(RELEASE_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[release]"
	touch $(RELEASE_STAMP)

wheel: $(RELEASE_STAMP) ## dist/: the sdist and the pure-Python wheel, checked by twine
	rm -rf dist
	$(BIN)/python -m build --outdir dist .
	$(BIN)/twine check --strict dist/*

LITE_STAMP := $(VENV)/.lite

$(LITE_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[lite]"
	touch $(LITE_STAMP)

lite: wheel $(LITE_STAMP) ## a JupyterLite site of the course (the browser loads Pyodide from its CDN): docs/_build/lite
	rm -rf docs/_build/lite docs/_build/lite-contents docs/_build/.jupyterlite.doit.db
	$(BIN)/python notebooks/build.py --jupyterlite docs/_build/lite-contents
	WHEEL=$$(ls $(CURDIR)/dist/handprop-*-py3-none-any.whl) && cd docs/_build && \
	    $(abspath $(BIN))/jupyter lite build --contents lite-contents --output-dir lite --piplite-wheels $$WHEEL
	@echo "lite: docs/_build/lite/index.html (serve the folder over HTTP)"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks notebooks/build.py

clean:
	rm -rf $(VENV) handprop-output .pytest_cache student dist docs/_build docs/_generated
