"""Eligibility, the before_lead gate, switchover and declining (node/algorithms/handoff.py), for both
algorithms, in virtual time on the simulator's World (harness.Cluster: its invariants, including "no node
takes office while barred", are checked after every step). Members 1..5, default timers (heartbeat 1 s,
failure 3 s, election 5 s), every link 1 ms.
"""

from __future__ import annotations

import pytest

from node.algorithms import ALGORITHMS
from node.algorithms.base import ElectionNode
from node.core.actions import Role, RunGate
from node.core.events import GateFinished, TimerId
from node.core.messages import Confirm, Ok, Resign
from node.core.state import DurableState

from .harness import (
    Cluster,
    Driven,
    confirmed,
    coordinator,
    election,
    events_in,
    hb,
    messages_in,
    promise,
)

FAILURE_MS = 3_000
ELECTION_MS = 5_000
HANDOFF_MS = 30  # RESIGN, one round of (stamped) promises or a ring round, COORDINATOR: 1 ms links


def next_leader(cluster: Cluster, old: tuple[int, int], within_ms: int = 30_000) -> tuple[int, int]:
    """Run until the cluster agrees on a leader other than `old` (leader, epoch)."""

    def moved(c: Cluster) -> bool:
        agreed = c.agreed_leader()
        return agreed is not None and agreed != old

    assert cluster.run_until(moved, cluster.now_ms + within_ms), cluster.dump()
    agreed = cluster.agreed_leader()
    assert agreed is not None
    return agreed


def settled(algorithm: str, **overrides: object) -> tuple[Cluster, int, int]:
    cluster = Cluster(algorithm, **overrides)
    cluster.start()
    leader, epoch = cluster.run_until_agreed()
    cluster.run_for(2_000)
    return cluster, leader, epoch


# ------------------------------------------------------------------ the before_lead gate


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_gated_winner_takes_office_only_after_its_gate_passed(algorithm: str) -> None:
    cluster = Cluster(algorithm, gated=True)
    cluster.start()

    def gating(c: Cluster) -> bool:
        node = c.world.nodes[5].algorithm
        return isinstance(node, ElectionNode) and node._gating is not None

    assert cluster.run_until(gating, 30_000)
    # Won (a majority promised), its gate runs: nobody leads, and it reports itself a candidate.
    assert cluster.leaders() == [] and cluster.view(5).role is Role.CANDIDATE
    leader, epoch = cluster.run_until_agreed()
    assert leader == 5 and epoch in cluster.world.nodes[5].gates_passed


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_winner_whose_gate_fails_declines_and_another_node_leads_without_waiting_for_timeouts(
    algorithm: str,
) -> None:
    cluster = Cluster(algorithm, gated=True)
    cluster.world.gate_failing.add(5)
    cluster.start()
    leader, _ = cluster.run_until_agreed()
    assert leader == 4, cluster.dump()
    declined = cluster.events("lead_declined", node_id=5)
    assert declined, cluster.dump()
    # Handed on: the next leader within a few round trips and a gate run, not an election timeout.
    took_ms = cluster.events("became_leader", node_id=4)[0].time_ms - declined[0].time_ms
    assert took_ms < FAILURE_MS, took_ms
    assert not cluster.events("became_leader", node_id=5)
    view = cluster.view(5)
    assert not view.eligible and "held off" in (view.ineligible_reason or "")
    assert cluster.view(4).peers[5].eligible is False


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_declined_node_runs_again_after_its_hold_off_without_disturbing_the_leader(algorithm: str) -> None:
    cluster = Cluster(algorithm, gated=True)
    cluster.world.gate_failing.add(5)
    cluster.start()
    leader, epoch = cluster.run_until_agreed()
    cluster.world.gate_failing.discard(5)
    cluster.run_for(3 * ELECTION_MS)
    assert cluster.agreed_leader() == (leader, epoch)  # no churn when 5 may run again
    assert cluster.view(5).eligible
    assert cluster.view(4).peers[5].eligible


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_gate_that_never_answers_is_given_up_after_its_timeout(algorithm: str) -> None:
    cluster = Cluster(algorithm, gated=True, gate_timeout_ms=2_000)
    cluster.world.gate_slow.add(5)  # 1-3 s: past 2 s the host reports it killed
    cluster.start()
    leader, _ = cluster.run_until_agreed(within_ms=60_000)
    assert leader in (4, 5), cluster.dump()
    for event in cluster.events("lead_declined", node_id=5):
        assert "before_lead gate failed" in event.message


