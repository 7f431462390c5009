"""dnn is a client of ibsolver's public API (issue 13): it imports no private ibsolver
module or name, and ibsolver's command line names no dnn module (dnn's subcommands arrive
through the ``ibsolver.subcommands`` entry point group)."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_names(path: Path) -> list[str]:
    """Every module and name a file imports, dotted ("ibsolver.results.Result")."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


@pytest.mark.parametrize("path", sorted((ROOT / "dnn").rglob("*.py")), ids=lambda p: p.name)
def test_dnn_imports_only_public_ibsolver_names(path):
    private = [name for name in imported_names(path) if name.split(".")[0] == "ibsolver"
               and any(part.startswith("_") for part in name.split(".")[1:])]
    assert private == []


def test_the_checker_sees_a_private_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("from ibsolver.results import _x\nimport ibsolver._core\n"
                      "from ibsolver import entropy\n")
    assert [n for n in imported_names(module) if "._" in n] == ["ibsolver.results._x",
                                                                  "ibsolver._core"]


def test_ibsolver_names_no_dnn_module():
    for path in sorted((ROOT / "ibsolver").rglob("*.py")):
        assert not [n for n in imported_names(path) if n.split(".")[0] == "dnn"], path
