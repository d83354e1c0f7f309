"""Ring transitions, one table row each: a given state (built by real events only), one event, and what
the node must do about it.

A row's expectation is the protocol-relevant projection of the actions, in order: messages sent
(`Send`/`Broadcast`), states persisted, election timers armed, and journal events by name. Heartbeats and
the detector's housekeeping are left out; so is the CancelTimer noise of the shared base. Nodes are
driven by harness.Driven, which checks every step for persist-before-send. Members 1..5, default timers
(heartbeat 1 s, failure 3 s, election 5 s). Epochs are ballots, round x 5 + rank: from epoch 0, node k
proposes 5 + (k - 1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from node.algorithms import ALGORITHMS
from node.algorithms.base import ElectionNode
from node.algorithms.ring import Phase, Ring
from node.core.actions import Broadcast, Log, Persist, Role, RoleChanged, Send, SetTimer
from node.core.events import ShutdownRequested, TimerId
from node.core.messages import Coordinator, Election, Heartbeat, Message, MsgType
from node.core.state import DurableState

from .harness import (
    Driven,
    Logged,
    confirm,
    confirmed,
    coordinator,
    grant,
    hb,
    pre_vote,
    propose,
    resign,
    token,
    token_refused,
)

ALGORITHM = "ring"
MEMBERS = (1, 2, 3, 4, 5)
HEARD_MS = 100
EVENT_MS = 1_000  # rows happen here: every peer heard recently, the listen window not over yet
LISTEN_MS = HEARD_MS + 2_000
RELAYED_MS = 1_000  # when a `relaying` node got its token (the end of `idle`)
ELECTION_TIMERS = (TimerId.ELECTION, TimerId.COORDINATOR, TimerId.PROPOSAL)


def driven(node_id: int, epoch: int = 0, voted_for: int | None = None, **overrides: Any) -> Driven:
    """One Ring driven by hand in virtual time (harness.Driven: it remembers its durable state as last
    persisted and checks persist-before-send on every step)."""
    return Driven(ALGORITHM, node_id, overrides.pop("members", MEMBERS), epoch, voted_for, **overrides)


def ring_of(node: Driven) -> Ring:
    assert isinstance(node.algorithm, Ring)
    return node.algorithm


# ---------------------------------------------------------------------------------------------- projection


@dataclass(frozen=True, slots=True)
class Timer:
    timer: TimerId
    after_ms: int


def project(node: Driven, actions: Sequence[Any]) -> list[Any]:
    out: list[Any] = []
    for action in actions:
        if isinstance(action, Send) and not isinstance(action.message, Heartbeat):
            out.append((action.peer_id, action.message))
        elif isinstance(action, Broadcast) and not isinstance(action.message, Heartbeat):
            out.append(("all", action.message))
        elif isinstance(action, Persist):
            out.append(action.state)
        elif isinstance(action, SetTimer) and action.timer is TimerId.BACKOFF:
            out.append("backoff")  # its length is the shared jittered backoff, tested with the base
        elif isinstance(action, SetTimer) and action.timer in ELECTION_TIMERS:
            out.append(Timer(action.timer, action.at_ms - node.now_ms))
        elif isinstance(action, Log | Logged) and action.event not in ("peer_recovered", "peer_suspected"):
            out.append(action.event)
    return out


def coord(sender: int, epoch: int, leader_id: int, initiator: int) -> Coordinator:
    """A COORDINATOR of the ring round, as relayed by `sender`."""
    return coordinator(leader_id, epoch, sender=sender, initiator=initiator)


# ---------------------------------------------------------------------------------------------- given states


def idle(
    node_id: int,
    epoch: int = 0,
    voted_for: int | None = None,
    heard: Sequence[int] | None = None,
    **overrides: Any,
) -> Driven:
    """Started a failure timeout before 0 (its start-up blackout is over); heard `heard` (default: every
    peer) at HEARD_MS, none claiming to lead."""
    node = driven(node_id, epoch, voted_for, **overrides)
    node.start(-node.settings.failure_timeout_ms)
    peers = [p for p in MEMBERS if p != node_id] if heard is None else heard
    node.hear(*peers, at_ms=HEARD_MS)
    node.now_ms = EVENT_MS
    return node


def relaying(node_id: int, message: Election, **kw: Any) -> Driven:
    """Idle, then promised `message`'s election and passed its token on."""
    node = idle(node_id, **kw)
    node.receive(message)
    assert ring_of(node).phase is Phase.AWAIT_COORDINATOR
    return node


