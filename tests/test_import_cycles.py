"""No import cycles among handprop's modules.

The graph is read from the source with :mod:`ast` (nothing is imported). An edge ``a -> b`` is
every ``import`` / ``from ... import`` statement in ``a`` that names ``b``, **wherever it stands**:
at module level, inside a function, a method or a ``try``. A function-local import is still a
dependency -- it only moves the moment the cycle bites -- so it counts (a cycle hidden that way is
what this test is for). Rules:

* ``from .pkg import name`` is an edge to ``pkg.name`` when that is a module, else to ``pkg``;
  ``from . import __version__`` is an edge to the package ``handprop`` itself.
* Importing ``handprop.a.b`` first runs ``handprop/a/__init__.py``, so it is an edge to ``handprop.a``
  as well -- except to the importer's own packages, which are already being initialized.
* Not edges: imports under ``if TYPE_CHECKING:`` (never run), and modules looked up by a computed
  name (``importlib.import_module(_MODULES[name])``: the engine registry, ``hp.data`` loaded on first
  use). Such a registry look-up is the sanctioned way to reach a module that sits above you.
"""

import ast
import pathlib

import handprop

ROOT = pathlib.Path(handprop.__file__).parent
PACKAGE = "handprop"


def _modules():
    """``{"handprop.layers.base": Path, "handprop.layers": Path(__init__.py), ...}``."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = (PACKAGE, *path.relative_to(ROOT).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _is_type_checking(node):
    test = node.test
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _imports(tree):
    """Every Import / ImportFrom node of the tree, skipping ``if TYPE_CHECKING:`` bodies."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _targets(name, path, node, modules):
    """The handprop modules one import statement of module ``name`` names."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{node.module}" if node.module else package
    else:
        base = node.module
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]


def import_graph():
    modules = _modules()
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)}
        for node in _imports(ast.parse(path.read_text(), str(path))):
            for target in _targets(name, path, node, modules):
                parts = target.split(".")
                for i in range(2, len(parts) + 1):  # the target and the packages it runs on the way
                    step = ".".join(parts[:i])
                    if step in modules and (step == target or step not in own):
                        graph[name].add(step)
                if target == PACKAGE:
                    graph[name].add(PACKAGE)
            graph[name].discard(name)
    return graph


def cycles(graph):
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_module_level_function_level_and_package_edges():
    graph = import_graph()
    assert "handprop.backend" in graph["handprop.losses"]  # module level
    assert "handprop.layers.base" in graph["handprop.layers.conv"]  # relative, inside a subpackage
    assert "handprop.architectures" in graph["handprop.segmentation"]  # inside a function
    assert "handprop.layers" in graph["handprop.losses"]  # the package __init__ that importing layers.activations runs
    assert "handprop.layers" not in graph["handprop.layers.conv"]  # its own package: already initializing
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    tree = ast.parse("def f():\n    from . import saving\nif TYPE_CHECKING:\n    from . import graph\n")
    names = [t for node in _imports(tree) for t in _targets("handprop.model", ROOT / "model.py", node, _modules())]
    assert names == ["handprop.saving"]


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles (module-level or function-level imports):\n" + "\n".join(
        " <-> ".join(c) for c in found)
