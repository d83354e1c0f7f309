"""Where a failover's time goes: the nodes' timing traces (node/runtime/trace.py) on one time line.

benchmarks/failover.py --trace DIR starts the nodes with LEADER_NODE_TRACE=DIR; after each run it reads
every node's `DIR/node<ID>.trace` around the run and walks the critical path backwards, from the mark
of the follower whose acceptance completed the majority to the signal: the step that changed its role,
the frame that step read (inbox), the hop from its sender (network and the receiver's wake-up), the
sender's link greenlet (queued -> written), the sender's step that queued it (its work and its durable
writes), and so on, to the victim's signal handler (SIGTERM) or to the survivor that saw the victim's
connection die (SIGKILL). Each segment also carries the run-queue wait of its node (a busy host's
scheduling delay: the node was runnable but had no CPU). All clocks are the host's CLOCK_MONOTONIC.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from benchmarks.observer import p90

HEARTBEAT = "HEARTBEAT"
CAUSES = ("step", "timer", "sigterm")  # marks that start a dispatcher step (or the shutdown)
# Kinds of segment, in the order of the breakdown table.
KINDS = (
    "signal",  # SIGTERM: the signal to the victim's handler
    "detect",  # SIGKILL: the kill to a survivor's dispatcher stepping the refused reconnect
    "timer",  # waited for a timer (a back-off retry, ...): everything before it is in here
    "work",  # a dispatcher step, without its durable writes
    "persist",  # the durable writes inside the steps
    "link",  # a queued frame until its link greenlet wrote it
    "hop",  # written by the sender until read by the receiver
    "inbox",  # read until its step began
    "observe",  # the majority's last acceptance until the poll reply that showed it
)


@dataclass(frozen=True, slots=True)
class Mark:
    at_ns: int
    cpu_ns: int  # the node's time on a CPU so far
    wait_ns: int  # the node's time runnable without a CPU so far
    node: int
    what: str
    fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Segment:
    kind: str
    label: str
    start_ns: int
    end_ns: int
    rq_wait_ns: int  # the node's run-queue wait within the segment (the receiver's for a hop)
    cpu_ns: int = 0  # the node's time on a CPU within it (the receiver's for a hop)

    @property
    def ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


def read_marks(directory: Path, members: tuple[int, ...], since_ns: int, until_ns: int) -> list[Mark]:
    """The marks from `since_ns` to `until_ns` (read from a second earlier: the counters of a node's last
    mark before the signal are the base of its first segment)."""
    since_ns -= 1_000_000_000
    marks = []
    for node in members:
        path = directory / f"node{node}.trace"
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) < 4 or not all(p.isdigit() for p in parts[:3]):
                continue
            at_ns = int(parts[0])
            if since_ns <= at_ns <= until_ns:
                marks.append(Mark(at_ns, int(parts[1]), int(parts[2]), node, parts[3], tuple(parts[4:])))
    marks.sort(key=lambda m: (m.at_ns, m.node))
    return marks


def timeline(marks: list[Mark], since_ns: int) -> list[str]:
    """The merged marks, heartbeats left out, as `+ms node what fields`."""
    return [
        f"  {(m.at_ns - since_ns) / 1e6:8.2f} n{m.node} {m.what} {' '.join(m.fields)}"
        for m in marks
        if HEARTBEAT not in m.fields and m.what != "stepped"
    ]


class _Walk:
    def __init__(self, marks: list[Mark], since_ns: int) -> None:
        self.since_ns = since_ns
        self.by_node: dict[int, list[Mark]] = defaultdict(list)
        for mark in marks:
            self.by_node[mark.node].append(mark)
        self.segments: list[Segment] = []

    def last(self, node: int, before: Mark | None, what: tuple[str, ...], *fields: str) -> Mark | None:
        """The last mark of `node` before `before` (in its own order; None: the end) that matches."""
        seq = self.by_node[node]
        end = len(seq) if before is None else seq.index(before)
        for mark in reversed(seq[:end]):
            if mark.at_ns < self.since_ns:
                return None  # before the signal: no part of this failover
            if mark.what in what and mark.fields[: len(fields)] == fields:
                return mark
        return None

    def add(self, kind: str, label: str, start: Mark | int, end: Mark, wait_from: Mark | None = None) -> None:
        start_ns = start if isinstance(start, int) else start.at_ns
        base = wait_from if wait_from is not None else (start if isinstance(start, Mark) else None)
        rq_wait_ns = end.wait_ns - base.wait_ns if base is not None else 0
        cpu_ns = end.cpu_ns - base.cpu_ns if base is not None else 0
        # A hop's counters start at the receiver's previous mark, which may be earlier: clip to the hop.
        wall_ns = end.at_ns - start_ns
        rq_wait_ns, cpu_ns = (min(max(0, v), wall_ns) for v in (rq_wait_ns, cpu_ns))
        self.segments.append(Segment(kind, label, start_ns, end.at_ns, rq_wait_ns, cpu_ns))

    def work(self, cause: Mark, effect: Mark) -> None:
        """The step from `cause` to `effect` (both on one node): its durable writes and the rest."""
        seq = self.by_node[cause.node]
        inside = seq[seq.index(cause) : seq.index(effect) + 1]
        at = cause
        for mark in inside:
            if mark.what == "persist":
                self.add("work", f"n{cause.node} {cause.what} {' '.join(cause.fields[:1])}", at, mark)
                at = mark
            elif mark.what == "persisted" and at.what == "persist":
                self.add("persist", f"n{cause.node} durable write", at, mark)
                at = mark
        self.add("work", f"n{cause.node} {cause.what} {' '.join(cause.fields[:1])}", at, effect)

    def back_from(self, effect: Mark) -> None:
        """Walk from `effect` (a role or queue mark) back to the signal."""
        for _ in range(64):
            node = effect.node
            cause = self.last(node, effect, CAUSES)
            if cause is None:
                return
            self.work(cause, effect)
            if cause.what == "sigterm":
                self.segments.append(Segment("signal", "signal -> handler", self.since_ns, cause.at_ns, 0))
                return
            if cause.what == "timer" and cause.fields[0] == "heartbeat":
                # A new leader's heartbeat overtook its COORDINATOR: walk on from its taking office.
                office = self.last(node, cause, ("role",), "leader")
                if office is None:
                    return
                self.add("timer", f"n{node} next heartbeat", office, cause)
                effect = office
                continue
            if cause.what == "timer":
                self.segments.append(
                    Segment("timer", f"n{node} {cause.fields[0]} timer", self.since_ns, cause.at_ns, 0)
                )
                return
            if cause.fields[0] == "UNREACHABLE":
                self.detection(cause)
                return
            msg_type, sender = cause.fields[0], int(cause.fields[1])
            recv = self.last(node, cause, ("recv",), msg_type, str(sender))
            sent = self.last_sent(sender, msg_type, node, recv)
            queued = None if sent is None else self.last(sender, sent, ("queue",), msg_type)
            if recv is None or sent is None or queued is None:
                return
            self.add("inbox", f"{msg_type} inbox at n{node}", recv, cause)
            seq = self.by_node[node]
            before_recv = seq[seq.index(recv) - 1] if seq.index(recv) > 0 else recv
            self.add("hop", f"{msg_type} n{sender} -> n{node}", sent, recv, wait_from=before_recv)
            self.add("link", f"{msg_type} link n{sender} -> n{node}", queued, sent)
            effect = queued

    def last_sent(self, sender: int, msg_type: str, to: int, recv: Mark | None) -> Mark | None:
        if recv is None:
            return None
        candidates = [
            m
            for m in self.by_node[sender]
            if m.what == "sent"
            and m.fields[:2] == (msg_type, str(to))
            and self.since_ns <= m.at_ns <= recv.at_ns
        ]
        return candidates[-1] if candidates else None

    def detection(self, step: Mark) -> None:
        """A survivor stepped the refused reconnect to the victim: back to the kill."""
        node, peer = step.node, step.fields[1]
        refused = self.last(node, step, ("connect_failed",), peer)
        if refused is None:
            return
        self.add("detect", f"n{node} refused connect -> step", refused, step)
        losses = [m for m in self.by_node[node] if m.what == "link_lost" and m.fields[:1] == (peer,)]
        losses = [m for m in losses if self.since_ns <= m.at_ns <= refused.at_ns]
        if not losses:
            return
        self.add("detect", f"n{node} lost connection -> refused connect", losses[-1], refused)
        if len(losses) > 1:
            self.add("detect", f"n{node} reconnects reset ({len(losses) - 1})", losses[0], losses[-1])
        self.segments.append(Segment("detect", "kill -> lost connection", self.since_ns, losses[0].at_ns, 0))


def critical_path(
    marks: list[Mark], *, leader: int, epoch: int, since_ns: int, observed_ns: int, majority: int
) -> list[Segment]:
    """The segments from the signal to the poll reply that completed the majority, in time order
    (empty when the trace does not hold the majority's acceptance)."""
    followed = [
        m
        for m in marks
        if m.what == "role" and m.node != leader and m.fields[1:3] == (str(leader), str(epoch))
    ]
    if len(followed) < majority - 1:
        return []
    end = followed[majority - 2]
    walk = _Walk(marks, since_ns)
    walk.back_from(end)
    walk.segments.append(Segment("observe", "poll shows it", end.at_ns, max(end.at_ns, observed_ns), 0))
    return sorted(walk.segments, key=lambda s: (s.start_ns, s.end_ns))


def breakdown(path: list[Segment]) -> dict[str, float]:
    """ms by kind, the run-queue wait on the path, and the total (signal to poll reply)."""
    out = {kind: 0.0 for kind in KINDS}
    for segment in path:
        out[segment.kind] += segment.ms
    out["run-queue wait (included above)"] = sum(s.rq_wait_ns for s in path) / 1e6
    out["total"] = (path[-1].end_ns - path[0].start_ns) / 1e6 if path else 0.0
    out["durable writes on the path"] = float(sum(1 for s in path if s.kind == "persist"))
    out["hops on the path"] = float(sum(1 for s in path if s.kind == "hop"))
    return out


def describe(path: list[Segment], since_ns: int) -> list[str]:
    return [
        f"  {(s.start_ns - since_ns) / 1e6:7.2f} +{s.ms:6.2f} ms {s.kind:8} {s.label}"
        + (f" (run-queue wait {s.rq_wait_ns / 1e6:.2f})" if s.rq_wait_ns >= 100_000 else "")
        + (f" (on CPU {s.cpu_ns / 1e6:.2f})" if s.cpu_ns >= 100_000 else "")
        for s in path
    ]


def summary(rows: list[dict[str, float]]) -> list[str]:
    """One Markdown row per kind: median, p90, max over the runs."""
    out = ["| on the critical path (ms) | median | p90 | max |", "|---|---:|---:|---:|"]
    for key in rows[0] if rows else ():
        values = [row[key] for row in rows]
        out.append(f"| {key} | {statistics.median(values):.1f} | {p90(values):.1f} | {max(values):.1f} |")
    return out