def initiating(node_id: int = 3, **kw: Any) -> Driven:
    """Listened in vain, won the pre-vote (grants from its two successors), sent its token on."""
    node = idle(node_id, **kw)
    node.fire(TimerId.LISTEN, at_ms=LISTEN_MS)
    peers = kw.get("heard") or [p for p in ring_of(node).ring if p != node_id]
    granters = peers[: node.settings.quorum_size - 1]
    for peer in granters:
        node.receive(grant(peer, node.durable.epoch + 1))
    assert ring_of(node).phase is Phase.AWAIT_TOKEN
    return node


def following(node_id: int, leader_id: int = 5, epoch: int = 4) -> Driven:
    node = idle(node_id, epoch=epoch)
    node.receive(hb(leader_id, epoch, leader_id))
    assert node.leader_id == leader_id
    return node


def leading(node_id: int = 5, **kw: Any) -> Driven:
    """Initiated; its token came back listing it and every lower id (a majority), so it won, and those
    voters confirmed their promises (echoing its stamp)."""
    node = initiating(node_id, **kw)
    ids = (node_id, *(p for p in ring_of(node).ring if p < node_id))
    node.receive(token(ids[-1], node.durable.epoch, node_id, *ids))
    for voter in ids[1:]:
        node.receive(confirmed(voter, node.durable.epoch, echo_ms=node.now_ms))
    assert node.role is Role.LEADER
    return node


# ---------------------------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Row:
    name: str
    given: Callable[[], Driven]
    when: Callable[[Driven], list[Any]]
    then: list[Any]
    phase: Phase | None = None
    role: Role | None = None


