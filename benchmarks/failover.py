"""Failover time and messages per election on a loopback cluster of real processes (5 nodes unless --nodes).

    .venv/bin/python benchmarks/failover.py --algorithm bully --scenario crash    [--runs 20] [--nodes 5]
    .venv/bin/python benchmarks/failover.py --algorithm bully --scenario silent   [--runs 20]
    .venv/bin/python benchmarks/failover.py --algorithm bully --scenario graceful [--runs 20]
    .venv/bin/python benchmarks/failover.py --algorithm bully --scenario silent \\
        --heartbeat 100ms --failure-timeout 500ms                                  # fast timers
    .venv/bin/python benchmarks/failover.py --algorithm bully --scenario initiator [--runs 5]
    .venv/bin/python benchmarks/failover.py --algorithm bully --scenario crash --hook /bin/true  # hook cost
    .venv/bin/python benchmarks/failover.py --algorithm bully --scenario switchover [--runs 20]
    .venv/bin/python benchmarks/failover.py --algorithm bully --scenario graceful --trace DIR [--timeline]

Timers default to the contract's (heartbeat 1 s, failure 3 s, election 5 s). Failover scenarios: the
current leader gets SIGKILL (crash), SIGSTOP (silent: no connection is closed) or SIGTERM (graceful), or
is asked to hand off through its control socket (switchover, as `leaderctl switchover`: it stays);
one thread per surviving node polls its GET /status every 5 ms (benchmarks/observer.py), and a run's
time is from just before the signal until a majority of the cluster (N//2 + 1: 3 of 5) reports the same
new leader under a higher epoch (the time of the poll reply that completed the majority). The same moment
is also read from the nodes' own event lines (`became_leader`/`leader_accepted`, wall clock) for
comparison. With --nodes N above 5 the poll interval grows to 5 ms x (N-1)/4 unless --poll-ms is given,
so that the observer sends the same 800 requests per second in all (at 51 nodes every 62.5 ms: the event
lines are then the finer measure).
After each run the victim is brought back (restart, or SIGCONT) and the cluster settles; the next run
waits a random fraction of a heartbeat so that signals land at every heartbeat phase.

Messages: `leader_node_messages_sent_total` by type from every surviving node's /metrics, summed, before
the signal and once every survivor agrees; heartbeats excluded. The `initiator` scenario measures one
election with a single initiator: node N (the would-be leader) is down, nodes 1..N-1 start together and
only the initiator has a short listen window (its heartbeat_interval is 100 ms, so it listens 200 ms
instead of 2 s); best = the highest live id (N-1), worst = the lowest (1).

With `--trace DIR` the nodes write timing traces (node/runtime/trace.py) and each run's critical path is
summed by kind (benchmarks/tracing.py; docs/benchmarks.md, "Where a hand-off's time goes").

This is a benchmark, not a test: it asserts nothing about time. It prints one line per run and a
Markdown summary (min / median / p90 / max), and `--json PATH` keeps the raw numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import tracing
from benchmarks.observer import (
    SCRAPE_TIMEOUT_S,
    KeepAliveHttp,
    Observation,
    Poller,
    load_averages,
    majority_at,
    summary_row,
)
from node.control import ask
from node.core.durations import duration_s
from node.runtime.trace import TRACE_ENV
from tests.runtime.cluster import Cluster, unwind_on_sigterm, wait_until  # needs the repository root

SIGNALS = {"crash": signal.SIGKILL, "silent": signal.SIGSTOP, "graceful": signal.SIGTERM}


def majority_of(members: int) -> int:
    return members // 2 + 1


def default_poll_ms(members: int) -> float:
    """5 ms at 5 members; above, the same total rate of polls (800/s) spread over the survivors."""
    return 5.0 * max(1.0, (members - 1) / 4)


def start_timeout_s(members: int) -> float:
    """How long a whole cluster may take to start and elect: on 2 cores, 51 interpreters importing
    gevent at once take tens of seconds before the first election."""
    return 60.0 + 4.0 * members


def seconds(duration: str) -> float:
    try:
        return duration_s(duration)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# ------------------------------------------------------------------------------------------ polling


def status_view(body: Any) -> Observation:
    """GET /status -> (leader id, epoch), None while the node knows no leader."""
    return None if body["leader_id"] is None else (int(body["leader_id"]), int(body["epoch"]))


def status_poller(node_id: int, port: int, interval_s: float) -> Poller:
    return Poller(node_id, KeepAliveHttp(port, "/status"), status_view, interval_s)


# ------------------------------------------------------------------------------------------ cluster


def new_cluster(directory: Path, args: argparse.Namespace, per_node: dict[int, str] | None = None) -> Cluster:
    cluster = Cluster(
        directory,
        range(1, args.nodes + 1),
        heartbeat_interval=args.heartbeat,
        failure_timeout=args.failure_timeout,
        election_timeout=args.election_timeout,
        algorithm=args.algorithm,
    )
    if args.hook:  # every node runs the same [hooks] on_role_change (its cost on failover)
        for node in cluster.nodes.values():
            hooks = f'\n[hooks]\non_role_change = "{args.hook.resolve()}"\ntimeout = "10s"\n'
            node.config_path.write_text(node.config_path.read_text() + hooks)
    for node_id, heartbeat in (per_node or {}).items():  # one node with its own heartbeat (listen window)
        path = cluster.nodes[node_id].config_path
        text = re.sub(
            r'heartbeat_interval = "[^"]*"', f'heartbeat_interval = "{heartbeat}"', path.read_text()
        )
        path.write_text(text)
    return cluster


def settled(cluster: Cluster) -> tuple[int, int] | None:
    """(leader, epoch) once all nodes agree, every node holds every peer alive and eligible (a node that
    handed off is held off for election_timeout: a switchover right after would find no successor)."""
    statuses = cluster.statuses()
    if any(
        s is None or any(p["state"] != "alive" or not p.get("eligible", True) for p in s["peers"].values())
        for s in statuses.values()
    ):
        return None
    return cluster.agreed_leader()


def sent_by_type(cluster: Cluster, node_ids: tuple[int, ...]) -> Counter[str]:
    total: Counter[str] = Counter()
    for node_id in node_ids:
        for name, value in cluster.metrics(node_id, SCRAPE_TIMEOUT_S).items():
            match = re.fullmatch(r'leader_node_messages_sent_total\{type="(\w+)"\}', name)
            if match is not None:
                total[match.group(1)] += int(value)
    return total


def ms_since(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds() * 1000


def log_majority_ms(
    cluster: Cluster, node_ids: tuple[int, ...], leader: int, since: datetime
) -> float | None:
    """From the nodes' own event lines: when the majority-th node took `leader` on (ms after `since`)."""
    majority = majority_of(len(cluster.nodes))
    times = []
    for node_id in node_ids:
        for event in cluster.events(node_id, since=since):
            if event["EVENT"] in ("became_leader", "leader_accepted") and event.get("LEADER_ID") == str(
                leader
            ):
                times.append(event["ts"])
                break
    times.sort()
    return (times[majority - 1] - since).total_seconds() * 1000 if len(times) >= majority else None


