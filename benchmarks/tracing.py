"""Where a failover's time goes: the nodes' timing traces (node/runtime/trace.py) on one time line.

benchmarks/failover.py --trace DIR starts the nodes with LEADER_NODE_TRACE=DIR; after each run it reads
every node's `DIR/node<ID>.trace` between the signal and the observed majority and prints the milestones
below (ms after the signal), and the merged time line with --timeline. All clocks are the host's
CLOCK_MONOTONIC, the benchmark's signal time included.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from benchmarks.observer import p90

HEARTBEAT = "HEARTBEAT"


@dataclass(frozen=True, slots=True)
class Mark:
    at_ns: int
    node: int
    what: str
    fields: tuple[str, ...]


def read_marks(directory: Path, members: tuple[int, ...], since_ns: int, until_ns: int) -> list[Mark]:
    marks = []
    for node in members:
        path = directory / f"node{node}.trace"
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) < 2 or not parts[0].isdigit():
                continue
            at_ns = int(parts[0])
            if since_ns <= at_ns <= until_ns:
                marks.append(Mark(at_ns, node, parts[1], tuple(parts[2:])))
    marks.sort(key=lambda m: (m.at_ns, m.node))
    return marks


def timeline(marks: list[Mark], since_ns: int) -> list[str]:
    """The merged marks, heartbeats left out, as `+ms node what fields`."""
    return [
        f"  {(m.at_ns - since_ns) / 1e6:8.2f} n{m.node} {m.what} {' '.join(m.fields)}"
        for m in marks
        if HEARTBEAT not in m.fields
    ]


def _first(marks: list[Mark], node: int | None, what: str, *fields: str) -> int | None:
    for m in marks:
        if (node is None or m.node == node) and m.what == what and m.fields[: len(fields)] == fields:
            return m.at_ns
    return None


def milestones(
    marks: list[Mark], *, victim: int, leader: int, epoch: int, since_ns: int, majority: int
) -> dict[str, float | None]:
    """Milestones of one failover in ms after the signal (None: not in the trace)."""

    def ms(at_ns: int | None) -> float | None:
        return None if at_ns is None else (at_ns - since_ns) / 1e6

    followed = sorted(
        m.at_ns
        for m in marks
        if m.what == "role" and m.node != leader and m.fields[1:] == (str(leader), str(epoch))
    )
    # The durable writes of the new epoch and how long each took (the leader's own, then the voters').
    writes: list[float] = []
    begun: dict[int, int] = {}
    for m in marks:
        if m.what == "persist" and m.fields[:1] == (str(epoch),):
            begun[m.node] = m.at_ns
        elif m.what == "persisted" and m.fields[:1] == (str(epoch),) and m.node in begun:
            writes.append((m.at_ns - begun.pop(m.node)) / 1e6)
    return {
        "signal seen by the victim": ms(_first(marks, victim, "sigterm")),
        "RESIGN sent (first)": ms(_first(marks, victim, "sent", "RESIGN")),
        "victim's link lost at a survivor (first)": ms(_first(marks, None, "link_lost", str(victim))),
        "new leader: first step on the news": ms(
            min(
                (
                    t
                    for t in (
                        _first(marks, leader, "step", "RESIGN", str(victim)),
                        _first(marks, leader, "step", "UNREACHABLE", str(victim)),
                    )
                    if t is not None
                ),
                default=None,
            )
        ),
        "new leader: persist begins": ms(_first(marks, leader, "persist", str(epoch))),
        "new leader: persisted": ms(_first(marks, leader, "persisted", str(epoch))),
        "new leader: role leader": ms(_first(marks, leader, "role", "leader", str(leader), str(epoch))),
        "majority follows (trace)": ms(followed[majority - 2]) if len(followed) >= majority - 1 else None,
        "durable writes of the new epoch (median ms)": statistics.median(writes) if writes else None,
        "durable writes of the new epoch (count)": float(len(writes)),
    }


def summary(rows: list[dict[str, float | None]]) -> list[str]:
    """One Markdown row per milestone: runs, median, p90, max."""
    out = ["| milestone (ms after the signal) | runs | median | p90 | max |", "|---|---:|---:|---:|---:|"]
    for key in rows[0] if rows else ():
        values = [v for row in rows if (v := row.get(key)) is not None]
        if values:
            out.append(
                f"| {key} | {len(values)} | {statistics.median(values):.1f} | {p90(values):.1f} | "
                f"{max(values):.1f} |"
            )
    return out
