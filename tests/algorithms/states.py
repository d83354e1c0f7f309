"""Given-states for the Bully transition tables: a node driven through real events into a known state.

Every builder uses only `step()`; nothing pokes at private fields, so a state here is one a real node can
be in. Clock convention: the node starts at 0 and hears its peers at HEARD_MS; a row's event happens at the
returned node's `now_ms` or later.
"""

from __future__ import annotations

from typing import Any

from node.core.actions import Role
from node.core.events import TimerId

from .harness import MEMBERS_5, Driven, confirmed, hb, promise

ALGORITHM = "bully"

# Built nodes started a failure timeout before 0, so their start-up blackout (no votes for
# failure_timeout after a restart) is over when a row's events begin at 0 or later.
STARTED_MS = -3000
HEARD_MS = 100  # when a built node last heard all of its peers
LEADER_MS = HEARD_MS + 2000  # when a built leader won: its listen window ended


def started(node_id: int, epoch: int = 0, voted_for: int | None = None, **kw: Any) -> Driven:
    """Started, has heard nobody yet: no quorum."""
    node = Driven(ALGORITHM, node_id, epoch=epoch, voted_for=voted_for, **kw)
    node.start(STARTED_MS)
    return node


def idle(node_id: int, epoch: int = 0, voted_for: int | None = None, **kw: Any) -> Driven:
    """Started and heard every peer (none claims to lead): a majority is reachable, listening, no leader."""
    node = started(node_id, epoch, voted_for, **kw)
    node.now_ms = HEARD_MS
    node.hear(*node.settings.peer_ids)
    assert node.role is Role.FOLLOWER and node.leader_id is None
    return node


def follower(
    node_id: int, leader_id: int = 5, epoch: int = 3, voted_for: int | None = None, **kw: Any
) -> Driven:
    """Follows `leader_id` under `epoch` (persisted); every peer heard at HEARD_MS."""
    node = started(node_id, epoch, voted_for, **kw)
    node.now_ms = HEARD_MS
    for peer in node.settings.peer_ids:
        if peer != leader_id:
            node.receive(hb(peer, epoch, leader_id))
    node.receive(hb(leader_id, epoch, leader_id))  # heard once a majority is reachable
    assert node.role is Role.FOLLOWER and node.leader_id == leader_id, node.view()
    return node


def candidate_awaiting_ok(node_id: int = 3, epoch: int = 3, **kw: Any) -> Driven:
    """Listened, heard no leader, sent ELECTION to the higher ids and waits for their OK."""
    node = idle(node_id, epoch, **kw)
    node.fire(TimerId.LISTEN, at_ms=HEARD_MS + node.settings.listen_ms)
    assert node.role is Role.CANDIDATE
    return node


def leader(node_id: int = 5, epoch: int = 4, members: tuple[int, ...] = MEMBERS_5, **kw: Any) -> Driven:
    """Leads `epoch`: won the pre-vote and the proposal with the promises of the lowest peers, which then
    confirmed them (echoing the winner's stamp). Every lower peer was heard at HEARD_MS and again at
    LEADER_MS, when it won (higher ids never were: down)."""
    node = Driven(ALGORITHM, node_id, members=members, epoch=epoch - 1, **kw)
    node.start(STARTED_MS)
    node.now_ms = HEARD_MS
    node.hear(*(p for p in node.settings.peer_ids if p < node_id))
    node.fire(TimerId.LISTEN, at_ms=HEARD_MS + node.settings.listen_ms)
    voters = [p for p in node.settings.peer_ids if p != node_id][: node.settings.quorum_size - 1]
    for phase_pre_vote in (True, False):
        for voter in voters:
            node.receive(promise(voter, epoch, pre_vote=phase_pre_vote, granted=True, known_epoch=epoch - 1))
    for voter in voters:
        node.receive(confirmed(voter, epoch, echo_ms=node.now_ms))
    assert node.role is Role.LEADER and node.durable.epoch == epoch, node.view()
    node.hear(*(p for p in node.settings.peer_ids if p < node_id), leader_id=node_id)
    return node


def advance(node: Driven, to_ms: int, silent: tuple[int, ...] = (), every_ms: int = 1000) -> None:
    """Let time pass up to `to_ms` with every peer but `silent` heartbeating every `every_ms` (naming the
    node's current leader as theirs), so that only the silent ones can become suspected."""
    at_ms = node.now_ms
    while at_ms <= to_ms:
        node.now_ms = at_ms
        leader_id = node.leader_id
        for peer in node.settings.peer_ids:
            if peer not in silent:
                echo_ms = at_ms if leader_id == node.node_id else None  # followers echo the leader's stamp
                node.receive(hb(peer, node.durable.epoch, leader_id, echo_ms=echo_ms))
        at_ms += every_ms
