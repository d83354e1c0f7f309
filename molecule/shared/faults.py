"""Fault injection on the Molecule hosts, and the judge of their journald history.

Used by the fault scenarios (kill-leader, partition, rejoin, concurrent): each scenario's tests import
the fixtures `faults` (function scope: restores the cluster after every test, also when it failed) and
`fault_cluster` (one per fault test, see below) from here.

- A fault test is the test modules of one scenario directory (molecule/<name>/tests). It has one
  FaultCluster: its own steps, measurements, journals and history check. `molecule test -s partition`
  runs one fault test on its cluster; the scenario `faults` runs those of kill-leader, partition, rejoin
  and concurrent one after the other in one pytest session on one converged cluster (a converge of five
  hosts is most of a scenario's time), each with its own records in a subdirectory.

- Commands go through testinfra's Ansible backend, which maps Molecule's docker connection to
  `docker exec`: a test keeps control of a host that iptables has cut off from its peers.
- `/status` is read over HTTP from the controller, straight to each container's address on the
  scenario's own Docker network (the partition rules only drop the other side's addresses), so polls are
  cheap enough to time a failover; when that address is not reachable from here (Docker on another
  machine), it falls back to a request made inside the host.
- Faults: `systemctl stop|start|kill -s SIGKILL leader-node`, SIGSTOP/SIGCONT of the unit's MainPID, and
  partitions: on each side `iptables -w -A LNMOL-PARTITION -s <ips of the other side> -j DROP`, a
  dedicated chain jumped to from INPUT; healing flushes only that chain (never nat, never other rules).
- Waiting is polling with a deadline derived from the configured timers; no fixed sleeps.
- Every step and every measurement is written with its wall-clock time under
  artifacts/molecule/<scenario>-<algorithm>/ (steps.txt, measurements.json), next to each host's
  `journalctl -u leader-node -o json` (<host>.journal.json) and the verdict and per-epoch timeline of
  `leader-node check-history` (timeline.txt, and the picture timeline.svg with the steps drawn in).
  In the scenario `faults`: artifacts/molecule/faults-<algorithm>/<fault test>/, e.g. partition/.
  The hosts share this machine's kernel clock, so journald times and the steps' times compare directly.
- The history check of a fault test judges the hosts' whole journals, from the converge on: its rules
  hold for a history as a whole (one leader per epoch ever, epochs never going back on a node, across
  restarts) and the timeline starts each term at its `became_leader`, so a window cut out of a longer
  history would judge less and draw its first terms without their start. In the scenario `faults` the
  journals of a later fault test therefore also hold the earlier ones' (its steps.txt says which).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from conftest import HTTP_PORT, Timers, host_vars, node_status

from node.history.checkers import check_history
from node.history.model import HistoryEvent, parse_journal_json
from node.history.timeline import build_timeline

SERVICE = "leader-node"
CHAIN = "LNMOL-PARTITION"  # the only iptables chain the harness writes to (filter table)
POLL_S = 0.05  # /status poll interval while timing a failover
T = TypeVar("T")

Status = dict[str, Any]


@dataclass(frozen=True)
class Node:
    id: int
    name: str  # inventory hostname = container name
    address: str
    host: Any = field(repr=False, compare=False)

    def __str__(self) -> str:
        return f"node {self.id} ({self.name})"


@dataclass(frozen=True)
class Agreement:
    """Every node of a group reports `leader_id` under `epoch`, and `leader_id` reports itself leader."""

    leader_id: int
    epoch: int
    statuses: dict[int, Status]


class FaultCluster:
    """The scenario's five hosts, the faults applied to them, and what the run recorded."""

    def __init__(self, hosts: Iterable[Any], timers: Timers, out_dir: Path) -> None:
        nodes = []
        for host in hosts:
            variables = host_vars(host)
            nodes.append(
                Node(
                    id=int(variables["leader_node_id"]),
                    name=str(variables["inventory_hostname"]),
                    address=str(variables["leader_node_address"]),
                    host=host,
                )
            )
        self.nodes = sorted(nodes, key=lambda node: node.id)
        self.by_id = {node.id: node for node in self.nodes}
        variables = host_vars(self.nodes[0].host)
        self.algorithm = str(variables.get("leader_node_algorithm", "bully"))
        self.http_port = int(variables.get("leader_node_http_port", HTTP_PORT))
        self.timers = timers
        self.out_dir = out_dir
        self.steps: list[tuple[float, str]] = []
        self.measurements: dict[str, list[float]] = {}
        self._pool = ThreadPoolExecutor(max_workers=len(self.nodes) * 2)
        self._lock = threading.Lock()
        self._partitioned: set[int] = set()
        self._paused: dict[int, int] = {}  # node id -> SIGSTOPped pid
        self._direct_http = all(self._http_status(node) is not None for node in self.nodes)
        self.step(
            f"cluster: {', '.join(f'{n.id}={n.name}/{n.address}' for n in self.nodes)}; algorithm "
            f"{self.algorithm}; timers {timers}; /status read "
            + ("from the controller" if self._direct_http else "inside each host")
        )

    # ------------------------------------------------------------------ records

    def step(self, text: str) -> float:
        """Record (and print) one thing the harness did or saw; returns its wall-clock time."""
        now = time.time()
        with self._lock:
            self.steps.append((now, text))
        print(f"[{time.strftime('%H:%M:%S', time.localtime(now))}.{int(now * 1000) % 1000:03d}] {text}")
        return now

    def measure(self, name: str, seconds: float) -> None:
        self.measurements.setdefault(name, []).append(round(seconds, 3))
        self.step(f"measured {name} = {seconds:.3f} s")

    def write_records(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        lines = [f"{_utc(at)}  {int(at * 1000)}  {text}" for at, text in self.steps]
        (self.out_dir / "steps.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (self.out_dir / "measurements.json").write_text(
            json.dumps(
                {"algorithm": self.algorithm, "timers": asdict(self.timers), "seconds": self.measurements},
                indent=2,
                sort_keys=True,
            )
            + "\n",
            encoding="utf-8",
        )

    # ------------------------------------------------------------------ commands on a host

    def sh(self, node: Node, command: str, check: bool = True) -> Any:
        result = node.host.run(command)
        if check and result.rc != 0:
            pytest.fail(
                f"{node}: `{command}` exited {result.rc}: {result.stderr.strip() or result.stdout.strip()}"
            )
        return result

    def each(self, nodes: Iterable[Node], action: Callable[[Node], T]) -> list[T]:
        """Run `action` on several nodes at once (one thread each); results in the order given."""
        return list(self._pool.map(action, list(nodes)))

    def unit(self, node: Node, *names: str) -> dict[str, str]:
        out = self.sh(node, f"systemctl show {SERVICE} " + " ".join(f"-p {name}" for name in names)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def main_pid(self, node: Node) -> int:
        return int(self.unit(node, "MainPID")["MainPID"])

    def n_restarts(self, node: Node) -> int:
        return int(self.unit(node, "NRestarts")["NRestarts"])

    def is_active(self, node: Node) -> bool:
        return self.unit(node, "ActiveState")["ActiveState"] == "active"

    # ------------------------------------------------------------------ faults

    def stop(self, node: Node) -> float:
        """`systemctl stop`: a clean stop (SIGTERM: a leader resigns); returns when the process is gone."""
        at = self.step(f"systemctl stop {SERVICE} on {node}")
        self.sh(node, f"systemctl stop {SERVICE}")
        return at

    def start(self, node: Node) -> float:
        """`systemctl start`: Type=notify, so it returns once the daemon sent READY=1."""
        at = self.step(f"systemctl start {SERVICE} on {node}")
        self.sh(node, f"systemctl start {SERVICE}")
        return at

    def start_together(self, nodes: list[Node], lead_s: float = 1.5) -> float:
        """Start the service on several hosts at one instant: every host waits for the same wall-clock
        moment (they share this machine's clock) and then runs `systemctl start`. A start barrier, not a
        wait for a condition: it removes the skew of launching `docker exec` one after the other."""
        at_s = time.time() + lead_s
        names = ", ".join(str(node) for node in nodes)
        self.step(f"systemctl start {SERVICE} on {names} together at {int(at_s * 1000)}")
        barrier = "import sys, time; time.sleep(max(0.0, float(sys.argv[1]) - time.time()))"
        command = f"python3 -c {shlex.quote(barrier)} {at_s:.3f} && systemctl start {SERVICE}"
        self.each(nodes, lambda node: self.sh(node, command))
        return at_s

    def kill(self, node: Node, signal: str = "SIGKILL") -> float:
        """`systemctl kill -s SIGKILL`: a crash; Restart=on-failure brings the daemon back."""
        at = self.step(f"systemctl kill -s {signal} {SERVICE} on {node}")
        self.sh(node, f"systemctl kill -s {signal} {SERVICE}")
        return at

    def pause(self, node: Node) -> float:
        """SIGSTOP the unit's MainPID: a long pause (the process neither sends nor answers)."""
        pid = self.main_pid(node)
        assert pid > 0, f"{node}: no main process to pause"
        self._paused[node.id] = pid
        at = self.step(f"SIGSTOP MainPID {pid} on {node}")
        self.sh(node, f"kill -STOP {pid}")
        return at

    def resume(self, node: Node) -> float:
        pid = self._paused.pop(node.id)
        at = self.step(f"SIGCONT MainPID {pid} on {node}")
        self.sh(node, f"kill -CONT {pid}", check=False)  # it may have been restarted by the watchdog
        return at

    def partition(self, side_a: list[Node], side_b: list[Node]) -> float:
        """Cut both directions between two sides: every host drops what comes from the other side."""
        assert not set(side_a) & set(side_b)
        at = self.step(
            "partition "
            + " | ".join("{" + ", ".join(str(n.id) for n in side) + "}" for side in (side_a, side_b))
        )

        def cut(node: Node) -> None:
            other = side_b if node in side_a else side_a
            rules = " && ".join(f"iptables -w -A {CHAIN} -s {peer.address} -j DROP" for peer in other)
            self._partitioned.add(node.id)
            self.sh(
                node,
                f"(iptables -w -N {CHAIN} 2>/dev/null || true) && "
                f"(iptables -w -C INPUT -j {CHAIN} 2>/dev/null || iptables -w -I INPUT 1 -j {CHAIN}) && "
                f"{rules}",
            )

        self.each([*side_a, *side_b], cut)
        return at

    def heal(self, nodes: Iterable[Node] | None = None) -> float:
        """Flush the partition chain (only it) on every host that has one."""
        targets = list(nodes) if nodes is not None else [n for n in self.nodes if n.id in self._partitioned]
        at = self.step("heal: flush " + CHAIN + " on " + ", ".join(str(n.id) for n in targets))
        self.each(
            targets, lambda node: self.sh(node, f"iptables -w -F {CHAIN} 2>/dev/null || true", check=False)
        )
        self._partitioned.difference_update(node.id for node in targets)
        return at

    def restore(self) -> None:
        """Undo every fault: heal partitions, resume paused processes, start stopped services. Runs in
        the teardown of every test, so a failed assertion never leaves a fault behind."""
        if self._partitioned:
            self.heal()
        for node_id in list(self._paused):
            self.resume(self.by_id[node_id])

        def start_if_down(node: Node) -> None:
            if self.unit(node, "ActiveState")["ActiveState"] not in ("active", "activating", "reloading"):
                self.step(f"restore: systemctl start {SERVICE} on {node}")
                self.sh(node, f"systemctl reset-failed {SERVICE}; systemctl start {SERVICE}", check=False)

        self.each(self.nodes, start_if_down)

    # ------------------------------------------------------------------ observation

    @property
    def direct_http(self) -> bool:
        """Whether the hosts' addresses answer from the controller (else requests are made inside them)."""
        return self._direct_http

    def _http_status(self, node: Node) -> Status | None:
        url = f"http://{node.address}:{self.http_port}/status"
        try:
            with urllib.request.urlopen(url, timeout=1.0) as reply:
                return dict(json.loads(reply.read().decode()))
        except (OSError, ValueError, urllib.error.URLError):
            return None

    def status(self, node: Node) -> Status | None:
        """The node's /status, or None when it does not answer (stopped, paused, starting)."""
        return self._http_status(node) if self._direct_http else node_status(node.host)

    def statuses(self, nodes: Iterable[Node] | None = None) -> dict[int, Status | None]:
        group = list(nodes) if nodes is not None else self.nodes
        return dict(zip((n.id for n in group), self.each(group, self.status), strict=True))

    def agreement(self, nodes: Iterable[Node] | None = None) -> Agreement | None:
        """The group's agreed leader and epoch, or None (someone silent, disagreeing, or leaderless)."""
        statuses = self.statuses(nodes)
        if any(status is None for status in statuses.values()):
            return None
        known: dict[int, Status] = {nid: status for nid, status in statuses.items() if status is not None}
        leaders = {status["leader_id"] for status in known.values()}
        epochs = {status["epoch"] for status in known.values()}
        if len(leaders) != 1 or len(epochs) != 1:
            return None
        leader_id = leaders.pop()
        if leader_id is None or leader_id not in known or known[leader_id]["role"] != "leader":
            return None
        if any(status["role"] != "follower" for nid, status in known.items() if nid != leader_id):
            return None
        return Agreement(int(leader_id), int(epochs.pop()), known)

    @property
    def quorum(self) -> int:
        return len(self.nodes) // 2 + 1

    def majority_leader(
        self, nodes: Iterable[Node], above_epoch: int, not_leader: int | None = None
    ) -> Agreement | None:
        """A leader other than `not_leader`, under an epoch above `above_epoch`, that a majority of the
        whole cluster (itself included, among `nodes`) reports, and that reports itself leader."""
        statuses = self.statuses(nodes)
        known = {nid: s for nid, s in statuses.items() if s is not None}
        for nid, status in known.items():
            epoch = int(status["epoch"])
            if status["role"] != "leader" or nid == not_leader or epoch <= above_epoch:
                continue
            supporters = {
                other: s for other, s in known.items() if s["leader_id"] == nid and int(s["epoch"]) == epoch
            }
            if len(supporters) >= self.quorum:
                return Agreement(nid, epoch, supporters)
        return None

    def stable(self, leader_id: int, epoch: int) -> bool:
        """Leadership unchanged: `leader_id` leads `epoch`, every node answers under `epoch` and names that
        leader or, for a moment, none (a node that is re-checking its leader). Weaker than agreement():
        for windows in which a transient attempt is tolerated and counted from the journal instead."""
        statuses = self.statuses()
        if any(status is None for status in statuses.values()):
            return False
        known = {nid: status for nid, status in statuses.items() if status is not None}
        leader = known.get(leader_id)
        return (
            leader is not None
            and leader["role"] == "leader"
            and all(int(s["epoch"]) == epoch and s["leader_id"] in (leader_id, None) for s in known.values())
        )

    def wait(
        self, predicate: Callable[[], T | None], deadline_s: float, what: str, interval_s: float = POLL_S
    ) -> tuple[T, float]:
        """Poll until `predicate` returns something truthy: (it, seconds since the call). Fails at the
        deadline with the last thing seen."""
        started = time.monotonic()
        last: Any = None
        while True:
            last = predicate()
            elapsed = time.monotonic() - started
            if last:
                return last, elapsed
            if elapsed > deadline_s:
                self.step(f"TIMEOUT waiting for {what} ({deadline_s:.1f} s); statuses {self.statuses()}")
                pytest.fail(f"{what}: not reached within {deadline_s:.1f} s (last: {last!r})")
            time.sleep(interval_s)

    def hold(
        self, predicate: Callable[[], Any], duration_s: float, what: str, interval_s: float = 0.25
    ) -> None:
        """Poll for `duration_s`: `predicate` must stay truthy at every poll (a property over a window)."""
        started = time.monotonic()
        while time.monotonic() - started < duration_s:
            seen = predicate()
            if not seen:
                self.step(f"VIOLATED while holding {what}; statuses {self.statuses()}")
                pytest.fail(f"{what}: broken after {time.monotonic() - started:.1f} s of {duration_s:.1f} s")
            time.sleep(interval_s)
        self.step(f"held for {duration_s:.1f} s: {what}")

    def settle(self) -> Agreement:
        """All five agree on one leader and epoch (the starting point of every test)."""
        agreement, elapsed = self.wait(
            self.agreement, self.timers.leader_deadline_s, "one leader agreed by all"
        )
        self.step(f"settled: leader {agreement.leader_id}, epoch {agreement.epoch} (after {elapsed:.2f} s)")
        return agreement

    # ------------------------------------------------------------------ deadlines from the timers

    @property
    def failover_bound_s(self) -> float:
        """The issue's bound for a new leader after the leader is stopped: 2 x election_timeout."""
        return 2 * self.timers.election_s

    @property
    def quiet_window_s(self) -> float:
        """How long to watch for a disruptive election after a node (re)joins: a node that did not
        accept the leader would suspect it and run after failure_timeout; two heartbeats of margin."""
        return self.timers.failure_s + 2 * self.timers.heartbeat_s

    # ------------------------------------------------------------------ history

    def collect(self) -> list[Path]:
        """Every host's `journalctl -u leader-node -o json` into <out_dir>/<host>.journal.json."""
        self.out_dir.mkdir(parents=True, exist_ok=True)

        def fetch(node: Node) -> Path:
            out = self.sh(node, f"journalctl -u {SERVICE} -o json --no-pager", check=False)
            path = self.out_dir / f"{node.name}.journal.json"
            path.write_text(out.stdout, encoding="utf-8")
            return path

        files = self.each(self.nodes, fetch)
        self.write_records()
        return files

    def events(self, since: float | None = None, until: float | None = None) -> list[HistoryEvent]:
        """The cluster's history from the hosts' journals, now (optionally within a wall-clock window)."""
        events: list[HistoryEvent] = []
        for node, text in zip(
            self.nodes,
            self.each(self.nodes, lambda n: self.sh(n, f"journalctl -u {SERVICE} -o json --no-pager").stdout),
            strict=True,
        ):
            events += parse_journal_json(text.splitlines(), node.name)
        lo = -1 if since is None else int(since * 1000)
        hi = sys.maxsize if until is None else int(until * 1000)
        return sorted((e for e in events if lo <= e.time_ms <= hi), key=lambda e: e.time_ms)

    def judge(self) -> str:
        """Collect the journals, run `leader-node check-history` on them (verdict and per-epoch
        timeline into timeline.txt) and the checkers in-process; fail on any violation."""
        files = self.collect()
        picture = ["--svg", str(self.out_dir / "timeline.svg"), "--steps", str(self.out_dir / "steps.txt")]
        command = [sys.executable, "-m", "node", "check-history", *picture, *map(str, files)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        report = result.stdout + result.stderr
        events = [e for path in files for e in parse_journal_json(path.read_text().splitlines(), path.name)]
        terms = build_timeline(events)
        origin_ms = terms[0].start_ms if terms else int(self.steps[0][0] * 1000)
        steps = "\n".join(f"{int(at * 1000) - origin_ms:>9}  {text}" for at, text in self.steps)
        (self.out_dir / "timeline.txt").write_text(
            f"$ leader-node check-history {' '.join(f.name for f in files)}\n{report}\n"
            f"What the harness did, in ms from {origin_ms} like the timeline above (absolute times in "
            f"steps.txt):\n{steps}\n",
            encoding="utf-8",
        )
        print(report)
        violations = check_history(events)
        assert result.returncode == 0 and not violations, report
        return report


def majority_known_ms(events: Iterable[HistoryEvent], leader_id: int, epoch: int, quorum: int) -> int | None:
    """From the journals: when the leader's `became_leader` and enough `leader_accepted` lines for a
    majority (the leader included) had been logged for (leader_id, epoch); None if never."""
    firsts: dict[int, int] = {}
    for event in events:
        if event.epoch != epoch:
            continue
        mine = event.event == "became_leader" and event.node_id == leader_id
        follows = event.event == "leader_accepted" and event.leader_id == leader_id
        if mine or follows:
            firsts.setdefault(event.node_id, event.time_ms)
    if leader_id not in firsts or len(firsts) < quorum:
        return None
    return sorted(firsts.values())[quorum - 1]


def _utc(at: float) -> str:
    return f"{time.strftime('%H:%M:%S', time.gmtime(at))}.{int(at * 1000) % 1000:03d}Z"


def by_id(cluster: FaultCluster, ids: Iterable[int]) -> list[Node]:
    return [cluster.by_id[i] for i in ids]


def fault_rounds() -> range:
    """How many times each fault test of a scenario runs on the one converged cluster:
    LEADER_NODE_FAULT_ROUNDS (default 1). `make test-rounds` repeats the fault scenarios this way, so a
    rare failure shows without paying for a converge per round."""
    raw = os.environ.get("LEADER_NODE_FAULT_ROUNDS", "1")
    if not raw.isdigit() or int(raw) < 1:
        raise pytest.UsageError(f"LEADER_NODE_FAULT_ROUNDS must be a positive integer, got {raw!r}")
    return range(1, int(raw) + 1)


def count(events: Iterable[HistoryEvent], kind: str, nodes: Iterable[int] | None = None) -> int:
    wanted = None if nodes is None else set(nodes)
    return sum(1 for e in events if e.event == kind and (wanted is None or e.node_id in wanted))


def describe(events: Iterable[HistoryEvent]) -> str:
    return "\n".join(e.describe() for e in events)


def scenario_name() -> str:
    return os.environ.get("MOLECULE_SCENARIO_NAME", "adhoc")


def fault_test_of(module_path: Path) -> str:
    """The fault test a test module belongs to: the scenario directory it lives in
    (molecule/<name>/tests/test_*.py -> <name>)."""
    return module_path.resolve().parents[1].name


def artifacts_dir(algorithm: str, fault_test: str | None = None) -> Path:
    """artifacts/molecule/<scenario>-<algorithm>/, and <fault test>/ under it when the fault test is
    another scenario's, run inside this one (the scenario `faults`)."""
    project = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[2]))
    out_dir = project / "artifacts" / "molecule" / f"{scenario_name()}-{algorithm}"
    return out_dir if fault_test in (None, scenario_name()) else out_dir / fault_test


@pytest.fixture(scope="session")
def fault_tests(cluster: list[Any]) -> Iterator[dict[str, FaultCluster]]:
    """The FaultCluster of each fault test run so far in this session, in run order. The scenario's
    artifacts directory is emptied first."""
    algorithm = str(host_vars(cluster[0]).get("leader_node_algorithm", "bully"))
    shutil.rmtree(artifacts_dir(algorithm), ignore_errors=True)
    yield {}


@pytest.fixture(scope="module")
def fault_cluster(
    request: pytest.FixtureRequest, fault_tests: dict[str, FaultCluster], cluster: list[Any], timers: Timers
) -> Iterator[FaultCluster]:
    """The cluster as this module's fault test sees it, with that test's records (modules of one scenario
    directory share them: default's three, leader-service's two). After each module the cluster is
    restored and the journals are collected, whatever happened to the tests."""
    name = fault_test_of(request.path)
    faults = fault_tests.get(name)
    if faults is None:
        algorithm = str(host_vars(cluster[0]).get("leader_node_algorithm", "bully"))
        out_dir = artifacts_dir(algorithm, name)
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir(parents=True)
        earlier = list(fault_tests)
        faults = FaultCluster(cluster, timers, out_dir)
        if name != scenario_name():
            faults.step(
                f"fault test {name} in scenario {scenario_name()}, on the cluster converged for it; "
                + (
                    f"run on it before: {', '.join(earlier)} (their events are in these journals too)"
                    if earlier
                    else "the first one run on it"
                )
            )
        fault_tests[name] = faults
    try:
        yield faults
    finally:
        faults.restore()
        faults.collect()


@pytest.fixture()
def faults(fault_cluster: FaultCluster) -> Iterator[FaultCluster]:
    """The cluster for one test; every fault it applied is undone afterwards, pass or fail."""
    try:
        yield fault_cluster
    finally:
        fault_cluster.restore()
        fault_cluster.write_records()


__all__ = [
    "CHAIN",
    "SERVICE",
    "Agreement",
    "FaultCluster",
    "HistoryEvent",
    "Node",
    "by_id",
    "count",
    "describe",
    "fault_cluster",
    "fault_rounds",
    "fault_tests",
    "faults",
    "majority_known_ms",
]
