"""The catch-up rules of a node without its state (node/algorithms/catchup.py), as tables: no events."""

from __future__ import annotations

import pytest

from node.algorithms.catchup import PROBES_REMEMBERED, EpochCatchUp, is_catch_up_traffic
from node.core.messages import PreVoteAnswer, Promise, Propose

PEERS_OF_1 = frozenset({2, 3, 4, 5})  # five members, quorum 3: a blocking set is 3 others
SETTLE_MS = 3000


def catch_up(started_ms: int = 1000) -> EpochCatchUp:
    return EpochCatchUp(started_ms=started_ms, settle_ms=SETTLE_MS, peer_ids=PEERS_OF_1, quorum_size=3)


def answered(node: EpochCatchUp, at_ms: int, answers: dict[int, int]) -> EpochCatchUp:
    """Probe at `at_ms`; `answers` (peer -> its epoch) answer that probe."""
    stamp_ms = node.probe(at_ms)
    for peer_id, epoch in answers.items():
        node.record(peer_id, stamp_ms, epoch)
    return node


@pytest.mark.parametrize(
    ("probes", "now_ms", "floor"),
    [
        # every other member answered: the candidate of any forgotten promise is among them
        ([(1000, {2: 0, 3: 0, 4: 0, 5: 0})], 1001, 0),
        ([(1000, {2: 4, 3: 7, 4: 0, 5: 5})], 1001, 7),
        ([(1000, {2: 4, 3: 7}), (1200, {4: 1, 5: 9})], 1201, 9),
        # fewer than all, before the settle time: nothing is known yet
        ([(1000, {2: 4, 3: 7, 4: 0})], 3999, None),
        # three others after the settle time, but they answered an early probe: not enough
        ([(1000, {2: 4, 3: 7, 4: 0})], 4000, None),
        # three others answered a probe sent at the settle time: a blocking set
        ([(1000, {2: 4, 3: 7, 4: 0}), (4000, {2: 4, 3: 7, 4: 6})], 4001, 7),
        # only two late answers: still not a blocking set (the early one of 4 does not count as late)
        ([(1000, {4: 8}), (4000, {2: 4, 3: 7})], 4001, None),
        # the floor takes every answer heard, early ones too: only ever more conservative
        ([(1000, {5: 11}), (4000, {2: 4, 3: 7, 4: 6})], 4001, 11),
    ],
)
def test_floor(probes: list[tuple[int, dict[int, int]]], now_ms: int, floor: int | None) -> None:
    node = catch_up()
    for at_ms, answers in probes:
        answered(node, at_ms, answers)
    assert node.floor(now_ms) == floor


def test_only_an_echo_of_our_own_stamp_counts() -> None:
    node = catch_up()
    stamp_ms = node.probe(1000)
    node.record(2, stamp_ms + 1, 50)  # a stamp we never sent (an earlier incarnation's, or made up)
    node.record(9, stamp_ms, 50)  # not a member
    assert node.answers == {}
    node.record(2, stamp_ms, 3)
    assert node.answers == {2: (1000, 3)}


def test_a_newer_answer_replaces_an_older_one_but_not_the_reverse() -> None:
    node = catch_up()
    early, late = node.probe(1000), node.probe(4000)
    node.record(2, late, 6)
    node.record(2, early, 2)  # delivered late: older news
    assert node.answers == {2: (4000, 6)}


def test_negative_clocks_go_on_the_wire_as_0_and_keep_their_send_time() -> None:
    node = catch_up(started_ms=-3000)
    assert node.probe(-3000) == 0
    node.record(2, 0, 1)
    assert node.answers == {2: (-3000, 1)}


def test_stamps_remembered_are_bounded() -> None:
    node = catch_up()
    for at_ms in range(1000, 1000 + 2 * PROBES_REMEMBERED):
        node.probe(at_ms)
    assert len(node.probes) == PROBES_REMEMBERED
    node.record(2, 1000, 5)  # the oldest stamp was forgotten: its answer no longer counts
    assert node.answers == {}


@pytest.mark.parametrize(
    ("answers", "now_ms", "wanted"),
    [
        ({}, 1000, [2, 3, 4, 5]),
        ({2: 1000, 3: 1000}, 1500, [4, 5]),
        ({2: 1000, 3: 4000}, 4000, [2, 4, 5]),  # after the settle time, early answers are asked again
    ],
)
def test_wanted(answers: dict[int, int], now_ms: int, wanted: list[int]) -> None:
    node = catch_up()
    for peer_id, at_ms in answers.items():
        node.record(peer_id, node.probe(at_ms), 0)
    assert node.wanted(now_ms) == wanted


@pytest.mark.parametrize(
    ("members", "blocking"),
    [(frozenset({2}), 1), (frozenset({2, 3}), 2), (PEERS_OF_1, 3), (frozenset(range(2, 8)), 4)],
)
def test_blocking_set_is_n_minus_quorum_plus_1(members: frozenset[int], blocking: int) -> None:
    quorum = (len(members) + 1) // 2 + 1
    assert EpochCatchUp(0, SETTLE_MS, members, quorum).blocking_set_size == blocking


def test_nothing_was_ever_elected_only_when_every_member_said_0() -> None:
    node = answered(catch_up(), 1000, {2: 0, 3: 0, 4: 0, 5: 0})
    assert node.learned_nothing_was_ever_elected(0)
    partial = answered(catch_up(), 4000, {2: 0, 3: 0, 4: 0})
    assert partial.floor(4001) == 0
    assert not partial.learned_nothing_was_ever_elected(0)  # 5 may have led: wait out the blackout


def test_catch_up_traffic_is_a_pre_vote_for_epoch_0_and_its_answer() -> None:
    assert is_catch_up_traffic(Propose(1, 0, pre_vote=True, sent_ms=5))
    assert is_catch_up_traffic(PreVoteAnswer(2, 0, granted=False, known_epoch=3, echo_ms=5))
    assert not is_catch_up_traffic(Propose(1, 1, pre_vote=True))
    assert not is_catch_up_traffic(Promise(2, 4, granted=True, known_epoch=4))
