"""The transcript of one run: a sha256 over every line, the last lines for a failure report, counters.

Two runs of the same seed must produce the same lines in the same order, hence the same hash.
"""

from __future__ import annotations

import hashlib
from collections import deque

from node.history.model import HistoryEvent

TAIL_LINES = 300  # kept in memory for the failure report
MAX_HISTORY_EVENTS = 200_000  # Log actions kept for the history checkers; beyond it the run fails


class HistoryOverflowError(Exception):
    """More Log actions than the stated limit: a log storm."""


class Trace:
    def __init__(self, keep_all_lines: bool = False, tail_lines: int = TAIL_LINES) -> None:
        self._hash = hashlib.sha256()
        self.tail: deque[str] = deque(maxlen=tail_lines)
        self.all_lines: list[str] | None = [] if keep_all_lines else None
        self.history: list[HistoryEvent] = []
        self.line_count = 0

    def line(self, now_ms: int, text: str) -> None:
        entry = f"{now_ms:>9} {text}"
        self._hash.update(entry.encode())
        self._hash.update(b"\n")
        self.tail.append(entry)
        self.line_count += 1
        if self.all_lines is not None:
            self.all_lines.append(entry)

    def record(self, event: HistoryEvent) -> None:
        if len(self.history) >= MAX_HISTORY_EVENTS:
            raise HistoryOverflowError(f"more than {MAX_HISTORY_EVENTS} journal events in one run")
        self.history.append(event)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()
