"""Cold start: N real processes with empty state directories started at once on loopback; the time until
a majority agrees on one leader, and the messages that took.

    .venv/bin/python benchmarks/coldstart.py --algorithm bully --nodes 5 [--runs 5]
    .venv/bin/python benchmarks/coldstart.py --algorithm ring --nodes 51 --runs 3

Each run is a new cluster (tests/runtime/cluster.py) with the contract's default timers unless stated:
every `python -m node run` is spawned in one loop, and the run's time is from just before the first spawn
until a majority (N//2 + 1) reports one leader, polled as benchmarks/failover.py does (GET /status over a
kept-alive connection per node, every 5 x max(1, (N-1)/4) ms) and read from the nodes' own event lines
(`became_leader`/`leader_accepted`). Also from the event lines: when the majority-th node was listening
(the interpreters' start-up on this machine) and when the first node started an election.

A node with no state votes for nobody until it has heard the epoch of enough members and its start-up
blackout (failure_timeout) is over (docs/algorithms.md, "A node that lost its state"), so a first leader
takes at least failure_timeout: the cold start measures that design plus the machine's start-up.

Messages: `leader_node_messages_sent_total` by type summed over every node once all agree, heartbeats
excluded; the catch-up probes of a node without state (a PROPOSE for epoch 0 per peer and heartbeat, and
its PRE_VOTE_ANSWER) are in PROPOSE and PRE_VOTE_ANSWER. Inbound connections refused by a node's caps
(`leader_node_peer_rejections_total`, e.g. `source_cap`: all peers connect from 127.0.0.1 here) are
summed too. Every process is SIGKILLed at the end of a run, also on failure, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.failover import (
    default_poll_ms,
    log_majority_ms,
    majority_of,
    ms_since,
    seconds,
    sent_by_type,
    start_timeout_s,
    status_poller,
)
from benchmarks.observer import SCRAPE_TIMEOUT_S, load_averages, majority_at, summary_row
from tests.runtime.cluster import Cluster, unwind_on_sigterm, wait_until  # needs the repository root

NOBODY = (0, -1)  # "the old leader" of a cold start: every real leader and epoch succeeds it


def rejections(cluster: Cluster) -> Counter[str]:
    total: Counter[str] = Counter()
    for node_id in cluster.nodes:
        for name, value in cluster.metrics(node_id, SCRAPE_TIMEOUT_S).items():
            match = re.fullmatch(r'leader_node_peer_rejections_total\{reason="(\w+)"\}', name)
            if match is not None and value:
                total[match.group(1)] += int(value)
    return total


def nth_event_ms(cluster: Cluster, names: tuple[str, ...], since: datetime, nth: int) -> float | None:
    """When the nth node (1-based) first logged one of `names`, in ms after `since`."""
    firsts = []
    for node_id in cluster.nodes:
        times = [e["ts"] for e in cluster.events(node_id, since=since) if e["EVENT"] in names]
        if times:
            firsts.append(min(times))
    firsts.sort()
    return ms_since(since, firsts[nth - 1]) if len(firsts) >= nth else None


def cold_start_run(directory: Path, args: argparse.Namespace) -> dict[str, Any]:
    cluster = Cluster(
        directory,
        range(1, args.nodes + 1),
        heartbeat_interval=args.heartbeat,
        failure_timeout=args.failure_timeout,
        election_timeout=args.election_timeout,
        algorithm=args.algorithm,
    )
    majority = majority_of(args.nodes)
    pollers = [status_poller(i, node.http_port, args.poll_ms / 1000) for i, node in cluster.nodes.items()]
    try:
        for poller in pollers:  # they see refused connections until their node serves
            poller.start()
        spawned_wall = datetime.now().astimezone()
        spawned = time.monotonic()
        cluster.start()
        found = wait_until(
            lambda: majority_at(pollers, NOBODY, spawned, majority),
            start_timeout_s(args.nodes),
            "a majority on one leader",
            0.01,
        )
        assert found is not None  # wait_until returns only a truthy result
        at, (leader, epoch) = found
        for poller in pollers:
            poller.stop()
        assert epoch is not None
        wait_until(cluster.agreed_leader, start_timeout_s(args.nodes), "every node to agree")
        messages = sent_by_type(cluster, tuple(cluster.nodes))
        heartbeats = messages.pop("HEARTBEAT", 0)
        return {
            "leader": leader,
            "epoch": epoch,
            "polled_ms": (at - spawned) * 1000,
            "log_ms": log_majority_ms(cluster, tuple(cluster.nodes), leader, spawned_wall),
            "majority_listening_ms": nth_event_ms(cluster, ("listening",), spawned_wall, majority),
            "first_election_ms": nth_event_ms(cluster, ("election_started",), spawned_wall, 1),
            "elections_started": sum(len(cluster.events(n, "election_started")) for n in cluster.nodes),
            "messages": dict(messages),
            "total": sum(messages.values()),
            "heartbeats": heartbeats,
            "rejections": dict(rejections(cluster)),
            "poll_period_ms": sum(p.period_ms for p in pollers) / len(pollers),
            "load": load_averages(),
        }
    finally:
        for poller in pollers:
            poller.stop()
        cluster.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algorithm", choices=("bully", "ring"), default="bully")
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--heartbeat", default="1s")
    parser.add_argument("--failure-timeout", default="3s")
    parser.add_argument("--election-timeout", default="5s")
    parser.add_argument("--poll-ms", type=float, default=None, help="default 5 x max(1, (N-1)/4)")
    parser.add_argument("--json", type=Path, default=None, help="write the raw runs here")
    args = parser.parse_args()
    if args.nodes < 1:
        parser.error("--nodes must be at least 1")
    if args.poll_ms is None:
        args.poll_ms = default_poll_ms(args.nodes)
    for value in (args.heartbeat, args.failure_timeout, args.election_timeout):
        seconds(value)
    print(
        f"# {args.algorithm} cold start, {args.nodes} nodes: heartbeat {args.heartbeat}, "
        f"failure {args.failure_timeout}, election {args.election_timeout}, poll {args.poll_ms} ms; "
        f"{platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"load average {load_averages()}",
        flush=True,
    )
    runs = []
    with tempfile.TemporaryDirectory(prefix="leader-node-coldstart-") as tmp:
        for i in range(args.runs):
            run = cold_start_run(Path(tmp) / f"run{i}", args)
            runs.append(run)
            print(json.dumps(run, sort_keys=True), flush=True)
    print("\n| measure | runs | min | median | p90 | max |\n|---|---:|---:|---:|---:|---:|")
    print(summary_row("spawn -> majority on a leader, polled (ms)", [r["polled_ms"] for r in runs]))
    logged = [r["log_ms"] for r in runs if r["log_ms"] is not None]
    if logged:
        print(summary_row("the same, event lines (ms)", logged))
    listening = [r["majority_listening_ms"] for r in runs if r["majority_listening_ms"] is not None]
    if listening:
        print(summary_row("spawn -> a majority listening (ms)", listening))
    print(summary_row("messages to the first leader", [float(r["total"]) for r in runs]))
    print(f"load average at the end: {load_averages()}")
    if args.json is not None:
        args.json.write_text(json.dumps(runs, indent=1, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    unwind_on_sigterm()
    sys.exit(main())
