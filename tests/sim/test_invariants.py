"""Each invariant checker, fed hand-made bad observations: a checker that cannot fail is worthless."""

from __future__ import annotations

import pytest

from node.core.actions import Role
from node.core.messages import (
    ConfirmRefused,
    Coordinator,
    Heartbeat,
    PreVoteAnswer,
    Promise,
    Propose,
    TokenRefused,
)
from node.core.state import DurableState
from node.sim.invariants import (
    InvariantViolatedError,
    LivenessMonitor,
    NodeSnapshot,
    SafetyMonitor,
)


def monitor(cluster_size: int = 5) -> SafetyMonitor:
    return SafetyMonitor(cluster_size, failure_timeout_ms=3_000, fail_fast=False)


def rules(m: SafetyMonitor) -> list[str]:
    return [v.rule for v in m.violations]


def promise_all(m: SafetyMonitor, epoch: int, candidate: int, voters: list[int]) -> None:
    for voter in voters:
        m.on_persist(0, voter, DurableState(epoch - 1, None), DurableState(epoch, candidate))


# --- rule 1: one leader per epoch, backed by a majority of persisted promises --------------------


def test_two_leaders_of_one_epoch() -> None:
    m = monitor()
    promise_all(m, 3, 1, [1, 2, 3])
    m.on_leader(10, 1, 3)
    m.on_leader(11, 1, 3)  # the same node again (RoleChanged and its log line) is fine
    assert rules(m) == []
    m.on_leader(20, 4, 3)
    assert "one-leader-per-epoch" in rules(m)


def test_leader_without_a_majority_of_persisted_promises() -> None:
    m = monitor()
    promise_all(m, 3, 1, [1, 2])
    m.on_leader(10, 1, 3)
    assert rules(m) == ["leader-without-quorum"]
    ok = monitor()
    promise_all(ok, 3, 1, [1, 2, 5])
    ok.on_leader(10, 1, 3)
    assert rules(ok) == []


def test_ring_winner_leads_on_promises_collected_by_the_initiator() -> None:
    m = monitor()
    promise_all(m, 7, 2, [2, 3, 5])  # initiator 2 collected them; 5 won
    m.on_leader(10, 5, 7)
    assert rules(m) == []


def test_two_promises_for_one_epoch() -> None:
    m = monitor()
    m.on_persist(0, 3, DurableState(4, None), DurableState(5, 1))
    m.on_persist(1, 3, DurableState(5, 1), DurableState(5, 1))  # repeated: fine
    assert rules(m) == []
    m.on_persist(2, 3, DurableState(5, 1), DurableState(5, 2))
    assert rules(m) == ["double-promise"]


def test_promise_of_an_epoch_already_accepted() -> None:
    m = monitor()
    m.on_persist(0, 3, DurableState(5, None), DurableState(5, 2))
    assert rules(m) == ["double-promise"]


def test_fail_fast_raises_with_the_violation() -> None:
    m = SafetyMonitor(5, 3_000)
    with pytest.raises(InvariantViolatedError, match="leader-without-quorum"):
        m.on_leader(10, 1, 3)


# --- rule 2: epochs never decrease; persist before send -------------------------------------------


def test_durable_epoch_going_back() -> None:
    m = monitor()
    m.on_persist(0, 1, DurableState(5, None), DurableState(4, None))
    assert rules(m) == ["epochs-monotonic"]


def test_following_a_leader_below_the_epoch_on_disk() -> None:
    m = monitor()
    m.on_accept(0, 2, epoch=7, durable_epoch=7)  # the usual case: accepted, then persisted
    m.on_accept(0, 2, epoch=8, durable_epoch=7)  # logged in the step that persists 8
    assert rules(m) == []
    m.on_accept(0, 2, epoch=6, durable_epoch=7)
    assert rules(m) == ["accept-below-own-epoch"]


