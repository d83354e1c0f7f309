"""The pure layers import no I/O, clocks, randomness, concurrency or logging (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import node

FORBIDDEN_MODULES = frozenset(
    {
        "socket",
        "gevent",
        "time",
        "random",
        "os",
        "logging",
        "threading",
        "asyncio",
        "subprocess",
        "select",
        "selectors",
    }
)
PURE_PACKAGES = ("core", "algorithms")
PACKAGE_ROOT = Path(node.__file__).resolve().parent


def forbidden_imports(source: str, filename: str = "<source>") -> list[str]:
    """Every forbidden import anywhere in the module: top level, TYPE_CHECKING blocks, functions, and
    dynamic `__import__` / `importlib.import_module` calls with a literal name."""
    found = []
    for tree_node in ast.walk(ast.parse(source, filename)):
        names: list[str] = []
        if isinstance(tree_node, ast.Import):
            names = [alias.name for alias in tree_node.names]
        elif isinstance(tree_node, ast.ImportFrom) and tree_node.level == 0 and tree_node.module:
            names = [tree_node.module]
        elif isinstance(tree_node, ast.Call) and _is_dynamic_import(tree_node.func):
            names = [
                a.value
                for a in tree_node.args[:1]
                if isinstance(a, ast.Constant) and isinstance(a.value, str)
            ]
        line = getattr(tree_node, "lineno", 0)
        found += [f"{filename}:{line}: {name}" for name in names if _root(name) in FORBIDDEN_MODULES]
    return found


def _root(module: str) -> str:
    return module.split(".", 1)[0]


def _is_dynamic_import(func: ast.expr) -> bool:
    return (isinstance(func, ast.Name) and func.id == "__import__") or (
        isinstance(func, ast.Attribute) and func.attr == "import_module"
    )


def pure_modules() -> list[Path]:
    return sorted(path for package in PURE_PACKAGES for path in (PACKAGE_ROOT / package).rglob("*.py"))


def test_the_scan_finds_the_pure_modules() -> None:
    modules = pure_modules()
    assert len(modules) > 5, modules
    names = {path.name for path in modules}
    assert {"codec.py", "detector.py", "messages.py", "state.py"} <= names
    assert any(path.parent.name == "algorithms" for path in modules)


def test_pure_layers_import_nothing_forbidden() -> None:
    violations = [
        hit
        for path in pure_modules()
        for hit in forbidden_imports(path.read_text(encoding="utf-8"), str(path.relative_to(PACKAGE_ROOT)))
    ]
    assert violations == []


@pytest.mark.parametrize(
    "source",
    [
        "import os",
        "import os.path",
        "import json, time",
        "from time import monotonic",
        "from gevent.socket import socket",
        "import logging.handlers as lh",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import socket",
        "if TYPE_CHECKING:\n    from asyncio import Future",
        "def f():\n    import random\n    return random.random()",
        "try:\n    import selectors\nexcept ImportError:\n    pass",
        "clock = __import__('time')",
        "import importlib\nrng = importlib.import_module('random')",
        "class A:\n    def run(self):\n        from subprocess import run",
        "import threading",
        "import select",
    ],
)
def test_the_checker_catches_forbidden_imports(source: str) -> None:
    assert forbidden_imports(source) != []


@pytest.mark.parametrize(
    "source",
    [
        "import json, hashlib, hmac, struct",
        "from node.core.messages import Message",
        "from . import codec",
        "from .time_budget import x",  # a sibling module whose name only starts like a forbidden one
        "import timeit",
        "import osmium",
        "from dataclasses import dataclass",
        "from typing import Protocol",
    ],
)
def test_the_checker_allows_pure_imports(source: str) -> None:
    assert forbidden_imports(source) == []
