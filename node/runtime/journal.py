"""Structured event log: journald's native protocol, or one plain stderr line per event.

Native protocol (https://systemd.io/JOURNAL_NATIVE_PROTOCOL/): one datagram per entry to
/run/systemd/journal/socket, each field `KEY=value\\n`, or for a value holding a newline
`KEY\\n<u64 little-endian length><value>\\n`. The socket is non-blocking: an entry journald cannot take
right now (restarting, queue full) goes to stderr instead of stalling the node.

Which sink: the journal when systemd connected our stderr to it (`$JOURNAL_STREAM` names stderr's
device:inode, as systemd.exec(5) recommends checking) and the socket exists; stderr otherwise, so a node
run by hand or by a test prints readable lines. `LEADER_NODE_LOG=journal|stderr` overrides the choice.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TextIO

from node.core.actions import EventName, LogLevel

JOURNAL_SOCKET_PATH = "/run/systemd/journal/socket"
SYSLOG_IDENTIFIER = "leader-node"
MAX_MESSAGE_CHARS = 4000  # keeps every entry well inside one datagram
FieldValue = str | int | None

# A fixed MESSAGE_ID per key event, like systemd's catalog ids (sd-id128: 32 lowercase hex digits): one
# stable key to alert on or to attach a catalog entry to (`journalctl MESSAGE_ID=...`). Generated once;
# never change one (queries and alerts in the field use them). docs/operations.md lists them.
MESSAGE_IDS: Mapping[EventName, str] = {
    EventName.BECAME_LEADER: "eac7beebbb8c41409fd5a31e7e1c607c",
    EventName.STEPPED_DOWN: "cbb7949aaa1646f09ceac3ed1c1dba69",
    EventName.QUORUM_LOST: "85b744da6e6e4e7cbb8ea0542cc2ae8a",
    EventName.LEADER_ACCEPTED: "b796cb9c1c404f2f84b4431f7f5ce185",
    EventName.REELECTION_STARTED: "d69a27db855e440aad98cc36e2027642",
    EventName.RESIGNED: "ac0322822f2e4e61afb5fc1e2a334579",
    EventName.STOPPING: "f79df68cbf7742e1891b090f65ada790",
    EventName.CRASHED: "3db692bb9c9347089372429fa3529275",
    EventName.HOOK_FINISHED: "d670349e0121442aa75d1ce5c7ec10fb",
}


def encode_native(fields: Mapping[str, str]) -> bytes:
    """One journal entry in the native datagram form."""
    out = bytearray()
    for key, value in fields.items():
        data = value.encode("utf-8", "replace")
        if b"\n" in data:
            out += key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


def format_line(fields: Mapping[str, str], wall_time: datetime) -> str:
    """The stderr form: timestamp, then the same KEY=value fields; values with spaces are JSON-quoted."""
    parts = [wall_time.isoformat(timespec="microseconds"), SYSLOG_IDENTIFIER]
    for key, value in fields.items():
        if key == "SYSLOG_IDENTIFIER":
            continue
        needs_quotes = value == "" or any(c in value for c in ' "=\\\n\t') or not value.isprintable()
        parts.append(f"{key}={json.dumps(value) if needs_quotes else value}")
    return " ".join(parts)


def _stderr_is_journal(stream: TextIO) -> bool:
    expected = os.environ.get("JOURNAL_STREAM", "")
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return False
    return expected == f"{info.st_dev}:{info.st_ino}"


class Journal:
    def __init__(
        self,
        node_id: int | None = None,
        stream: TextIO | None = None,
        socket_path: str = JOURNAL_SOCKET_PATH,
    ) -> None:
        self.node_id = node_id
        self._stream = stream if stream is not None else sys.stderr
        self._socket_path = socket_path
        self._socket: socket.socket | None = None
        mode = os.environ.get("LEADER_NODE_LOG", "auto")
        use_journal = mode == "journal" or (mode == "auto" and _stderr_is_journal(self._stream))
        if use_journal and os.path.exists(socket_path):
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.setblocking(False)
        self.entries_to_stderr = 0  # entries that fell back (or were meant for) stderr

    @property
    def native(self) -> bool:
        return self._socket is not None

    def event(
        self, event: EventName, message: str, level: LogLevel = LogLevel.INFO, **extra: FieldValue
    ) -> None:
        """Record one event. `extra` keys are journal fields (PEER_ID=3, EPOCH=7); None is left out."""
        fields: dict[str, str] = {
            "SYSLOG_IDENTIFIER": SYSLOG_IDENTIFIER,
            "PRIORITY": str(int(level)),
            "EVENT": str(event),
        }
        message_id = MESSAGE_IDS.get(event)
        if message_id is not None:
            fields["MESSAGE_ID"] = message_id
        if self.node_id is not None:
            fields["NODE_ID"] = str(self.node_id)
        for key, value in extra.items():
            if value is not None:
                fields[key.upper()] = str(value)
        fields["MESSAGE"] = message[:MAX_MESSAGE_CHARS]
        if self._socket is not None:
            try:
                self._socket.sendto(encode_native(fields), self._socket_path)
                return
            except OSError:
                pass  # journald busy or gone: this entry goes to stderr rather than nowhere
        self.entries_to_stderr += 1
        try:
            self._stream.write(format_line(fields, datetime.now(UTC)) + "\n")
            self._stream.flush()
        except (OSError, ValueError):
            pass  # stderr closed: nothing left to tell, and logging must never stop the node

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


class RateLimiter:
    """At most one report per key per `interval_ms`; counts what it suppressed. Bounded in keys."""

    def __init__(self, interval_ms: int, max_keys: int = 256) -> None:
        self.interval_ms = interval_ms
        self.max_keys = max_keys
        self._last_ms: dict[str, int] = {}
        self._suppressed: dict[str, int] = {}

    def allow(self, key: str, now_ms: int) -> tuple[bool, int]:
        """(report it?, how many reports for `key` were suppressed since the last one)."""
        last_ms = self._last_ms.get(key)
        if last_ms is not None and now_ms - last_ms < self.interval_ms:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False, 0
        if last_ms is None and len(self._last_ms) >= self.max_keys:
            self._last_ms.clear()  # a flood of distinct sources: forget old ones rather than grow
            self._suppressed.clear()
        self._last_ms[key] = now_ms
        return True, self._suppressed.pop(key, 0)


class LineBudget:
    """At most `lines` reports per `interval_ms` in all; counts what it suppressed."""

    def __init__(self, lines: int, interval_ms: int) -> None:
        self.lines = lines
        self.interval_ms = interval_ms
        self._window_start_ms: int | None = None
        self._used = 0
        self._suppressed = 0

    def allow(self, now_ms: int) -> tuple[bool, int]:
        """(report it?, how many reports were suppressed since the last one allowed)."""
        if self._window_start_ms is None or now_ms - self._window_start_ms >= self.interval_ms:
            self._window_start_ms, self._used = now_ms, 0
        if self._used >= self.lines:
            self._suppressed += 1
            return False, 0
        self._used += 1
        suppressed, self._suppressed = self._suppressed, 0
        return True, suppressed
