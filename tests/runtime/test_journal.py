"""Journal entries: the native datagram format, the stderr line, sink selection, rate limiting."""

from __future__ import annotations

import io
import socket
import struct
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from node.core.actions import LogLevel
from node.runtime.journal import Journal, RateLimiter, encode_native, format_line

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
