"""An opt-in timing trace of the hot path, for benchmarks/failover.py --trace (docs/benchmarks.md).

With `LEADER_NODE_TRACE=DIR` in its environment a node appends one line per mark to `DIR/node<ID>.trace`:
`<CLOCK_MONOTONIC ns> <what> key=value ...`. The monotonic clock is the one every process on the host
shares, so the lines of five nodes and the benchmark's own signal time fall on one time line. Without
the variable every mark is one attribute test: nothing is formatted or written.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TextIO

TRACE_ENV = "LEADER_NODE_TRACE"


class Trace:
    def __init__(self, node_id: int, directory: str | None = None) -> None:
        directory = os.environ.get(TRACE_ENV) if directory is None else directory
        self._file: TextIO | None = None
        if directory:
            # Line-buffered: a survivor is read while it runs, a victim may be SIGKILLed at any moment.
            self._file = (Path(directory) / f"node{node_id}.trace").open("a", buffering=1)

    @property
    def enabled(self) -> bool:
        return self._file is not None

    def mark(self, what: str, *fields: object) -> None:
        if self._file is not None:
            self._file.write(f"{time.monotonic_ns()} {what} {' '.join(map(str, fields))}\n")
