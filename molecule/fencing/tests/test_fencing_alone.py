"""Scenario fencing: the fencing check of the scenario leader-service, alone
(molecule/leader-service/tests/test_fencing.py, imported from there), then the history check.

  LEADER_NODE_ALGORITHM=ring molecule test -s fencing

Artifacts: artifacts/molecule/fencing-<algorithm>/.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "leader-service" / "tests"))
pytest.register_assert_rewrite("shared.faults")
from shared.faults import FaultCluster  # noqa: E402 (after register_assert_rewrite)
from test_fencing import (  # noqa: E402 (a test_*.py module: pytest rewrites its asserts on import)
    demo_journals,
    test_a_paused_leaders_worker_is_fenced_off_by_the_new_epoch,
)

pytest_plugins = ["shared.faults"]

__all__ = ["demo_journals", "test_a_paused_leaders_worker_is_fenced_off_by_the_new_epoch"]


def test_history_judged_by_checkers(fault_cluster: FaultCluster) -> None:
    fault_cluster.judge()
