"""The documented deploy command, `ansible-playbook deploy/site.yml -i inventory`, sees exactly the five
containers of `make cluster`; the VM inventory (inventory-vagrant/) parses on its own, is not merged in,
and lists exactly the machines Vagrant has created, whatever their provider.

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


def inventory(source: str, vagrant_dir: Path | None = None) -> dict[str, Any]:
    if not ANSIBLE_INVENTORY.exists():
        pytest.fail(f"{ANSIBLE_INVENTORY} is missing: run `make venv`")
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1"}
    if vagrant_dir is not None:
        env["VAGRANT_DOTFILE_PATH"] = str(vagrant_dir)
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


def created(vagrant_dir: Path, provider: str, *names: str) -> None:
    """What `vagrant up` leaves behind for each machine: .vagrant/machines/<name>/<provider>/id."""
    for name in names:
        machine = vagrant_dir / "machines" / name / provider
        machine.mkdir(parents=True)
        (machine / "id").write_text("0f5c6d1e\n")


def test_vm_inventory_lists_the_created_machines_with_their_keys(tmp_path: Path) -> None:
    created(tmp_path, "libvirt", *VMS)
    data = inventory("inventory-vagrant", tmp_path)
    assert ids_of(data, "leader_nodes") == VMS
    assert set(data["_meta"]["hostvars"]) == set(VMS)
    hostvars = data["_meta"]["hostvars"]
    for host, node_id in VMS.items():
        assert hostvars[host]["ansible_host"] == f"192.168.56.{10 + node_id}"
        assert hostvars[host]["leader_node_address"] == f"192.168.56.{10 + node_id}"
        assert hostvars[host]["ansible_user"] == "vagrant"
        assert hostvars[host]["ansible_ssh_private_key_file"] == str(
            tmp_path / "machines" / host / "libvirt" / "private_key"
        )
        assert "ansible_connection" not in hostvars[host]
        # The cluster settings come from group_vars beside the VM inventory, like the containers'.
        for timer in ("heartbeat_interval", "failure_timeout", "election_timeout"):
            assert f"leader_node_{timer}" in hostvars[host], timer


def test_vm_inventory_follows_what_vagrant_created(tmp_path: Path) -> None:
    # Three VMs (make cluster-vm's default) are a three-member cluster; a machine defined in the
    # Vagrantfile but never created (no id) is not a member; another provider's key path is its own.
    created(tmp_path, "virtualbox", "leader-node-vm-1", "leader-node-vm-3")
    created(tmp_path, "virtualbox", "leader-node-vm-2")
    (tmp_path / "machines" / "leader-node-vm-4" / "virtualbox").mkdir(parents=True)
    created(tmp_path, "virtualbox", "unrelated-box")
    data = inventory("inventory-vagrant", tmp_path)
    assert ids_of(data, "leader_nodes") == {f"leader-node-vm-{i}": i for i in (1, 2, 3)}
    key = data["_meta"]["hostvars"]["leader-node-vm-3"]["ansible_ssh_private_key_file"]
    assert key == str(tmp_path / "machines" / "leader-node-vm-3" / "virtualbox" / "private_key")


def test_vm_inventory_is_empty_before_vagrant_up(tmp_path: Path) -> None:
    data = inventory("inventory-vagrant", tmp_path)
    assert data.get("leader_nodes", {}).get("hosts", []) == []