ROWS = [
    # ---- phase 0 -> 1: the pre-vote won, the token leaves
    Row(
        "pre-vote won: the ballot is persisted, then the token goes to the successor",
        lambda: _after_listen(3),
        lambda n: n.receive(grant(4, 1)) + n.receive(grant(5, 1)),
        [DurableState(7, 3), Timer(TimerId.ELECTION, 5000), (4, token(3, 7, 3, 3))],
        Phase.AWAIT_TOKEN,
        Role.CANDIDATE,
    ),
    Row(
        "pre-vote won: suspected successors are skipped, and the ring wraps round",
        lambda: _after_listen(4, heard=[1, 2, 3]),
        lambda n: n.receive(grant(1, 1)) + n.receive(grant(2, 1)),
        [DurableState(8, 4), Timer(TimerId.ELECTION, 5000), (1, token(4, 8, 4, 4))],
        Phase.AWAIT_TOKEN,
    ),
    # ---- phase 1 on the way: promise, append, pass on
    Row(
        "token: promise persisted before the token goes on with our id appended",
        lambda: idle(2),
        lambda n: n.receive(token(1, 5, 1, 1)),
        [DurableState(5, 1), Timer(TimerId.COORDINATOR, 5000), (3, token(2, 5, 1, 1, 2))],
        Phase.AWAIT_COORDINATOR,
        Role.CANDIDATE,
    ),
    Row(
        "token: two adjacent failed successors (3 suspected, 4 hinted) are skipped",
        lambda: _hinted(idle(2, heard=[1, 4, 5]), 4),
        lambda n: n.receive(token(1, 5, 1, 1)),
        [DurableState(5, 1), Timer(TimerId.COORDINATOR, 5000), (5, token(2, 5, 1, 1, 2))],
        Phase.AWAIT_COORDINATOR,
    ),
    Row(
        "token: the ring wraps round from the highest id to the lowest",
        lambda: idle(5),
        lambda n: n.receive(token(4, 7, 3, 3, 4)),
        [DurableState(7, 3), Timer(TimerId.COORDINATOR, 5000), (1, token(5, 7, 3, 3, 4, 5))],
    ),
    Row(
        "token: never passed beyond its initiator, which gets it even when suspected",
        lambda: idle(2, heard=[1, 4, 5]),
        lambda n: n.receive(token(1, 7, 3, 3, 4, 5, 1)),
        [DurableState(7, 3), Timer(TimerId.COORDINATOR, 5000), (3, token(2, 7, 3, 3, 4, 5, 1, 2))],
    ),
    Row(
        "token: a node that already promised this election (restart mid-election) passes it on again",
        lambda: idle(2, epoch=5, voted_for=1),
        lambda n: n.receive(token(1, 5, 1, 1)),
        [Timer(TimerId.COORDINATOR, 5000), (3, token(2, 5, 1, 1, 2))],
        Phase.AWAIT_COORDINATOR,
    ),
    # ---- phase 1 refusals: the token dies, the initiator hears why
    Row(
        "token with a stale epoch: refused, nothing persisted",
        lambda: idle(2, epoch=9),
        lambda n: n.receive(token(1, 5, 1, 1)),
        ["message_rejected", (1, token_refused(2, 5, 9))],
        Phase.IDLE,
    ),
    Row(
        "token for an epoch already promised to another initiator: refused",
        lambda: idle(2, epoch=7, voted_for=3),
        lambda n: n.receive(token(1, 7, 1, 1)),
        ["message_rejected", (1, token_refused(2, 7, 7))],
        Phase.IDLE,
    ),
    Row(
        "token for an epoch accepted from a leader: refused",
        lambda: following(2, leader_id=5, epoch=9),
        lambda n: n.receive(token(1, 9, 4, 4, 5, 1)),
        ["message_rejected", (4, token_refused(2, 9, 9))],
        role=Role.FOLLOWER,
    ),
    Row(
        "RESIGN of our leader, the highest live id: it runs at once (no pre-vote), its token goes round",
        lambda: following(4, leader_id=5, epoch=4),
        lambda n: n.receive(resign(5, 4)),
        [
            "leader_lost",
            "election_started",
            DurableState(8, 4),
            Timer(TimerId.ELECTION, 5000),
            (1, token(4, 8, 4, 4)),
        ],
        Phase.AWAIT_TOKEN,
        Role.CANDIDATE,
    ),
    Row(
        "RESIGN of our leader, a higher id is live: no rival token, wait for the successor's COORDINATOR",
        lambda: following(2, leader_id=5, epoch=4),
        lambda n: n.receive(resign(5, 4)),
        ["leader_lost", "election_started", Timer(TimerId.COORDINATOR, 5000)],
        Phase.AWAIT_COORDINATOR,
        Role.CANDIDATE,
    ),
    Row(
        "after a RESIGN, every higher id we waited for is unreachable: a full election (pre-vote first),"
        " which fails at once here since only 1 and 2 are left to answer",
        lambda: _then_unreachable(_then(following(2, leader_id=5, epoch=4), resign(5, 4)), 3),
        lambda n: n.unreachable(4),
        [
            "election_started",
            ("all", pre_vote(2, 5)),
            Timer(TimerId.PROPOSAL, 5000),
            "election_failed",
            "backoff",
        ],
        role=Role.CANDIDATE,
    ),
    Row(
        "token while following a live leader: refused (no disruption on rejoin)",
        lambda: following(2, leader_id=5, epoch=4),
        lambda n: n.receive(token(1, 10, 1, 1)),
        ["message_rejected", (1, token_refused(2, 10, 4))],
        role=Role.FOLLOWER,
    ),
    Row(
        "token at a leader: refused, it keeps leading",
        lambda: leading(5),
        lambda n: n.receive(token(4, 12, 3, 3, 4)),
        ["message_rejected", (3, token_refused(5, 12, 9))],
        role=Role.LEADER,
    ),
    Row(
        "token at a leader with preempt, from a higher initiator: it steps down and promises",
        lambda: leading(3, preempt=True),
        lambda n: n.receive(token(2, 14, 4, 4, 5, 1, 2)),
        [
            "stepped_down",
            DurableState(14, 4),
            Timer(TimerId.COORDINATOR, 5000),
            (4, token(3, 14, 4, 4, 5, 1, 2, 3)),
        ],
        Phase.AWAIT_COORDINATOR,
        Role.CANDIDATE,
    ),
    # ---- copies and garbage
    Row(
        "duplicate token (a network copy): dropped",
        lambda: relaying(2, token(1, 5, 1, 1)),
        lambda n: n.receive(token(1, 5, 1, 1)),
        [],
        Phase.AWAIT_COORDINATOR,
    ),
    Row(
        "a copy that already lists us (resent round a repaired ring): dropped",
        lambda: relaying(2, token(1, 5, 1, 1)),
        lambda n: n.receive(token(4, 5, 1, 1, 2, 4)),
        [],
    ),
    Row(
        "malformed token (the list does not start at its initiator): dropped and logged",
        lambda: idle(2),
        lambda n: n.receive(token(1, 5, 1, 3, 1)),
        ["message_rejected"],
        Phase.IDLE,
    ),
    Row(
        "malformed token (a non-member listed): dropped and logged",
        lambda: idle(2),
        lambda n: n.receive(token(1, 5, 1, 1, 42)),
        ["message_rejected"],
        Phase.IDLE,
    ),
    # ---- the token back at its initiator (node 3, epoch 7)
    Row(
        "token back with a majority, another node wins: COORDINATOR handed to the winner",
        lambda: initiating(3),
        lambda n: n.receive(token(2, 7, 3, 3, 4, 5, 1, 2)),
        ["election_decided", (5, coord(3, 7, 5, 3)), Timer(TimerId.COORDINATOR, 5000)],
        Phase.AWAIT_COORDINATOR,
        Role.CANDIDATE,
    ),
    Row(
        "token back with exactly a majority (3 of 5, two skipped): valid",
        lambda: initiating(3),
        lambda n: n.receive(token(1, 7, 3, 3, 4, 1)),
        ["election_decided", (4, coord(3, 7, 4, 3)), Timer(TimerId.COORDINATOR, 5000)],
    ),
    Row(
        "token back, the initiator is the highest id: it won, and asks its voters to confirm",
        lambda: initiating(5),
        lambda n: n.receive(token(4, 9, 5, 5, 1, 2, 3, 4)),
        ["election_decided", ("all", confirm(5, 9, LISTEN_MS)), Timer(TimerId.PROPOSAL, 3000)],
        Phase.IDLE,
        Role.CANDIDATE,
    ),
    Row(
        "a majority confirmed: it leads and starts the COORDINATOR round",
        lambda: _then(initiating(5), token(4, 9, 5, 5, 1, 2, 3, 4)),
        lambda n: [*n.receive(confirmed(1, 9, LISTEN_MS)), *n.receive(confirmed(4, 9, LISTEN_MS))],
        ["became_leader", (1, coord(5, 9, 5, 5))],
        Phase.IDLE,
        Role.LEADER,
    ),
    Row(
        "token back short of a majority, skipped nodes we can see: the token goes on to them",
        lambda: initiating(3),
        lambda n: n.receive(token(4, 7, 3, 3, 4)),
        ["ring_repaired", (5, token(3, 7, 3, 3, 4))],
        Phase.AWAIT_TOKEN,
        Role.CANDIDATE,
    ),
    Row(
        "token back without a majority, nobody else to ask: nobody leads, election_failed, backoff",
        lambda: _hinted(initiating(3, heard=[4, 5]), 5),
        lambda n: n.receive(token(4, 7, 3, 3, 4)),
        ["election_failed", "backoff"],
        Phase.IDLE,
        Role.CANDIDATE,
    ),
    Row(
        "token lost (ELECTION timer): election_failed, backoff",
        lambda: initiating(3),
        lambda n: n.fire(TimerId.ELECTION, at_ms=_keep_alive(n, LISTEN_MS + 5000)),
        ["election_failed", "backoff"],
        Phase.IDLE,
    ),
    Row(
        "a late copy of a token whose election is over: ignored",
        lambda: _decided(initiating(3)),
        lambda n: n.receive(token(2, 7, 3, 3, 4, 5, 1, 2)),
        [],
        Phase.AWAIT_COORDINATOR,
    ),
    Row(
        "a token of an earlier attempt: ignored",
        lambda: _retried(initiating(3)),
        lambda n: n.receive(token(2, 7, 3, 3, 4, 5, 1, 2)),
        [],
        Phase.AWAIT_TOKEN,
    ),
    Row(
        "refused on the way: the attempt fails at once (no timeout wait)",
        lambda: initiating(3),
        lambda n: n.receive(token_refused(4, 7, 12)),
        ["election_failed", "backoff"],
        Phase.IDLE,
    ),
    Row(
        "a refusal for another epoch: ignored",
        lambda: initiating(3),
        lambda n: n.receive(token_refused(4, 2, 12)),
        [],
        Phase.AWAIT_TOKEN,
    ),
    # ---- concurrent elections: the higher epoch absorbs
    Row(
        "an initiator meets a higher election: gives up its own, promises and passes it on",
        lambda: initiating(3),
        lambda n: n.receive(token(2, 9, 5, 5, 1, 2)),
        [
            "election_absorbed",
            DurableState(9, 5),
            Timer(TimerId.COORDINATOR, 5000),
            (4, token(3, 9, 5, 5, 1, 2, 3)),
        ],
        Phase.AWAIT_COORDINATOR,
    ),
    Row(
        "an initiator meets a lower election: refuses it, its own goes on",
        lambda: initiating(3),
        lambda n: n.receive(token(2, 6, 2, 2)),
        ["message_rejected", (2, token_refused(3, 6, 7))],
        Phase.AWAIT_TOKEN,
    ),
    Row(
        "a node that promised a lower election promises a higher one",
        lambda: relaying(2, token(1, 5, 1, 1)),
        lambda n: n.receive(token(1, 9, 5, 5, 1)),
        [DurableState(9, 5), Timer(TimerId.COORDINATOR, 5000), (3, token(2, 9, 5, 5, 1, 2))],
        Phase.AWAIT_COORDINATOR,
    ),
    # ---- phase 2: the COORDINATOR round (election of epoch 7 by initiator 3, winner 5)
    Row(
        "the winner's promise is exactly (E, initiator): it asks the voters to confirm",
        lambda: relaying(5, token(4, 7, 3, 3, 4)),
        lambda n: n.receive(coord(3, 7, 5, 3)),
        [("all", confirm(5, 7, RELAYED_MS, initiator=3)), Timer(TimerId.PROPOSAL, 3000)],
        Phase.IDLE,
        Role.CANDIDATE,
    ),
    Row(
        "the winner confirmed by a majority of the election's voters takes office, then starts the round",
        lambda: _then(relaying(5, token(4, 7, 3, 3, 4)), coord(3, 7, 5, 3)),
        lambda n: [*n.receive(confirmed(3, 7, RELAYED_MS)), *n.receive(confirmed(4, 7, RELAYED_MS))],
        ["became_leader", (1, coord(5, 7, 5, 3))],
        Phase.IDLE,
        Role.LEADER,
    ),
    Row(
        "a copy of the COORDINATOR that chose the winner does not restart its confirmation",
        lambda: _then(relaying(5, token(4, 7, 3, 3, 4)), coord(3, 7, 5, 3)),
        lambda n: n.receive(coord(3, 7, 5, 3)),
        [],
        Phase.IDLE,
        Role.CANDIDATE,
    ),
    Row(
        "a voter of the election confirms the winner's stamp (the initiator too)",
        lambda: _then(initiating(3), token(1, 7, 3, 3, 4, 5, 1)),
        lambda n: n.receive(confirm(5, 7, 4321, initiator=3)),
        [(5, confirmed(3, 7, echo_ms=4321))],
        Phase.AWAIT_COORDINATOR,
        Role.CANDIDATE,
    ),
    Row(
        "the winner has promised a higher epoch since: it does not lead, the round stops",
        lambda: _then(relaying(5, token(4, 7, 3, 3, 4)), token(4, 11, 2, 2, 3, 4)),
        lambda n: n.receive(coord(3, 7, 5, 3)),
        ["message_rejected"],
        Phase.AWAIT_COORDINATOR,
        Role.CANDIDATE,
    ),
    Row(
        "a node named winner that never promised this election: it does not lead",
        lambda: idle(5, epoch=7),
        lambda n: n.receive(coord(3, 7, 5, 3)),
        ["message_rejected"],
        role=Role.FOLLOWER,
    ),
    Row(
        "a follower on the way records the leader and passes the round on",
        lambda: relaying(1, token(5, 7, 3, 3, 4, 5)),
        lambda n: n.receive(coord(5, 7, 5, 3)),
        ["leader_accepted", (2, coord(1, 7, 5, 3))],
        Phase.IDLE,
        Role.FOLLOWER,
    ),
    Row(
        "the round stops before it would reach the leader again",
        lambda: relaying(4, token(3, 7, 3, 3)),
        lambda n: n.receive(coord(3, 7, 5, 3)),
        ["leader_accepted"],
        role=Role.FOLLOWER,
    ),
    Row(
        "the round skips a suspected node and still stops before the leader",
        lambda: relaying(2, token(1, 7, 3, 3, 4, 5, 1), heard=[1, 4, 5]),
        lambda n: n.receive(coord(1, 7, 5, 3)),
        ["leader_accepted", (4, coord(2, 7, 5, 3))],
    ),
    Row(
        "a duplicate COORDINATOR: dropped",
        lambda: _then(relaying(1, token(5, 7, 3, 3, 4, 5)), coord(5, 7, 5, 3)),
        lambda n: n.receive(coord(5, 7, 5, 3)),
        [],
        role=Role.FOLLOWER,
    ),
    Row(
        "a stale COORDINATOR: rejected (its sender fenced), passed on for the others to judge",
        lambda: idle(1, epoch=9),
        lambda n: n.receive(coord(5, 7, 5, 3)),
        ["message_rejected", (2, coord(1, 7, 5, 3))],
        role=Role.FOLLOWER,
    ),
    Row(
        "a stale COORDINATOR is passed on once: a copy of it is dropped",
        lambda: _then(idle(1, epoch=9), coord(5, 7, 5, 3)),
        lambda n: n.receive(coord(5, 7, 5, 3)),
        [],
        role=Role.FOLLOWER,
    ),
    # ---- a node that may not vote yet passes the token on (it must not end the round)
    Row(
        "start-up blackout: the token goes on without our id or any promise",
        lambda: _restarted(2, epoch=3),
        lambda n: n.receive(token(1, 5, 1, 1)),
        ["election_abstained", (3, token(2, 5, 1, 1, abstained=(2,)))],
        Phase.IDLE,
    ),
    Row(
        "start-up blackout: a token of an epoch we already hold is still refused (the initiator learns ours)",
        lambda: _restarted(2, epoch=9),
        lambda n: n.receive(token(1, 5, 1, 1)),
        ["message_rejected", (1, token_refused(2, 5, 9))],
    ),
    Row(
        "start-up blackout: a copy of a token we passed on is dropped",
        lambda: _then(_restarted(2, epoch=3), token(1, 5, 1, 1)),
        lambda n: n.receive(token(5, 5, 1, 1, 3, 4)),
        [],
    ),
    Row(
        "initiator: a token back short of a majority is not sent again to the nodes that abstained",
        initiating,
        lambda n: n.receive(token(2, 7, 3, 3, 4, abstained=(5, 1, 2))),
        ["election_failed", "backoff"],
        Phase.IDLE,
    ),
    Row(
        "a token listing a node both as voter and as abstainer is malformed",
        lambda: idle(3),
        lambda n: n.receive(token(2, 5, 1, 1, 2, abstained=(2,))),
        ["message_rejected"],
        Phase.IDLE,
    ),
    # ---- the incumbent's re-election (base._reelect)
    Row(
        "a leader that hears a higher epoch nobody leads re-runs for its next ballot above it, stamped",
        leading,
        lambda n: n.receive(hb(3, 12, None)),
        [
            "reelection_started",
            DurableState(19, 5),
            ("all", propose(5, 19, sent_ms=LISTEN_MS)),
            Timer(TimerId.PROPOSAL, 5000),
        ],
        Phase.IDLE,
        Role.CANDIDATE,
    ),
    Row(
        "a COORDINATOR naming a non-member: dropped, not followed",
        lambda: idle(1),
        lambda n: n.receive(coord(5, 7, 42, 3)),
        ["message_rejected"],
        role=Role.FOLLOWER,
    ),
    # ---- ring repair: the receiver of the last ring message failed
    Row(
        "repair: the successor holding our token is refused: resend to the next live node",
        lambda: relaying(2, token(1, 5, 1, 1)),
        lambda n: n.unreachable(3),
        ["ring_repaired", (4, token(2, 5, 1, 1, 2))],
        Phase.AWAIT_COORDINATOR,
    ),
    Row(
        "repair across two adjacent failures: 3 refused, then 4 refused, the token reaches 5",
        lambda: _then_unreachable(relaying(2, token(1, 5, 1, 1)), 3),
        lambda n: n.unreachable(4),
        ["ring_repaired", (5, token(2, 5, 1, 1, 2))],
    ),
    Row(
        "repair of the initiator's own token",
        lambda: initiating(3),
        lambda n: n.unreachable(4),
        ["ring_repaired", (5, token(3, 7, 3, 3))],
        Phase.AWAIT_TOKEN,
    ),
    Row(
        "repair: a token next to its initiator is not resent past it",
        lambda: relaying(2, token(1, 7, 3, 3, 4, 5, 1)),
        lambda n: n.unreachable(3),
        [],
    ),
    Row(
        "repair of the COORDINATOR round",
        lambda: _then(relaying(1, token(5, 7, 3, 3, 4, 5)), coord(5, 7, 5, 3)),
        lambda n: n.unreachable(2),
        ["ring_repaired", (3, coord(1, 7, 5, 3))],
    ),
    Row(
        "no repair when another node fails",
        lambda: relaying(2, token(1, 5, 1, 1)),
        lambda n: n.unreachable(5),
        [],
    ),
    Row(
        "no repair once the receiver had failure_timeout to pass it on",
        lambda: _later(relaying(2, token(1, 5, 1, 1)), 3_500),
        lambda n: n.unreachable(3),
        [],
        Phase.AWAIT_COORDINATOR,
    ),
    Row(
        "the winner the initiator handed over to is unreachable: a new election at once",
        lambda: _decided(initiating(3)),
        lambda n: n.unreachable(5),
        ["election_started", ("all", pre_vote(3, 8)), Timer(TimerId.PROPOSAL, 5000)],
        role=Role.CANDIDATE,
    ),
]


