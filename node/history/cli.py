"""`leader-node check-history [--svg OUT.svg] [--steps STEPS.txt] FILE...`: judge a cluster history
collected with `journalctl -o json`.

Each FILE holds one host's `journalctl -o json` output (for example
`journalctl -u leader-node -o json > node1.json`); `-` reads standard input. Prints a verdict, every
violation with the events that prove it, and the per-epoch timeline.

--svg OUT.svg     also draw leadership over time (one lane per node, a bar per term, followers,
                  no-quorum and down spans) as an SVG picture; `-` writes it to standard output
                  instead of the text report
--steps FILE      a test harness's steps.txt (artifacts/molecule/<scenario>-<algorithm>/): its
                  faults and steps are drawn on the picture

Exit status: 0 no violation; 1 at least one violation; 2 a file is missing or unreadable, or bad usage.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from node.history.checkers import check_history
from node.history.model import HistoryEvent, HistoryParseError, parse_journal_json
from node.history.svg import Step, parse_steps, render_svg
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


OPTIONS = ("--svg", "--steps")


def split_options(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """`--svg PATH`, `--steps PATH` (or `--svg=PATH`) anywhere before `--`; the rest are journal files.
    Raises ValueError on an unknown option or a missing value."""
    options: dict[str, str] = {}
    files: list[str] = []
    rest = iter(argv)
    for arg in rest:
        if arg == "--":
            files += rest
            break
        name, has_value, value = arg.partition("=")
        if name in OPTIONS:
            if not has_value:
                value = next(rest, "")
            if not value:
                raise ValueError(f"{name} needs a file name")
            if name in options:
                raise ValueError(f"{name} given twice")
            options[name] = value
        elif arg.startswith("--"):
            raise ValueError(f"unknown option {arg} (see --help)")
        else:
            files.append(arg)
    return options, files


def load_steps(path: str) -> list[Step]:
    with Path(path).open(encoding="utf-8", errors="replace") as handle:
        return parse_steps(handle, path)


def main(argv: list[str], out: TextIO | None = None, stdin: TextIO | None = None) -> int:
    out = out or sys.stdout
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__, file=out)
        return EXIT_OK if argv else EXIT_BAD_INPUT
    try:
        options, files = split_options(argv)
    except ValueError as exc:
        print(f"check-history: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not files:
        print("check-history: no journal file given", file=sys.stderr)
        return EXIT_BAD_INPUT
    if len(files) > FILES_MAX:
        print(f"check-history: at most {FILES_MAX} files", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        events = load(files, stdin or sys.stdin)
        steps = load_steps(options["--steps"]) if "--steps" in options else []
    except (OSError, HistoryParseError) as exc:
        print(f"check-history: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    violations = check_history(events)
    nodes = len({event.node_id for event in events})
    svg_path = options.get("--svg")
    report = out if svg_path != "-" else sys.stderr
    if violations:
        verdict = f"VIOLATION: {len(violations)} problem(s) in {len(events)} events from {nodes} nodes"
        print(verdict, file=report)
        for violation in violations:
            print(violation.describe(), file=report)
    else:
        verdict = f"ok: {len(events)} events from {nodes} nodes, no violation"
        print(verdict, file=report)
    print(format_timeline(build_timeline(events)), file=report)
    if svg_path is not None:
        picture = render_svg(events, steps, title=f"leader-node check-history: {verdict}")
        if svg_path == "-":
            out.write(picture)
        else:
            try:
                Path(svg_path).write_text(picture, encoding="utf-8")
            except OSError as exc:
                print(f"check-history: cannot write {svg_path}: {exc}", file=sys.stderr)
                return EXIT_BAD_INPUT
    return EXIT_VIOLATION if violations else EXIT_OK
