"""Reading `journalctl -o json` output into history events."""

from __future__ import annotations

import json

import pytest

from node.history.model import HistoryEvent, HistoryParseError, ordered, parse_journal_json


def entry(**fields: object) -> str:
    base: dict[str, object] = {
        "__REALTIME_TIMESTAMP": "1700000000123456",
        "_HOSTNAME": "node1",
        "SYSLOG_IDENTIFIER": "leader-node",
        "PRIORITY": "5",
        "MESSAGE": "node 1 became leader of epoch 3",
    }
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not None})


def test_a_full_entry() -> None:
    line = entry(EVENT="became_leader", NODE_ID="1", EPOCH="3", LEADER_ID="1")
    [event] = parse_journal_json([line], "node1.json")
    assert event == HistoryEvent(
        time_ms=1700000000123,
        node_id=1,
        event="became_leader",
        epoch=3,
        leader_id=1,
        peer_id=None,
        message="node 1 became leader of epoch 3",
        source="node1.json",
    )


def test_other_programs_plain_lines_and_blank_lines_are_skipped() -> None:
    lines = [
        entry(SYSLOG_IDENTIFIER="systemd", EVENT="started", NODE_ID="1"),
        entry(MESSAGE="Traceback (most recent call last):"),  # no EVENT: not a state change
        "",
        entry(EVENT="peer_suspected", NODE_ID="2", PEER_ID="4", EPOCH="3"),
    ]
    events = parse_journal_json(lines, "x")
    assert [(e.event, e.node_id, e.peer_id) for e in events] == [("peer_suspected", 2, 4)]


def test_empty_or_none_leader_is_none() -> None:
    for value in ("", "None", "null"):
        [event] = parse_journal_json([entry(EVENT="stepped_down", NODE_ID="1", LEADER_ID=value)], "x")
        assert event.leader_id is None


def test_binary_and_repeated_fields() -> None:
    # journald writes non-printable values as byte arrays and repeated fields as lists of values
    line = entry(EVENT=list(b"leader_accepted"), NODE_ID=["2", "2"], EPOCH="7", LEADER_ID="5")
    [event] = parse_journal_json([line], "x")
    assert (event.event, event.node_id, event.leader_id) == ("leader_accepted", 2, 5)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "x:1: not JSON"),
        ("[1, 2]", "x:1: not a JSON object"),
        (entry(EVENT="started", NODE_ID="one"), "x:1: field NODE_ID='one' is not an integer"),
        (entry(EVENT="started"), "without NODE_ID"),
        (entry(EVENT="started", NODE_ID="1", __REALTIME_TIMESTAMP=None), "without NODE_ID or __REALTIME"),
    ],
)
def test_unreadable_lines_name_the_source_and_line(line: str, message: str) -> None:
    with pytest.raises(HistoryParseError, match=message.replace("(", r"\(")):
        parse_journal_json([line], "x")


def test_ordered_sorts_by_time_and_keeps_ties_in_input_order() -> None:
    a = HistoryEvent(5, 1, "a")
    b = HistoryEvent(3, 2, "b")
    c = HistoryEvent(5, 1, "c")
    assert ordered([a, b, c]) == [b, a, c]
