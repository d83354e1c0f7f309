"""The control socket and `leaderctl switchover` / `leaderctl maintenance` on real processes (issue 15,
parts 2 and 4; node/runtime/control.py): a switchover moves leadership where asked or changes nothing
and says why; maintenance hands off and survives a restart; hostile local input gets an error reply and
the node keeps working."""

from __future__ import annotations

import errno
import json
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from node.control import MAX_REQUEST_BYTES
from node.runtime.eligibility import MAINTENANCE_FILE_NAME

from .cluster import Cluster, free_port, wait_until


def leaderctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node.leaderctl", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def sock(cluster: Cluster, node_id: int) -> str:
    return str(cluster.nodes[node_id].control_socket)


def raw_request(path: str, data: bytes, *, shut: bool = True, timeout_s: float = 10) -> dict[str, Any]:
    """Send `data` as is (no framing added) and read the one reply line."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout_s)
        client.connect(path)
        client.sendall(data)
        if shut:
            client.shutdown(socket.SHUT_WR)
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = client.recv(65536)
            if not chunk:
                break
            reply += chunk
    result: dict[str, Any] = json.loads(reply)
    return result


# -- switchover -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["bully", "ring"])
def test_switchover_moves_leadership_to_the_named_node(
    make_cluster: Callable[..., Cluster], algorithm: str
) -> None:
    cluster = make_cluster(1, 2, 3, algorithm=algorithm)
    cluster.start()
    leader, epoch = cluster.wait_leader()
    target = min(n for n in cluster.nodes if n != leader)

    result = leaderctl("switchover", "--to", str(target), "--socket", sock(cluster, leader))
    assert result.returncode == 0, result.stderr
    new_leader, new_epoch = cluster.wait_leader()
    assert new_leader == target and new_epoch > epoch
    assert result.stdout == f"leader {target}, epoch {new_epoch}\n"
    assert f"node {leader} hands leadership of epoch {epoch} on to node {target}" in result.stderr
    [request] = cluster.events(leader, "control_request")
    assert (request["REQUEST"], request["TARGET"], request["REQUESTER_UID"]) == (
        "switchover",
        str(target),
        "0",
    )
    assert "accepted" in request["MESSAGE"]
    assert cluster.events(leader, "resigned")[-1]["MESSAGE"].endswith(f"(switchover to node {target})")


def test_a_switchover_that_cannot_happen_changes_nothing_and_says_why(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(1, 2, 3)
    cluster.start()
    leader, epoch = cluster.wait_leader()
    follower, other = sorted(n for n in cluster.nodes if n != leader)

    def refused(*args: str, node_id: int = leader) -> str:
        result = leaderctl("switchover", *args, "--socket", sock(cluster, node_id))
        assert result.returncode == 1, result
        assert result.stdout == ""
        running = [n for n, node in cluster.nodes.items() if node.running]
        assert cluster.agreed_leader(running) == (leader, epoch)
        return result.stderr

    assert (
        refused("--to", "9") == "switchover refused, nothing changed: 9 is not a member (members: 1, 2, 3)\n"
    )
    assert refused("--to", str(leader)).endswith(f"node {leader} already leads\n")
    assert refused("--to", str(other), node_id=follower).endswith(
        f"node {follower} is not the leader (node {leader} leads)\n"
    )
    # A stopped node cannot take over: the leader has seen it go.
    assert cluster.terminate(other) == 0
    wait_until(
        lambda: (s := cluster.status(leader)) is not None and s["peers"][str(other)]["state"] == "suspected",
        10,
        f"node {leader} to suspect node {other}",
    )
    assert refused("--to", str(other)).endswith(f"node {other} is not reachable from the leader\n")
    assert len(cluster.events(leader, "control_request")) == 3 and not cluster.events(leader, "resigned")
    usage = leaderctl("switchover", "--to", "x", "--socket", sock(cluster, leader))
    assert usage.returncode == 2 and "a node id is a positive integer" in usage.stderr

    # Without --to, the best eligible node: the only other one still running.
    result = leaderctl("switchover", "--socket", sock(cluster, leader))
    assert result.returncode == 0, result.stderr
    assert cluster.wait_leader([leader, follower])[0] == follower


# -- maintenance ----------------------------------------------------------------------------------------


def test_maintenance_hands_off_survives_a_restart_and_off_restores(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(1, 2, 3)
    cluster.start()
    leader, epoch = cluster.wait_leader()
    node = cluster.nodes[leader]

    result = leaderctl("maintenance", "on", "--socket", sock(cluster, leader))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        f"maintenance on: node {leader} does not lead and will not run for leader; "
    )
    new_leader, new_epoch = cluster.wait_leader()
    assert new_leader != leader and new_epoch > epoch
    status = cluster.status(leader)
    assert status is not None and (status["eligible"], status["ineligible_reason"]) == (False, "maintenance")
    assert cluster.metrics(leader)["leader_node_eligible"] == 0
    assert (node.state_dir / MAINTENANCE_FILE_NAME).exists()
    assert cluster.events(leader, "resigned")[-1]["MESSAGE"].endswith("(not eligible: maintenance)")

    # SIGKILL leaves the socket file behind; the restarted node replaces it and is still in maintenance.
    cluster.kill(leader)
    assert node.control_socket.exists()
    cluster.restart(leader)
    cluster.wait_serving(leader)
    wait_until(
        lambda: (s := cluster.status(leader)) is not None and s["ineligible_reason"] == "maintenance",
        10,
        "the restarted node to be in maintenance",
    )
    assert cluster.events(leader, "listening")[-1]["MESSAGE"].endswith("(in maintenance)")
    assert cluster.wait_leader() == (new_leader, new_epoch)
    shown = leaderctl("maintenance", "--socket", sock(cluster, leader))
    assert (shown.returncode, shown.stdout) == (
        0,
        f"maintenance on: node {leader} may not run for leader (maintenance)\n",
    )
    again = leaderctl("maintenance", "on", "--socket", sock(cluster, leader))  # already on: no new entry
    assert again.returncode == 0 and len(cluster.events(leader, "control_request")) == 1

    result = leaderctl("maintenance", "off", "--socket", sock(cluster, leader))
    assert (result.returncode, result.stdout) == (0, f"maintenance off: node {leader} may run for leader\n")
    assert not (node.state_dir / MAINTENANCE_FILE_NAME).exists()
    status = cluster.status(leader)
    assert status is not None and (status["eligible"], status["ineligible_reason"]) == (True, None)
    assert cluster.metrics(leader)["leader_node_eligible"] == 1
    assert cluster.wait_leader() == (new_leader, new_epoch)  # a healthy leader keeps its office
    requests = [(e["REQUEST"], e["MAINTENANCE"]) for e in cluster.events(leader, "control_request")]
    assert requests == [("maintenance", "on"), ("maintenance", "off")]


# -- the socket itself ----------------------------------------------------------------------------------


def test_the_control_socket_answers_garbage_with_an_error_and_the_node_keeps_working(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(1, 2, 3)
    cluster.start()
    leader, epoch = cluster.wait_leader()
    path = sock(cluster, leader)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
    assert stat.S_ISSOCK(os.stat(path).st_mode)

    def error_of(data: bytes, **kwargs: Any) -> str:
        reply = raw_request(path, data, **kwargs)
        assert reply["ok"] is False, reply
        return str(reply["error"])

    assert error_of(b"hello\n").startswith("request is not JSON")
    assert error_of(b"\xff\xfe\x00\x01\n") == "request is not UTF-8"
    assert error_of(b"\n") == 'empty request: send one JSON object such as {"op": "status"} and a newline'
    assert error_of(b'{"op": "switchover", "to": "everyone"}\n').startswith("to must be a node id")
    assert error_of(b"[" * 2000 + b"\n") == "request is not a JSON object: nested too deeply"
    # Oversized: refused after MAX_REQUEST_BYTES, without waiting for the rest or a newline.
    assert (
        error_of(b"x" * (MAX_REQUEST_BYTES * 4), shut=False)
        == f"request longer than {MAX_REQUEST_BYTES} bytes"
    )
    # A client that sends nothing holds one connection until the read timeout; others are answered meanwhile.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.settimeout(10)
        silent.connect(path)
        started = time.monotonic()
        assert raw_request(path, b'{"op": "status"}\n')["status"]["leader_id"] == leader
        assert time.monotonic() - started < 1.5
        reply = json.loads(silent.recv(4096))
        assert reply == {"ok": False, "error": "no complete request line within 2 s"}
        assert 1.5 <= time.monotonic() - started < 5
    # Many connections at once, all of them garbage: every one answered, nothing crashed.
    clients = []
    for _ in range(20):
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.settimeout(10)
        client.connect(path)
        client.sendall(b"{not json}\n")
        clients.append(client)
    for client in clients:
        with client:
            assert json.loads(client.recv(4096))["ok"] is False
    assert cluster.nodes[leader].running
    assert cluster.agreed_leader() == (leader, epoch)
    assert raw_request(path, b'{"op": "status"}')["status"]["role"] == "leader"  # EOF ends a line too
    assert not cluster.events(leader, "crashed")


def connect_as(path: str, uid: int, gid: int) -> int:
    """Connect to `path` from a child process running as `uid`:`gid`; its errno (0: connected)."""
    pid = os.fork()
    if pid == 0:  # the child: no pytest machinery, only the syscalls, then _exit
        code = 0
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                client.connect(path)
        except OSError as exc:
            code = exc.errno or 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to try the socket as other users")
def test_only_the_owner_and_its_group_may_use_the_socket(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(1)
    cluster.start()
    cluster.wait_leader()
    path = sock(cluster, 1)
    cluster.socket_dir.chmod(0o711)  # let others reach the socket: its own mode must stop them
    owner = os.stat(path)
    assert connect_as(path, 65534, 65534) == errno.EACCES  # nobody
    assert connect_as(path, 65534, owner.st_gid) == 0  # a member of the socket's group
    assert connect_as(path, owner.st_uid, 65534) == 0  # its owner (the service user under systemd)
    status = cluster.status(1)
    assert status is not None and status["eligible"] is True


def test_a_second_node_on_the_same_control_socket_refuses_to_start(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(1, 2)
    cluster.start(1)
    cluster.wait_serving(1)
    # Node 2 configured with node 1's socket (its own ports and state directory).
    node2 = cluster.nodes[2]
    text = node2.config_path.read_text().replace(
        str(node2.control_socket), str(cluster.nodes[1].control_socket)
    )
    node2.config_path.write_text(text)
    cluster.start(2)
    assert cluster.wait_exit(2, timeout_s=30) == 1
    [failed] = cluster.events(2, "startup_failed")
    assert "is in use by another running process" in failed["MESSAGE"]
    assert cluster.status(1) is not None  # node 1 and its socket untouched
    assert raw_request(sock(cluster, 1), b'{"op": "status"}\n')["ok"] is True
    # And a path that is not a socket is never removed.
    (cluster.directory / "plain").write_text("keep me")
    node2.config_path.write_text(
        text.replace(str(cluster.nodes[1].control_socket), str(cluster.directory / "plain"))
    )
    cluster.start(2)
    assert cluster.wait_exit(2, timeout_s=30) == 1
    assert "exists and is not a socket" in cluster.events(2, "startup_failed")[-1]["MESSAGE"]
    assert (cluster.directory / "plain").read_text() == "keep me"
    assert free_port()  # the helper still hands out ports: nothing leaked a listener
