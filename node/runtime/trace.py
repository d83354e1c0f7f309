"""An opt-in timing trace of the hot path, for benchmarks/failover.py --trace (docs/benchmarks.md).

With `LEADER_NODE_TRACE=DIR` in its environment a node appends one line per mark to `DIR/node<ID>.trace`:
`<CLOCK_MONOTONIC ns> <on-CPU ns> <run-queue wait ns> <what> <field> ...`. The monotonic clock is the one
every process on the host shares, so the lines of five nodes and the benchmark's own signal time fall on
one time line; the two counters of the node's thread (Linux /proc/thread-self/schedstat: time on a CPU,
time runnable but waiting for one) tell the node's own work from a busy host's scheduling delay. Without
the variable every mark is one attribute test: nothing is read, formatted or written.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TextIO

TRACE_ENV = "LEADER_NODE_TRACE"
_SCHEDSTAT = "/proc/thread-self/schedstat"


class Trace:
    def __init__(self, node_id: int, directory: str | None = None) -> None:
        directory = os.environ.get(TRACE_ENV) if directory is None else directory
        self._file: TextIO | None = None
        self._schedstat: int | None = None
        if directory:
            # Line-buffered: a survivor is read while it runs, a victim may be SIGKILLed at any moment.
            self._file = (Path(directory) / f"node{node_id}.trace").open("a", buffering=1)
            try:
                self._schedstat = os.open(_SCHEDSTAT, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                self._schedstat = None  # not Linux, or no schedstats: the counters read 0

    @property
    def enabled(self) -> bool:
        return self._file is not None

    def mark(self, what: str, *fields: object) -> None:
        if self._file is None:
            return
        now_ns = time.monotonic_ns()
        counters = "0 0"
        if self._schedstat is not None:
            counters = b" ".join(os.pread(self._schedstat, 64, 0).split()[:2]).decode()
        self._file.write(f"{now_ns} {counters} {what} {' '.join(map(str, fields))}\n")
