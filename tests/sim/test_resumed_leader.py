"""A SIGSTOPped leader that is resumed around the moment it is replaced must step down without ever
acting under its old epoch (issue 3). The random sweep rarely lands in that window, so here every
pause length around failure_timeout is tried, with the nodes' heartbeat phases spread out."""

from __future__ import annotations

import functools
import importlib.util
import random

import pytest

from node.algorithms.bully import Bully
from node.algorithms.ring import Ring
from node.core.actions import Role
from node.history.model import HistoryEvent
from node.sim.invariants import InvariantViolatedError
from node.sim.runner import RunConfig, algorithm_factory, build_world
from node.sim.world import AlgorithmFactory

SEEDS = 10
PAUSES_MS = range(2_000, 3_501, 100)  # failure_timeout is 3 s, heartbeat 1 s


def pause_and_resume(algorithm: str, factory: AlgorithmFactory, seed: int, pause_ms: int) -> str | None:
    """The violated rule, or None."""
    world, _, _ = build_world(RunConfig(algorithm, 5, seed), factory)
    phases = random.Random(seed)
    for node_id in world.nodes:
        world.call_at(phases.randint(0, 999), "", functools.partial(world.start, node_id))
    try:
        world.run_until(10_000 + phases.randint(0, 999))
        leaders = [n for n, node in world.nodes.items() if node.role is Role.LEADER]
        assert len(leaders) == 1, f"seed {seed}: no settled leader: {leaders}"
        world.pause(leaders[0])
        world.run_until(world.now_ms + pause_ms)
        world.resume(leaders[0])
        world.run_until(world.now_ms + 5_000)
    except InvariantViolatedError as exc:
        return exc.violation.rule
    return None


def _algorithms() -> list[object]:
    return [
        pytest.param(
            name,
            marks=pytest.mark.skipif(
                importlib.util.find_spec(f"node.algorithms.{name}") is None, reason=f"no {name}.py yet"
            ),
        )
        for name in ("bully", "ring")
    ]


@pytest.mark.parametrize("algorithm", _algorithms())
def test_a_resumed_leader_never_claims_its_old_epoch(algorithm: str) -> None:
    factory = algorithm_factory(algorithm)
    failed = {
        (seed, pause_ms): rule
        for seed in range(SEEDS)
        for pause_ms in PAUSES_MS
        if (rule := pause_and_resume(algorithm, factory, seed, pause_ms)) is not None
    }
    assert failed == {}


class LeaseFromLastHeard(Bully):
    """The leader counts a follower's support from when it last heard it (no echoed stamp): that
    support can outlast the follower's own patience by up to a heartbeat interval."""

    def _lease_supporters(self) -> int:
        return self._reachable()

    def _lease_deadline_ms(self) -> int | None:
        return None


def test_the_check_catches_a_leader_without_a_proper_lease() -> None:
    for hook in ("_lease_supporters", "_lease_deadline_ms", "_reachable"):
        if not hasattr(Bully, hook):
            pytest.skip(f"Bully has no {hook}() any more: update this mutant")
    factory: AlgorithmFactory = LeaseFromLastHeard
    for seed in range(SEEDS):
        for pause_ms in PAUSES_MS:
            if pause_and_resume("bully", factory, seed, pause_ms) == "stale-claim":
                return
    pytest.fail("a leader without a proper lease survived every pause length")


def cut_off_at_victory(algorithm: str, seed: int, factory: AlgorithmFactory | None = None) -> str | None:
    """Partition the winner (with one peer) from the rest at the instant it logs became_leader, so
    that its COORDINATOR never reaches the others. The violated rule, or None."""
    world, _, _ = build_world(RunConfig(algorithm, 5, seed), factory or algorithm_factory(algorithm))
    rng = random.Random(seed)
    for node_id in world.nodes:
        world.call_at(rng.randint(0, 999), "", functools.partial(world.start, node_id))

    def strike(event: HistoryEvent) -> None:
        if event.event == "became_leader":
            world.on_log = None
            others = [n for n in world.nodes if n != event.node_id]
            buddy = rng.choice(others)
            world.network.partition([[event.node_id, buddy], [n for n in others if n != buddy]])

    world.on_log = strike
    try:
        world.run_until(20_000)
    except InvariantViolatedError as exc:
        return exc.violation.rule
    return None


VICTORY_SEEDS = 100


@pytest.mark.parametrize("algorithm", ["bully", "ring"])
def test_a_leader_cut_off_as_it_wins_never_overlaps_its_successor(algorithm: str) -> None:
    if importlib.util.find_spec(f"node.algorithms.{algorithm}") is None:
        pytest.skip(f"no {algorithm}.py yet")
    failed = {seed: rule for seed in range(VICTORY_SEEDS) if (rule := cut_off_at_victory(algorithm, seed))}
    assert failed == {}


class RingLeadsWithoutConfirmation(Ring):
    """The winner takes office on the promises alone, counting every peer it sees alive as backing it
    for failure_timeout (the initial lease before the confirmation round). A voter cut off before the
    COORDINATOR does not know it backs anyone and promises the next candidate."""

    def _seek_confirmation(self, epoch: int, initiator: int) -> None:
        timeout_ms = self.settings.failure_timeout_ms
        alive = [p for p in self.settings.peer_ids if self._detector.is_alive(p)]
        self._become_leader(epoch, {p: self._now_ms + timeout_ms for p in alive})


def test_the_check_catches_a_winner_that_leads_without_confirmation() -> None:
    if not hasattr(Ring, "_seek_confirmation"):
        pytest.skip("Ring has no _seek_confirmation() any more: update this mutant")
    rules = {cut_off_at_victory("ring", seed, RingLeadsWithoutConfirmation) for seed in range(VICTORY_SEEDS)}
    assert "stale-claim" in rules