def _after_listen(node_id: int, **kw: Any) -> Driven:
    node = idle(node_id, **kw)
    node.fire(TimerId.LISTEN, at_ms=LISTEN_MS)
    return node


def _restarted(node_id: int, epoch: int) -> Driven:
    """Restarted at 0 with `epoch` on disk and heard every peer (none leading): inside its start-up
    blackout (failure_timeout) at EVENT_MS."""
    node = driven(node_id, epoch)
    node.start(0)
    node.hear(*(p for p in MEMBERS if p != node_id), at_ms=HEARD_MS)
    node.now_ms = EVENT_MS
    return node


def _hinted(node: Driven, peer_id: int) -> Driven:
    node.unreachable(peer_id)
    return node


def _then(node: Driven, message: Message) -> Driven:
    node.receive(message)
    return node


def _then_unreachable(node: Driven, peer_id: int) -> Driven:
    node.unreachable(peer_id)
    return node


def _decided(node: Driven) -> Driven:
    """The initiator's token came back from everyone; it handed COORDINATOR to node 5."""
    epoch = node.durable.epoch
    node.receive(token(2, epoch, 3, 3, 4, 5, 1, 2))
    assert ring_of(node).phase is Phase.AWAIT_COORDINATOR
    return node


def _retried(node: Driven) -> Driven:
    """The token was lost; after the backoff the initiator runs again with a higher ballot."""
    node.fire(TimerId.ELECTION, at_ms=_keep_alive(node, node.now_ms + 5000))
    node.fire(TimerId.BACKOFF, at_ms=node.now_ms + 100)
    node.receive(grant(4, node.durable.epoch + 1, node.durable.epoch))
    node.receive(grant(5, node.durable.epoch + 1, node.durable.epoch))
    assert node.durable == DurableState(12, 3) and ring_of(node).phase is Phase.AWAIT_TOKEN
    return node


