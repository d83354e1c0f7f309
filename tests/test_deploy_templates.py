"""The role's templates rendered by the pinned Ansible itself (ansible-playbook on localhost, no host
touched): the unit's IP filtering (issue 13, item 4: leader_node_ip_address_allow, opt-in) and node.toml's
previous_secret_file (item 8: leader_node_previous_secret).

The role's defaults and derived vars are loaded as the role would (vars_files of the play); the values
a test sets are extra vars, which win over both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
ROLE = REPO / "deploy" / "roles" / "leader_node"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
if not ANSIBLE_PLAYBOOK.exists():
    ANSIBLE_PLAYBOOK = REPO / ".venv" / "bin" / "ansible-playbook"

PLAY = f"""\
- name: Render the role's templates
  hosts: localhost
  connection: local
  gather_facts: false
  vars_files:
    - {ROLE}/defaults/main.yml
    - {ROLE}/vars/main.yml
  tasks:
    - name: Render the unit
      ansible.builtin.template:
        src: {ROLE}/templates/leader-node.service.j2
        dest: "{{{{ out }}}}/leader-node.service"
        mode: "0644"
    - name: Render node.toml
      ansible.builtin.template:
        src: {ROLE}/templates/node.toml.j2
        dest: "{{{{ out }}}}/node.toml"
        mode: "0644"
"""

BASE: dict[str, Any] = {
    "leader_node_id": 2,
    "leader_node_peers": {"1": "10.0.0.1:7700", "2": "10.0.0.2:7700", "3": "[fd00::3]:7700"},
    "leader_node_listen_host": "10.0.0.2",
    "ansible_python_interpreter": sys.executable,
}


def render(tmp_path: Path, **extra: Any) -> tuple[str, str]:
    if not ANSIBLE_PLAYBOOK.exists():
        pytest.fail(f"{ANSIBLE_PLAYBOOK} is missing: run `make venv`")
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "vars.json").write_text(json.dumps({**BASE, "out": str(tmp_path), **extra}))
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "0"}
    done = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", "localhost,", "play.yml", "-e", "@vars.json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return (tmp_path / "leader-node.service").read_text(), (tmp_path / "node.toml").read_text()


def directives(unit: str, name: str) -> list[str]:
    return [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith(f"{name}=")]


def test_no_ip_restriction_by_default(tmp_path: Path) -> None:
    unit, node_toml = render(tmp_path)
    assert directives(unit, "IPAddressDeny") == []
    assert directives(unit, "IPAddressAllow") == []
    assert "previous_secret_file" not in node_toml


def test_the_cluster_list_is_members_loopback_and_monitoring(tmp_path: Path) -> None:
    unit, _ = render(
        tmp_path,
        leader_node_ip_address_allow="{{ leader_node_ip_address_allow_cluster }}",
        leader_node_monitoring_networks=["192.0.2.0/24", "2001:db8::/32"],
    )
    assert directives(unit, "IPAddressDeny") == ["any"]
    assert directives(unit, "IPAddressAllow") == [
        "10.0.0.1 10.0.0.2 fd00::3 127.0.0.0/8 ::1 192.0.2.0/24 2001:db8::/32"
    ]
    # In [Service], where systemd reads it.
    assert unit.index("[Service]") < unit.index("IPAddressDeny=") < unit.index("[Install]")


def test_an_explicit_list_is_rendered_as_given(tmp_path: Path) -> None:
    unit, _ = render(tmp_path, leader_node_ip_address_allow=["10.1.0.0/16", "localhost"])
    assert directives(unit, "IPAddressDeny") == ["any"]
    assert directives(unit, "IPAddressAllow") == ["10.1.0.0/16 localhost"]


def test_a_previous_secret_adds_previous_secret_file(tmp_path: Path) -> None:
    _, node_toml = render(tmp_path, leader_node_previous_secret="old-secret-0123456789")
    assert 'previous_secret_file = "/etc/leader-node/cluster.secret.previous"' in node_toml.splitlines()
    assert "old-secret" not in node_toml  # the file is named, the secret is not in node.toml


def test_reload_sends_sighup_and_the_cluster_name_is_rendered(tmp_path: Path) -> None:
    unit, node_toml = render(tmp_path)
    assert directives(unit, "ExecReload") == ["/bin/kill -HUP $MAINPID"]
    assert 'cluster_name = "leader-node"' in node_toml.splitlines()
    _, node_toml = render(tmp_path, leader_node_cluster_name="prod-eu")
    assert 'cluster_name = "prod-eu"' in node_toml.splitlines()


def test_no_hooks_by_default(tmp_path: Path) -> None:
    unit, node_toml = render(tmp_path)
    assert "[hooks]" not in node_toml
    assert directives(unit, "TimeoutStopSec") == ["15s"]


def test_a_leader_unit_names_the_shipped_hook_and_stopping_covers_two_runs(tmp_path: Path) -> None:
    unit, node_toml = render(
        tmp_path, leader_node_leader_unit="myapp.service", leader_node_hooks_timeout_sec=8
    )
    hooks = tomllib.loads(node_toml)["hooks"]
    assert hooks == {"on_role_change": "/opt/leader-node/libexec/leader-unit-hook", "timeout": "8s"}
    assert directives(unit, "TimeoutStopSec") == ["21s"]  # 2 x 8 s + 5 s


def test_an_operators_hook_is_named_as_given(tmp_path: Path) -> None:
    _, node_toml = render(tmp_path, leader_node_hooks_on_role_change="/etc/leader-node/hooks/role-change")
    assert tomllib.loads(node_toml)["hooks"]["on_role_change"] == "/etc/leader-node/hooks/role-change"


def test_the_unit_gives_the_control_socket_a_runtime_directory(tmp_path: Path) -> None:
    unit, node_toml = render(tmp_path)
    assert directives(unit, "RuntimeDirectory") == ["leader-node"]
    assert directives(unit, "RuntimeDirectoryMode") == ["0750"]
    assert "control_socket" not in node_toml  # the default, /run/leader-node/control.sock, is in it


def test_a_gate_and_a_health_check_are_rendered_without_a_role_change_hook(tmp_path: Path) -> None:
    _, node_toml = render(
        tmp_path,
        leader_node_hooks_before_lead="/etc/leader-node/hooks/before-lead",
        leader_node_hooks_health_check="/etc/leader-node/hooks/health",
        leader_node_hooks_health_interval="500ms",
        leader_node_hooks_timeout_sec=3,
    )
    assert tomllib.loads(node_toml)["hooks"] == {
        "before_lead": "/etc/leader-node/hooks/before-lead",
        "health_check": "/etc/leader-node/hooks/health",
        "health_interval": "500ms",
        "timeout": "3s",
    }
    _, node_toml = render(
        tmp_path, leader_node_leader_unit="myapp.service", leader_node_hooks_health_check="/usr/local/bin/ok"
    )
    assert tomllib.loads(node_toml)["hooks"] == {
        "on_role_change": "/opt/leader-node/libexec/leader-unit-hook",
        "health_check": "/usr/local/bin/ok",
        "health_interval": "2s",
        "timeout": "10s",
    }
