"""Idle cost of one node: a 5-node loopback cluster with default timers, measured over 60 s.

    .venv/bin/python benchmarks/idle.py [--nodes 5] [--duration-s 60] [--warmup-s 10]

Starts real `python -m node run` processes on 127.0.0.1 (tests/runtime/cluster.py), waits for a leader,
lets the cluster settle, then samples every node's CPU time (utime + stime from /proc/PID/stat) and RSS
(VmRSS, peak VmHWM from /proc/PID/status) across the window. Prints one row per node and the worst.
Target (issue 2): RSS <= 40 MiB and CPU <= 1 % of one core per node.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.runtime.cluster import Cluster, unwind_on_sigterm  # needs the repository root

CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--duration-s", type=float, default=60.0)
    parser.add_argument("--warmup-s", type=float, default=10.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="leader-node-idle-") as tmp:
        cluster = Cluster(
            Path(tmp),
            range(1, args.nodes + 1),
            heartbeat_interval="1s",  # the defaults of the contract
            failure_timeout="3s",
            election_timeout="5s",
        )
        try:
            cluster.start()
            leader_id, epoch = cluster.wait_leader(timeout_s=60)
            time.sleep(args.warmup_s)  # settle: imports done, connections up, first elections over
            pids = {n: node.process.pid for n, node in cluster.nodes.items() if node.process is not None}
            cpu_start = {n: cpu_seconds(pid) for n, pid in pids.items()}
            wall_start = time.monotonic()
            time.sleep(args.duration_s)  # the measurement window itself
            wall_s = time.monotonic() - wall_start
            cpu_used = {n: cpu_seconds(pid) - cpu_start[n] for n, pid in pids.items()}
            memory = {n: memory_kib(pid) for n, pid in pids.items()}
            still = cluster.agreed_leader()
        finally:
            cluster.close()

    print(
        f"# {args.nodes} nodes on 127.0.0.1, heartbeat 1s / failure 3s / election 5s, {wall_s:.1f} s window"
    )
    print(f"# python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"# leader {leader_id} at epoch {epoch}; unchanged at the end: {still == (leader_id, epoch)}")
    print("node  role      cpu_%_of_core  rss_mib  peak_rss_mib")
    for node_id in sorted(pids):
        role = "leader" if node_id == leader_id else "follower"
        cpu_percent = 100 * cpu_used[node_id] / wall_s
        rss_mib = memory[node_id]["VmRSS"] / 1024
        peak_mib = memory[node_id]["VmHWM"] / 1024
        print(f"{node_id:<5} {role:<9} {cpu_percent:<14.2f} {rss_mib:<8.1f} {peak_mib:.1f}")
    worst_cpu = max(100 * c / wall_s for c in cpu_used.values())
    worst_rss = max(m["VmRSS"] for m in memory.values()) / 1024
    print(f"worst: cpu {worst_cpu:.2f} % of one core, rss {worst_rss:.1f} MiB")
    return 0 if worst_cpu <= 1.0 and worst_rss <= 40 else 1


if __name__ == "__main__":
    unwind_on_sigterm()
    sys.exit(main())