def _later(node: Driven, after_ms: int) -> Driven:
    node.now_ms = _keep_alive(node, node.now_ms + after_ms)
    return node


def _keep_alive(node: Driven, until_ms: int) -> int:
    """Hear every peer each second until `until_ms` (so nobody is suspected); returns `until_ms`."""
    while node.now_ms + 1000 < until_ms:
        node.hear(*node.settings.peer_ids, at_ms=node.now_ms + 1000)
    return until_ms


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_transition(row: Row) -> None:
    node = row.given()
    actions = row.when(node)
    assert project(node, actions) == row.then
    if row.phase is not None:
        assert ring_of(node).phase is row.phase
    if row.role is not None:
        assert node.role is row.role


# ---------------------------------------------------------------------------------------------- beyond rows


def test_a_refusal_teaches_the_initiator_to_propose_above_the_refusers_epoch() -> None:
    node = initiating(3)
    node.receive(token_refused(4, 7, 12))
    node.fire(TimerId.BACKOFF, at_ms=node.now_ms + 100)
    actions = node.receive(grant(4, 13, 12)) + node.receive(grant(5, 13, 12))
    assert project(node, actions) == [
        DurableState(17, 3),
        Timer(TimerId.ELECTION, 5000),
        (4, token(3, 17, 3, 3)),
    ]


