"""The contract between base.py and the algorithms (base.py's docstring, docs/algorithms.md): an
algorithm writes no attribute of ElectionNode; it changes shared state only through the helpers."""

from __future__ import annotations

import ast
import inspect
import random
from pathlib import Path

import pytest

from node.algorithms import ALGORITHMS, base
from node.algorithms.base import ElectionNode
from node.core.settings import Settings
from node.core.state import DurableState

ALGORITHM_DIR = Path(base.__file__).parent


def base_attributes() -> set[str]:
    """Every attribute an ElectionNode holds after construction, and its properties."""
    node = ElectionNode(Settings(1, (1, 2, 3)), DurableState(), random.Random(0))
    names = set(vars(node)) if hasattr(node, "__dict__") else set()
    names |= {name for name, _ in inspect.getmembers(ElectionNode, lambda v: isinstance(v, property))}
    return names


def writes_to_self(tree: ast.AST) -> set[str]:
    """`self.X` targets of assignments, augmented assignments and deletions."""
    written: set[str] = set()
    for item in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(item, ast.Assign | ast.Delete):
            targets = list(item.targets)
        elif isinstance(item, ast.AugAssign | ast.AnnAssign):
            targets = [item.target]
        for target in targets:
            for sub in ast.walk(target):
                if (
                    isinstance(sub, ast.Attribute)
                    and isinstance(sub.value, ast.Name)
                    and sub.value.id == "self"
                ):
                    written.add(sub.attr)
    return written


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_an_algorithm_writes_no_base_attribute(name: str) -> None:
    tree = ast.parse((ALGORITHM_DIR / f"{name}.py").read_text())
    shared = writes_to_self(tree) & base_attributes() - {"handlers"}  # its own message types: the contract
    assert shared == set(), f"{name}.py writes base state directly: {sorted(shared)} (use a helper)"


def test_the_base_attributes_are_found() -> None:
    assert {
        "_leader_id",
        "_proposal",
        "_highest_epoch_seen",
        "_phase",
        "phase",
        "_is_leader",
    } <= base_attributes()


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_the_shared_phase_and_promise_are_not_redefined(name: str) -> None:
    cls = ALGORITHMS[name]
    for shared in ("phase", "_wait_for_coordinator", "_reset_election", "_grant_promise", "_may_vote"):
        assert shared not in vars(cls), f"{name} redefines the shared {shared}"