def test_view_epoch_going_back_across_a_restart() -> None:
    m = monitor()
    durable = DurableState(6, None)
    m.on_view(0, 1, role=Role.FOLLOWER, epoch=6, durable=durable, restarted=False)
    m.on_view(5, 1, role=Role.FOLLOWER, epoch=5, durable=durable, restarted=True)
    assert rules(m) == ["epochs-monotonic"]
    assert "across a restart" in m.violations[0].detail


def test_view_epoch_above_the_durable_one() -> None:
    m = monitor()
    m.on_view(0, 1, role=Role.FOLLOWER, epoch=6, durable=DurableState(5, None), restarted=False)
    assert rules(m) == ["persist-before-send"]


def test_leader_whose_epoch_is_not_durable() -> None:
    m = monitor()
    m.on_view(0, 1, role=Role.LEADER, epoch=4, durable=DurableState(5, None), restarted=False)
    assert rules(m) == ["persist-before-send"]


@pytest.mark.parametrize(
    ("message", "durable_epoch", "violates"),
    [
        (Heartbeat(1, 5, None), 5, False),
        (Heartbeat(1, 6, None), 5, True),
        (Coordinator(1, 6, 1, 1), 5, True),
        (Propose(1, 6, pre_vote=True), 5, False),  # a pre-vote binds nobody: not persisted
        (Propose(1, 6, pre_vote=False), 5, True),
        (Promise(1, 6, granted=True, known_epoch=6), 5, True),
        (Promise(1, 6, granted=False, known_epoch=5), 5, False),  # echo of a refusal
        (PreVoteAnswer(1, 6, granted=True, known_epoch=5), 5, False),
        (PreVoteAnswer(1, 6, granted=True, known_epoch=6), 5, True),
        (ConfirmRefused(1, 6, known_epoch=5), 5, False),
        (ConfirmRefused(1, 4, known_epoch=6), 5, True),
        (TokenRefused(1, 6, known_epoch=5), 5, False),
        (TokenRefused(1, 4, known_epoch=6), 5, True),
    ],
)
def test_persist_before_send(message: object, durable_epoch: int, violates: bool) -> None:
    m = monitor()
    m.on_send(0, 1, message, durable_epoch)  # type: ignore[arg-type]
    assert rules(m) == (["persist-before-send"] if violates else [])


def test_view_must_match_the_last_role_changed() -> None:
    m = monitor()
    m.on_published(0, 1, (Role.LEADER, 1, 3), (Role.LEADER, 1, 3))
    assert rules(m) == []
    m.on_published(0, 1, (Role.LEADER, 1, 3), (Role.CANDIDATE, None, 3))
    m.on_published(0, 1, (Role.FOLLOWER, None, 0), None)
    assert rules(m) == ["role-published", "role-published"]


# --- rule 3: no stale leaders ----------------------------------------------------------------------


def test_an_old_leader_claiming_after_a_newer_one_was_elected() -> None:
    m = monitor()
    promise_all(m, 4, 2, [2, 3, 4])
    m.on_claim(0, 1, Heartbeat(1, 3, 1))  # nobody newer yet: fine
    m.on_leader(10, 2, 4)
    m.on_claim(11, 2, Heartbeat(2, 4, 2))  # the new leader itself: fine
    assert rules(m) == []
    m.on_claim(12, 1, Coordinator(1, 3, 1, 1))
    assert rules(m) == ["stale-claim"]
    assert "after node 2 became leader of epoch 4" in m.violations[0].detail


def test_leader_hearing_a_majority_is_fine_up_to_exactly_the_failure_timeout() -> None:
    m = monitor(5)  # needs floor(5/2) = 2 peers
    heard = {2: 1_000, 3: 1_000, 4: 0}
    m.check_stale_leader(4_000, 1, 3, heard, since_ms=0)
    assert rules(m) == []
    m.check_stale_leader(4_001, 1, 3, heard, since_ms=0)
    assert rules(m) == ["stale-leader"]