def test_the_initiator_decides_once_even_when_two_copies_come_back() -> None:
    node = initiating(3)
    first = node.receive(token(2, 7, 3, 3, 4, 5, 1, 2))
    second = node.receive(token(1, 7, 3, 3, 4, 1))  # a copy that took a repaired path: other winner
    assert (5, coord(3, 7, 5, 3)) in project(node, first)
    assert project(node, second) == []


def test_a_restarted_initiator_ignores_its_old_token() -> None:
    node = idle(3, epoch=7, voted_for=3)  # it had sent the token of epoch 7, then crashed
    assert project(node, node.receive(token(2, 7, 3, 3, 4, 5, 1, 2))) == []
    assert node.role is not Role.LEADER


def test_a_node_recovering_mid_election_joins_instead_of_starting_its_own() -> None:
    node = idle(2, epoch=5, voted_for=1, heard=[1, 3, 4, 5])
    node.receive(token(1, 5, 1, 1))
    assert project(node, node.fire(TimerId.LISTEN, at_ms=LISTEN_MS)) == []
    assert ring_of(node).phase is Phase.AWAIT_COORDINATOR


def test_a_node_that_promises_drops_its_own_pre_vote() -> None:
    node = _after_listen(3)  # its pre-vote for epoch 1 is out
    node.receive(token(2, 9, 5, 5, 1, 2))
    late_grants = node.receive(grant(4, 1)) + node.receive(grant(5, 1))
    assert project(node, late_grants) == []
    assert node.durable == DurableState(9, 5) and ring_of(node).phase is Phase.AWAIT_COORDINATOR


