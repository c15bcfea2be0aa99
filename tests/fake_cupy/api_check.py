"""Check that the CuPy stand-in exposes only names real CuPy has.

Real CuPy's public names are read from its *source* (no GPU, no install) and recorded, one per
line, in ``cupy_api.txt`` beside this file; ``tests/test_fake_cupy.py`` checks the stand-in against
that record on every run (and against the installed CuPy itself on a machine with a GPU).

Refresh the record for another CuPy release (the sdist's metadata step wants CUDA unless told to
use CuPy's stub headers, as its documentation build does)::

    CUPY_INSTALL_USE_STUB=1 pip download --no-deps --no-binary cupy cupy==14.2.0 -d /tmp/cupysrc
    python tests/fake_cupy/api_check.py /tmp/cupysrc/cupy-14.2.0.tar.gz --write

``python tests/fake_cupy/api_check.py [SOURCE]`` checks (against SOURCE, else the record) and
prints what the stand-in has that CuPy lacks.

Where the names come from (CuPy 14): ``cupy/__init__.py`` (module level, ``if``/``try`` branches
included), ``cupy/_core/core.pyx`` + ``core.pxd`` (``ndarray``), ``cupy/_core/_kernel.pyx`` + ``.pxd``
(``ufunc``), ``cupy/_core/flags.pyx``, ``cupy/cuda/__init__.py``, ``cupy/cuda/device.pyx`` + ``.pxd``
(``Device``) and ``cupy_backends/cuda/api/runtime.pyx``.
"""

from __future__ import annotations

import ast
import re
import sys
import tarfile
from pathlib import Path

RECORD = Path(__file__).with_name("cupy_api.txt")
SECTIONS = ("cupy", "cupy.ndarray", "cupy.ufunc", "cupy.ndarray.flags", "cupy.cuda", "cupy.cuda.runtime",
            "cupy.cuda.Device")
_DEF = re.compile(r"^    (?:cpdef|def)\s+(?:[\w.]+\s+)??(\w+)\s*\(|^    property\s+(\w+)\s*:", re.M)
_ATTRIBUTE = re.compile(r"^\s+(?:readonly|public)\s+(?:[\w.]+\s+)?(\w+)\s*$", re.M)


def _module_names(text):
    """Names bound at module level (through ``if``/``try``/``with`` blocks, not inside functions)."""
    names = set()

    def visit(body):
        for node in body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                    names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
            for field in ("body", "orelse", "finalbody", "handlers"):
                if isinstance(node, (ast.If, ast.Try, ast.With, ast.ExceptHandler)) and hasattr(node, field):
                    visit(getattr(node, field))

    visit(ast.parse(text).body)
    return {n for n in names if not n.startswith("_") or n == "__version__"}


def _class_block(text, header):
    """The indented body of the class whose line starts with ``header``."""
    start = text.index(header)
    end = re.compile(r"^\S", re.M).search(text, text.index("\n", start) + 1)
    return text[start:end.start() if end else len(text)]


def _class_names(text, header, declarations=""):
    """Methods, properties and ``readonly``/``public`` attributes (declared in the class or its .pxd)."""
    block = _class_block(text, header)
    names = {a or b for a, b in _DEF.findall(block)} | set(_ATTRIBUTE.findall(block))
    if header in declarations:
        names |= set(_ATTRIBUTE.findall(_class_block(declarations, header)))
    return names


