"""Virtual time: one priority queue of (time_ms, seq, item).

`seq` grows with every insertion, so items due at the same millisecond run in the order they were
scheduled and a run is a pure function of its seed. Nothing here reads a real clock.
"""

from __future__ import annotations

import heapq
from typing import Generic, TypeVar

Item = TypeVar("Item")

MAX_PENDING_ITEMS = 200_000  # far above a healthy run (~N^2 messages in flight); a storm hits this


class SchedulerFullError(Exception):
    """More items pending than the stated limit: a message or timer storm."""


class Scheduler(Generic[Item]):
    def __init__(self, max_pending: int = MAX_PENDING_ITEMS) -> None:
        self.now_ms = 0
        self._max_pending = max_pending
        self._heap: list[tuple[int, int, Item]] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self._heap)

    def at(self, time_ms: int, item: Item) -> None:
        """Schedule `item` at absolute `time_ms`; a time in the past means "now"."""
        heap = self._heap
        if len(heap) >= self._max_pending:
            raise SchedulerFullError(f"more than {self._max_pending} items pending at {self.now_ms} ms")
        now_ms = self.now_ms
        heapq.heappush(heap, (time_ms if time_ms > now_ms else now_ms, self._seq, item))
        self._seq += 1

    def after(self, delay_ms: int, item: Item) -> None:
        self.at(self.now_ms + delay_ms, item)

    def next_time_ms(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    def pop(self) -> Item:
        """Remove the earliest item and advance the clock to its time."""
        time_ms, _, item = heapq.heappop(self._heap)
        self.now_ms = time_ms
        return item

    def pop_due(self, end_ms: int) -> Item | None:
        """`pop()` if the earliest item is due by `end_ms`, else None (one call per item, for speed)."""
        heap = self._heap
        if not heap or heap[0][0] > end_ms:
            return None
        time_ms, _, item = heapq.heappop(heap)
        self.now_ms = time_ms
        return item
