"""Packaging: the typed stub of the C++ module matches the module, the version has one source."""
import ast
import io
import re
from contextlib import redirect_stdout
from importlib.metadata import version
from pathlib import Path

import pytest

import ibsolver
from ibsolver import cli

STUB = Path(ibsolver.__file__).parent / "_core.pyi"


def _stub_signatures() -> dict:
    """{function: [(parameter, has_default), ...]} as the stub declares them."""
    tree = ast.parse(STUB.read_text())
    out = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            args = node.args.args
            n_required = len(args) - len(node.args.defaults)
            out[node.name] = [(a.arg, i >= n_required) for i, a in enumerate(args)]
    return out


def _split_top_level(text: str) -> list:
    """Split a signature's parameter list at the commas outside brackets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _module_signatures(core) -> dict:
    """The same, read from pybind11's signature line of each function's docstring."""
    out = {}
    for name in dir(core):
        obj = getattr(core, name)
        if name.startswith("__") or not callable(obj):
            continue
        first = obj.__doc__.splitlines()[0]
        match = re.fullmatch(rf"{re.escape(name)}\((.*)\) -> .*", first)
        assert match, f"unexpected signature line for _core.{name}: {first!r}"
        out[name] = [(p.split(":")[0].strip(), "=" in p) for p in _split_top_level(match[1])]
    return out


def test_core_stub_declares_every_function_with_its_parameters():
    core = pytest.importorskip("ibsolver._core")
    assert _stub_signatures() == _module_signatures(core)


def test_version_comes_from_the_installed_metadata():
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli.main(["--version"]) == 0
    assert out.getvalue().strip() == f"ibsolver {version('ibsolver')}"
    assert ibsolver.__version__ == version("ibsolver")


def _unannotated(path: Path, root: Path) -> list:
    """Public functions and methods of a public module (no leading underscore on the
    module, the class or the function; __init__ counts) with a parameter or the return
    type unannotated: ["module:Class.function", ...]."""
    found = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef) and not child.name.startswith("_"):
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if child.name.startswith("_") and child.name != "__init__":
                    continue
                a = child.args
                params = a.posonlyargs + a.args + a.kwonlyargs + [p for p in (a.vararg, a.kwarg) if p]
                bare = [p.arg for p in params if p.annotation is None and p.arg not in ("self", "cls")]
                if bare or (child.returns is None and child.name != "__init__"):
                    found.append(f"{path.relative_to(root)}:{prefix}{child.name}")

    visit(ast.parse(path.read_text()), "")
    return found


def test_every_public_function_is_annotated():
    """Issue 15: public functions fully annotated (what mypy then checks), in ibsolver and
    dnn alike."""
    root = Path(ibsolver.__file__).parents[1]
    missing = []
    for package in ("ibsolver", "dnn"):
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).parts
            if any(p.startswith("_") and p != "__init__.py" for p in parts):
                continue
            missing += _unannotated(path, root)
    assert not missing, missing