def test_a_stop_right_after_losing_quorum_publishes_the_step_down_and_resigns_nothing() -> None:
    node = leading(5)
    actions = node.step(ShutdownRequested(node.now_ms + 10_000))  # resumed from a long pause: SIGTERM
    assert project(node, actions)[-2:] == ["quorum_lost", "stepped_down"]
    assert actions[-1] == RoleChanged(Role.NO_QUORUM, None, 9)


def test_a_leader_that_stops_resigns_its_epoch() -> None:
    node = leading(5)
    actions = node.step(ShutdownRequested(node.now_ms + 100))
    assert project(node, actions) == [("all", resign(5, 9)), "resigned"]
    assert actions[-1] == RoleChanged(Role.FOLLOWER, None, 9)


def test_a_one_node_cluster_elects_itself() -> None:
    node = driven(1, members=(1,))
    node.start(0)
    actions = node.fire(TimerId.LISTEN, at_ms=3000)  # the start-up blackout (failure_timeout) is over
    assert project(node, actions) == [
        "election_started",
        ("all", pre_vote(1, 1)),
        Timer(TimerId.PROPOSAL, 5000),
        DurableState(1, 1),
        Timer(TimerId.ELECTION, 5000),
        "election_decided",
        ("all", confirm(1, 1, 3000)),  # to nobody: it is its own majority
        Timer(TimerId.PROPOSAL, 3000),
        "became_leader",
    ]
    assert node.role is Role.LEADER


