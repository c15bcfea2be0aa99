"""Smoke test of an installed handprop, run by .ci/package.sh with the Python of a fresh venv, from a
folder outside the checkout: the package imports from that venv (not from src/), its version is the
wheel's, its engine is the one expected, and every notebook's imports -- and install cell, where
the notebook has one -- run. Usage: python wheel_smoke.py NOTEBOOKS_FOLDER EXPECTED_ENGINE"""

import ast
import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import handprop as hp

notebooks, engine = Path(sys.argv[1]), sys.argv[2]
assert "site-packages" in hp.__file__, f"handprop imported from {hp.__file__}, not from the installed wheel"
installed = importlib.metadata.version("handprop")
assert hp.__version__ == installed, (hp.__version__, installed)
assert hp.get_engine() == engine, f"default engine {hp.get_engine()}, expected {engine}"
print(f"handprop {hp.__version__} from {Path(hp.__file__).parent}, engine {hp.get_engine()}")

calls = []
subprocess.run = lambda *args, **kwargs: calls.append(args)  # an install cell must not run pip here
paths = sorted(notebooks.glob("*.ipynb")) + sorted(notebooks.glob("solutions/*.ipynb"))
assert paths, f"no notebooks in {notebooks}"
for path in paths:
    imports, install_cells = [], 0
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        if "open-anywhere" in cell.get("metadata", {}).get("tags", []):
            exec(compile(source, f"{path.name}: install cell", "exec"), {})
            install_cells += 1
        try:
            tree = ast.parse(source)
        except SyntaxError:  # IPython magics
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                imports.append(ast.unparse(node))
    for line in dict.fromkeys(imports):
        try:
            exec(line, {})
        except ImportError as e:
            if "torch" not in line:  # PyTorch is optional; the notebook that uses it says so
                raise AssertionError(f"{path.name}: {line!r} fails in the installed wheel: {e}") from None
    print(f"{path.relative_to(notebooks)}: {len(dict.fromkeys(imports))} imports ok, {install_cells} install cell(s) "
          "ran without installing")
assert not calls, f"an install cell ran pip although handprop is installed: {calls}"
