"""Failover of leader-node, etcd and ZooKeeper side by side: 5 members each on 127.0.0.1, the same scenarios
and the same observer, one table.

    .venv/bin/python benchmarks/peers.py [--runs 10]
    .venv/bin/python benchmarks/peers.py --runs 3 --systems etcd-recommended,zookeeper-matched

Needs Debian's etcd-server and zookeeper (docs/benchmarks.md, "Peers side by side"). Each system in turn
runs a 5-member cluster of real processes on free loopback ports under a temporary directory:

- leader-node at its defaults (heartbeat 1 s, failure timeout 3 s, election timeout 5 s, Bully);
- etcd at its recommended defaults (heartbeat-interval 100 ms, election-timeout 1000 ms) and matched to
  leader-node (election-timeout 3000 ms = failure_timeout; heartbeat-interval 600 ms, the most etcd
  accepts with that timeout: it requires election-timeout >= 5 x heartbeat-interval);
- ZooKeeper at the recommended zoo.cfg (tickTime 2000, initLimit 10, syncLimit 5) and matched (tickTime
  1000 = heartbeat, syncLimit 3 ticks = failure_timeout, initLimit 5 ticks = election_timeout).

Scenarios, the same for all: crash = SIGKILL of the leader's process, graceful = SIGTERM of it. A run's time
is from just before the signal until a majority of the cluster (3 of 5) reports the same new leader, read
by one poll per surviving member every 5 ms over a kept-alive HTTP/1.1 connection (benchmarks/observer.py):
leader-node `GET /status` (leader_id, epoch), etcd `POST /v3/maintenance/status` (leader, raftTerm; 0 while
it knows none), ZooKeeper AdminServer `GET /commands/leader` (leader_id, only while the member serves, i.e.
has synchronised with its leader: an error otherwise). A member counts once it names another leader than
the victim (under a higher term where the system reports one). After each run the victim is restarted with
its data, the cluster must agree again (all five members on one leader), and the next signal waits a random
fraction of the system's heartbeat so that it lands at every phase.

This is a benchmark, not a test: it prints one line per run, then the Markdown table (median, p90, max and
the ratio of the median to leader-node's in the same scenario), and the load average before and after.
Every process it started is killed on exit (also on failure, Ctrl-C or SIGTERM) and the directory removed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.failover import settled, status_poller
from benchmarks.observer import KeepAliveHttp, Observation, Poller, View, majority_at, p90
from node.core.durations import (
    DEFAULT_ELECTION_TIMEOUT_MS,
    DEFAULT_FAILURE_TIMEOUT_MS,
    DEFAULT_HEARTBEAT_INTERVAL_MS,
)
from node.runtime.config import DEFAULT_ALGORITHM
from tests.runtime.cluster import Cluster, free_port, unwind_on_sigterm, wait_until  # the repository root

MEMBERS = (1, 2, 3, 4, 5)
MAJORITY = 3
SCENARIOS = {"crash": signal.SIGKILL, "graceful": signal.SIGTERM}
SETTLE_TIMEOUT_S = 120.0
EXIT_TIMEOUT_S = 30.0  # a member that ignores SIGTERM this long is killed (and the run says so)

ETCD = "etcd"
JAVA = "java"
ZOOKEEPER_JAR = Path("/usr/share/java/zookeeper.jar")
# Debian's zookeeper does not pull in the servlet API its AdminServer (Jetty) needs: without it the
# AdminServer does not start. slf4j-simple only gives the logs a destination (stderr, the member's log).
ZOOKEEPER_CLASSPATH = (ZOOKEEPER_JAR, Path("/usr/share/java/servlet-api.jar"))
SLF4J_SIMPLE_JAR = Path("/usr/share/java/slf4j-simple.jar")
INSTALL_HINT = (
    "apt-get install --no-install-recommends etcd-server zookeeper libservlet-api-java "
    "(docs/benchmarks.md, 'Peers side by side')"
)


def load_average() -> str:
    return "/".join(f"{value:.2f}" for value in os.getloadavg())


# ------------------------------------------------------------------------------------------ systems


class Members(ABC):
    """A 5-member cluster of one system on loopback, as the run loop sees it."""

    system: str
    settings: str
    heartbeat_s: float  # the next signal waits a random fraction of it

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def settled(self) -> View | None:
        """(leader, term) once every member answers and all name the same leader."""

    @abstractmethod
    def poller(self, member: int, interval_s: float) -> Poller: ...

    @abstractmethod
    def signal(self, member: int, signum: signal.Signals) -> None: ...

    @abstractmethod
    def wait_exit(self, member: int, timeout_s: float) -> bool:
        """True when the member exited within `timeout_s`; otherwise it is killed."""

    @abstractmethod
    def restart(self, member: int) -> None: ...

    @abstractmethod
    def close(self) -> None:
        """Kill every process this cluster started."""


class LeaderNodeMembers(Members):
    """tests/runtime/cluster.py's Cluster at the defaults; settled as in benchmarks/failover.py."""

    def __init__(self, directory: Path, algorithm: str) -> None:
        self.system = "leader-node"
        self.heartbeat_s = DEFAULT_HEARTBEAT_INTERVAL_MS / 1000
        self.settings = (
            f"defaults: {algorithm}, heartbeat {DEFAULT_HEARTBEAT_INTERVAL_MS} ms, failure "
            f"{DEFAULT_FAILURE_TIMEOUT_MS} ms, election {DEFAULT_ELECTION_TIMEOUT_MS} ms"
        )
        self.cluster = Cluster(
            directory,
            MEMBERS,
            heartbeat_interval=f"{DEFAULT_HEARTBEAT_INTERVAL_MS}ms",
            failure_timeout=f"{DEFAULT_FAILURE_TIMEOUT_MS}ms",
            election_timeout=f"{DEFAULT_ELECTION_TIMEOUT_MS}ms",
            algorithm=algorithm,
        )

    def start(self) -> None:
        self.cluster.start()

    def settled(self) -> View | None:
        return settled(self.cluster)

    def poller(self, member: int, interval_s: float) -> Poller:
        return status_poller(member, self.cluster.nodes[member].http_port, interval_s)

    def signal(self, member: int, signum: signal.Signals) -> None:
        self.cluster.signal(member, signum)

    def wait_exit(self, member: int, timeout_s: float) -> bool:
        try:
            self.cluster.wait_exit(member, timeout_s)
            return True
        except subprocess.TimeoutExpired:
            self.cluster.signal(member, signal.SIGKILL)
            self.cluster.wait_exit(member, timeout_s)
            return False

    def restart(self, member: int) -> None:
        self.cluster.start(member)
        self.cluster.wait_serving(member, timeout_s=30)

    def close(self) -> None:
        self.cluster.close()


