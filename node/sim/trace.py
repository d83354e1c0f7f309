"""The transcript of one run: a sha256 over every line, the last lines for a failure report, counters.

Two runs of the same seed must produce the same lines in the same order, hence the same hash.

Lines are formatted lazily, for speed: `line` and `delivery` only queue what a line is made of, and the
queue is formatted and hashed in batches of FLUSH_LINES (and whenever the hash, the tail or the lines are
read). The bytes hashed are exactly those of formatting each line at once: "<now_ms:>9> <text>\\n".
A delivery line names its message by `repr`, built here from a per-class format string (the same text
as the dataclass `repr`, several times faster), once per message object per batch: a broadcast is one
object delivered to every peer.
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import fields
from operator import attrgetter
from typing import Any

from node.core.messages import Message
from node.history.model import HistoryEvent

TAIL_LINES = 300  # kept in memory for the failure report
MAX_HISTORY_EVENTS = 200_000  # Log actions kept for the history checkers; beyond it the run fails
FLUSH_LINES = 4_096  # queued lines formatted and hashed at once (their objects stay alive until then)


class HistoryOverflowError(Exception):
    """More Log actions than the stated limit: a log storm."""


_MESSAGE_FORMATS: dict[type[Any], tuple[str, attrgetter[Any]]] = {}


def message_text(message: Message) -> str:
    """`repr(message)`, exactly as the dataclass generates it (`Heartbeat(sender=1, epoch=2, ...)`)."""
    cls = type(message)
    spec = _MESSAGE_FORMATS.get(cls)
    if spec is None:
        names = [f.name for f in fields(cls) if f.repr]
        template = cls.__qualname__ + "(" + ", ".join(f"{name}=%r" for name in names) + ")"
        spec = _MESSAGE_FORMATS[cls] = (template, attrgetter(*names))
    template, values = spec
    return template % values(message)


class Trace:
    def __init__(self, keep_all_lines: bool = False, tail_lines: int = TAIL_LINES) -> None:
        self._hash = hashlib.sha256()
        self._tail: deque[str] = deque(maxlen=tail_lines)
        self._all_lines: list[str] | None = [] if keep_all_lines else None
        # (now_ms, text) or (now_ms, prefix, message): lines not yet formatted
        self._pending: list[tuple[int, str] | tuple[int, str, Message]] = []
        self._flushed_lines = 0
        self.history: list[HistoryEvent] = []

    def line(self, now_ms: int, text: str) -> None:
        self._pending.append((now_ms, text))
        if len(self._pending) >= FLUSH_LINES:
            self._flush()

    def delivery(self, now_ms: int, prefix: str, message: Message) -> None:
        """The line `prefix + repr(message)`, its repr built only when the batch is formatted."""
        self._pending.append((now_ms, prefix, message))
        if len(self._pending) >= FLUSH_LINES:
            self._flush()

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        texts: dict[int, str] = {}  # id(message) -> its text; the objects are alive in `pending`
        entries = []
        for item in pending:
            if len(item) == 2:
                entries.append(f"{item[0]:>9} {item[1]}")
            else:
                message = item[2]
                text = texts.get(id(message))
                if text is None:
                    text = texts[id(message)] = message_text(message)
                entries.append(f"{item[0]:>9} {item[1]}{text}")
        entries.append("")  # every line ends with a newline
        self._hash.update("\n".join(entries).encode())
        entries.pop()
        self._tail.extend(entries)
        self._flushed_lines += len(entries)
        if self._all_lines is not None:
            self._all_lines.extend(entries)

    @property
    def tail(self) -> deque[str]:
        """The last `tail_lines` lines."""
        self._flush()
        return self._tail

    @property
    def all_lines(self) -> list[str] | None:
        """Every line, if kept (`keep_all_lines`)."""
        self._flush()
        return self._all_lines

    @property
    def line_count(self) -> int:
        return self._flushed_lines + len(self._pending)

    def record(self, event: HistoryEvent) -> None:
        if len(self.history) >= MAX_HISTORY_EVENTS:
            raise HistoryOverflowError(f"more than {MAX_HISTORY_EVENTS} journal events in one run")
        self.history.append(event)

    def hexdigest(self) -> str:
        self._flush()
        return self._hash.hexdigest()
