"""The lease rules (node/algorithms/lease.py), as tables: no events, no node.

T = failure_timeout = 3000 ms; five members, quorum 3 (the leader and two followers).
"""

from __future__ import annotations

import pytest

from node.algorithms.lease import (
    LeaderLease,
    OwedLease,
    StartupBlackout,
    support_until_ms,
    unexpired,
    votes_again_in_ms,
)

T = 3000
QUORUM = 3


@pytest.mark.parametrize(
    ("echo_ms", "now_ms", "until_ms"),
    [
        (1000, 1500, 4000),  # support lasts T from the stamp, not from when the echo arrived
        (1500, 1500, 4500),
        (9000, 1500, 4500),  # a stamp from our future counts as now: never extends the lease
    ],
)
def test_support_until(echo_ms: int, now_ms: int, until_ms: int) -> None:
    assert support_until_ms(echo_ms, now_ms, T) == until_ms


def test_unexpired_drops_a_lease_at_its_end() -> None:
    assert unexpired({2: 4000, 3: 4001, 4: 3999}, 4000) == {3: 4001}


# ---------------------------------------------------------------------------------- the leader's lease


@pytest.mark.parametrize(
    ("echoes", "now_ms", "supporters", "deadline_ms"),
    [
        ([], 1000, 1, None),  # alone: no deadline to wait for, support is already short
        ([(2, 1000)], 1000, 2, None),  # one follower: still short of a majority
        ([(2, 1000), (3, 1200)], 1300, 3, 4000),  # the (quorum-1)-th longest lease: 2's
        ([(2, 1000), (3, 1200), (4, 1100)], 1300, 4, 4100),  # the second longest of three: 4's
        ([(2, 1000), (3, 1200)], 4000, 2, None),  # 2's support ended at 4000: below a majority
        ([(2, 1000), (2, 500)], 1300, 2, None),  # an older echo delivered late never shortens support
    ],
)
def test_leader_lease(
    echoes: list[tuple[int, int]], now_ms: int, supporters: int, deadline_ms: int | None
) -> None:
    lease = LeaderLease(T)
    for peer_id, echo_ms in echoes:
        lease.echoed(peer_id, echo_ms, now_ms)
    assert lease.supporters(now_ms) == supporters
    assert lease.deadline_ms(now_ms, QUORUM) == deadline_ms


def test_a_leader_lease_begins_with_its_confirmations_only() -> None:
    lease = LeaderLease(T)
    lease.echoed(4, 100, 100)  # from an earlier term
    lease.begin({2: 4000, 3: 4100})
    assert lease.until_ms == {2: 4000, 3: 4100}
    assert lease.supporters(3999) == 3
    assert lease.supporters(4000) == 2


def test_a_one_node_cluster_needs_no_follower() -> None:
    assert LeaderLease(T).deadline_ms(0, quorum_size=1) is None
    assert LeaderLease(T).supporters(0) == 1


# ---------------------------------------------------------------------------------- the voter's side

OWED_TO = 5  # the leader whose stamp was echoed at 1000: owed until 4000


@pytest.mark.parametrize(
    ("now_ms", "following", "exempt", "gone", "binds"),
    [
        (1000, None, (), set(), True),  # dropped the leader without suspecting it: still owed
        (3999, None, (), set(), True),
        (4000, None, (), set(), False),  # over at echo + T
        (2000, OWED_TO, (), set(), False),  # our own leader may ask (it moves to a higher epoch)
        (2000, 4, (), set(), True),  # following someone else does not free us
        (2000, None, (OWED_TO, None), set(), False),  # the candidate is the leader we back
        (2000, None, (3, OWED_TO), set(), False),  # the leader resigned
        (2000, None, (3, None), set(), True),  # another candidate
        (2000, None, (), {OWED_TO}, False),  # its connection is refused: its process is gone
        (2000, None, (), {3}, True),
    ],
)
def test_owed_lease(
    now_ms: int, following: int | None, exempt: tuple[int | None, ...], gone: set[int], binds: bool
) -> None:
    owed = OwedLease(T)
    owed.owe(OWED_TO, 1000)
    assert owed.binds(now_ms, following=following, exempt=exempt, is_gone=gone.__contains__) is binds


def test_nothing_owed_binds_nobody() -> None:
    assert not OwedLease(T).binds(0, following=None)


def test_a_later_echo_replaces_the_lease() -> None:
    owed = OwedLease(T)
    owed.owe(5, 1000)
    owed.owe(4, 2000)
    assert (owed.leader_id, owed.until_ms) == (4, 5000)
    assert owed.binds(4500, following=None)
    assert not owed.binds(4500, following=None, exempt=(4,))


def test_a_resignation_releases_only_the_lease_owed_to_its_sender() -> None:
    owed = OwedLease(T)
    owed.owe(5, 1000)
    owed.release(4)  # someone else resigned: we still owe 5
    assert owed.binds(2000, following=None)
    owed.release(5)
    assert not owed.binds(2000, following=None)


# ---------------------------------------------------------------------------------- start-up blackout


@pytest.mark.parametrize(("now_ms", "active"), [(1000, True), (3999, True), (4000, False)])
def test_blackout_lasts_t_from_the_start(now_ms: int, active: bool) -> None:
    blackout = StartupBlackout(T)
    assert not blackout.active(now_ms)  # not started
    blackout.start(1000)
    assert blackout.active(now_ms) is active


def test_a_lifted_blackout_is_over() -> None:
    blackout = StartupBlackout(T)
    blackout.start(1000)
    blackout.lift()
    assert not blackout.active(1500)
    assert blackout.ends_ms() is None


@pytest.mark.parametrize(
    ("accepted_ms", "owed"),
    [
        (2500, (5, 4000)),  # mid-blackout: the accepted leader is owed the rest of it
        (4000, (None, 0)),  # after it: nothing owed
    ],
)
def test_accepting_a_leader_ends_the_blackout(accepted_ms: int, owed: tuple[int | None, int]) -> None:
    blackout, lease = StartupBlackout(T), OwedLease(T)
    blackout.start(1000)
    blackout.end_on_accepting(5, accepted_ms, lease)
    assert not blackout.active(accepted_ms)
    assert blackout.started_ms is None
    assert (lease.leader_id, lease.until_ms) == owed


@pytest.mark.parametrize(
    ("started_ms", "owed_at_ms", "now_ms", "wait_ms"),
    [
        (None, None, 1000, -1000),  # neither: nothing to wait for
        (1000, None, 1500, 2500),  # the blackout's end
        (None, 1000, 1500, 2500),  # the owed lease's end
        (1000, 2000, 1500, 3500),  # the later of both
        (2000, 1000, 1500, 3500),
        (1000, 1000, 5000, -1000),  # both over
    ],
)
def test_votes_again_in(started_ms: int | None, owed_at_ms: int | None, now_ms: int, wait_ms: int) -> None:
    blackout, owed = StartupBlackout(T), OwedLease(T)
    if started_ms is not None:
        blackout.start(started_ms)
    if owed_at_ms is not None:
        owed.owe(5, owed_at_ms)
    assert votes_again_in_ms(now_ms, owed, blackout) == wait_ms
