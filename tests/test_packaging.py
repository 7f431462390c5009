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
