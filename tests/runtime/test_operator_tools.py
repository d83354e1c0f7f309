"""The operators' own tools: promtool on live /metrics and on the shipped alert rules, HAProxy in front of
/leader on real loopback nodes.

The tools come from Debian (`prometheus` provides promtool, `haproxy`); .ci/run installs them. Outside CI
a missing tool skips its test; under CI=true it fails, so CI can never pass without having run them.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from .cluster import Cluster, free_port, http_get, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
OPERATIONS_MD = REPO_ROOT / "docs" / "operations.md"
ALERT_RULES = REPO_ROOT / "deploy" / "monitoring" / "leader-node.rules.yml"
ALERT_RULES_TEST = REPO_ROOT / "tests" / "monitoring" / "leader-node.rules.test.yml"
SCRAPE_EXAMPLE = REPO_ROOT / "deploy" / "monitoring" / "prometheus.yml"


def require_tool(name: str, package: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is not None:
        return path
    message = f"{name} is not installed (Debian package {package}; .ci/run installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}: under CI=true this test must run")
    pytest.skip(message)


def request(port: int, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_head_and_options_answer_like_get(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(1, 2, 3)
    cluster.start()
    cluster.wait_serving()
    leader_id, _ = cluster.wait_leader()
    for node_id, node in cluster.nodes.items():
        expected = 200 if node_id == leader_id else 503
        get_status, get_headers, get_body = request(node.http_port, "GET", "/leader")
        assert get_status == expected
        for method in ("HEAD", "OPTIONS"):
            status, headers, body = request(node.http_port, method, "/leader")
            assert status == expected, f"{method} /leader on node {node_id}"
            assert headers["Allow"] == "GET, HEAD, OPTIONS"
            assert headers["Content-Length"] == get_headers["Content-Length"]
            assert body == (b"" if method == "HEAD" else get_body)
        for path in ("/status", "/metrics"):
            status, headers, body = request(node.http_port, "HEAD", path)
            assert (status, body) == (200, b""), f"HEAD {path} on node {node_id}"
            assert int(headers["Content-Length"]) > 0


def test_metrics_pass_promtool(make_cluster: Callable[..., Cluster]) -> None:
    promtool = require_tool("promtool", "prometheus")
    cluster = make_cluster(1, 2, 3)
    cluster.start()
    cluster.wait_serving()
    leader_id, _ = cluster.wait_leader()
    for node_id in (leader_id, next(n for n in cluster.nodes if n != leader_id)):
        reply = http_get(cluster.nodes[node_id].url + "/metrics")
        assert reply is not None and reply[0] == 200
        text = reply[1].decode()
        for name in (
            "leader_node_has_leader",
            "leader_node_role",
            "leader_node_quorum_reachable",
            "leader_node_last_leader_change_timestamp_seconds",
            "leader_node_leaderless_seconds_total",
            "leader_node_build_info",
            "process_start_time_seconds",
        ):
            assert f"# TYPE {name} " in text, name
        check = subprocess.run(
            [promtool, "check", "metrics"], input=reply[1], capture_output=True, timeout=60, check=False
        )
        # promtool prints lint problems (names, HELP, units) and exits 1 on any of them.
        assert check.returncode == 0, f"promtool check metrics on node {node_id}:\n{check.stdout.decode()}"
        assert check.stdout.decode().strip() == "" and check.stderr.decode().strip() == ""


# -- alert rules ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("check", "rules", str(ALERT_RULES)),
        ("check", "config", str(SCRAPE_EXAMPLE)),
        ("test", "rules", str(ALERT_RULES_TEST)),
    ],
    ids=["check-rules", "check-scrape-example", "test-rules"],
)
def test_alert_rules_pass_promtool(args: tuple[str, ...]) -> None:
    promtool = require_tool("promtool", "prometheus")
    result = subprocess.run([promtool, *args], capture_output=True, timeout=120, check=False, cwd=REPO_ROOT)
    output = result.stdout.decode() + result.stderr.decode()
    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{output}"


def test_every_alert_is_tested_both_ways_and_documented() -> None:
    """Each shipped alert has a promtool case where it fires and one where it stays quiet, and a row in
    docs/operations.md."""
    rules = yaml.safe_load(ALERT_RULES.read_text())
    alerts = [rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule]
    assert len(alerts) == len(set(alerts)) >= 6, alerts
    cases = yaml.safe_load(ALERT_RULES_TEST.read_text())
    checks = [check for test in cases["tests"] for check in test.get("alert_rule_test", [])]
    fires = {check["alertname"] for check in checks if check["exp_alerts"]}
    stays_quiet = {check["alertname"] for check in checks if not check["exp_alerts"]}
    assert fires == set(alerts), f"alerts without a firing case: {set(alerts) - fires}"
    assert stays_quiet == set(alerts), f"alerts without a quiet case: {set(alerts) - stays_quiet}"
    documented = OPERATIONS_MD.read_text()
    assert [a for a in alerts if f"`{a}`" not in documented] == []


# -- HAProxy ---------------------------------------------------------------------------------------------


def documented_backend() -> list[str]:
    """The `option`, `http-check` and `default-server` lines of docs/operations.md's HAProxy block."""
    blocks = re.findall(r"```haproxy\n(.*?)```", OPERATIONS_MD.read_text(), re.DOTALL)
    assert len(blocks) == 1, "docs/operations.md must have exactly one ```haproxy block"
    lines = [line.strip() for line in blocks[0].splitlines()]
    kept = [line for line in lines if line.startswith(("option ", "http-check ", "default-server "))]
    assert any(line.startswith("option httpchk") for line in kept), kept
    return kept