def test_leader_that_heard_one_peer_of_four_recently_is_stale() -> None:
    m = monitor(5)
    m.check_stale_leader(10_000, 1, 3, {2: 9_900, 3: 2_000, 4: 1_000}, since_ms=0)
    assert rules(m) == ["stale-leader"]
    assert "fewer than 2 peers" in m.violations[0].detail


def test_leader_that_never_heard_enough_peers_counts_from_its_start() -> None:
    m = monitor(3)
    m.check_stale_leader(3_500, 1, 3, {}, since_ms=1_000)
    assert rules(m) == []
    m.check_stale_leader(4_001, 1, 3, {}, since_ms=1_000)
    assert rules(m) == ["stale-leader"]


# --- rule 4: liveness -------------------------------------------------------------------------------


def snaps(
    leader: int | None, epoch: int, ids: list[int], **overrides: NodeSnapshot
) -> dict[int, NodeSnapshot]:
    out = {}
    for node_id in ids:
        role = Role.LEADER if node_id == leader else Role.FOLLOWER
        out[node_id] = NodeSnapshot(role, leader, epoch)
    for key, snap in overrides.items():
        out[int(key.removeprefix("n"))] = snap
    return out


IDS = [1, 2, 3, 4, 5]


def liveness() -> LivenessMonitor:
    return LivenessMonitor(healed_ms=10_000, bound_ms=20_000, expected=frozenset(IDS))


def test_agreement_within_the_bound_that_lasts() -> None:
    m = liveness()
    m.observe(10_000, snaps(None, 3, IDS))
    m.observe(14_000, snaps(5, 4, IDS))
    assert m.finish(40_000, snaps(5, 4, IDS)) == []
    assert m.converged_ms == 14_000


def test_no_agreement_at_all() -> None:
    m = liveness()
    m.observe(10_000, snaps(None, 3, IDS))
    assert [v.rule for v in m.finish(40_000, snaps(None, 3, IDS))] == ["no-single-leader"]


def test_agreement_too_late() -> None:
    m = liveness()
    m.observe(31_000, snaps(5, 4, IDS))
    assert [v.rule for v in m.finish(40_000, snaps(5, 4, IDS))] == ["no-single-leader"]


def test_two_leaders_or_a_lagging_epoch_is_no_agreement() -> None:
    m = liveness()
    m.observe(11_000, snaps(5, 4, IDS, n4=NodeSnapshot(Role.LEADER, 4, 4)))
    m.observe(12_000, snaps(5, 4, IDS, n2=NodeSnapshot(Role.FOLLOWER, 5, 3)))
    assert m.converged_ms is None


def test_agreement_must_hold_once_the_bound_has_passed() -> None:
    m = liveness()
    m.observe(12_000, snaps(5, 4, IDS))
    m.observe(35_000, snaps(None, 4, IDS))
    m.observe(36_000, snaps(4, 5, IDS))
    assert [v.rule for v in m.finish(40_000, snaps(4, 5, IDS))] == ["leader-churn"]


def test_agreement_lost_before_the_bound_and_regained_in_time_is_fine() -> None:
    m = liveness()
    m.observe(10_000, snaps(5, 4, IDS))  # stale views that agree at the heal
    m.observe(12_000, snaps(None, 4, IDS))  # the old leader's silence is noticed
    m.observe(16_000, snaps(3, 5, IDS))
    assert m.finish(40_000, snaps(3, 5, IDS)) == []


def test_a_minority_left_out_is_not_expected_to_agree() -> None:
    m = LivenessMonitor(healed_ms=0, bound_ms=20_000, expected=frozenset({1, 2, 3}))
    m.observe(5_000, snaps(3, 4, [1, 2, 3]) | {4: NodeSnapshot(Role.NO_QUORUM, None, 2)})
    assert m.converged_ms == 5_000
