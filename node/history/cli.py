"""`leader-node check-history FILE...`: judge a cluster history collected with `journalctl -o json`.

Each FILE holds one host's `journalctl -o json` output (for example
`journalctl -u leader-node -o json > node1.json`); `-` reads standard input. Prints a verdict, every
violation with the events that prove it, and the per-epoch timeline.

Exit status: 0 no violation; 1 at least one violation; 2 a file is missing or unreadable.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from node.history.checkers import check_history
from node.history.model import HistoryEvent, HistoryParseError, parse_journal_json
from node.history.timeline import build_timeline, format_timeline

EXIT_OK = 0
EXIT_VIOLATION = 1
EXIT_BAD_INPUT = 2
FILES_MAX = 1_000


def load(paths: list[str], stdin: TextIO) -> list[HistoryEvent]:
    events: list[HistoryEvent] = []
    for path in paths:
        if path == "-":
            events += parse_journal_json(stdin, "<stdin>")
            continue
        with Path(path).open(encoding="utf-8", errors="replace") as handle:
            events += parse_journal_json(handle, path)
    return events


def main(argv: list[str], out: TextIO | None = None, stdin: TextIO | None = None) -> int:
    out = out or sys.stdout
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__, file=out)
        return EXIT_OK if argv else EXIT_BAD_INPUT
    if len(argv) > FILES_MAX:
        print(f"check-history: at most {FILES_MAX} files", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        events = load(argv, stdin or sys.stdin)
    except (OSError, HistoryParseError) as exc:
        print(f"check-history: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    violations = check_history(events)
    nodes = len({event.node_id for event in events})
    if violations:
        print(f"VIOLATION: {len(violations)} problem(s) in {len(events)} events from {nodes} nodes", file=out)
        for violation in violations:
            print(violation.describe(), file=out)
    else:
        print(f"ok: {len(events)} events from {nodes} nodes, no violation", file=out)
    print(format_timeline(build_timeline(events)), file=out)
    return EXIT_VIOLATION if violations else EXIT_OK