# ------------------------------------------------------------------ eligibility


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_leader_that_becomes_ineligible_hands_off_at_once(algorithm: str) -> None:
    cluster, leader, epoch = settled(algorithm)
    at_ms = cluster.now_ms
    cluster.world.set_eligible(leader, "health check failed: exit status 1")
    new_leader, new_epoch = next_leader(cluster, (leader, epoch))
    assert new_leader != leader and new_epoch > epoch
    assert cluster.events("resigned", node_id=leader)
    assert cluster.now_ms - at_ms <= HANDOFF_MS  # a hand-off, not a lease or failure timeout
    view = cluster.view(leader)
    assert view.role is Role.FOLLOWER and view.leader_id == new_leader
    assert view.ineligible_reason == "health check failed: exit status 1"
    assert cluster.view(new_leader).peers[leader].eligible is False


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_an_ineligible_node_votes_but_never_runs(algorithm: str) -> None:
    cluster = Cluster(algorithm)
    cluster.world.set_eligible(5, "maintenance")
    cluster.start()
    assert cluster.run_until_agreed()[0] == 4
    cluster.crash(4)
    leader, _ = cluster.run_until_agreed(among=[1, 2, 3, 5])
    assert leader == 3
    assert not cluster.events("election_started", node_id=5)


def test_bully_does_not_wait_for_an_ineligible_higher_id() -> None:
    cluster = Cluster("bully")
    cluster.world.set_eligible(5, "maintenance")
    cluster.start()
    cluster.run_until_agreed()
    started_ms = cluster.events("election_started")[0].time_ms
    elected_ms = cluster.events("became_leader", node_id=4)[0].time_ms
    assert elected_ms - started_ms < ELECTION_MS  # node 4 did not wait election_timeout for 5's OK


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_no_eligible_node_means_no_leader_and_eligibility_restored_elects_one(algorithm: str) -> None:
    cluster = Cluster(algorithm, members=(1, 2, 3))
    for node_id in (1, 2, 3):
        cluster.world.set_eligible(node_id, "maintenance")
    cluster.start()
    cluster.run_for(4 * ELECTION_MS)
    assert cluster.leaders() == []
    cluster.world.set_eligible(2, None)
    assert cluster.run_until_agreed(within_ms=3 * ELECTION_MS)[0] == 2


# ------------------------------------------------------------------ switchover


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("target", [1, 3, None])
def test_a_switchover_hands_leadership_to_the_named_or_best_node(algorithm: str, target: int | None) -> None:
    cluster, leader, epoch = settled(algorithm)
    assert cluster.world.switchover(leader, target)
    at_ms = cluster.now_ms
    new_leader, new_epoch = next_leader(cluster, (leader, epoch))
    assert new_leader == (4 if target is None else target) and new_epoch > epoch
    # A hand-off: a few 1 ms hops (Ring: round the ring), not a lease or failure timeout.
    assert cluster.now_ms - at_ms <= HANDOFF_MS, cluster.now_ms - at_ms
    cluster.run_for(3 * ELECTION_MS)  # the old leader is back to eligible: no churn
    assert cluster.agreed_leader() == (new_leader, new_epoch)
    assert cluster.view(leader).eligible


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_switchover_that_cannot_succeed_is_refused_and_changes_nothing(algorithm: str) -> None:
    cluster, leader, epoch = settled(algorithm)
    node = cluster.world.nodes[leader].algorithm
    follower = cluster.world.nodes[1].algorithm
    assert node is not None and follower is not None
    assert "is not the leader" in (follower.switchover_refusal(2) or "")
    assert "not a member" in (node.switchover_refusal(9) or "")
    assert "already leads" in (node.switchover_refusal(leader) or "")
    cluster.crash(2)
    cluster.run_for(FAILURE_MS + 1_000)
    assert "not reachable" in (node.switchover_refusal(2) or "")
    cluster.world.set_eligible(3, "maintenance")
    cluster.run_for(2_000)
    assert "not eligible" in (node.switchover_refusal(3) or "")
    assert not cluster.world.switchover(leader, 3)
    cluster.run_for(2_000)
    assert cluster.agreed_leader(among=[1, 3, 4, 5]) == (leader, epoch)


