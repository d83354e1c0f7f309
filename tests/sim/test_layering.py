"""The simulator and the checkers sit on top: nothing below imports them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import node

PACKAGE_ROOT = Path(node.__file__).resolve().parent
FORBIDDEN = {
    "core": ("node.sim", "node.history"),
    "algorithms": ("node.sim", "node.history"),
    "history": ("node.sim",),  # check-history must run without the simulator
}


def imported_modules(source: str) -> list[str]:
    names = []
    for tree_node in ast.walk(ast.parse(source)):
        if isinstance(tree_node, ast.Import):
            names += [alias.name for alias in tree_node.names]
        elif isinstance(tree_node, ast.ImportFrom) and tree_node.module and tree_node.level == 0:
            names.append(tree_node.module)
    return names


def test_the_scanner_sees_imports() -> None:
    assert imported_modules("from node.sim.world import World\nimport node.history.model") == [
        "node.sim.world",
        "node.history.model",
    ]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_layers_do_not_import_the_simulator(package: str) -> None:
    offenders = []
    for path in sorted((PACKAGE_ROOT / package).rglob("*.py")):
        for module in imported_modules(path.read_text()):
            if module.startswith(FORBIDDEN[package]):
                offenders.append(f"{path.relative_to(PACKAGE_ROOT.parent)} imports {module}")
    assert offenders == []
