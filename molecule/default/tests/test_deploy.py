"""The deployed service, host by host and as a cluster (Molecule scenario `default`)."""

from __future__ import annotations

import json
import os
import re
import tomllib
from typing import Any

from conftest import host_vars, http_get, node_id

SERVICE = "leader-node"
MAX_EXPOSURE = 2.5


def unit_properties(host: Any, *names: str) -> dict[str, str]:
    out = host.check_output(f"systemctl show {SERVICE} " + " ".join(f"-p {name}" for name in names))
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_unit_active_and_enabled(host: Any) -> None:
    service = host.service(SERVICE)
    assert service.is_running
    assert service.is_enabled


def test_notify_unit_reached_ready(host: Any) -> None:
    props = unit_properties(
        host,
        "Type",
        "NotifyAccess",
        "ActiveState",
        "SubState",
        "StatusText",
        "WatchdogUSec",
        "Restart",
        "RestartPreventExitStatus",
        "StartLimitBurst",
        "LimitNOFILE",
        "TasksMax",
        "MemoryMax",
        "SyslogIdentifier",
    )
    assert props["Type"] == "notify"
    assert props["NotifyAccess"] == "main"
    # A Type=notify unit leaves "activating" only after READY=1.
    assert (props["ActiveState"], props["SubState"]) == ("active", "running")
    assert props["Restart"] == "always"  # any exit systemctl did not ask for, a SIGHUP death included
    assert props["RestartPreventExitStatus"] == "2"  # but not a bad node.toml
    assert (props["StartLimitBurst"], props["LimitNOFILE"], props["TasksMax"]) == ("5", "4096", "64")
    assert props["MemoryMax"] == str(256 * 1024 * 1024)
    assert props["WatchdogUSec"] not in ("", "0", "infinity")
    assert props["SyslogIdentifier"] == SERVICE
    assert "role=" in props["StatusText"] and "epoch=" in props["StatusText"], props["StatusText"]


def test_runs_as_its_own_system_user(host: Any) -> None:
    user = host.user("leader-node")
    assert user.exists and user.group == "leader-node"
    assert user.uid < 1000 and user.shell == "/usr/sbin/nologin"
    pid = unit_properties(host, "MainPID")["MainPID"]
    assert host.check_output(f"ps -o user:32=,group:32= -p {pid}").split() == ["leader-node", "leader-node"]


def test_config_rendered_from_inventory_and_valid(host: Any, cluster: list[Any]) -> None:
    config = host.file("/etc/leader-node/node.toml")
    assert (config.user, config.group, config.mode) == ("root", "leader-node", 0o640)
    assert (
        host.check_output("/opt/leader-node/bin/leader-node check-config /etc/leader-node/node.toml") == "ok"
    )
    document = tomllib.loads(config.content_string)
    variables = host_vars(host)
    assert document["node_id"] == int(variables["leader_node_id"])
    assert document["listen"] == f"{variables['leader_node_address']}:7700"
    assert document["algorithm"] == (os.environ.get("LEADER_NODE_ALGORITHM") or "bully")
    assert document["preempt"] is False
    # Every member of the scenario's cluster: five containers in default, three VMs in vm.
    assert sorted(int(key) for key in document["peers"]) == [node_id(member) for member in cluster]
    assert document["peers"][str(document["node_id"])] == document["listen"]
    assert document["state_dir"] == "/var/lib/leader-node"


def test_secret_file_private_to_the_service_group(host: Any) -> None:
    secret = host.file("/etc/leader-node/cluster.secret")
    assert (secret.user, secret.group, secret.mode) == ("root", "leader-node", 0o640)
    assert secret.size >= 16


def test_state_dir_owned_by_the_service(host: Any) -> None:
    state_dir = host.file("/var/lib/leader-node")
    assert state_dir.is_directory
    assert (state_dir.user, state_dir.group) == ("leader-node", "leader-node")
    assert state_dir.mode & 0o007 == 0, oct(state_dir.mode)  # nothing for others


def test_installed_offline_from_the_wheelhouse(host: Any) -> None:
    assert host.file("/opt/leader-node/bin/leader-node").is_file
    installed = host.check_output(
        "/opt/leader-node/bin/python -c "
        '\'import importlib.metadata as m; print(m.version("leader-node"), m.version("gevent"))\''
    ).split()
    wheelhouse = host.file("/var/cache/leader-node/wheelhouse/requirements.txt").content_string
    assert f"leader-node=={installed[0]}" in wheelhouse
    assert f"gevent=={installed[1]}" in wheelhouse


def test_hardening_exposure_score(host: Any) -> None:
    out = host.check_output(f"systemd-analyze security --no-pager {SERVICE}")
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)
    assert match, out[-500:]
    exposure = float(match.group(1))
    print(f"{host.check_output('hostname')}: systemd-analyze security exposure {exposure}")
    assert exposure <= MAX_EXPOSURE


def test_exactly_one_leader_with_one_epoch(settled: dict[int, dict[str, Any]]) -> None:
    leaders = [nid for nid, status in settled.items() if status["role"] == "leader"]
    assert len(leaders) == 1, settled
    leader = leaders[0]
    assert all(status["leader_id"] == leader for status in settled.values()), settled
    assert len({status["epoch"] for status in settled.values()}) == 1, settled
    assert all(status["role"] == "follower" for nid, status in settled.items() if nid != leader), settled
    assert all(
        status["algorithm"] == (os.environ.get("LEADER_NODE_ALGORITHM") or "bully")
        for status in settled.values()
    )


def test_leader_endpoint_only_on_the_leader(cluster: list[Any], settled: dict[int, dict[str, Any]]) -> None:
    leader_id = next(iter(settled.values()))["leader_id"]
    for host in cluster:
        code, body = http_get(host, "/leader")
        if node_id(host) == leader_id:
            assert code == 200, body
            answer = json.loads(body)
            assert answer["leader_id"] == leader_id
            assert answer["epoch"] == settled[leader_id]["epoch"]
            assert answer["address"]
        else:
            assert code == 503, (node_id(host), code, body)


def test_became_leader_in_the_journal(cluster: list[Any], settled: dict[int, dict[str, Any]]) -> None:
    leader_id = next(iter(settled.values()))["leader_id"]
    epoch = settled[leader_id]["epoch"]
    leader_host = next(host for host in cluster if node_id(host) == leader_id)
    out = leader_host.check_output(f"journalctl -u {SERVICE} EVENT=became_leader -o json --no-pager")
    entries = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert any(
        entry.get("SYSLOG_IDENTIFIER") == SERVICE
        and entry.get("NODE_ID") == str(leader_id)
        and entry.get("EPOCH") == str(epoch)
        for entry in entries
    ), entries


def test_metrics_name_the_leader(cluster: list[Any], settled: dict[int, dict[str, Any]]) -> None:
    leader_id = next(iter(settled.values()))["leader_id"]
    for host in cluster:
        code, body = http_get(host, "/metrics")
        assert code == 200
        match = re.search(r"^leader_node_is_leader(?:\{[^}]*\})? ([0-9.]+)$", body, re.MULTILINE)
        assert match, body[:500]
        assert float(match.group(1)) == (1.0 if node_id(host) == leader_id else 0.0)