# ------------------------------------------------------------------ Ring: a relayed COORDINATOR first


def test_ring_keeps_a_leader_accepted_through_a_relay_when_its_older_heartbeat_arrives_late() -> None:
    """The winner's own heartbeat sent before it took office (no claim, same epoch) reaches a follower
    after the COORDINATOR that went round the ring: not a sign that the leader stopped leading."""
    node = Driven("ring", 3, epoch=5, voted_for=1)
    node.start(0, new_cluster=False)
    node.hear(1, 2, 4, 5, at_ms=100)
    node.receive(coordinator(5, 5, sender=2, initiator=1), at_ms=500)
    assert node.leader_id == 5
    lost = node.receive(hb(5, 5, None), at_ms=501)  # sent before 5 took office
    assert node.leader_id == 5 and "leader_lost" not in str(lost)
    node.receive(hb(5, 5, 5, sent_ms=600), at_ms=601)  # its own claim: from now on it speaks for itself
    node.receive(hb(5, 5, None), at_ms=700)
    assert node.leader_id is None  # a non-claim after a claim: it stopped leading


def test_ring_believes_a_later_non_claim_after_failure_timeout() -> None:
    node = Driven("ring", 3, epoch=5, voted_for=1)
    node.start(0, new_cluster=False)
    node.hear(1, 2, 4, 5, at_ms=100)
    node.receive(coordinator(5, 5, sender=2, initiator=1), at_ms=500)
    for at_ms in range(1_000, 500 + FAILURE_MS, 1_000):
        node.hear(1, 2, 4, at_ms=at_ms, leader_id=5)
        node.receive(hb(5, 5, None), at_ms=at_ms)
        assert node.leader_id == 5
    node.hear(1, 2, 4, at_ms=500 + FAILURE_MS, leader_id=5)
    node.receive(hb(5, 5, None), at_ms=500 + FAILURE_MS)
    assert node.leader_id is None


# ------------------------------------------------------------------ driven by hand


def gating_bully(**overrides: object) -> Driven:
    """Bully node 5 (gated) that won epoch 4 with the promises of 1 and 2: its gate runs."""
    node = Driven("bully", 5, epoch=3, gated=True, **overrides)
    node.start(-3_000)
    node.now_ms = 100
    node.hear(1, 2, 3, 4)
    node.fire(TimerId.LISTEN, at_ms=100 + node.settings.listen_ms)
    for pre_vote in (True, False):
        for voter in (1, 2):
            node.receive(promise(voter, 4, pre_vote=pre_vote, granted=True, known_epoch=3))
    assert any(isinstance(a, RunGate) and a.epoch == 4 for a in node.history), node.history
    assert node.role is Role.CANDIDATE
    return node


def test_a_gate_that_passes_leads_to_confirmation_and_office() -> None:
    node = gating_bully()
    actions = node.step(GateFinished(node.now_ms + 50, 4, passed=True))
    assert [m for _, m in messages_in(actions) if isinstance(m, Confirm)], actions
    for voter in (1, 2):
        node.receive(confirmed(voter, 4, echo_ms=node.now_ms))
    assert node.role is Role.LEADER


def test_a_failed_gate_hands_the_epoch_on_and_holds_off() -> None:
    node = gating_bully()
    actions = node.step(GateFinished(node.now_ms + 50, 4, passed=False, detail="exit status 1"))
    assert (None, Resign(5, 4, staying=True)) in messages_in(actions)
    assert "lead_declined" in events_in(actions)
    assert not node.view().eligible
    # Until its hold-off is over it runs for nobody, even when asked by a lower id.
    assert not [m for _, m in messages_in(node.receive(election(3, 4))) if isinstance(m, Ok)]
    node.fire(TimerId.HOLD_OFF, at_ms=node.now_ms + node.settings.election_timeout_ms)
    assert node.view().eligible


def test_a_gate_result_after_the_promise_moved_on_starts_over_instead_of_crashing() -> None:
    node = gating_bully(preempt=True)
    node.receive(coordinator(3, 9))  # a lower id leads a higher epoch: preempt, persist it, run again
    assert node.durable == DurableState(9, None)
    actions = node.step(GateFinished(node.now_ms + 50, 4, passed=True))
    assert "election_started" in events_in(actions)
    assert node.role is not Role.LEADER
