"""Ansible conventions of the role, read from its YAML (issue 16, item 6): internal variables marked,
every tag runs the preflight it needs, no handler restarts every member at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROLE = Path(__file__).resolve().parent.parent / "deploy" / "roles" / "leader_node"
# Derived for the templates and the playbooks (documented in vars/ and docs/deploy.md), not internal.
PUBLIC_FACTS = {"leader_node_peers", "leader_node_member_ids"}


def tasks(path: Path) -> list[dict[str, Any]]:
    loaded = yaml.safe_load(path.read_text()) or []
    out: list[dict[str, Any]] = []
    for task in loaded:
        out.append(task)
        out.extend(task.get("block", []) + task.get("rescue", []) + task.get("always", []))
    return out


ROLE_TASKS = sorted((ROLE / "tasks").glob("*.yml")) + sorted((ROLE / "handlers").glob("*.yml"))


@pytest.mark.parametrize("path", ROLE_TASKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_registered_and_set_variables_are_marked_internal(path: Path) -> None:
    names = []
    for task in tasks(path):
        if "register" in task:
            names.append(task["register"])
        names.extend(task.get("ansible.builtin.set_fact", {}) or {})
    unmarked = [n for n in names if not n.startswith("__leader_node_") and n not in PUBLIC_FACTS]
    assert not unmarked, f"{path.name}: internal variables without the __leader_node_ prefix: {unmarked}"


def test_every_tag_of_the_role_runs_the_preflight() -> None:
    main = tasks(ROLE / "tasks" / "main.yml")
    preflight = next(t for t in main if t.get("ansible.builtin.import_tasks") == "preflight.yml")
    tags = {tag for t in main for tag in t.get("tags", [])}
    assert tags - {"leader_node_preflight"} <= set(preflight["tags"]), (tags, preflight["tags"])


def test_no_handler_restarts_the_service() -> None:
    """A handler runs on every notified host at once: a restart there is a cluster-wide outage."""
    for task in tasks(ROLE / "handlers" / "main.yml"):
        module = task.get("ansible.builtin.systemd_service") or task.get("ansible.builtin.service") or {}
        assert module.get("state") not in ("restarted", "stopped", "reloaded"), task


def test_the_service_restarts_changed_members_one_at_a_time_through_restart_member() -> None:
    service = tasks(ROLE / "tasks" / "service.yml")
    [rolling] = [t for t in service if "ansible.builtin.include_tasks" in t]
    assert rolling["ansible.builtin.include_tasks"]["file"] == "restart_member.yml"
    assert rolling["run_once"] is True
    assert "delegate_to" in rolling["ansible.builtin.include_tasks"]["apply"]
