"""Failure detector tables: scripts of (operation, argument...) -> expected result, then final states."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from node.core.detector import FailureDetector, PeerState

PEERS = (2, 3, 5)
TIMEOUT_MS = 3000
ALIVE, SUSPECTED = PeerState.ALIVE, PeerState.SUSPECTED


@dataclass(frozen=True)
class Case:
    """`script` rows: ("heard", peer, now_ms, returns), ("hint", peer, returns), ("expire", now_ms, returns),
    ("deadline", returns), ("alive_count", returns). `states` and `hinted` are checked at the end."""

    name: str
    script: list[tuple[Any, ...]]
    states: dict[int, PeerState] = field(default_factory=dict)
    hinted: set[int] = field(default_factory=set)


CASES = [
    Case(
        "initially every peer is suspected and nothing expires",
        [("alive_count", 0), ("deadline", None), ("expire", 0, []), ("expire", 10**9, [])],
        {2: SUSPECTED, 3: SUSPECTED, 5: SUSPECTED},
    ),
    Case(
        "heard makes a peer alive, reported once",
        [("heard", 3, 100, True), ("heard", 3, 200, False), ("heard", 3, 200, False), ("alive_count", 1)],
        {2: SUSPECTED, 3: ALIVE, 5: SUSPECTED},
    ),
    Case(
        "silence of failure_timeout - 1 keeps the peer alive",
        [("heard", 2, 1000, True), ("expire", 1000 + TIMEOUT_MS - 1, [])],
        {2: ALIVE},
    ),
    Case(
        "silence of exactly failure_timeout suspects the peer, reported once",
        [
            ("heard", 2, 1000, True),
            ("expire", 1000 + TIMEOUT_MS, [2]),
            ("expire", 1000 + TIMEOUT_MS, []),
            ("expire", 1000 + TIMEOUT_MS + 1, []),
            ("alive_count", 0),
        ],
        {2: SUSPECTED},
    ),
    Case(
        "a late expire still suspects (timer fired late)",
        [("heard", 2, 1000, True), ("expire", 1000 + 10 * TIMEOUT_MS, [2])],
        {2: SUSPECTED},
    ),
    Case(
        "hearing again restarts the silence",
        [
            ("heard", 2, 1000, True),
            ("heard", 2, 2500, False),
            ("expire", 1000 + TIMEOUT_MS, []),
            ("deadline", 2500 + TIMEOUT_MS),
            ("expire", 2500 + TIMEOUT_MS - 1, []),
            ("expire", 2500 + TIMEOUT_MS, [2]),
        ],
        {2: SUSPECTED},
    ),
    Case(
        "a suspected peer heard again is alive again, reported again",
        [
            ("heard", 5, 0, True),
            ("expire", TIMEOUT_MS, [5]),
            ("heard", 5, TIMEOUT_MS + 10, True),
            ("expire", 2 * TIMEOUT_MS, []),
            ("expire", 2 * TIMEOUT_MS + 10, [5]),
        ],
        {5: SUSPECTED},
    ),
    Case(
        "expire reports every newly suspected peer in id order",
        [
            ("heard", 5, 0, True),
            ("heard", 2, 0, True),
            ("heard", 3, 0, True),
            ("alive_count", 3),
            ("expire", TIMEOUT_MS, [2, 3, 5]),
            ("alive_count", 0),
        ],
        {2: SUSPECTED, 3: SUSPECTED, 5: SUSPECTED},
    ),
    Case(
        "expire suspects only the peers whose silence is long enough",
        [
            ("heard", 2, 0, True),
            ("heard", 3, 500, True),
            ("heard", 5, 1000, True),
            ("expire", 500 + TIMEOUT_MS, [2, 3]),
            ("alive_count", 1),
        ],
        {2: SUSPECTED, 3: SUSPECTED, 5: ALIVE},
    ),
    Case(
        "next deadline is the earliest alive peer's last message + timeout",
        [
            ("heard", 3, 1000, True),
            ("heard", 2, 500, True),
            ("deadline", 500 + TIMEOUT_MS),
            ("expire", 500 + TIMEOUT_MS, [2]),
            ("deadline", 1000 + TIMEOUT_MS),
            ("expire", 1000 + TIMEOUT_MS, [3]),
            ("deadline", None),
        ],
        {2: SUSPECTED, 3: SUSPECTED},
    ),
    Case(
        "the unreachable hint is reported once and does not suspect an alive peer",
        [
            ("heard", 2, 1000, True),
            ("hint", 2, True),
            ("hint", 2, False),
            ("alive_count", 1),
            ("deadline", 1000 + TIMEOUT_MS),
            ("expire", 1000 + TIMEOUT_MS - 1, []),
            ("expire", 1000 + TIMEOUT_MS, [2]),
        ],
        {2: SUSPECTED},
        {2},
    ),
    Case(
        "the hint leaves an alive peer alive until the timeout",
        [("heard", 2, 1000, True), ("hint", 2, True), ("expire", 1500, [])],
        {2: ALIVE},
        {2},
    ),
    Case(
        "the hint does not make a suspected peer alive",
        [("hint", 3, True), ("alive_count", 0)],
        {3: SUSPECTED},
        {3},
    ),
    Case(
        "hearing from a peer clears its hint; a new hint is fresh again",
        [
            ("heard", 2, 0, True),
            ("hint", 2, True),
            ("heard", 2, 100, False),
            ("hint", 2, True),
            ("heard", 2, 200, False),
        ],
        {2: ALIVE},
        set(),
    ),
    Case(
        "hints are per peer",
        [("hint", 2, True), ("hint", 3, True), ("hint", 2, False), ("heard", 3, 0, True)],
        {2: SUSPECTED, 3: ALIVE},
        {2},
    ),
]


def _run(detector: FailureDetector, step: tuple[Any, ...]) -> Any:
    op, *args = step
    if op == "heard":
        return detector.heard(args[0], args[1])
    if op == "hint":
        return detector.hint_unreachable(args[0])
    if op == "expire":
        return detector.expire(args[0])
    if op == "deadline":
        return detector.next_deadline_ms()
    if op == "alive_count":
        return detector.alive_count()
    raise AssertionError(f"unknown op {op}")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_detector_table(case: Case) -> None:
    detector = FailureDetector(PEERS, failure_timeout_ms=TIMEOUT_MS)
    for i, step in enumerate(case.script):
        *call, expected = step
        assert _run(detector, tuple(call)) == expected, f"step {i}: {step}"
    for peer_id, state in case.states.items():
        assert detector.state(peer_id) is state, peer_id
        assert detector.is_alive(peer_id) == (state is ALIVE)
    for peer_id in PEERS:
        hinted = peer_id in case.hinted
        assert detector.is_hinted(peer_id) == hinted, peer_id
        assert detector.is_available(peer_id) == (detector.is_alive(peer_id) and not hinted)
    assert detector.alive_count() == sum(detector.is_alive(p) for p in PEERS)


def test_last_heard_ms_tracks_the_latest_message() -> None:
    detector = FailureDetector(PEERS, failure_timeout_ms=TIMEOUT_MS)
    assert [detector.last_heard_ms(p) for p in PEERS] == [None, None, None]
    detector.heard(3, 1234)
    detector.heard(3, 2345)
    detector.expire(2345 + TIMEOUT_MS)
    assert detector.last_heard_ms(3) == 2345  # kept while suspected, for /status
    assert detector.last_heard_ms(2) is None


def test_next_deadline_is_exactly_when_expire_starts_suspecting() -> None:
    detector = FailureDetector(PEERS, failure_timeout_ms=TIMEOUT_MS)
    for now_ms, peer_id in [(10, 2), (700, 3), (701, 5)]:
        detector.heard(peer_id, now_ms)
    while (deadline := detector.next_deadline_ms()) is not None:
        assert detector.expire(deadline - 1) == []
        assert len(detector.expire(deadline)) == 1


@pytest.mark.parametrize("peer_id", [1, 4, 99])
def test_unknown_peer_is_a_local_bug_not_silently_tracked(peer_id: int) -> None:
    detector = FailureDetector(PEERS, failure_timeout_ms=TIMEOUT_MS)
    with pytest.raises(KeyError):
        detector.heard(peer_id, 0)
    assert detector.alive_count() == 0
