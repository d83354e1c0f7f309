"""CPU cost of one step of the pure core per received heartbeat, by cluster size (issue 18, target 4).

    .venv/bin/python benchmarks/step_cost.py [--nodes 5 15 51 101] [--rounds 200]

Node 1 of an N-member Bully cluster, started with no state, is fed one HEARTBEAT from every peer per
virtual second (and its own heartbeat timer), in memory: no sockets, no JSON, no MAC. What the step
costs grows with N because every step scans all peers (failure detector expiry, quorum counts, the next
detector deadline); in a real node it is a tenth of the measured cost per frame (docs/benchmarks.md,
"Scale").
"""

from __future__ import annotations

import argparse
import random
import time

from node.algorithms import make_algorithm
from node.core.events import MessageReceived, Start, TimerFired, TimerId
from node.core.messages import Heartbeat
from node.core.settings import Settings
from node.core.state import DurableState


def step_us(nodes: int, rounds: int) -> float:
    ids = tuple(range(1, nodes + 1))
    settings = Settings(node_id=1, member_ids=ids)
    algorithm = make_algorithm("bully", settings, DurableState(), random.Random(1))
    now_ms = 0
    algorithm.step(Start(now_ms))
    heartbeats = [Heartbeat(sender=peer, epoch=0, leader_id=None) for peer in ids[1:]]
    steps = 0
    started = time.process_time()
    for _ in range(rounds):
        now_ms += settings.heartbeat_interval_ms
        for heartbeat in heartbeats:
            now_ms += 1
            algorithm.step(MessageReceived(now_ms, heartbeat))
            steps += 1
        algorithm.step(TimerFired(now_ms, TimerId.HEARTBEAT))
    return (time.process_time() - started) / steps * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[5, 15, 51, 101])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    for nodes in args.nodes:
        print(f"{nodes} members: {step_us(nodes, args.rounds):.1f} us of CPU per received heartbeat")


if __name__ == "__main__":
    main()
