"""Shared pytest-testinfra helpers for every Molecule scenario (run by molecule/shared/verify.yml).

Tests talk to the hosts through testinfra's Ansible backend with the scenario's own inventory; for
Molecule's docker connection that is `docker exec`, so a test keeps control of a host that iptables has
cut off. Waiting is polling with a deadline derived from the cluster's configured timers.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import testinfra

from node.core.durations import (
    DEFAULT_ELECTION_TIMEOUT_MS,
    DEFAULT_FAILURE_TIMEOUT_MS,
    DEFAULT_HEARTBEAT_INTERVAL_MS,
    duration_s,
)

HTTP_PORT = 7701
# Run on a host as `python3 -c SCRIPT URL`: prints {"code": ..., "body": ...} (code 0: no answer).
HTTP_GET_SCRIPT = """
import json, sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
        code, body = r.status, r.read().decode()
except urllib.error.HTTPError as e:
    code, body = e.code, e.read().decode()
except OSError as e:
    code, body = 0, str(e)
print(json.dumps({"code": code, "body": body}))
"""


def http_get(host: Any, path: str) -> tuple[int, str]:
    """GET http://127.0.0.1:7701<path> from inside the host: (status code or 0, body)."""
    url = f"http://127.0.0.1:{HTTP_PORT}{path}"
    result = host.run(f"python3 -c {shlex.quote(HTTP_GET_SCRIPT)} {shlex.quote(url)}")
    if result.rc != 0:
        return 0, result.stderr
    answer = json.loads(result.stdout)
    return int(answer["code"]), str(answer["body"])


def node_status(host: Any) -> dict[str, Any] | None:
    code, body = http_get(host, "/status")
    return json.loads(body) if code == 200 else None


def host_vars(host: Any) -> dict[str, Any]:
    return dict(host.ansible.get_variables())


def node_id(host: Any) -> int:
    return int(host_vars(host)["leader_node_id"])


def wait_for(predicate: Callable[[], Any], deadline_s: float, what: str, interval_s: float = 0.25) -> Any:
    """Poll `predicate` until it returns something truthy; fail with `what` at the deadline."""
    started = time.monotonic()
    last: Any = None
    while time.monotonic() - started < deadline_s:
        last = predicate()
        if last:
            return last
        time.sleep(interval_s)
    pytest.fail(f"{what}: not reached within {deadline_s:.1f} s (last: {last!r})")


@dataclass(frozen=True)
class Timers:
    heartbeat_s: float
    failure_s: float
    election_s: float

    @property
    def leader_deadline_s(self) -> float:
        """Bound for a leader known to every connected node: election rounds + detection + slack."""
        return 3 * self.election_s + self.failure_s + 5


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> list[Any]:
    """Every host of the scenario's leader_nodes group, sorted by node id."""
    hosts = testinfra.get_hosts(
        ["ansible://leader_nodes"], ansible_inventory=request.config.option.ansible_inventory
    )
    return sorted(hosts, key=node_id)


@pytest.fixture(scope="session")
def timers(cluster: list[Any]) -> Timers:
    variables = host_vars(cluster[0])

    def timer_s(name: str, default_ms: int) -> float:
        return duration_s(str(variables.get(f"leader_node_{name}", f"{default_ms}ms")))

    return Timers(
        heartbeat_s=timer_s("heartbeat_interval", DEFAULT_HEARTBEAT_INTERVAL_MS),
        failure_s=timer_s("failure_timeout", DEFAULT_FAILURE_TIMEOUT_MS),
        election_s=timer_s("election_timeout", DEFAULT_ELECTION_TIMEOUT_MS),
    )


def agreed_leader(cluster: list[Any]) -> dict[int, dict[str, Any]] | None:
    """{node id: /status} when every node names the same leader under the same epoch, else None."""
    statuses = {node_id(host): node_status(host) for host in cluster}
    if any(status is None for status in statuses.values()):
        return None
    leaders = {status["leader_id"] for status in statuses.values() if status}
    epochs = {status["epoch"] for status in statuses.values() if status}
    if len(leaders) != 1 or None in leaders or len(epochs) != 1:
        return None
    return statuses  # type: ignore[return-value]


@pytest.fixture(scope="session")
def settled(cluster: list[Any], timers: Timers) -> dict[int, dict[str, Any]]:
    """The cluster's statuses once all nodes agree on one leader and epoch (polled with a deadline)."""
    return wait_for(
        lambda: agreed_leader(cluster), timers.leader_deadline_s, "one leader agreed by all nodes"
    )