def read_source(source):
    """{section: set of names} from a CuPy source tree or sdist (``.tar.gz``)."""
    source = Path(source)
    if source.is_dir():
        root = next(p for p in (source, *source.iterdir()) if (p / "cupy" / "__init__.py").is_file())

        def read(path):
            return (root / path).read_text()
    else:
        archive = tarfile.open(source)
        prefix = archive.getnames()[0].split("/")[0]

        def read(path):
            return archive.extractfile(f"{prefix}/{path}").read().decode()

    core, core_pxd = read("cupy/_core/core.pyx"), read("cupy/_core/core.pxd")
    kernel, kernel_pxd = read("cupy/_core/_kernel.pyx"), read("cupy/_core/_kernel.pxd")
    device, device_pxd = read("cupy/cuda/device.pyx"), read("cupy/cuda/device.pxd")
    version = re.search(r"__version__\s*=\s*'([^']+)'", read("cupy/_version.py")).group(1)
    return version, {
        "cupy": _module_names(read("cupy/__init__.py")),
        "cupy.ndarray": _class_names(core, "cdef class _ndarray_base", core_pxd) | _class_names(core, "class ndarray("),
        "cupy.ufunc": _class_names(kernel, "cdef class ufunc", kernel_pxd) | {"__name__"},  # set in __init__
        "cupy.ndarray.flags": _class_names(read("cupy/_core/flags.pyx"), "class Flags"),
        "cupy.cuda": _module_names(read("cupy/cuda/__init__.py")),
        "cupy.cuda.runtime": set(re.findall(r"^(?:cpdef|def)\s+(?:[\w.]+\s+)??(\w+)\s*\(",
                                            read("cupy_backends/cuda/api/runtime.pyx"), re.M)),
        "cupy.cuda.Device": _class_names(device, "cdef class Device", device_pxd),
    }


def write_record(version, api, path=RECORD):
    lines = [f"# CuPy {version}: public names read from its source by tests/fake_cupy/api_check.py (do not edit)"]
    for section in SECTIONS:
        lines += [f"[{section}]", *sorted(api[section])]
    path.write_text("\n".join(lines) + "\n")


def read_record(path=RECORD):
    api, section = {}, None
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line:
            continue
        if line.startswith("["):
            section = api.setdefault(line[1:-1], set())
        else:
            section.add(line)
    return api


# Python's own machinery on every class, not API. CuPy's Cython class spells some dunders
# differently: one ``__richcmp__`` for the six comparisons, ``__nonzero__`` for ``__bool__``, and a
# binary operator's reflected form is its plain slot.
_OBJECT = {"__init__", "__slots__", "__module__", "__doc__", "__hash__", "__dict__", "__weakref__", "__qualname__",
           "__firstlineno__", "__static_attributes__", "__annotations__", "__array_priority__", "_host", "_wrap",
           "_compare", "_run", "_ufunc"}
_SPELLING = {**{f"__{op}__": "__richcmp__" for op in ("eq", "ne", "lt", "le", "gt", "ge")}, "__bool__": "__nonzero__"}


_BINARY = {"add", "sub", "mul", "matmul", "truediv", "floordiv", "mod", "divmod", "pow", "and", "or", "xor",
           "lshift", "rshift"}


def _cupy_spelling(name):
    name = _SPELLING.get(name, name)
    if name.startswith("__r") and name[3:-2] in _BINARY:  # __radd__ is the __add__ slot
        return f"__{name[3:]}"
    return name


def stand_in_names():
    """{section: names} the stand-in exposes, in CuPy's spelling."""
    import fake_cupy as fake

    def members(cls, public):
        found = set(public)
        for name in vars(cls):
            if name in _OBJECT:
                continue
            if not name.startswith("_") or (name.startswith("__") and name.endswith("__")):
                found.add(_cupy_spelling(name))
        return found

    return {
        "cupy": set(fake.NAMES),
        "cupy.ndarray": members(fake.ndarray, fake.NDARRAY_NAMES),
        "cupy.ufunc": members(fake.ufunc, ("name", "nin", "nout", "nargs", "__name__")),
        "cupy.ndarray.flags": members(fake._Flags, ("c_contiguous", "f_contiguous", "owndata")),
        "cupy.cuda": set(fake.CUDA_NAMES),
        "cupy.cuda.runtime": set(fake.RUNTIME_NAMES),
        "cupy.cuda.Device": members(fake._Device, fake.DEVICE_NAMES),
    }


def missing_from(api):
    """``section: name`` for every name the stand-in has and ``api`` lacks (empty: all is well)."""
    return [f"{section}: {name}" for section, names in stand_in_names().items()
            for name in sorted(names - api.get(section, set()))]


def main(argv):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/, where fake_cupy lives
    args = [a for a in argv if a != "--write"]
    if args:
        version, api = read_source(args[0])
        if "--write" in argv:
            write_record(version, api)
            print(f"wrote {RECORD} (CuPy {version}: {sum(map(len, api.values()))} names)")
    else:
        api = read_record()
    problems = missing_from(api)
    print("\n".join(problems) if problems else "every name of the stand-in exists in CuPy")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
