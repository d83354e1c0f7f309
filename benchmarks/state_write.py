"""The cost of one durable state write, the way a node writes its promises, against the old way.

    .venv/bin/python benchmarks/state_write.py [--writes 200] [--dir DIR]

`replace`: StateFile.save, temp file + fsync + rename + fsync of the directory (what a node does);
`in place`: the state as a 512-byte record overwritten in place and fdatasync'ed (a candidate, not adopted:
with a single record a torn write loses both states; docs/benchmarks.md, "Where a hand-off's time goes").
Both alternate, one write each in turn, 5 ms apart, in a temporary directory under --dir (default: the
system's; put it on the filesystem of your state_dir).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.observer import p90
from node.core.state import DurableState, dump_state
from node.runtime.statefile import StateFile

RECORD_BYTES = 512


def state_record(data: bytes) -> bytes:
    """`data` (one line of JSON) padded with spaces to RECORD_BYTES."""
    return data.rstrip(b"\n").ljust(RECORD_BYTES - 1) + b"\n"


def overwrite_in_place(path: Path, record: bytes) -> None:
    """Write `record` over the start of `path` (created once) and fdatasync it: data only, no metadata."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        if os.pwrite(fd, record, 0) != len(record):
            raise OSError(f"short write to {path}")
        os.fdatasync(fd)
    finally:
        os.close(fd)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    print(f"# load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        replaced = StateFile(Path(tmp))
        in_place = Path(tmp) / "record.json"
        times: dict[str, list[float]] = {"in place": [], "replace": []}
        for epoch in range(1, args.writes + 1):
            state = DurableState(epoch, 3)
            started = time.perf_counter()
            overwrite_in_place(in_place, state_record(dump_state(state)))
            times["in place"].append((time.perf_counter() - started) * 1000)
            time.sleep(0.005)
            started = time.perf_counter()
            replaced.save(state)
            times["replace"].append((time.perf_counter() - started) * 1000)
            time.sleep(0.005)
    for name, values in times.items():
        print(
            f"{name:9} median {statistics.median(values):6.2f} ms, p90 {p90(values):6.2f} ms, "
            f"max {max(values):6.2f} ms ({len(values)} writes)"
        )
    print(f"# load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