# ------------------------------------------------------------------------------------------ scenarios


@dataclass
class Run:
    scenario: str
    victim: int
    victim_epoch: int
    new_leader: int
    new_epoch: int
    failover_ms: float  # polled: signal -> majority reports the new leader
    log_ms: float | None  # the same from the event lines
    polls: int
    poll_period_ms: float  # the mean time between two replies of one survivor's poller
    messages: dict[str, int] = field(default_factory=dict)  # by type, heartbeats excluded
    stale_claims_after_resume: int = 0  # silent only: peers rejecting the resumed leader's old epoch
    stale_claim_lines: list[str] = field(default_factory=list)  # what they said, and what it logged
    signalled_ns: int = 0  # CLOCK_MONOTONIC just before the signal (the nodes' trace clock)
    observed_ns: int = 0  # the poll reply that completed the majority
    breakdown: dict[str, float] = field(default_factory=dict)  # --trace: the critical path, ms by kind
    critical_path: list[str] = field(default_factory=list)  # --trace: its segments


def failover_run(cluster: Cluster, scenario: str, args: argparse.Namespace, rng: random.Random) -> Run:
    old = wait_until(
        lambda: settled(cluster), start_timeout_s(len(cluster.nodes)), "the cluster to settle", 0.05
    )
    assert old is not None  # wait_until returns only a truthy result
    time.sleep(rng.uniform(0, seconds(args.heartbeat)))  # a benchmark may sleep: a random signal phase
    victim, victim_epoch = old
    survivors = tuple(i for i in cluster.nodes if i != victim)
    before = sent_by_type(cluster, survivors)
    pollers = [status_poller(i, cluster.nodes[i].http_port, args.poll_ms / 1000) for i in survivors]
    for poller in pollers:
        poller.start()
    for poller in pollers:
        poller.first_reply.wait(5)
    signalled_wall = datetime.now().astimezone()
    signalled_ns = time.monotonic_ns()
    signalled = signalled_ns / 1e9
    if scenario == "switchover":  # `leaderctl switchover` on the leader's host: its control socket
        reply = ask(str(cluster.nodes[victim].control_socket), {"op": "switchover"}, 5.0)
        assert reply.get("ok"), reply
    else:
        cluster.signal(victim, SIGNALS[scenario])
    try:
        found = wait_until(
            lambda: majority_at(pollers, old, signalled, majority_of(len(cluster.nodes))),
            args.timeout_s,
            "a majority on a new leader",
            0.002,
        )
    finally:
        for poller in pollers:
            poller.stop()
    assert found is not None
    at, (new_leader, new_epoch) = found
    assert new_epoch is not None  # leader-node always reports its epoch
    wait_until(lambda: cluster.agreed_leader(survivors) == (new_leader, new_epoch), 60, "every survivor")
    messages = sent_by_type(cluster, survivors) - before
    del messages["HEARTBEAT"]
    run = Run(
        scenario=scenario,
        victim=victim,
        victim_epoch=victim_epoch,
        new_leader=new_leader,
        new_epoch=new_epoch,
        failover_ms=(at - signalled) * 1000,
        log_ms=log_majority_ms(cluster, survivors, new_leader, signalled_wall),
        polls=sum(p.polls for p in pollers),
        poll_period_ms=sum(p.period_ms for p in pollers) / len(pollers),
        messages=dict(messages),
        signalled_ns=signalled_ns,
        observed_ns=int(at * 1e9),
    )
    if args.trace is not None:
        marks = tracing.read_marks(
            args.trace, tuple(cluster.nodes), signalled_ns, run.observed_ns + 20_000_000
        )
        path = tracing.critical_path(
            marks,
            leader=new_leader,
            epoch=new_epoch,
            since_ns=signalled_ns,
            observed_ns=run.observed_ns,
            majority=majority_of(len(cluster.nodes)),
        )
        run.breakdown = tracing.breakdown(path)
        run.critical_path = tracing.describe(path, signalled_ns)
        if args.timeline:
            print("\n".join(tracing.timeline(marks, signalled_ns)), flush=True)
            print("  critical path:\n" + "\n".join(run.critical_path), flush=True)
    if scenario == "silent":
        resumed_wall = cluster.signal(victim, signal.SIGCONT)
        wait_until(lambda: cluster.agreed_leader() is not None, 60, "the resumed node to rejoin", 0.02)
        rejected = [
            f"node {node_id} +{ms_since(resumed_wall, event['ts']):.1f} ms: {event['MESSAGE']}"
            for node_id in survivors
            for event in cluster.events(node_id, "message_rejected", since=resumed_wall)
            if event.get("PEER_ID") == str(victim)
        ]
        run.stale_claims_after_resume = len(rejected)
        if rejected:
            own = [
                f"node {victim} +{ms_since(resumed_wall, event['ts']):.1f} ms: "
                f"{event['EVENT']}: {event['MESSAGE']}"
                for event in cluster.events(victim, since=resumed_wall)[:8]
            ]
            run.stale_claim_lines = rejected + own
    elif scenario == "switchover":
        wait_until(lambda: cluster.agreed_leader() is not None, 60, "the old leader to follow", 0.02)
    else:
        cluster.wait_exit(victim, timeout_s=30)
        cluster.start(victim)
        cluster.wait_serving(victim, timeout_s=30)
    return run


