"""The documented deploy command, `ansible-playbook deploy/site.yml -i inventory`, sees exactly the five
containers of `make cluster`; the VM inventory (inventory-vagrant/) parses on its own and is not merged in.

Runs `ansible-inventory` from the project's venv (`make venv` installs the pinned ansible).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
ANSIBLE_INVENTORY = Path(sys.executable).parent / "ansible-inventory"
if not ANSIBLE_INVENTORY.exists():
    ANSIBLE_INVENTORY = REPO / ".venv" / "bin" / "ansible-inventory"

CONTAINERS = {f"leader-node-{i}": i for i in range(1, 6)}
VMS = {f"leader-node-vm-{i}": i for i in range(1, 6)}


def inventory(source: str) -> dict[str, Any]:
    if not ANSIBLE_INVENTORY.exists():
        pytest.fail(f"{ANSIBLE_INVENTORY} is missing: run `make venv`")
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1"}
    done = subprocess.run(
        [str(ANSIBLE_INVENTORY), "-i", source, "--list"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # Any warning (an unparsed file, a duplicate key) means the inventory is not what it looks like.
    assert "WARNING" not in done.stderr, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def ids_of(data: dict[str, Any], group: str) -> dict[str, int]:
    hostvars = data["_meta"]["hostvars"]
    return {host: hostvars[host]["leader_node_id"] for host in data[group]["hosts"]}


def test_inventory_dir_is_exactly_the_five_containers() -> None:
    data = inventory("inventory")
    assert ids_of(data, "leader_nodes") == CONTAINERS
    assert set(data["_meta"]["hostvars"]) == set(CONTAINERS)
    hostvars = data["_meta"]["hostvars"]
    for host, node_id in CONTAINERS.items():
        assert hostvars[host]["ansible_connection"] == "community.docker.docker"
        assert hostvars[host]["leader_node_address"] == f"172.30.77.{10 + node_id}"
        assert "ansible_user" not in hostvars[host]


def test_vm_inventory_parses_separately_with_its_five_hosts() -> None:
    data = inventory("inventory-vagrant")
    assert ids_of(data, "leader_nodes") == VMS
    assert set(data["_meta"]["hostvars"]) == set(VMS)
    hostvars = data["_meta"]["hostvars"]
    for host, node_id in VMS.items():
        assert hostvars[host]["ansible_host"] == f"192.168.56.{10 + node_id}"
        assert hostvars[host]["ansible_user"] == "vagrant"
        assert "ansible_connection" not in hostvars[host]
        # The cluster settings come from group_vars beside the VM inventory, like the containers'.
        for timer in ("heartbeat_interval", "failure_timeout", "election_timeout"):
            assert f"leader_node_{timer}" in hostvars[host], timer
