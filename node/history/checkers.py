"""Checkers over a whole cluster history that need no ground truth of the network.

They read only what nodes logged (the journald contract), so the same code judges simulator histories
and `journalctl -o json` collected from real hosts. Each returns violations that explain themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from node.core.actions import EventName
from node.history.model import HistoryEvent, ordered

BECAME_LEADER = EventName.BECAME_LEADER

# The EPOCH field of every event is the logging node's own epoch at that moment (the highest it has
# promised or accepted): the algorithms' log helper fills it in, and the runtime's own lines
# (`listening`) use the epoch loaded from disk. An event that names another epoch goes here, or the
# rule below would misfire on it: `hook_finished` carries the epoch the hook was run with (the role
# change it reports), and a run that ends late, or a change delivered after coalescing, can carry an
# epoch the node has since left behind.
FOREIGN_EPOCH_EVENTS: frozenset[str] = frozenset({EventName.HOOK_FINISHED})


@dataclass(frozen=True, slots=True)
class HistoryViolation:
    rule: str
    explanation: str
    events: tuple[HistoryEvent, ...]

    def describe(self) -> str:
        lines = [f"[{self.rule}] {self.explanation}"]
        lines += [f"    {event.describe()}" for event in self.events]
        return "\n".join(lines)


def check_one_leader_per_epoch(events: Iterable[HistoryEvent]) -> list[HistoryViolation]:
    """Rule 1: no two nodes log `became_leader` under the same epoch, ever."""
    first_by_epoch: dict[int, HistoryEvent] = {}
    reported: set[tuple[int, int]] = set()
    violations = []
    for event in ordered(events):
        if event.event != BECAME_LEADER:
            continue
        if event.epoch is None:
            violations.append(
                HistoryViolation("one-leader-per-epoch", "became_leader without an EPOCH field", (event,))
            )
            continue
        first = first_by_epoch.setdefault(event.epoch, event)
        if first.node_id != event.node_id and (event.epoch, event.node_id) not in reported:
            reported.add((event.epoch, event.node_id))
            violations.append(
                HistoryViolation(
                    "one-leader-per-epoch",
                    f"nodes {first.node_id} and {event.node_id} both became leader under epoch {event.epoch}",
                    (first, event),
                )
            )
    return violations


def check_epochs_monotonic(events: Iterable[HistoryEvent]) -> list[HistoryViolation]:
    """Rule 2: on every node, the EPOCH of its events never decreases (restarts included: a `started`
    event with a lower epoch than before the restart is a violation). One exception: a node that lost
    its disk starts at epoch 0 and says so at once (`catch_up_started`, its next event): it votes for
    nobody until it has learned an epoch above its forgotten promises, so its epochs count afresh."""
    highest: dict[int, HistoryEvent] = {}
    lost_state: dict[int, tuple[HistoryEvent, HistoryEvent]] = {}  # node -> (before, started at 0)
    violations = []

    def went_back(previous: HistoryEvent, event: HistoryEvent) -> None:
        violations.append(
            HistoryViolation(
                "epochs-monotonic",
                f"node {event.node_id} went back from epoch {previous.epoch} to {event.epoch}"
                + (" across a restart" if event.event == EventName.STARTED else ""),
                (previous, event),
            )
        )

    for event in ordered(events):
        if event.event in FOREIGN_EPOCH_EVENTS or event.epoch is None:
            continue
        pending = lost_state.pop(event.node_id, None)
        if pending is not None and not (event.event == EventName.CATCH_UP_STARTED and event.epoch == 0):
            went_back(*pending)
        previous = highest.get(event.node_id)
        if previous is not None and previous.epoch is not None and event.epoch < previous.epoch:
            if event.event == EventName.STARTED and event.epoch == 0:
                lost_state[event.node_id] = (previous, event)
                highest[event.node_id] = event
                continue
            went_back(previous, event)
            continue
        highest[event.node_id] = event
    for pending in lost_state.values():  # started at 0 and never said why
        went_back(*pending)
    return violations


Checker = Callable[[Iterable[HistoryEvent]], list[HistoryViolation]]
CHECKERS: dict[str, Checker] = {
    "one-leader-per-epoch": check_one_leader_per_epoch,
    "epochs-monotonic": check_epochs_monotonic,
}


def check_history(events: Iterable[HistoryEvent]) -> list[HistoryViolation]:
    """Every checker over one history."""
    history = list(events)
    return [violation for checker in CHECKERS.values() for violation in checker(history)]
