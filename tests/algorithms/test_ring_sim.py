"""Ring-specific fault schedules on the simulator, on top of its generic seed sweeps (tests/sim): chains of
two adjacent failed nodes and restarts in the middle of an election, at seeded random moments, on the
simulator's network (each link 1-30 ms, seeded): the runner's own world of a seed, driven through
harness.Cluster. Every invariant is checked after every step by the World's SafetyMonitor; a run must then
converge on one leader and one epoch within the documented bound.

A failing seed is named in the assertion; replay it with `pytest -k "<test>[<seed>]"`.
"""

from __future__ import annotations

import random

import pytest

from node.sim.runner import RunConfig, build_world, liveness_bound_ms

from .harness import Cluster

FAST_SEEDS = 40
SLOW_SEEDS = 500
ELECTION_WINDOW_MS = 250  # an election on this network: pre-vote, a token round and a COORDINATOR round


def run_until_agreed(cluster: Cluster, within_ms: int, what: str) -> tuple[int, int]:
    """Run until every live node follows one leader under one epoch (harness.agreed_leader)."""
    done = cluster.run_until(lambda c: c.agreed_leader() is not None, cluster.now_ms + within_ms)
    tail = "\n".join(list(cluster.world.trace.tail)[-40:])
    assert done, f"{what}: no single leader within {within_ms} ms: {cluster.world.snapshots()}\n{tail}"
    agreed = cluster.agreed_leader()
    assert agreed is not None
    return agreed


def steady_cluster(nodes: int, seed: int) -> tuple[Cluster, random.Random, int, int]:
    """The simulator's own world of a seed (its network: each link 1-30 ms), converged, 2 s later."""
    world, _, rng = build_world(RunConfig("ring", nodes, seed))
    cluster = Cluster.around(world)
    cluster.start()
    bound_ms = liveness_bound_ms(world.nodes[1].settings)
    leader, epoch = run_until_agreed(cluster, bound_ms, f"seed {seed}: start-up")
    cluster.run_for(2_000)
    return cluster, rng, leader, epoch


def adjacent_chain(nodes: int, leader: int, rng: random.Random) -> list[int]:
    """Two ring neighbours to fail next to the crashed leader's election, keeping a majority alive."""
    if nodes <= 5:
        return [leader - 1 if leader > 1 else nodes]  # with the leader itself: a chain of two
    others = [i for i in range(1, nodes + 1) if i != leader and i % nodes + 1 != leader]
    first = rng.choice(others)
    return [first, first % nodes + 1]


@pytest.mark.parametrize("nodes", [5, 7])
@pytest.mark.parametrize("seed", range(FAST_SEEDS))
def test_adjacent_failures_and_restarts_in_mid_election(nodes: int, seed: int) -> None:
    check_adjacent_failures_and_restarts(nodes, seed)


@pytest.mark.slow
@pytest.mark.parametrize("nodes", [5, 7])
def test_adjacent_failures_and_restarts_in_mid_election_sweep(nodes: int) -> None:
    for seed in range(FAST_SEEDS, FAST_SEEDS + SLOW_SEEDS):
        check_adjacent_failures_and_restarts(nodes, seed)


def check_adjacent_failures_and_restarts(nodes: int, seed: int) -> None:
    cluster, rng, old_leader, old_epoch = steady_cluster(nodes, seed)
    world = cluster.world
    chain = adjacent_chain(nodes, old_leader, rng)
    cluster.crash(old_leader)  # the leader dies: its followers start electing at once (reset hints)
    crash_ms = cluster.now_ms
    for node_id in chain:  # ... and its neighbours die while the election runs
        world.call_at(
            crash_ms + rng.randint(0, ELECTION_WINDOW_MS),
            f"crash {node_id}",
            lambda n=node_id: cluster.crash(n),
        )
    survivors = [i for i in world.nodes if i != old_leader and i not in chain]
    bouncer = rng.choice(survivors)  # a survivor restarts (systemd) in mid-election, maybe twice
    for _ in range(rng.randint(1, 2)):
        world.call_at(
            crash_ms + rng.randint(0, ELECTION_WINDOW_MS),
            f"restart {bouncer}",
            lambda: _bounce(cluster, bouncer),
        )
    bound_ms = liveness_bound_ms(world.nodes[1].settings)
    cluster.run_until_time(crash_ms + ELECTION_WINDOW_MS)
    leader, epoch = run_until_agreed(cluster, bound_ms, f"seed {seed}: after the failures")
    assert leader in survivors and epoch > old_epoch, f"seed {seed}"
    cluster.start(old_leader, *chain)  # they come back: they rejoin, nobody else takes over
    assert run_until_agreed(cluster, bound_ms, f"seed {seed}: after the restarts")[1] >= epoch, f"seed {seed}"


def _bounce(cluster: Cluster, node_id: int) -> None:
    cluster.crash(node_id)
    cluster.start(node_id)
