"""leaderctl against real nodes: one table for the cluster, the leader's id/address/epoch."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from node.leaderctl import Reply, format_table, normalize_url, status_rows

from .cluster import Cluster, free_port


def leaderctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node.leaderctl", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_status_and_leader(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(1, 2, 3)
    cluster.start()
    leader_id, epoch = cluster.wait_leader()
    urls = [cluster.nodes[n].url for n in (1, 2, 3)]
    dead_url = f"http://127.0.0.1:{free_port()}"

    result = leaderctl("status", *urls)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "URL",
        "NODE",
        "ROLE",
        "LEADER",
        "EPOCH",
        "QUORUM",
        "ALIVE",
        "SUSPECTED",
        "NOTE",
    ]
    rows = {int(line.split()[1]): line.split() for line in lines[1:]}
    for node_id, row in rows.items():
        role = "leader" if node_id == leader_id else "follower"
        others = ",".join(str(n) for n in (1, 2, 3) if n != node_id)
        assert row[2:] == [role, str(leader_id), str(epoch), "3/2", "ok", others, "-"]

    result = leaderctl("status", *urls, dead_url)
    assert result.returncode == 1  # a node did not answer
    dead_row = next(line for line in result.stdout.splitlines() if line.startswith(dead_url))
    assert dead_row.split()[1:] == ["-", "unreachable", "-", "-", "-", "-", "-", "connection", "refused"]

    result = leaderctl("status", "--json", *urls)
    parsed = json.loads(result.stdout)
    assert [entry["status"]["node_id"] for entry in parsed] == [1, 2, 3]

    result = leaderctl("leader", dead_url, *urls)
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout == f"leader {leader_id} at 127.0.0.1:{cluster.nodes[leader_id].port}, epoch {epoch}\n"
    )
    result = leaderctl("leader", "--json", *urls)
    assert json.loads(result.stdout)["leader_id"] == leader_id

    result = leaderctl("leader", cluster.nodes[1].url)  # a follower alone cannot answer as leader
    assert result.returncode == 1
    assert "no node answered as leader" in result.stderr


def test_table_formatting_without_a_cluster() -> None:
    replies = [
        Reply("http://a:7701", None, None, "timed out"),
        Reply(
            "http://b:7701",
            200,
            {
                "node_id": 2,
                "role": "no-quorum",
                "leader_id": None,
                "epoch": 4,
                "peers": {"1": {"state": "suspected"}, "3": {"state": "alive"}, "4": {"state": "suspected"}},
                "quorum": {"size": 3, "reachable": 2},
            },
        ),
    ]
    table = format_table(status_rows(replies)).splitlines()
    assert table[1].split() == ["http://a:7701", "-", "unreachable", "-", "-", "-", "-", "-", "timed", "out"]
    assert table[2].split() == ["http://b:7701", "2", "no-quorum", "-", "4", "2/3", "LOST", "3", "1,4"]
    assert normalize_url("10.0.0.5") == "http://10.0.0.5:7701"
    assert normalize_url("10.0.0.5:8000/") == "http://10.0.0.5:8000"


def test_switchover_and_maintenance_without_a_node_on_this_host(tmp_path: Path) -> None:
    missing = str(tmp_path / "control.sock")
    for args in (("switchover", "--to", "2"), ("maintenance", "on"), ("maintenance",)):
        result = leaderctl(*args, "--socket", missing)
        assert result.returncode == 1
        assert f"no control socket at {missing}: is leader-node running here?" in result.stderr
    usage = leaderctl("maintenance", "maybe")
    assert usage.returncode == 2 and "invalid choice" in usage.stderr
    usage = leaderctl("switchover", "--wait", "ten", "--socket", missing)
    assert usage.returncode == 2 and "cannot read duration" in usage.stderr
