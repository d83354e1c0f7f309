"""Per-epoch timeline of a cluster history: who led, from when to when, and who followed.

A term begins when a node logs `became_leader` under an epoch and ends at that node's next
`stepped_down`, `quorum_lost`, `reelection_started` (it leaves the epoch to lead a higher one) or
`stopping`, at its next `started` (it crashed and came back), or at any
later event of it under a higher epoch. A term with no end is still open at the end of the history.
A follower is a node that logged `leader_accepted` naming that leader under that epoch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from node.core.actions import EventName
from node.history.model import HistoryEvent, ordered

END_EVENTS = frozenset(
    {EventName.STEPPED_DOWN, EventName.QUORUM_LOST, EventName.REELECTION_STARTED, EventName.STOPPING}
)


@dataclass(slots=True)
class Term:
    epoch: int
    leader_id: int
    start_ms: int
    end_ms: int | None = None
    end_reason: str = ""
    followers: dict[int, int] = field(default_factory=dict)  # node -> when it first accepted

    def describe(self, origin_ms: int = 0) -> str:
        start = self.start_ms - origin_ms
        end = "open" if self.end_ms is None else f"{self.end_ms - origin_ms}"
        reason = f" ({self.end_reason})" if self.end_reason else ""
        followers = ", ".join(f"{n}@{at - origin_ms}" for n, at in sorted(self.followers.items())) or "none"
        return (
            f"epoch {self.epoch:>4}  leader {self.leader_id:>3}  {start:>9} .. {end:>9}{reason}"
            f"  followers: {followers}"
        )


def build_timeline(events: Iterable[HistoryEvent]) -> list[Term]:
    """The terms of a history, by start time."""
    terms: list[Term] = []
    by_key: dict[tuple[int, int], Term] = {}  # (epoch, leader) -> term
    open_term: dict[int, Term] = {}  # leader node -> its current term
    early_accepts: list[HistoryEvent] = []
    for event in ordered(events):
        current = open_term.get(event.node_id)
        if current is not None and _ends(current, event):
            current.end_ms = event.time_ms
            current.end_reason = event.event if event.event != EventName.BECAME_LEADER else "new epoch"
            del open_term[event.node_id]
        if event.event == EventName.BECAME_LEADER and event.epoch is not None:
            term = Term(event.epoch, event.node_id, event.time_ms)
            terms.append(term)
            by_key.setdefault((event.epoch, event.node_id), term)
            open_term[event.node_id] = term
        elif (
            event.event == EventName.LEADER_ACCEPTED
            and event.epoch is not None
            and event.leader_id is not None
        ):
            accepted = by_key.get((event.epoch, event.leader_id))
            if accepted is None:
                early_accepts.append(event)  # logged before the leader's own line (clock skew, delay)
            else:
                accepted.followers.setdefault(event.node_id, event.time_ms)
    for event in early_accepts:
        assert event.epoch is not None and event.leader_id is not None
        late = by_key.get((event.epoch, event.leader_id))
        if late is not None:
            late.followers.setdefault(event.node_id, event.time_ms)
    return terms


def _ends(term: Term, event: HistoryEvent) -> bool:
    if event.event in END_EVENTS or event.event == EventName.STARTED:
        return True
    return event.epoch is not None and event.epoch > term.epoch


def format_timeline(terms: list[Term], origin_ms: int | None = None) -> str:
    """A table, times in ms relative to `origin_ms` (default: the first term's start)."""
    if not terms:
        return "no node became leader in this history"
    origin = terms[0].start_ms if origin_ms is None else origin_ms
    header = f"times in ms from {origin}"
    return "\n".join([header, *(term.describe(origin) for term in terms)])