def initiator_run(directory: Path, args: argparse.Namespace, initiator: int) -> dict[str, Any]:
    cluster = new_cluster(directory, args, per_node={initiator: "100ms"})
    live = tuple(range(1, args.nodes))  # node N stays down: the leader that died
    try:
        cluster.start(*live)
        leader, epoch = cluster.wait_leader(live, timeout_s=start_timeout_s(args.nodes))
        started = [e for n in live for e in cluster.events(n, "election_started")]
        first = min(started, key=lambda e: e["ts"])
        messages = sent_by_type(cluster, live)
        del messages["HEARTBEAT"]
        return {
            "initiator": initiator,
            "first_initiator": int(first["NODE_ID"]),
            "initiators": sorted({int(e["NODE_ID"]) for e in started}),
            "leader": leader,
            "epoch": epoch,
            "messages": dict(messages),
            "total": sum(messages.values()),
        }
    finally:
        cluster.close()


# ------------------------------------------------------------------------------------------ reporting


def report_failover(runs: list[Run], args: argparse.Namespace) -> None:
    print("\nper run (ms): " + ", ".join(f"{r.failover_ms:.0f}" for r in runs))
    print("\n| measure | runs | min | median | p90 | max |\n|---|---:|---:|---:|---:|---:|")
    print(summary_row("polled /status (ms)", [r.failover_ms for r in runs]))
    logged = [r.log_ms for r in runs if r.log_ms is not None]
    if logged:
        print(summary_row("event lines (ms)", logged))
    totals = [sum(r.messages.values()) for r in runs]
    print(summary_row("messages per failover", [float(t) for t in totals]))
    by_type: Counter[str] = Counter()
    for run in runs:
        by_type.update(run.messages)
    print(
        "\nmean messages per failover by type: "
        + ", ".join(f"{t} {n / len(runs):.1f}" for t, n in sorted(by_type.items()))
    )
    if args.trace is not None:
        print("\nfrom the nodes' traces (--trace):\n")
        print("\n".join(tracing.summary([r.breakdown for r in runs if r.breakdown.get("total")])))
    if args.scenario == "silent":
        stale = [r.stale_claims_after_resume for r in runs]
        print(
            f"runs with peers rejecting the resumed leader's old epoch: {sum(map(bool, stale))}/{len(runs)}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algorithm", choices=("bully", "ring"), default="bully")
    parser.add_argument("--scenario", choices=(*SIGNALS, "switchover", "initiator"), required=True)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--nodes", type=int, default=5, help="cluster size (3 or more)")
    parser.add_argument("--heartbeat", default="1s")
    parser.add_argument("--failure-timeout", default="3s")
    parser.add_argument("--election-timeout", default="5s")
    parser.add_argument("--poll-ms", type=float, default=None, help="default 5 x max(1, (N-1)/4)")
    parser.add_argument("--timeout-s", type=float, default=60.0, help="give up on one run after this")
    parser.add_argument("--seed", type=int, default=None, help="for the random signal phases")
    parser.add_argument("--json", type=Path, default=None, help="write the raw runs here")
    parser.add_argument(
        "--hook", type=Path, default=None, help="an executable every node runs as [hooks] on_role_change"
    )
    parser.add_argument(
        "--trace",
        type=Path,
        default=None,
        help=f"a directory for the nodes' timing traces ({TRACE_ENV}); prints the critical path by kind",
    )
    parser.add_argument("--timeline", action="store_true", help="with --trace: print each run's time line")
    args = parser.parse_args()
    if args.trace is not None:
        args.trace.mkdir(parents=True, exist_ok=True)
        os.environ[TRACE_ENV] = str(args.trace.resolve())  # inherited by every node the cluster starts
    if args.nodes < 3:
        parser.error("--nodes must be at least 3 (a failover needs a majority of survivors)")
    if args.poll_ms is None:
        args.poll_ms = default_poll_ms(args.nodes)
    for value in (args.heartbeat, args.failure_timeout, args.election_timeout):
        seconds(value)
    rng = random.Random(args.seed)
    print(
        f"# {args.algorithm} {args.scenario}, {args.nodes} nodes: heartbeat {args.heartbeat}, "
        f"failure {args.failure_timeout}, election {args.election_timeout}, poll {args.poll_ms} ms"
        f"{f', hook {args.hook}' if args.hook else ''}; {platform.platform()}, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, load average {load_averages()}"
    )
    raw: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="leader-node-failover-") as tmp:
        if args.scenario == "initiator":
            for i in range(args.runs):
                for initiator in (args.nodes - 1, 1):
                    result = initiator_run(Path(tmp) / f"run{i}-{initiator}", args, initiator)
                    raw.append(result)
                    print(json.dumps(result, sort_keys=True), flush=True)
            for initiator in (args.nodes - 1, 1):
                totals = [r["total"] for r in raw if r["initiator"] == initiator]
                print(f"initiator {initiator}: total messages per election {sorted(totals)}")
        else:
            cluster = new_cluster(Path(tmp), args)
            try:
                cluster.start()
                cluster.wait_leader(timeout_s=start_timeout_s(args.nodes))
                runs = []
                for i in range(args.runs):
                    run = failover_run(cluster, args.scenario, args, rng)
                    runs.append(run)
                    raw.append(asdict(run))
                    print(
                        f"run {i + 1:>2}: {run.failover_ms:7.1f} ms polled, "
                        f"{'-' if run.log_ms is None else f'{run.log_ms:7.1f}'} ms logged; leader "
                        f"{run.victim}@{run.victim_epoch} -> {run.new_leader}@{run.new_epoch}; "
                        f"{sum(run.messages.values())} messages {run.messages}; "
                        f"poll period {run.poll_period_ms:.1f} ms"
                        + (
                            f"; stale claims {run.stale_claims_after_resume}"
                            if args.scenario == "silent"
                            else ""
                        ),
                        flush=True,
                    )
                    for line in run.stale_claim_lines:
                        print(f"    {line}")
                report_failover(runs, args)
            finally:
                cluster.close()
    print(f"load average at the end: {load_averages()}")
    if args.json is not None:
        args.json.write_text(json.dumps(raw, indent=1, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    unwind_on_sigterm()
    sys.exit(main())
