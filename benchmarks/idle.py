"""Idle cost of one node, and of the cluster: N real processes on loopback.

    .venv/bin/python benchmarks/idle.py [--nodes 5] [--duration-s 60] [--warmup-s 10] [--json PATH]
    .venv/bin/python benchmarks/idle.py --nodes 101 --heartbeat 5s --failure-timeout 15s \\
        --election-timeout 25s

Starts real `python -m node run` processes on 127.0.0.1 (tests/runtime/cluster.py) with the contract's
default timers unless stated (heartbeat 1 s, failure 3 s, election 5 s), waits for a leader,
lets the cluster settle, then samples every node's CPU time (utime + stime from /proc/PID/stat), RSS
(VmRSS, peak VmHWM from /proc/PID/status) and open file descriptors (/proc/PID/fd) across the window.
The cluster's frames per second: `leader_node_messages_sent_total` (every type, heartbeats included)
summed over all nodes, scraped before and after the window, divided by the time between the scrapes;
received frames and dropped messages the same way. Prints one row per node (up to 15 nodes; above, the
spread by role), the worst node, the cluster's total CPU in cores and its frames/s next to the
all-to-all prediction N(N-1)/heartbeat_interval (docs/benchmarks.md, "Scale").
Target (issue 2): RSS <= 40 MiB and CPU <= 1 % of one core per node; the exit status says whether the
worst node met it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.observer import SCRAPE_TIMEOUT_S, load_averages
from node.core.durations import duration_s
from tests.runtime.cluster import Cluster, unwind_on_sigterm  # needs the repository root

CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
ROWS_PRINTED_MAX = 15
_COUNTER = re.compile(r"leader_node_messages_(sent|received|dropped)_total\{\w+=\"\w+\"\}")


def cpu_seconds(pid: int) -> float:
    # /proc/PID/stat: fields after the ")" of the command name; utime and stime are fields 14 and 15.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S


def memory_kib(pid: int) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def frame_counts(cluster: Cluster) -> tuple[float, dict[str, int]]:
    """(monotonic time in the middle of the scrape, {sent, received, dropped} summed over all nodes)."""
    started = time.monotonic()
    totals = {"sent": 0, "received": 0, "dropped": 0}
    for node_id in cluster.nodes:
        for name, value in cluster.metrics(node_id, SCRAPE_TIMEOUT_S).items():
            match = _COUNTER.fullmatch(name)
            if match is not None:
                totals[match.group(1)] += int(value)
    return (started + time.monotonic()) / 2, totals


def spread(values: list[float]) -> str:
    return f"min {min(values):.2f} / median {statistics.median(values):.2f} / max {max(values):.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--duration-s", type=float, default=60.0)
    parser.add_argument("--warmup-s", type=float, default=10.0)
    parser.add_argument("--heartbeat", default="1s")
    parser.add_argument("--failure-timeout", default="3s")
    parser.add_argument("--election-timeout", default="5s")
    parser.add_argument("--json", type=Path, default=None, help="write the per-node figures here")
    args = parser.parse_args()
    heartbeat_s = duration_s(args.heartbeat)
    load_before = load_averages()

    with tempfile.TemporaryDirectory(prefix="leader-node-idle-") as tmp:
        cluster = Cluster(
            Path(tmp),
            range(1, args.nodes + 1),
            heartbeat_interval=args.heartbeat,
            failure_timeout=args.failure_timeout,
            election_timeout=args.election_timeout,
        )
        try:
            started = time.monotonic()
            cluster.start()
            leader_id, epoch = cluster.wait_leader(timeout_s=60 + 4 * args.nodes)
            elected_s = time.monotonic() - started
            time.sleep(args.warmup_s)  # settle: imports done, connections up, first elections over
            pids = {n: node.process.pid for n, node in cluster.nodes.items() if node.process is not None}
            frames_at_start, frames_start = frame_counts(cluster)
            cpu_start = {n: cpu_seconds(pid) for n, pid in pids.items()}
            wall_start = time.monotonic()
            time.sleep(args.duration_s)  # the measurement window itself
            wall_s = time.monotonic() - wall_start
            cpu_used = {n: cpu_seconds(pid) - cpu_start[n] for n, pid in pids.items()}
            memory = {n: memory_kib(pid) for n, pid in pids.items()}
            fds = {n: open_fds(pid) for n, pid in pids.items()}
            frames_at_end, frames_end = frame_counts(cluster)
            still = cluster.agreed_leader()
        finally:
            cluster.close()

    frames_s = frames_at_end - frames_at_start
    rates = {kind: (frames_end[kind] - frames_start[kind]) / frames_s for kind in frames_end}
    predicted = args.nodes * (args.nodes - 1) / heartbeat_s
    cpu_percent = {n: 100 * cpu_used[n] / wall_s for n in pids}
    print(
        f"# {args.nodes} nodes on 127.0.0.1, heartbeat {args.heartbeat} / failure {args.failure_timeout} / "
        f"election {args.election_timeout}, {wall_s:.1f} s window"
    )
    print(f"# python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"# load average before {load_before}, after {load_averages()}")
    print(f"# leader {leader_id} at epoch {epoch} after {elected_s:.1f} s; unchanged at the end: ", end="")
    print(still == (leader_id, epoch))
    if len(pids) <= ROWS_PRINTED_MAX:
        print("node  role      cpu_%_of_core  rss_mib  peak_rss_mib  fds")
        for node_id in sorted(pids):
            role = "leader" if node_id == leader_id else "follower"
            rss_mib = memory[node_id]["VmRSS"] / 1024
            peak_mib = memory[node_id]["VmHWM"] / 1024
            print(
                f"{node_id:<5} {role:<9} {cpu_percent[node_id]:<14.2f} {rss_mib:<8.1f} {peak_mib:<13.1f} "
                f"{fds[node_id]}"
            )
    else:
        followers = [n for n in pids if n != leader_id]
        print(f"leader {leader_id}: cpu {cpu_percent[leader_id]:.2f} % of one core, ", end="")
        print(f"rss {memory[leader_id]['VmRSS'] / 1024:.1f} MiB, fds {fds[leader_id]}")
        print(f"followers, cpu % of one core: {spread([cpu_percent[n] for n in followers])}")
        print(f"followers, rss MiB: {spread([memory[n]['VmRSS'] / 1024 for n in followers])}")
        print(f"followers, fds: {spread([float(fds[n]) for n in followers])}")
    worst_cpu = max(cpu_percent.values())
    worst_rss = max(m["VmRSS"] for m in memory.values()) / 1024
    print(f"worst: cpu {worst_cpu:.2f} % of one core, rss {worst_rss:.1f} MiB")
    print(
        f"cluster: cpu {sum(cpu_used.values()) / wall_s:.3f} cores, "
        f"rss {sum(m['VmRSS'] for m in memory.values()) / 1024:.0f} MiB, "
        f"frames sent {rates['sent']:.1f}/s (all-to-all predicts {predicted:.0f}/s), "
        f"received {rates['received']:.1f}/s, dropped {rates['dropped']:.1f}/s"
    )
    if args.json is not None:
        raw = {
            "nodes": args.nodes,
            "window_s": wall_s,
            "leader": leader_id,
            "cpu_percent": cpu_percent,
            "rss_kib": {n: m["VmRSS"] for n, m in memory.items()},
            "fds": fds,
            "frames_per_s": rates,
            "predicted_frames_per_s": predicted,
        }
        args.json.write_text(json.dumps(raw, indent=1, sort_keys=True))
    return 0 if worst_cpu <= 1.0 and worst_rss <= 40 else 1


if __name__ == "__main__":
    unwind_on_sigterm()
    sys.exit(main())
