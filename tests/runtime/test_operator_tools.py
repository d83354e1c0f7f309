"""The operators' own tools: promtool on live /metrics and on the shipped alert rules, HAProxy in front of
/leader on real loopback nodes.

The tools come from Debian (`prometheus` provides promtool, `haproxy`); .ci/run installs them. Outside CI
a missing tool skips its test; under CI=true it fails, so CI can never pass without having run them.
"""

from __future__ import annotations

import http.client
import os
import re
import shlex
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .cluster import Cluster, http_get, wait_until
from .operators import (
    ALERT_RULES,
    OPERATIONS_MD,
    REPO_ROOT,
    SCRAPE_JOB,
    HAProxy,
    Prometheus,
    Server,
    kill_through,
    require_tool,
    wait_routed_to,
)

ALERT_RULES_TEST = REPO_ROOT / "tests" / "monitoring" / "leader-node.rules.test.yml"
SCRAPE_EXAMPLE = REPO_ROOT / "deploy" / "monitoring" / "prometheus.yml"


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


def test_prometheus_scrapes_live_nodes_with_the_shipped_rules(
    make_cluster: Callable[..., Cluster], tmp_path: Path
) -> None:
    """A real Prometheus scrapes three loopback nodes and evaluates the shipped rules: every rule loads
    and evaluates without error, one leader is seen, and no alert fires on a healthy cluster."""
    binary = require_tool("prometheus", "prometheus")
    cluster = make_cluster(1, 2, 3)
    cluster.start()
    cluster.wait_serving()
    leader_id, _ = cluster.wait_leader()
    targets = {f"127.0.0.1:{node.http_port}": n for n, node in cluster.nodes.items()}
    prometheus = Prometheus(binary, tmp_path, sorted(targets))
    try:
        wait_until(prometheus.ready, 30, "prometheus ready", interval_s=0.1)

        def leader_seen() -> list[tuple[dict[str, str], float]]:
            up = prometheus.query(f'up{{job="{SCRAPE_JOB}"}} == 1')
            leaders = prometheus.query("leader_node_is_leader == 1")
            return leaders if len(up) == len(targets) and len(leaders) == 1 else []

        leaders = wait_until(leader_seen, 30, "three targets up and one leader in Prometheus", 0.2)
        assert targets[leaders[0][0]["instance"]] == leader_id

        def evaluated() -> list[dict[str, Any]]:
            rules = prometheus.rules()
            # Prometheus reports 0001-01-01T00:00:00Z for a rule not evaluated yet.
            return rules if all(not r["lastEvaluation"].startswith("0001-") for r in rules) else []

        rules = wait_until(evaluated, 30, "every rule evaluated once", interval_s=0.2)
        shipped = yaml.safe_load(ALERT_RULES.read_text())["groups"][0]["rules"]
        assert sorted(rule["name"] for rule in rules) == sorted(rule["alert"] for rule in shipped)
        assert [(r["name"], r["lastError"]) for r in rules if r["health"] != "ok"] == []
        assert prometheus.alerts() == []
    finally:
        prometheus.close()


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


# -- keepalived ----------------------------------------------------------------------------------------


def documented_keepalived() -> str:
    blocks = re.findall(r"```keepalived\n(.*?)```", OPERATIONS_MD.read_text(), re.DOTALL)
    assert len(blocks) == 1, "docs/operations.md must have exactly one ```keepalived block"
    return str(blocks[0])


def test_keepalived_example_passes_keepalived_config_test(tmp_path: Path) -> None:
    """`keepalived --config-test` on the documented block, in a network namespace of its own where an
    `eth0` exists (a veth made there; the host's interfaces are not touched). keepalived 2.2 reports
    problems on stderr (and exits 5 or 6 for a missing interface or unsafe scripts); a clean check prints
    nothing and ends by a SIGTERM to itself."""
    keepalived = require_tool("keepalived", "keepalived")
    require_tool("ip", "iproute2")
    if os.geteuid() != 0:
        pytest.skip("a network namespace needs root")
    config = tmp_path / "keepalived.conf"
    config.write_text(documented_keepalived())
    script = (
        "ip link add eth0 type veth peer name eth0-peer && ip link set eth0 up && "
        f"exec {keepalived} --config-test --use-file {config}"
    )
    result = subprocess.run(
        ["unshare", "--net", "sh", "-c", script], capture_output=True, timeout=60, check=False
    )
    output = (result.stdout + result.stderr).decode()
    assert output.strip() == "" and result.returncode in (0, -signal.SIGTERM), (
        f"keepalived --config-test exited {result.returncode}:\n{output}"
    )


def test_keepalived_check_script_passes_on_the_leader_only(make_cluster: Callable[..., Cluster]) -> None:
    require_tool("curl", "curl")
    match = re.search(r'script "([^"]+)"', documented_keepalived())
    assert match is not None
    command = shlex.split(match.group(1))
    assert any(":7701/leader" in arg for arg in command), command
    cluster = make_cluster(1, 2, 3)
    cluster.start()
    cluster.wait_serving()
    leader_id, _ = cluster.wait_leader()
    for node_id, node in cluster.nodes.items():
        check = [arg.replace(":7701/", f":{node.http_port}/") for arg in command]
        result = subprocess.run(check, capture_output=True, timeout=10, check=False)
        assert (result.returncode == 0) == (node_id == leader_id), (node_id, result)


# -- HAProxy ---------------------------------------------------------------------------------------------


@pytest.fixture
def haproxy_factory() -> Iterator[Callable[[Path, list[Server]], HAProxy]]:
    binary = require_tool("haproxy", "haproxy")
    started: list[HAProxy] = []

    def start(directory: Path, servers: list[Server]) -> HAProxy:
        proxy = HAProxy(binary, directory, servers)
        started.append(proxy)
        return proxy

    try:
        yield start
    finally:
        for proxy in started:  # also when the test failed
            proxy.close()


def test_haproxy_routes_to_the_leader_only(
    make_cluster: Callable[..., Cluster], haproxy_factory: Callable[[Path, list[Server]], HAProxy]
) -> None:
    # The default timers, which the documented HAProxy timers are chosen for.
    cluster = make_cluster(1, 2, 3, heartbeat_interval="1s", failure_timeout="3s", election_timeout="5s")
    cluster.start()
    cluster.wait_serving()
    leader_id, _ = cluster.wait_leader(timeout_s=30)
    servers = [Server(n, "127.0.0.1", node.http_port) for n, node in cluster.nodes.items()]
    proxy = haproxy_factory(cluster.directory, servers)
    wait_routed_to(proxy, leader_id, timeout_s=15)

    switch = kill_through(proxy, leader_id, lambda: cluster.kill(leader_id), timeout_s=30)
    others = (n for n in cluster.nodes if n != leader_id)
    assert switch.new_leader == cluster.wait_leader(others, timeout_s=10)[0]
    print(f"HAProxy switch: {switch.describe()}")
