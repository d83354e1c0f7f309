"""The operators' tools as real processes: HAProxy in front of `/leader`, Prometheus scraping `/metrics`.

Used by the loopback tests (tests/runtime/test_operator_tools.py) and by the Molecule kill-leader
scenario, which runs both on the controller in front of its five containers. Both come from Debian
(`haproxy`, `prometheus`); .ci/run installs them. Each listens on a free loopback port; `close()` kills
the process (callers do it in a finally). Nothing here sleeps to synchronise: callers poll with deadlines.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from .cluster import free_port, http_get, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
OPERATIONS_MD = REPO_ROOT / "docs" / "operations.md"
ALERT_RULES = REPO_ROOT / "deploy" / "monitoring" / "leader-node.rules.yml"
SCRAPE_JOB = "leader-node"  # the job name the shipped rules' LeaderNodeDown selects


def require_tool(name: str, package: str) -> str:
    """The tool's path. Missing: the test is skipped, except under CI=true, where it fails (CI must not
    pass without having run it)."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is not None:
        return path
    message = f"{name} is not installed (Debian package {package}; .ci/run installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}: under CI=true this test must run")
    pytest.skip(message)


@dataclass(frozen=True)
class Server:
    """A backend server: traffic and checks both go to `address:port` (the node's http_listen)."""

    node_id: int
    address: str
    port: int


def documented_backend() -> list[str]:
    """The `option`, `http-check` and `default-server` lines of docs/operations.md's HAProxy block."""
    blocks = re.findall(r"```haproxy\n(.*?)```", OPERATIONS_MD.read_text(), re.DOTALL)
    assert len(blocks) == 1, "docs/operations.md must have exactly one ```haproxy block"
    lines = [line.strip() for line in blocks[0].splitlines()]
    kept = [line for line in lines if line.startswith(("option ", "http-check ", "default-server "))]
    assert any(line.startswith("option httpchk") for line in kept), kept
    return kept


