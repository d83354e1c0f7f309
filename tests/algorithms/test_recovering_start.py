"""A node that starts from a record marked `recovering` with an epoch and a vote: what the state file
hands over when one of its two records is unreadable (node/core/state.py, load_slots). The other
record may be below a promise this node made (a newest record that rotted on disk): so the node votes
for nobody until its catch-up has learned a floor, then only above what it holds and the floor."""

from __future__ import annotations

import random

import pytest

from node.algorithms import make_algorithm
from node.core.actions import Persist, Send
from node.core.events import Start
from node.core.messages import Promise
from node.core.state import DurableState

from .harness import Driven, probe_answers, propose

ON_DISK = DurableState(7, 2, recovering=True)  # the older record, as load_slots returns it


def _granted(actions: list[object], candidate: int) -> list[int]:
    """The epochs of the binding promises sent to `candidate` among `actions`."""
    sent = [a.message for a in actions if isinstance(a, Send) and a.peer_id == candidate]
    return [m.epoch for m in sent if isinstance(m, Promise) and m.granted]


@pytest.mark.parametrize("algorithm", ["bully", "ring"])
@pytest.mark.parametrize(
    ("floor", "settled"),
    [
        (9, DurableState(9, None)),  # the members know an epoch above the record: that is the floor
        (7, DurableState(7, 2)),  # nothing above the record: its own promise stands, now settled
        (5, DurableState(7, 2)),  # the floor never lowers the record
    ],
)
def test_a_node_started_recovering_votes_only_after_its_catch_up(
    algorithm: str, floor: int, settled: DurableState
) -> None:
    node = Driven(algorithm, 1)
    node.durable = ON_DISK
    node.algorithm = make_algorithm(algorithm, node.settings, ON_DISK, random.Random(0))
    started = node.step(Start(-3000))  # its start-up blackout is over at 0
    assert node.algorithm.view(-3000).catching_up
    asked = node.receive(propose(3, 8), at_ms=0)  # above the record: would be granted, were it settled
    assert _granted(asked, 3) == [] and not [a for a in asked if isinstance(a, Persist)]
    for answer in probe_answers(node.history, node.settings.peer_ids, known_epoch=floor):
        node.receive(answer, at_ms=1)
    assert started and not node.algorithm.view(1).catching_up
    assert node.durable == settled  # persisted, no longer recovering
    refused = node.receive(propose(4, settled.epoch), at_ms=2)  # at the floor: never
    assert _granted(refused, 4) == []
    granted = node.receive(propose(3, settled.epoch + 1), at_ms=3)
    assert _granted(granted, 3) == [settled.epoch + 1]
    assert node.durable == DurableState(settled.epoch + 1, 3)


@pytest.mark.parametrize("algorithm", ["bully", "ring"])
def test_the_same_record_settled_grants_at_once(algorithm: str) -> None:
    """The control: without `recovering`, the same request at the same time is granted."""
    settled = DurableState(ON_DISK.epoch, ON_DISK.voted_for)
    node = Driven(algorithm, 1)
    node.durable = settled
    node.algorithm = make_algorithm(algorithm, node.settings, settled, random.Random(0))
    node.step(Start(-3000))
    assert not node.algorithm.view(-3000).catching_up
    assert _granted(node.receive(propose(3, 8), at_ms=0), 3) == [8]
