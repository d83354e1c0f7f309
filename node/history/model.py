"""One model of a cluster's history, fed either by the simulator or by `journalctl -o json` from hosts.

An event is one journal entry of the contract: `EVENT`, `NODE_ID`, `EPOCH`, `LEADER_ID`, `PEER_ID`, plus
its time. Real histories take the time from `__REALTIME_TIMESTAMP` (microseconds since the epoch);
simulated ones use virtual milliseconds. The checkers only compare times within one history.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

SYSLOG_IDENTIFIER = "leader-node"
MAX_JOURNAL_LINE_BYTES = 1_000_000  # a journald JSON entry above this is not ours: refuse it


class HistoryParseError(Exception):
    """A line of `journalctl -o json` output that cannot be read. Names the source and line number."""


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    time_ms: int
    node_id: int
    event: str
    epoch: int | None = None
    leader_id: int | None = None
    peer_id: int | None = None
    message: str = ""
    source: str = ""  # where it came from: a file name, a host, or "sim"

    def describe(self) -> str:
        parts = [f"t={self.time_ms}ms", f"node {self.node_id}", self.event]
        if self.epoch is not None:
            parts.append(f"epoch={self.epoch}")
        if self.leader_id is not None:
            parts.append(f"leader={self.leader_id}")
        if self.peer_id is not None:
            parts.append(f"peer={self.peer_id}")
        if self.source:
            parts.append(f"({self.source})")
        return " ".join(parts)


def ordered(events: Iterable[HistoryEvent]) -> list[HistoryEvent]:
    """Events by time; ties keep their input order (so one node's same-millisecond events stay put)."""
    return sorted(events, key=lambda event: event.time_ms)


def _field(entry: dict[str, object], name: str) -> str | None:
    """A journald JSON field as text. journald writes a field given twice as a list of values, and a
    value that is not printable text as a list of byte values."""
    value = entry.get(name)
    if value is None:
        return None
    if isinstance(value, list):
        if value and all(isinstance(item, int) for item in value):
            return bytes(value).decode("utf-8", errors="replace")
        if not value:
            return None
        value = value[0]
        if isinstance(value, list):
            return bytes(value).decode("utf-8", errors="replace")
    return str(value)


_NONE_WORDS = frozenset({"", "none", "null", "-"})


def _optional_int(entry: dict[str, object], name: str, where: str) -> int | None:
    text = _field(entry, name)
    if text is None or text.strip().lower() in _NONE_WORDS:
        return None
    try:
        return int(text)
    except ValueError as exc:
        raise HistoryParseError(f"{where}: field {name}={text!r} is not an integer") from exc


def parse_journal_entry(entry: dict[str, object], where: str, source: str) -> HistoryEvent | None:
    """One decoded journald entry -> event; None for entries that are not leader-node events."""
    if _field(entry, "SYSLOG_IDENTIFIER") != SYSLOG_IDENTIFIER:
        return None
    event = _field(entry, "EVENT")
    if event is None:
        return None  # a plain log line of the daemon (tracebacks, warnings): not a state change
    node_id = _optional_int(entry, "NODE_ID", where)
    realtime_us = _optional_int(entry, "__REALTIME_TIMESTAMP", where)
    if node_id is None or realtime_us is None:
        raise HistoryParseError(f"{where}: EVENT={event} without NODE_ID or __REALTIME_TIMESTAMP")
    return HistoryEvent(
        time_ms=realtime_us // 1000,
        node_id=node_id,
        event=event,
        epoch=_optional_int(entry, "EPOCH", where),
        leader_id=_optional_int(entry, "LEADER_ID", where),
        peer_id=_optional_int(entry, "PEER_ID", where),
        message=_field(entry, "MESSAGE") or "",
        source=source,
    )


def parse_journal_json(lines: Iterable[str], source: str) -> list[HistoryEvent]:
    """`journalctl -o json` output (one JSON object per line) -> leader-node events, in file order.

    Entries of other programs and daemon lines without an EVENT field are skipped; a line that is not
    a JSON object, or a leader-node event with an unreadable field, raises HistoryParseError.
    """
    events = []
    for line_no, line in enumerate(lines, start=1):
        where = f"{source}:{line_no}"
        if not line.strip():
            continue
        if len(line) > MAX_JOURNAL_LINE_BYTES:
            raise HistoryParseError(f"{where}: line longer than {MAX_JOURNAL_LINE_BYTES} bytes")
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise HistoryParseError(f"{where}: not JSON ({exc.msg})") from exc
        if not isinstance(entry, dict):
            raise HistoryParseError(f"{where}: not a JSON object")
        event = parse_journal_entry(entry, where, source)
        if event is not None:
            events.append(event)
    return events