class HAProxy:
    """HAProxy with the documented backend lines in front of `servers`; requests go to their /status, so
    every answer names the node that served it."""

    def __init__(self, binary: str, directory: Path, servers: list[Server]) -> None:
        self.port = free_port()
        self.config = directory / "haproxy.cfg"
        backend = "\n".join(f"    {line}" for line in documented_backend())
        server_lines = "\n".join(
            f"    server node{s.node_id} {s.address}:{s.port} port {s.port}"
            for s in sorted(servers, key=lambda s: s.node_id)
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
            # One log line (timings, termination state) for each request not answered 200 by a node.
            "    log stderr format short local0 info\n"
            "    option httplog\n"
            "    http-response set-log-level silent if { status 200 }\n"
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

    def ask(self) -> tuple[int, dict[str, Any] | None]:
        """(HTTP status, the answering node's /status) through HAProxy; 0 when HAProxy does not answer."""
        reply = http_get(f"http://127.0.0.1:{self.port}/status", timeout_s=2)
        if reply is None:
            return 0, None
        if reply[0] != 200:
            return reply[0], None
        status: dict[str, Any] = json.loads(reply[1])
        return 200, status

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.log.close()


class Prometheus:
    """A Prometheus server scraping `targets` (host:port) as job `leader-node` every `interval_s`, with
    the shipped alert rules evaluated as often. Its data lives in `directory`/tsdb."""

    def __init__(self, binary: str, directory: Path, targets: list[str], interval_s: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = directory / "prometheus.yml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": f"{interval_s}s", "evaluation_interval": f"{interval_s}s"},
                    "rule_files": [str(ALERT_RULES)],
                    "scrape_configs": [
                        {
                            "job_name": SCRAPE_JOB,
                            "scrape_timeout": f"{interval_s}s",
                            "static_configs": [{"targets": targets}],
                        }
                    ],
                },
                sort_keys=False,
            )
        )
        self.log = (directory / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={self.config}",
                f"--storage.tsdb.path={directory / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def ready(self) -> bool:
        assert self.process.poll() is None, f"prometheus exited with {self.process.returncode}"
        reply = http_get(self.url + "/-/ready", timeout_s=2)
        return reply is not None and reply[0] == 200

    def _api(self, path: str, **params: str) -> Any:
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        reply = http_get(url, timeout_s=5)
        assert reply is not None, f"prometheus did not answer {url}"
        body = json.loads(reply[1])
        assert reply[0] == 200 and body["status"] == "success", f"{url}: {reply[0]} {body}"
        return body["data"]

    def query(self, expr: str) -> list[tuple[dict[str, str], float]]:
        """An instant query's vector: (labels, value) per series."""
        data = self._api("query", query=expr)
        assert data["resultType"] == "vector", data
        return [(dict(r["metric"]), float(r["value"][1])) for r in data["result"]]

    def query_range(
        self, expr: str, start_s: float, end_s: float, step_s: float = 1
    ) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
        """A range query's matrix: (labels, [(time, value), ...]) per series."""
        data = self._api(
            "query_range", query=expr, start=f"{start_s:.3f}", end=f"{end_s:.3f}", step=f"{step_s}"
        )
        assert data["resultType"] == "matrix", data
        return [(dict(r["metric"]), [(float(t), float(v)) for t, v in r["values"]]) for r in data["result"]]

    def rules(self) -> list[dict[str, Any]]:
        """Every loaded rule, with its `name`, `health` and `lastError`."""
        return [rule for group in self._api("rules")["groups"] for rule in group["rules"]]

    def alerts(self) -> list[dict[str, Any]]:
        """The active alerts (pending and firing): each with `labels`, `state`, `activeAt`."""
        alerts: list[dict[str, Any]] = self._api("alerts")["alerts"]
        return alerts

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.log.close()


@dataclass(frozen=True)
class Switch:
    """One leader crash seen through HAProxy: who served before and after, and when."""

    old_leader: int
    new_leader: int
    switch_s: float  # from the kill to the first request served by the new leader
    served: int  # requests answered by a node
    requests: int
    cut: int  # requests HAProxy closed without an answer (in flight on the killed leader)

    def describe(self) -> str:
        return (
            f"leader {self.old_leader} killed, leader {self.new_leader} served after "
            f"{self.switch_s * 1000:.0f} ms; {self.served} of {self.requests} requests answered by a node, "
            f"every one by the leader; {self.cut} cut without an answer, the rest answered 502-504 by HAProxy"
        )


def wait_routed_to(proxy: HAProxy, leader_id: int, timeout_s: float) -> None:
    """Until ten requests in a row through HAProxy are served by `leader_id`: HAProxy counts servers up
    at its start until their first check."""

    def settled() -> bool:
        return all((s := proxy.ask()[1]) is not None and s["node_id"] == leader_id for _ in range(10))

    wait_until(settled, timeout_s, f"HAProxy to route to leader {leader_id} only", interval_s=0.05)


def kill_through(proxy: HAProxy, leader_id: int, kill: Callable[[], object], timeout_s: float) -> Switch:
    """Requests through HAProxy back to back: one second of them, then `kill()` of leader `leader_id`,
    until a new leader answers, then two more seconds. Every request a node answered was answered by the
    node leading at that moment (the old leader before the kill, the new one from the switch on), and
    HAProxy itself answered only 502-504 (no server up, a connection cut by the kill) or, for a request
    in flight on the killed leader when HAProxy marked it down, closed the connection without an answer
    (`on-marked-down shutdown-sessions`); its log (haproxy.log) has a line for each such request."""
    answers: list[tuple[float, int, dict[str, Any] | None]] = []  # (sent at, HTTP status, /status)
    latency_s: list[float] = []

    def record(until: Callable[[], bool], limit_s: float, what: str) -> None:
        deadline = time.monotonic() + limit_s
        while not until():
            assert time.monotonic() < deadline, f"timed out after {limit_s} s waiting for {what}"
            sent_at = time.monotonic()
            code, status = proxy.ask()
            answers.append((sent_at, code, status))
            latency_s.append(time.monotonic() - sent_at)

    sample_end = time.monotonic() + 1.0
    record(lambda: time.monotonic() >= sample_end, 5, "a second of requests")
    killed_at = time.monotonic()
    kill()

    def new_leader_answered() -> bool:
        return bool(answers) and (s := answers[-1][2]) is not None and s["node_id"] != leader_id

    record(new_leader_answered, timeout_s, "a request through HAProxy to reach a new leader")
    switched_at, _, last = answers[-1]
    assert last is not None
    new_leader = int(last["node_id"])
    after_end = time.monotonic() + 2.0
    record(lambda: time.monotonic() >= after_end, 5, "two more seconds of requests")

    def unserved() -> str:
        """The requests no node answered, in ms from the kill, with their latency."""
        return ", ".join(
            f"{(t - killed_at) * 1000:+.0f} ms: {code} after {lat * 1000:.0f} ms"
            for (t, code, s), lat in zip(answers, latency_s, strict=True)
            if s is None
        )

    served = [(t, s) for t, code, s in answers if code == 200 and s is not None]
    assert all(s["role"] == "leader" for _, s in served), [s for _, s in served if s["role"] != "leader"]
    assert all(s["node_id"] == leader_id for t, s in served if t < killed_at)
    assert all(s["node_id"] == new_leader for t, s in served if t >= switched_at)
    others = {code for _, code, s in answers if s is None}
    assert others <= {0, 502, 503, 504}, f"HAProxy answered {others}: {unserved()}"
    cut = sum(1 for _, code, _ in answers if code == 0)
    return Switch(leader_id, new_leader, switched_at - killed_at, len(served), len(answers), cut)


class AlertWatcher:
    """Polls Prometheus's active alerts from a thread: every (alert, labels, state) seen, with the time
    first seen. `error` holds what stopped the polling, if anything: callers assert it is None."""

    def __init__(self, prometheus: Prometheus, interval_s: float = 0.5) -> None:
        self._prometheus = prometheus
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.seen: dict[tuple[str, tuple[tuple[str, str], ...], str], float] = {}
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="alert-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.wait(self._interval_s):
                now = time.time()
                for alert in self._prometheus.alerts():
                    labels = dict(alert["labels"])
                    name = labels.pop("alertname")
                    key = (name, tuple(sorted(labels.items())), str(alert["state"]))
                    with self._lock:
                        self.seen.setdefault(key, now)
        except BaseException as error:  # the caller asserts watcher.error is None
            self.error = error

    def states(self, name: str, **labels: str) -> set[str]:
        """The states seen of alert `name` whose labels include `labels`."""
        with self._lock:
            return {
                state
                for (alert, alert_labels, state) in self.seen
                if alert == name and labels.items() <= dict(alert_labels).items()
            }

    def active(self, name: str, **labels: str) -> set[str]:
        """The states alert `name` (with `labels`) is in right now, asked of Prometheus directly."""
        return {
            str(alert["state"])
            for alert in self._prometheus.alerts()
            if alert["labels"]["alertname"] == name and labels.items() <= alert["labels"].items()
        }

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def report(self) -> list[str]:
        with self._lock:
            return [
                f"{at:.3f} {name} {dict(labels)} {state}"
                for (name, labels, state), at in sorted(self.seen.items(), key=lambda item: item[1])
            ]