class HAProxy:
    def __init__(self, binary: str, directory: Path, servers: dict[int, int]) -> None:
        self.port = free_port()
        self.config = directory / "haproxy.cfg"
        backend = "\n".join(f"    {line}" for line in documented_backend())
        server_lines = "\n".join(
            f"    server node{node_id} 127.0.0.1:{port} port {port}"
            for node_id, port in sorted(servers.items())
        )
        self.config.write_text(
            "global\n"
            "    log stderr format short local0 notice\n"
            "defaults\n"
            "    mode http\n"
            "    log global\n"
            "    timeout connect 1s\n"
            "    timeout client 5s\n"
            "    timeout server 5s\n"
            "    timeout check 1s\n"
            "    retries 0\n"
            "frontend leader_front\n"
            f"    bind 127.0.0.1:{self.port}\n"
            "    default_backend leader_only\n"
            "backend leader_only\n"
            f"{backend}\n{server_lines}\n"
        )
        check = subprocess.run(
            [binary, "-c", "-f", str(self.config)], capture_output=True, timeout=30, check=False
        )
        assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
        self.log = (directory / "haproxy.log").open("wb")
        self.process = subprocess.Popen(
            [binary, "-db", "-f", str(self.config)],
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def ask(self) -> tuple[int, dict[str, object] | None]:
        """(HTTP status, the answering node's /status) through HAProxy; 0 when HAProxy does not answer."""
        reply = http_get(f"http://127.0.0.1:{self.port}/status", timeout_s=2)
        if reply is None:
            return 0, None
        if reply[0] != 200:
            return reply[0], None
        status: dict[str, object] = json.loads(reply[1])
        return 200, status

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.log.close()


@pytest.fixture
def haproxy_factory() -> Iterator[Callable[[Path, dict[int, int]], HAProxy]]:
    binary = require_tool("haproxy", "haproxy")
    started: list[HAProxy] = []

    def start(directory: Path, servers: dict[int, int]) -> HAProxy:
        proxy = HAProxy(binary, directory, servers)
        started.append(proxy)
        return proxy

    try:
        yield start
    finally:
        for proxy in started:  # also when the test failed
            proxy.close()


def test_haproxy_routes_to_the_leader_only(
    make_cluster: Callable[..., Cluster], haproxy_factory: Callable[[Path, dict[int, int]], HAProxy]
) -> None:
    # The default timers, which the documented HAProxy timers are chosen for.
    cluster = make_cluster(1, 2, 3, heartbeat_interval="1s", failure_timeout="3s", election_timeout="5s")
    cluster.start()
    cluster.wait_serving()
    leader_id, _ = cluster.wait_leader(timeout_s=30)
    proxy = haproxy_factory(cluster.directory, {n: node.http_port for n, node in cluster.nodes.items()})

    # HAProxy counts servers up at its start until their first check: wait for it to settle on the leader.
    def settled() -> bool:
        return all(
            (status := proxy.ask()[1]) is not None and status["node_id"] == leader_id for _ in range(10)
        )

    wait_until(settled, 15, f"HAProxy to route to leader {leader_id} only")
    answers: list[tuple[float, int, dict[str, object] | None]] = []

    def record(until: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not until():
            assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what}"
            code, status = proxy.ask()
            answers.append((time.monotonic(), code, status))

    sample_end = time.monotonic() + 1.0
    record(lambda: time.monotonic() >= sample_end, 5, "a second of requests")
    killed_at = time.monotonic()
    cluster.kill(leader_id)

    def new_leader_answered() -> bool:
        return bool(answers) and answers[-1][2] is not None and answers[-1][2]["node_id"] != leader_id

    record(new_leader_answered, 30, "a request through HAProxy to reach a new leader")
    switched_at = answers[-1][0]
    new_leader = answers[-1][2]["node_id"] if answers[-1][2] else None
    after_end = time.monotonic() + 2.0
    record(lambda: time.monotonic() >= after_end, 5, "two more seconds of requests")

    served = [(t, s) for t, code, s in answers if code == 200 and s is not None]
    # Every request that reached a node reached one that was leading when it answered.
    assert all(s["role"] == "leader" for _, s in served), [s for _, s in served if s["role"] != "leader"]
    assert all(s["node_id"] == leader_id for t, s in served if t < killed_at)
    assert all(s["node_id"] == new_leader for t, s in served if t > switched_at)
    # While no server is up HAProxy answers 503 itself; a connection cut by the SIGKILL may give 502/504.
    others = {code for _, code, s in answers if s is None}
    assert others <= {502, 503, 504}, f"HAProxy answered {others}"
    assert new_leader == cluster.wait_leader((n for n in cluster.nodes if n != leader_id), timeout_s=10)[0]
    switch_ms = (switched_at - killed_at) * 1000
    print(
        f"HAProxy switch: leader {leader_id} SIGKILLed, leader {new_leader} served after {switch_ms:.0f} ms; "
        f"{len(served)} of {len(answers)} requests answered by a node, every one by the leader"
    )
