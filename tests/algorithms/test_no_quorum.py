"""A node where no majority is reachable does not declare itself leader and says so: one `no_quorum`
warning when it would elect, then at most one per election_timeout while it lasts (docs/operations.md)."""

from __future__ import annotations

from typing import Any

from node.core.actions import Log, LogLevel, Role
from node.core.events import TimerId

from .harness import Driven, hb
from .states import ALGORITHM, leader

HEARTBEAT_MS, ELECTION_MS = 1000, 5000  # the defaults; listen window 2000, failure timeout 3000


def no_quorum_warnings(node: Driven) -> list[Log]:
    return [a for a in node.history if isinstance(a, Log) and a.event == "no_quorum"]


def run(node: Driven, until_ms: int, heard: tuple[int, ...], leader: int | None = None) -> list[int]:
    """Heartbeat timers every interval up to `until_ms`, `heard` sending theirs just before each (`leader`
    claiming to lead), and a LISTEN timer fired when due. When each new no_quorum warning was logged."""
    at_ms, warned_at = node.now_ms, []
    while at_ms + HEARTBEAT_MS <= until_ms:
        at_ms += HEARTBEAT_MS
        before = len(no_quorum_warnings(node))
        for peer_id in heard:
            node.receive(hb(peer_id, node.durable.epoch, leader), at_ms)
        node.fire(TimerId.HEARTBEAT, at_ms)
        if node.armed.get(TimerId.LISTEN, until_ms + 1) <= at_ms:
            node.fire(TimerId.LISTEN, at_ms)
        warned_at += [at_ms] * (len(no_quorum_warnings(node)) - before)
    return warned_at


def cut_off(members: tuple[int, ...] = (1, 2, 3, 4, 5), heard: tuple[int, ...] = (2,), **kw: Any) -> Driven:
    """Node 1 restarted with an epoch on disk, hearing only `heard`."""
    node = Driven(ALGORITHM, 1, members=members, epoch=3, **kw)
    node.start(0)
    for peer_id in heard:
        node.receive(hb(peer_id, 3, None), 0)
    return node


def test_a_node_that_starts_without_a_majority_warns_once_when_it_would_elect() -> None:
    node = cut_off()
    assert no_quorum_warnings(node) == []  # still listening: nothing to say yet
    node.fire(TimerId.LISTEN, 2000)
    [warning] = no_quorum_warnings(node)
    assert warning.level is LogLevel.WARNING
    assert "hears only 2 of 5 nodes (quorum 3)" in warning.message
    assert node.role is Role.NO_QUORUM and node.durable.epoch == 3  # no candidacy, no epoch spent


def test_the_warning_repeats_once_per_election_timeout_while_it_lasts() -> None:
    node = cut_off()
    node.fire(TimerId.LISTEN, 2000)
    assert run(node, 13_000, heard=(2,)) == [7000, 12_000]
    assert len(no_quorum_warnings(node)) == 3


def test_a_majority_heard_again_ends_the_spell() -> None:
    node = cut_off()
    node.fire(TimerId.LISTEN, 2000)
    run(node, 4000, heard=(2, 3))  # 3 of 5: a majority
    assert node.role is not Role.NO_QUORUM
    assert len(no_quorum_warnings(node)) == 1
    run(node, 20_000, heard=(2, 3))
    assert len(no_quorum_warnings(node)) == 1  # no warning while a majority is heard


def test_a_lost_majority_counts_quorum_lost_as_the_first_warning() -> None:
    node = cut_off(heard=(2, 3, 4))
    run(node, 3000, heard=(2, 3, 4), leader=4)
    assert node.leader_id == 4
    warned_at = run(node, 20_000, heard=(4,), leader=4)  # 2 and 3 fall silent: suspected at 6000
    events = [a.event for a in node.history if isinstance(a, Log) and a.level is LogLevel.WARNING]
    assert events[:3] == ["peer_suspected", "peer_suspected", "quorum_lost"]
    assert warned_at == [11_000, 16_000]  # the quorum_lost at 6000 was the first of the spell


def test_a_leader_lost_with_the_majority_warns_at_once() -> None:
    node = cut_off(heard=(2, 3, 4))
    run(node, 3000, heard=(2, 3, 4), leader=4)
    warned_at = run(node, 12_000, heard=(2,), leader=4)  # 3 and 4 fall silent: suspected at 6000
    events = [a.event for a in node.history if isinstance(a, Log) and a.level is LogLevel.WARNING]
    assert events == ["peer_suspected", "peer_suspected", "leader_lost", "no_quorum", "no_quorum"]
    assert warned_at == [6000, 11_000]


def test_a_one_node_cluster_never_warns() -> None:
    node = Driven(ALGORITHM, 1, members=(1,), epoch=3)
    node.start(0)
    node.fire(TimerId.LISTEN, 3000)
    assert node.role is Role.LEADER
    assert no_quorum_warnings(node) == []


def test_a_leader_whose_lease_ran_out_never_reports_leading_even_before_its_next_step() -> None:
    """A paused leader resumed after failure_timeout may answer HTTP (/leader) before its overdue lease
    timer runs (found by `make soak`): the view at that moment must not say leader."""
    node = leader()
    backed = node.algorithm.view(node.now_ms)
    assert backed.role is Role.LEADER and backed.leader_id == node.node_id
    later_ms = node.now_ms + node.settings.failure_timeout_ms + 1  # no echo since: the lease ran out
    stale = node.algorithm.view(later_ms)
    assert stale.role is not Role.LEADER
    assert stale.leader_id is None
    assert stale.epoch == backed.epoch