@pytest.mark.parametrize(
    ("members", "node_id", "epoch", "ballot"),
    [
        (MEMBERS, 1, 0, 5),
        (MEMBERS, 5, 0, 9),
        (MEMBERS, 3, 7, 12),
        (MEMBERS, 3, 12, 17),
        (MEMBERS, 1, 9, 10),
        (MEMBERS, 5, 9, 14),
        ((10, 20, 30), 20, 0, 4),
        ((10, 20, 30), 10, 4, 6),
        ((7,), 7, 41, 42),
    ],
)
def test_ballots_are_unique_per_node_and_above_the_known_epoch(
    members: tuple[int, ...], node_id: int, epoch: int, ballot: int
) -> None:
    ring = ring_of(driven(node_id, members=members))
    assert ring.ballot_above(epoch) == ballot
    assert ballot > epoch and ballot % len(members) == sorted(members).index(node_id)


def test_two_nodes_never_propose_the_same_epoch() -> None:
    rings = [ring_of(driven(i)) for i in MEMBERS]
    proposed = [ring.ballot_above(epoch) for ring in rings for epoch in range(60)]
    owners = {
        ballot: {r.node_id for r in rings if ballot % 5 == r.ring.index(r.node_id)} for ballot in proposed
    }
    assert all(len(nodes) == 1 for nodes in owners.values())


def test_the_transition_table_routes_ring_messages_to_the_ring() -> None:
    ring = ring_of(driven(1))
    routed = {msg_type: getattr(handler, "__func__", None) for msg_type, handler in ring.handlers.items()}
    assert routed[MsgType.ELECTION] is Ring._on_token
    assert routed[MsgType.COORDINATOR] is Ring._on_coordinator_round
    assert routed[MsgType.TOKEN_REFUSED] is Ring._on_token_refused
    assert routed[MsgType.PRE_VOTE_ANSWER] is ElectionNode._on_pre_vote_answer  # the shared pre-vote
    assert routed[MsgType.PROPOSE] is ElectionNode._on_propose  # the shared promise rules
    assert routed[MsgType.HEARTBEAT] is ElectionNode._on_heartbeat
    assert MsgType.OK not in routed


def test_ring_is_registered_under_its_config_name() -> None:
    assert ALGORITHMS["ring"] is Ring
    assert issubclass(ALGORITHMS["bully"], ElectionNode)
