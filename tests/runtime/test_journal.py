"""Journal entries: the native datagram format, the stderr line, sink selection, rate limiting."""

from __future__ import annotations

import io
import re
import socket
import struct
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from node.core.actions import EventName, LogLevel
from node.history.model import parse_journal_entry
from node.runtime.journal import MESSAGE_IDS, Journal, RateLimiter, encode_native, format_line

from .cluster import parse_event_line


def decode_native(data: bytes) -> dict[str, str]:
    """The journald side of the native protocol, written from its spec to check our encoder."""
    fields: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        newline = data.index(b"\n", pos)
        line = data[pos:newline]
        if b"=" in line:
            key, _, value = line.partition(b"=")
            pos = newline + 1
        else:
            key = line
            (length,) = struct.unpack_from("<Q", data, newline + 1)
            start = newline + 1 + 8
            value = data[start : start + length]
            assert data[start + length : start + length + 1] == b"\n"
            pos = start + length + 1
        fields[key.decode()] = value.decode()
    return fields


def test_native_encoding_is_binary_safe_for_newlines() -> None:
    fields = {"MESSAGE": "line one\nline two", "EVENT": "x", "EMPTY": ""}
    data = encode_native(fields)
    assert data.startswith(b"MESSAGE\n" + struct.pack("<Q", 17) + b"line one\nline two\n")
    assert decode_native(data) == fields


@pytest.fixture
def journal_socket(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "journal.sock"))
    sock.settimeout(5)
    try:
        yield sock
    finally:
        sock.close()


def test_journal_sends_structured_fields(
    journal_socket: socket.socket, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LEADER_NODE_LOG", "journal")
    stream = io.StringIO()
    journal = Journal(node_id=4, stream=stream, socket_path=str(tmp_path / "journal.sock"))
    assert journal.native
    journal.event(
        "peer_suspected", "node 4 suspects 2\nsecond line", LogLevel.WARNING, PEER_ID=2, EPOCH=7, X=None
    )
    fields = decode_native(journal_socket.recv(65536))
    assert fields == {
        "SYSLOG_IDENTIFIER": "leader-node",
        "PRIORITY": "4",
        "EVENT": "peer_suspected",
        "NODE_ID": "4",
        "PEER_ID": "2",
        "EPOCH": "7",
        "MESSAGE": "node 4 suspects 2\nsecond line",
    }
    assert stream.getvalue() == ""  # nothing doubled on stderr


def test_journal_gone_falls_back_to_stderr(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LEADER_NODE_LOG", "journal")
    stream = io.StringIO()
    journal = Journal(node_id=1, stream=stream, socket_path=str(tmp_path / "absent.sock"))
    assert not journal.native
    journal.event("stopping", "bye")
    event = parse_event_line(stream.getvalue().strip())
    assert event is not None
    assert (event["EVENT"], event["NODE_ID"], event["MESSAGE"]) == ("stopping", "1", "bye")


def test_auto_mode_uses_stderr_when_stderr_is_not_the_journal(
    journal_socket: socket.socket, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LEADER_NODE_LOG", "auto")
    monkeypatch.setenv("JOURNAL_STREAM", "1:1")
    journal = Journal(node_id=1, stream=io.StringIO(), socket_path=str(tmp_path / "journal.sock"))
    assert not journal.native


def test_stderr_line_round_trips_awkward_values() -> None:
    fields = {"EVENT": "message_rejected", "MESSAGE": 'bad "frame" = x\ny', "REMOTE": "127.0.0.1:5"}
    line = format_line(fields, datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC))
    assert "\n" not in line
    event = parse_event_line(line)
    assert event is not None
    assert event["ts"] == datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert {k: event[k] for k in fields} == fields


def test_rate_limiter_one_per_interval_per_key_and_counts_the_rest() -> None:
    limiter = RateLimiter(interval_ms=1000, max_keys=2)
    assert limiter.allow("a", 0) == (True, 0)
    assert limiter.allow("a", 10) == (False, 0)
    assert limiter.allow("a", 999) == (False, 0)
    assert limiter.allow("b", 999) == (True, 0)
    assert limiter.allow("a", 1000) == (True, 2)
    assert limiter.allow("c", 1000) == (True, 0)  # over max_keys: old keys are forgotten, not grown
    assert limiter.allow("b", 1001) == (True, 0)


OPERATIONS_MD = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def test_every_event_name_is_documented_once_and_every_documented_one_exists() -> None:
    """The two EVENT tables of docs/operations.md ("Events": the runtime's, the algorithms') list exactly
    the members of EventName, `message_rejected` in both (both emit it)."""
    section = OPERATIONS_MD.read_text().split("### Events", 1)[1].split("\n### ", 1)[0]
    rows = re.findall(r"^\| `([a-z_]+)` \|", section, re.MULTILINE)
    assert sorted(set(rows)) == sorted(name.value for name in EventName)
    assert [name for name in set(rows) if rows.count(name) > 1] == [EventName.MESSAGE_REJECTED]


def test_key_events_carry_a_fixed_message_id(
    journal_socket: socket.socket, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Pinned: operators alert on these ids (docs/operations.md); changing one breaks their queries.
    assert MESSAGE_IDS == {
        "became_leader": "eac7beebbb8c41409fd5a31e7e1c607c",
        "stepped_down": "cbb7949aaa1646f09ceac3ed1c1dba69",
        "quorum_lost": "85b744da6e6e4e7cbb8ea0542cc2ae8a",
        "leader_accepted": "b796cb9c1c404f2f84b4431f7f5ce185",
        "reelection_started": "d69a27db855e440aad98cc36e2027642",
        "resigned": "ac0322822f2e4e61afb5fc1e2a334579",
        "stopping": "f79df68cbf7742e1891b090f65ada790",
        "crashed": "3db692bb9c9347089372429fa3529275",
        "hook_finished": "d670349e0121442aa75d1ce5c7ec10fb",
    }
    assert len(set(MESSAGE_IDS.values())) == len(MESSAGE_IDS)
    assert all(re.fullmatch(r"[0-9a-f]{32}", message_id) for message_id in MESSAGE_IDS.values())

    monkeypatch.setenv("LEADER_NODE_LOG", "journal")
    journal = Journal(node_id=3, stream=io.StringIO(), socket_path=str(tmp_path / "journal.sock"))
    for event in [*MESSAGE_IDS, "peer_suspected"]:
        journal.event(event, f"node 3 {event}", EPOCH=7, LEADER_ID=3)
        fields = decode_native(journal_socket.recv(65536))
        assert fields.get("MESSAGE_ID") == MESSAGE_IDS.get(event), event
        # The history checker reads the same entry back (MESSAGE_ID is one more field it ignores).
        entry: dict[str, object] = {**fields, "__REALTIME_TIMESTAMP": "1700000000123456"}
        parsed = parse_journal_entry(entry, "test:1", "node3.json")
        assert parsed is not None
        assert (parsed.event, parsed.node_id, parsed.epoch, parsed.leader_id) == (event, 3, 7, 3)
        assert parsed.time_ms == 1700000000123


def test_message_id_is_on_the_stderr_line_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADER_NODE_LOG", "stderr")
    stream = io.StringIO()
    Journal(node_id=2, stream=stream).event("became_leader", "node 2 became leader of epoch 4", EPOCH=4)
    event = parse_event_line(stream.getvalue().strip())
    assert event is not None
    assert (event["EVENT"], event["EPOCH"], event["MESSAGE_ID"]) == (
        "became_leader",
        "4",
        MESSAGE_IDS["became_leader"],
    )