class ProcessMembers(Members):
    """Members that are one process each, started from a command line; stderr goes to `<dir>/<m>.log`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    @abstractmethod
    def command(self, member: int) -> list[str]: ...

    @abstractmethod
    def status_client(self, member: int) -> KeepAliveHttp: ...

    @abstractmethod
    def view(self, body: Any) -> Observation: ...

    def start(self) -> None:
        for member in MEMBERS:
            self.spawn(member)

    def spawn(self, member: int) -> None:
        assert member not in self.processes or self.processes[member].poll() is not None
        with (self.directory / f"{member}.log").open("ab") as log:
            self.processes[member] = subprocess.Popen(
                self.command(member), stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )

    def ask(self, member: int) -> Observation:
        client = self.status_client(member)
        try:
            return self.view(client.get())
        except (OSError, ValueError, KeyError, TypeError):
            return None
        finally:
            client.close()

    def settled(self) -> View | None:
        views = {self.ask(member) for member in MEMBERS}
        if len(views) != 1:
            return None
        return views.pop()

    def poller(self, member: int, interval_s: float) -> Poller:
        return Poller(member, self.status_client(member), self.view, interval_s)

    def signal(self, member: int, signum: signal.Signals) -> None:
        self.processes[member].send_signal(signum)

    def wait_exit(self, member: int, timeout_s: float) -> bool:
        try:
            self.processes[member].wait(timeout=timeout_s)
            return True
        except subprocess.TimeoutExpired:
            self.processes[member].kill()
            self.processes[member].wait(timeout=timeout_s)
            return False

    def restart(self, member: int) -> None:
        self.spawn(member)

    def close(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


class EtcdMembers(ProcessMembers):
    """etcd members m1..m5; a member's raft id (a hash etcd derives) maps back to 1..5 by its own status."""

    def __init__(self, directory: Path, label: str, heartbeat_ms: int, election_ms: int) -> None:
        super().__init__(directory)
        self.system = "etcd"
        self.settings = f"{label}: heartbeat-interval {heartbeat_ms} ms, election-timeout {election_ms} ms"
        self.heartbeat_s = heartbeat_ms / 1000
        self._timers = ("--heartbeat-interval", str(heartbeat_ms), "--election-timeout", str(election_ms))
        self._client_ports = {member: free_port() for member in MEMBERS}
        self._peer_ports = {member: free_port() for member in MEMBERS}
        self._member_by_raft_id: dict[int, int] = {}

    def command(self, member: int) -> list[str]:
        client_url = f"http://127.0.0.1:{self._client_ports[member]}"
        peer_url = f"http://127.0.0.1:{self._peer_ports[member]}"
        initial = ",".join(f"m{m}=http://127.0.0.1:{port}" for m, port in self._peer_ports.items())
        return [
            ETCD,
            *("--name", f"m{member}", "--data-dir", str(self.directory / f"m{member}.etcd")),
            *("--listen-client-urls", client_url, "--advertise-client-urls", client_url),
            *("--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url),
            *("--initial-cluster", initial, "--initial-cluster-token", "peers-benchmark"),
            *("--initial-cluster-state", "new", "--logger", "zap", "--log-outputs", "stderr"),
            *self._timers,
        ]

    def status_client(self, member: int) -> KeepAliveHttp:
        return KeepAliveHttp(self._client_ports[member], "/v3/maintenance/status", b"{}")

    def start(self) -> None:
        super().start()
        for member in MEMBERS:  # learn every member's raft id (the poll names leaders by it)
            client = self.status_client(member)
            try:
                body = wait_until(partial(self._answer, client), 60, f"etcd m{member} to answer", 0.05)
            finally:
                client.close()
            self._member_by_raft_id[int(body["header"]["member_id"])] = member

    @staticmethod
    def _answer(client: KeepAliveHttp) -> Any:
        try:
            return client.get()
        except (OSError, ValueError):
            return None

    def view(self, body: Any) -> Observation:
        leader = int(body["leader"])
        if leader == 0:  # no leader known (an election is under way)
            return None
        return self._member_by_raft_id[leader], int(body["raftTerm"])


class ZooKeeperMembers(ProcessMembers):
    """ZooKeeper servers 1..5 (QuorumPeerMain, one JVM each, Java's default options)."""

    def __init__(self, directory: Path, label: str, tick_ms: int, init_limit: int, sync_limit: int) -> None:
        super().__init__(directory)
        self.system = "ZooKeeper"
        self.settings = f"{label}: tickTime {tick_ms}, initLimit {init_limit}, syncLimit {sync_limit}"
        self.heartbeat_s = tick_ms / 1000
        self._admin_ports = {member: free_port() for member in MEMBERS}
        servers = "".join(f"server.{m}=127.0.0.1:{free_port()}:{free_port()}\n" for m in MEMBERS)
        for member in MEMBERS:
            data = directory / f"zk{member}"
            data.mkdir()
            (data / "myid").write_text(f"{member}\n")
            (directory / f"zoo{member}.cfg").write_text(
                f"tickTime={tick_ms}\ninitLimit={init_limit}\nsyncLimit={sync_limit}\n"
                f"dataDir={data}\nclientPortAddress=127.0.0.1\nclientPort={free_port()}\n"
                f"admin.serverAddress=127.0.0.1\nadmin.serverPort={self._admin_ports[member]}\n"
                f"{servers}"
            )

    def command(self, member: int) -> list[str]:
        classpath = [*ZOOKEEPER_CLASSPATH, *([SLF4J_SIMPLE_JAR] if SLF4J_SIMPLE_JAR.exists() else [])]
        return [
            JAVA,
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSSXXX",
            "-cp",
            ":".join(map(str, classpath)),
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            str(self.directory / f"zoo{member}.cfg"),
        ]

    def status_client(self, member: int) -> KeepAliveHttp:
        return KeepAliveHttp(self._admin_ports[member], "/commands/leader")

    def view(self, body: Any) -> Observation:
        if body["error"] is not None:  # "This ZooKeeper instance is not currently serving requests"
            return None
        return int(body["leader_id"]), None  # no epoch in this reply (a follower's zxid lags behind)


SYSTEMS = ("leader-node", "etcd-recommended", "etcd-matched", "zookeeper-recommended", "zookeeper-matched")


def make_members(name: str, directory: Path, args: argparse.Namespace) -> Members:
    if name == "leader-node":
        return LeaderNodeMembers(directory, args.algorithm)
    if name == "etcd-recommended":  # etcd's defaults, also what its tuning guide starts from
        return EtcdMembers(directory, "recommended", heartbeat_ms=100, election_ms=1000)
    if name == "etcd-matched":  # election-timeout = failure_timeout; the heartbeat at etcd's 1/5 limit
        return EtcdMembers(
            directory,
            "matched",
            heartbeat_ms=DEFAULT_FAILURE_TIMEOUT_MS // 5,
            election_ms=DEFAULT_FAILURE_TIMEOUT_MS,
        )
    if name == "zookeeper-recommended":  # zoo_sample.cfg, Debian's /etc/zookeeper/conf_example/zoo.cfg
        return ZooKeeperMembers(directory, "recommended", tick_ms=2000, init_limit=10, sync_limit=5)
    if name == "zookeeper-matched":
        tick_ms = DEFAULT_HEARTBEAT_INTERVAL_MS
        return ZooKeeperMembers(
            directory,
            "matched",
            tick_ms=tick_ms,
            init_limit=DEFAULT_ELECTION_TIMEOUT_MS // tick_ms,
            sync_limit=DEFAULT_FAILURE_TIMEOUT_MS // tick_ms,
        )
    raise ValueError(name)


def missing_programs(names: list[str]) -> list[str]:
    missing = []
    if any(name.startswith("etcd") for name in names) and shutil.which(ETCD) is None:
        missing.append("etcd (etcd-server)")
    if any(name.startswith("zookeeper") for name in names):
        if shutil.which(JAVA) is None:
            missing.append("java (default-jre, a dependency of zookeeper)")
        missing += [str(jar) for jar in ZOOKEEPER_CLASSPATH if not jar.exists()]
    return missing


def versions(names: list[str]) -> str:
    found = [f"Python {platform.python_version()}"]
    if any(name.startswith("etcd") for name in names):
        out = subprocess.run([ETCD, "--version"], capture_output=True, text=True, check=False).stdout
        found.append(out.splitlines()[0] if out else "etcd ?")
    if any(name.startswith("zookeeper") for name in names):
        jars = sorted(ZOOKEEPER_JAR.parent.glob("zookeeper-[0-9]*.jar"))  # Debian's zookeeper-3.8.0.jar
        java = subprocess.run([JAVA, "-version"], capture_output=True, text=True, check=False).stderr
        found += [jars[0].stem if jars else "zookeeper ?", java.splitlines()[0] if java else "java ?"]
    return ", ".join(found)


# ------------------------------------------------------------------------------------------ runs


@dataclass
class Run:
    system: str
    settings: str
    scenario: str
    victim: int
    new_leader: int
    failover_ms: float  # polled: signal -> a majority reports the new leader
    poll_period_ms: float  # the mean time between two replies of one member's poller
    exited: bool  # the victim exited by itself (graceful: within EXIT_TIMEOUT_S)
    load_1m: float


def failover_run(members: Members, scenario: str, args: argparse.Namespace, rng: random.Random) -> Run:
    old = wait_until(members.settled, SETTLE_TIMEOUT_S, f"{members.system} to settle", interval_s=0.05)
    assert old is not None  # wait_until returns only a truthy result
    time.sleep(rng.uniform(0, members.heartbeat_s))  # a benchmark may sleep: a random signal phase
    victim = old[0]
    survivors = [member for member in MEMBERS if member != victim]
    pollers = [members.poller(member, args.poll_ms / 1000) for member in survivors]
    for poller in pollers:
        poller.start()
    for poller in pollers:
        poller.first_reply.wait(5)
    signalled = time.monotonic()
    members.signal(victim, SCENARIOS[scenario])
    try:
        found = wait_until(
            lambda: majority_at(pollers, old, signalled, MAJORITY),
            args.timeout_s,
            f"a majority of {members.system} on a new leader",
            0.002,
        )
    finally:
        for poller in pollers:
            poller.stop()
    assert found is not None
    at, (new_leader, _) = found
    exited = members.wait_exit(victim, EXIT_TIMEOUT_S)
    members.restart(victim)
    return Run(
        system=members.system,
        settings=members.settings,
        scenario=scenario,
        victim=victim,
        new_leader=new_leader,
        failover_ms=(at - signalled) * 1000,
        poll_period_ms=statistics.mean(p.period_ms for p in pollers),
        exited=exited,
        load_1m=os.getloadavg()[0],
    )


def measure(name: str, directory: Path, args: argparse.Namespace, rng: random.Random) -> list[Run]:
    members = make_members(name, directory, args)
    runs = []
    try:
        members.start()
        wait_until(members.settled, SETTLE_TIMEOUT_S, f"{name} to elect a leader", interval_s=0.05)
        print(f"## {members.system}, {members.settings} (load average {load_average()})", flush=True)
        for scenario in args.scenarios:
            for i in range(args.runs):
                run = failover_run(members, scenario, args, rng)
                runs.append(run)
                print(
                    f"{scenario} run {i + 1:>2}: {run.failover_ms:7.1f} ms; leader {run.victim} -> "
                    f"{run.new_leader}; poll period {run.poll_period_ms:.1f} ms; load {run.load_1m:.2f}"
                    + ("" if run.exited else f"; did not exit within {EXIT_TIMEOUT_S:.0f} s: killed"),
                    flush=True,
                )
    finally:
        members.close()
    return runs


# ------------------------------------------------------------------------------------------ report


def table(runs: list[Run], scenarios: list[str]) -> str:
    groups: dict[tuple[str, str, str], list[float]] = {}
    for run in runs:
        groups.setdefault((run.system, run.settings, run.scenario), []).append(run.failover_ms)
    ours = {
        scenario: statistics.median(values)
        for (system, _, scenario), values in groups.items()
        if system == "leader-node"
    }
    lines = [
        "| system | settings | scenario | runs | median (ms) | p90 (ms) | max (ms) | median / leader-node |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for scenario in scenarios:
        for (system, settings, group_scenario), values in groups.items():
            if group_scenario != scenario:
                continue
            median = statistics.median(values)
            ratio = f"{median / ours[scenario]:.1f}" if scenario in ours else "-"
            lines.append(
                f"| {system} | {settings} | {scenario} | {len(values)} | {median:.0f} | {p90(values):.0f} | "
                f"{max(values):.0f} | {ratio} |"
            )
    return "\n".join(lines)


def names(text: str, allowed: tuple[str, ...]) -> list[str]:
    chosen = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in allowed]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed)} (comma-separated)")
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="per system, settings and scenario")
    parser.add_argument(
        "--systems", type=lambda text: names(text, SYSTEMS), default=list(SYSTEMS), help=", ".join(SYSTEMS)
    )
    parser.add_argument(
        "--scenarios", type=lambda text: names(text, tuple(SCENARIOS)), default=list(SCENARIOS)
    )
    parser.add_argument("--algorithm", choices=("bully", "ring"), default=DEFAULT_ALGORITHM)
    parser.add_argument("--poll-ms", type=float, default=5.0)
    parser.add_argument("--timeout-s", type=float, default=60.0, help="give up on one run after this")
    parser.add_argument("--seed", type=int, default=None, help="for the random signal phases")
    parser.add_argument("--json", type=Path, default=None, help="write the raw runs here")
    parser.add_argument(
        "--keep", action="store_true", help="keep the directory with every member's data and log (printed)"
    )
    args = parser.parse_args()
    missing = missing_programs(args.systems)
    if missing:
        print(f"peers: missing {', '.join(missing)}; install: {INSTALL_HINT}", file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    print(
        f"# peers: {args.runs} runs per row, poll {args.poll_ms} ms; {platform.platform()}, "
        f"{os.cpu_count()} CPUs; {versions(args.systems)}; load average {load_average()}",
        flush=True,
    )
    runs: list[Run] = []
    directory = Path(tempfile.mkdtemp(prefix="leader-node-peers-"))
    try:
        for name in args.systems:
            runs += measure(name, directory / name, args, rng)
    finally:
        if args.keep:
            print(f"# data and logs kept in {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)
    print()
    print(table(runs, args.scenarios))
    print(f"\nload average at the end: {load_average()} (1/5/15 min)")
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(run) for run in runs], indent=1))
    return 0


if __name__ == "__main__":
    unwind_on_sigterm()
    sys.exit(main())
