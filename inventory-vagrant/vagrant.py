#!/usr/bin/env python3
"""The VM inventory: the machines of the repository's Vagrantfile that Vagrant has created.

An Ansible inventory script (`--list`, `--host NAME`). A machine counts once Vagrant has created it
(`.vagrant/machines/<name>/<provider>/id` exists; Vagrant's VAGRANT_DOTFILE_PATH moves `.vagrant`), so
the cluster is whatever `vagrant up` brought up:
three VMs by default with `make cluster-vm`, five with VMS=5; its members' peer lists follow. Machine
leader-node-vm-N is node id N at 192.168.56.(10+N) on the private network (the Vagrantfile's
addresses), reached over SSH as user vagrant with the key Vagrant made for it, whatever the provider.
Cluster settings: group_vars/leader_nodes.yml (a link to the container cluster's: the same timers).
  scripts/vm.sh ansible-playbook deploy/site.yml -i inventory-vagrant
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

DOTFILE_DIR = Path(
    os.environ.get("VAGRANT_DOTFILE_PATH", Path(__file__).resolve().parent.parent / ".vagrant")
)
MACHINES_DIR = DOTFILE_DIR / "machines"
NAME = re.compile(r"leader-node-vm-([1-9][0-9]?)")
SUBNET_PREFIX = "192.168.56."


def created_machines(machines_dir: Path) -> dict[str, dict[str, object]]:
    """Host variables of each created machine, by inventory hostname."""
    hosts: list[tuple[int, str, dict[str, object]]] = []
    for machine in machines_dir.glob("*/*/id"):
        name, provider = machine.parent.parent.name, machine.parent.name
        match = NAME.fullmatch(name)
        if match is None or not machine.read_text().strip():
            continue
        node_id = int(match.group(1))
        address = f"{SUBNET_PREFIX}{10 + node_id}"
        variables: dict[str, object] = {
            "ansible_host": address,
            "ansible_ssh_private_key_file": str(machines_dir / name / provider / "private_key"),
            "leader_node_id": node_id,
            "leader_node_address": address,
        }
        hosts.append((node_id, name, variables))
    return {name: variables for _, name, variables in sorted(hosts)}


def inventory(machines_dir: Path) -> dict[str, object]:
    hosts = created_machines(machines_dir)
    return {
        "all": {"children": ["leader_nodes"]},
        "leader_nodes": {
            "hosts": list(hosts),
            "vars": {
                "ansible_user": "vagrant",
                "ansible_become": True,
                # Each `vagrant up` makes new machines with new host keys on the same addresses.
                "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
                # Under emulation on a busy machine, sudo's prompt can take longer than the default 10 s.
                "ansible_ssh_timeout": 60,
                # Modules through SSH's stdin: fewer round trips, which count under emulation.
                "ansible_pipelining": True,
                # Debian's python3 is 3.11 on bookworm, matching a wheelhouse built with Python 3.11.
                "ansible_python_interpreter": "/usr/bin/python3",
            },
        },
        "_meta": {"hostvars": hosts},
    }


def main(argv: list[str]) -> int:
    if argv[1:2] == ["--list"]:
        print(json.dumps(inventory(MACHINES_DIR), indent=2))
        return 0
    if len(argv) == 3 and argv[1] == "--host":
        print(json.dumps(created_machines(MACHINES_DIR).get(argv[2], {})))
        return 0
    print("usage: vagrant.py --list | --host NAME", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
