"""The cost of one durable state write, the way a node writes its promises, against the old way.

    .venv/bin/python benchmarks/state_write.py [--writes 200] [--dir DIR]

`in place`: StateFile.save, the record for the next seq written over the older of the two 4 KiB slots
of state.json (pwrite) and fdatasync'ed (what a node does; docs/operations.md, "The state file");
`replace`: the whole file written with write_durably, temp file + fsync + rename + fsync of the
directory (what StateFile.save did before the two slots, and still does once for a new, version-1 or
damaged file). Both alternate, one write each in turn, 5 ms apart, in a temporary directory under --dir
(default: the system's; put it on the filesystem of your state_dir).
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
from node.core.state import DurableState, dump_image
from node.runtime.statefile import StateFile, write_durably


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    print(f"# load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        in_place = StateFile(Path(tmp) / "in-place")
        in_place.state_dir.mkdir()
        in_place.save(DurableState(0, 3))  # the first save writes the file whole; the rest in place
        replaced = Path(tmp) / "replace.json"
        times: dict[str, list[float]] = {"in place": [], "replace": []}
        for epoch in range(1, args.writes + 1):
            state = DurableState(epoch, 3)
            started = time.perf_counter()
            in_place.save(state)
            times["in place"].append((time.perf_counter() - started) * 1000)
            time.sleep(0.005)
            started = time.perf_counter()
            write_durably(replaced, dump_image(state, epoch))
            times["replace"].append((time.perf_counter() - started) * 1000)
            time.sleep(0.005)
        in_place.close()
    for name, values in times.items():
        print(
            f"{name:9} median {statistics.median(values):6.2f} ms, p90 {p90(values):6.2f} ms, "
            f"max {max(values):6.2f} ms ({len(values)} writes)"
        )
    print(f"# load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
