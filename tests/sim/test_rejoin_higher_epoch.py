"""Issue 11, replayed in the simulator: nodes that rejoin a healthy cluster carrying a higher epoch than
its leader's must not leave it leaderless.

The sequence of the failed Molecule run (`concurrent`, Ring): all five stopped while the leader hands
off, so its successor persists a candidacy it never wins; three nodes start together and elect a leader
under a lower epoch; then the last two start, the successor with the higher epoch on disk. The leader
hears of that epoch in a heartbeat. It must keep office: it moves its followers to an epoch above it in
one round trip (its re-election), with no election anywhere and the same node leading throughout.
"""

from __future__ import annotations

import functools
import random

import pytest

from node.core.actions import Role
from node.core.state import DurableState
from node.sim.network import NetworkProfile
from node.sim.runner import RunConfig, build_world
from node.sim.world import World

SEEDS = 20
SETTLED_MS = 10_000  # five nodes started within a second have agreed on a leader by then
DEADLINE_MS = 20_000  # to agree again after a (re)start: listen window, blackout, a few elections
ROUND_TRIP_MS = 2 * NetworkProfile().delay_ms_max  # the slowest healthy link, there and back


def leaders(world: World) -> list[int]:
    return [n for n, node in world.nodes.items() if node.alive and node.role is Role.LEADER]


def agreement(world: World, ids: list[int]) -> tuple[int, int] | None:
    """(leader, epoch) when exactly one node leads and every node in `ids` follows it under its epoch."""
    found = leaders(world)
    if len(found) != 1:
        return None
    leader = world.nodes[found[0]]
    if all(world.nodes[n].leader_id == found[0] and world.nodes[n].epoch == leader.epoch for n in ids):
        return found[0], leader.epoch
    return None


def run_until_agreed(world: World, ids: list[int], deadline_ms: int) -> tuple[int, int]:
    while (agreed := agreement(world, ids)) is None:
        assert world.now_ms < deadline_ms, f"no agreement of {ids} by {deadline_ms} ms: {world.snapshots()}"
        world.run_until(world.now_ms + 10)
    return agreed


class GapMeter:
    """The longest stretch of virtual time in which no live node was leader, from `start` on."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.since_ms: int | None = None
        self.longest_ms = 0
        self.leader_epochs: list[tuple[int, int]] = []  # (leader, epoch) each time one took office
        world.on_step = self.observe

    def observe(self) -> None:
        now_ms = self.world.now_ms
        current = leaders(self.world)
        if not current and self.since_ms is None:
            self.since_ms = now_ms
        elif current:
            if self.since_ms is not None:
                self.longest_ms = max(self.longest_ms, now_ms - self.since_ms)
                self.since_ms = None
            for node_id in current:
                entry = (node_id, self.world.nodes[node_id].epoch)
                if entry not in self.leader_epochs:
                    self.leader_epochs.append(entry)


def stop_all_during_handoff(world: World, leader: int) -> int:
    """`systemctl stop` the leader; the moment a node persists an epoch above the leader's (the
    hand-off successor's candidacy), stop everyone else. Returns that successor."""
    epoch = world.nodes[leader].disk.epoch
    world.stop(leader)
    deadline_ms = world.now_ms + 1_000
    while not (ahead := [n for n, node in world.nodes.items() if node.disk.epoch > epoch]):
        assert world.now_ms < deadline_ms, "no successor ran after the RESIGN"
        world.run_until(world.now_ms + 1)
    for node_id in world.nodes:
        world.stop(node_id)
    world.run_until(world.now_ms + 1_000)  # every process has exited
    assert not any(node.alive for node in world.nodes.values())
    return ahead[0]


def rejoin_with_higher_epoch(algorithm: str, seed: int) -> None:
    world, _, _ = build_world(RunConfig(algorithm, 5, seed))
    rng = random.Random(seed)
    for node_id in world.nodes:
        world.call_at(rng.randint(0, 999), "", functools.partial(world.start, node_id))
    world.run_until(SETTLED_MS)
    everyone = list(world.nodes)
    first, _ = run_until_agreed(world, everyone, SETTLED_MS + DEADLINE_MS)

    successor = stop_all_during_handoff(world, first)
    late = sorted({successor, rng.choice([n for n in everyone if n not in (successor, first)])})
    trio = [n for n in everyone if n not in late]
    for node_id in trio:
        world.start(node_id)
    leader, epoch = run_until_agreed(world, trio, world.now_ms + DEADLINE_MS)

    if max(world.nodes[n].disk.epoch for n in late) <= epoch:
        # Bully's successor proposed the trio's epoch itself (known + 1): same sequence, but its
        # candidacy was for a higher epoch (it had heard of one), as Ring's ballots always are.
        world.persist_unannounced(successor, DurableState(epoch + 2, successor))
    carried = {n: world.nodes[n].disk.epoch for n in late}
    assert max(carried.values()) > epoch

    elections_before = world.elections
    meter = GapMeter(world)
    for node_id in late:
        world.start(node_id)
    final = run_until_agreed(world, everyone, world.now_ms + DEADLINE_MS)
    world.run_until(world.now_ms + 10_000)  # and it lasts
    assert agreement(world, everyone) == final

    story = f"{algorithm} seed {seed}: trio led by {leader} at epoch {epoch}, {late} rejoined with {carried}"
    assert final[0] == leader, f"{story}: leadership moved to {final}"
    assert final[1] > max(carried.values()), story  # the rejoiners follow: the epoch moved above theirs
    assert [n for n, _ in meter.leader_epochs] == [leader] * len(meter.leader_epochs), story
    assert len(meter.leader_epochs) <= 2, f"{story}: epoch churn {meter.leader_epochs}"  # one re-election
    assert meter.longest_ms <= ROUND_TRIP_MS, f"{story}: leaderless for {meter.longest_ms} ms"
    assert world.elections == elections_before, f"{story}: {world.elections - elections_before} elections"


@pytest.mark.parametrize("algorithm", ["bully", "ring"])
@pytest.mark.parametrize("seed", range(SEEDS))
def test_rejoining_nodes_with_a_higher_epoch_leave_no_leaderless_gap(algorithm: str, seed: int) -> None:
    rejoin_with_higher_epoch(algorithm, seed)
