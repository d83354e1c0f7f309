"""Per-epoch timeline: who led, from when to when, who followed."""

from __future__ import annotations

from node.history.model import HistoryEvent as E
from node.history.timeline import build_timeline, format_timeline

HISTORY = [
    E(1_000, 3, "became_leader", epoch=1, leader_id=3),
    E(1_010, 1, "leader_accepted", epoch=1, leader_id=3),
    E(1_020, 2, "leader_accepted", epoch=1, leader_id=3),
    E(5_000, 3, "stepped_down", epoch=1),
    E(5_500, 2, "became_leader", epoch=2, leader_id=2),
    E(5_490, 1, "leader_accepted", epoch=2, leader_id=2),  # logged before the leader's line
    E(8_000, 2, "started", epoch=2),  # crashed and restarted: its term ended
    E(9_000, 1, "became_leader", epoch=3, leader_id=1),
]


def test_terms_with_their_ends_and_followers() -> None:
    terms = build_timeline(HISTORY)
    assert [(t.epoch, t.leader_id, t.start_ms, t.end_ms, t.end_reason) for t in terms] == [
        (1, 3, 1_000, 5_000, "stepped_down"),
        (2, 2, 5_500, 8_000, "started"),
        (3, 1, 9_000, None, ""),
    ]
    assert terms[0].followers == {1: 1_010, 2: 1_020}
    assert terms[1].followers == {1: 5_490}


def test_a_leader_seen_under_a_higher_epoch_has_ended_its_term() -> None:
    terms = build_timeline(
        [E(0, 1, "became_leader", epoch=1), E(50, 1, "leader_accepted", epoch=2, leader_id=2)]
    )
    assert (terms[0].end_ms, terms[0].end_reason) == (50, "leader_accepted")


def test_formatted_table() -> None:
    text = format_timeline(build_timeline(HISTORY))
    lines = text.splitlines()
    assert lines[0] == "times in ms from 1000"
    assert lines[1].split() == [
        "epoch",
        "1",
        "leader",
        "3",
        "0",
        "..",
        "4000",
        "(stepped_down)",
        "followers:",
        "1@10,",
        "2@20",
    ]
    assert "open" in lines[3]
    assert format_timeline([]) == "no node became leader in this history"


def test_a_reelection_ends_the_old_term_where_the_leader_left_it() -> None:
    terms = build_timeline(
        [
            E(0, 5, "became_leader", epoch=12, leader_id=5),
            E(2_000, 5, "reelection_started", epoch=12, leader_id=5),
            E(2_004, 5, "became_leader", epoch=19, leader_id=5),
        ]
    )
    assert [(t.epoch, t.start_ms, t.end_ms, t.end_reason) for t in terms] == [
        (12, 0, 2_000, "reelection_started"),
        (19, 2_004, None, ""),
    ]
