"""Failure detector tables: scripts of (operation, argument...) -> expected result, then final states."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

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


class _Reference:
    """The detector's rules computed from scratch at every call, as the first version did: the kept
    counters and cached deadline of `FailureDetector` must always agree with it."""

    def __init__(self, timeout_ms: int) -> None:
        self.timeout_ms = timeout_ms
        self.heard_ms: dict[int, int] = {}
        self.alive: set[int] = set()

    def heard(self, peer_id: int, now_ms: int) -> bool:
        self.heard_ms[peer_id] = now_ms
        fresh = peer_id not in self.alive
        self.alive.add(peer_id)
        return fresh

    def expire(self, now_ms: int) -> list[int]:
        gone = sorted(p for p in self.alive if now_ms - self.heard_ms[p] >= self.timeout_ms)
        self.alive -= set(gone)
        return gone

    def next_deadline_ms(self) -> int | None:
        return min((self.heard_ms[p] + self.timeout_ms for p in self.alive), default=None)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["heard", "expire", "deadline"]), st.sampled_from(PEERS), st.integers(0, 400)
        )
    )
)
def test_kept_counts_and_deadline_match_a_recomputation(script: list[tuple[str, int, int]]) -> None:
    detector = FailureDetector((5, 2, 3), failure_timeout_ms=TIMEOUT_MS)  # ids in any order
    reference = _Reference(TIMEOUT_MS)
    now_ms = 0
    for op, peer_id, advance_ms in script:
        now_ms += advance_ms * 10
        if op == "heard":
            assert detector.heard(peer_id, now_ms) == reference.heard(peer_id, now_ms)
        elif op == "expire":
            assert detector.expire(now_ms) == reference.expire(now_ms)  # in id order
        else:
            assert detector.next_deadline_ms() == reference.next_deadline_ms()
        assert detector.alive_count() == len(reference.alive)
    assert detector.peer_ids == frozenset(PEERS)
