"""Bully transitions, one table row each (h11 / etcd-raft style), including every rejection path.

A row names a given state (built by real events, see states.py), one event, and the exact actions that
event must produce, in order. `Log` actions are compared by their journal fields (event, level, peer,
epoch, leader), not their prose; `CancelTimer`s of timers that were not armed are dropped (a driver
ignores them). Every step is also checked for persist-before-send (harness.check_persist_before_send).

Defaults (Settings): heartbeat 1000 ms, failure 3000 ms, election 5000 ms, listen 2 x heartbeat, five
members 1..5.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from node.core.actions import (
    Broadcast,
    CancelTimer,
    LogLevel,
    Persist,
    Role,
    RoleChanged,
    Send,
    SetTimer,
)
from node.core.events import TimerId
from node.core.messages import Message, PreVoteAnswer, Promise, Propose
from node.core.state import DurableState

from .harness import (
    Driven,
    Logged,
    confirm,
    confirm_refused,
    confirmed,
    coordinator,
    election,
    hb,
    ok,
    pre_vote,
    promise,
    propose,
    resign,
)
from .states import ALGORITHM, LEADER_MS, advance, candidate_awaiting_ok, follower, idle, leader, started

INFO, NOTICE, WARNING = LogLevel.INFO, LogLevel.NOTICE, LogLevel.WARNING
HEARTBEAT, DETECTOR, LISTEN = TimerId.HEARTBEAT, TimerId.DETECTOR, TimerId.LISTEN
ELECTION, COORDINATOR, PROPOSAL, BACKOFF = (
    TimerId.ELECTION,
    TimerId.COORDINATOR,
    TimerId.PROPOSAL,
    TimerId.BACKOFF,
)
PRE_VOTE_DEFER = TimerId.PRE_VOTE_DEFER
LEADER, FOLLOWER, CANDIDATE, NO_QUORUM = Role.LEADER, Role.FOLLOWER, Role.CANDIDATE, Role.NO_QUORUM


def log(
    event: str,
    level: LogLevel = INFO,
    *,
    epoch: int,
    peer: int | None = None,
    leader: int | None = None,
) -> Logged:
    return Logged(event, level, peer, epoch, leader)


def granted(
    voter: int, epoch: int, *, pre: bool, known: int, echo_ms: int | None = None
) -> Promise | PreVoteAnswer:
    return promise(voter, epoch, pre_vote=pre, granted=True, known_epoch=known, echo_ms=echo_ms)


def refused(voter: int, epoch: int, *, pre: bool, known: int) -> Promise | PreVoteAnswer:
    return promise(voter, epoch, pre_vote=pre, granted=False, known_epoch=known)


@dataclass(frozen=True)
class Row:
    id: str
    given: Callable[[], Driven]
    when: Callable[[Driven], list[Any]]
    then: list[Any]
    role: Role | None = None  # the role afterwards, when the row is about it
    durable: DurableState | None = None  # the durable state afterwards, when the row is about it


# ------------------------------------------------------------------------------------------ given states


def _then(node: Driven, message: Message, at_ms: int) -> Driven:
    node.receive(message, at_ms)
    return node


def _restarted_and_heard(node_id: int, at_ms: int) -> Driven:
    """Restarted at `at_ms` with epoch 2 on disk, and heard every peer (no leader) 100 ms later."""
    node = Driven(ALGORITHM, node_id, epoch=2)
    node.start(at_ms)
    node.now_ms = at_ms + 100
    node.hear(*node.settings.peer_ids)
    return node


def node3_heard_1() -> Driven:
    node = started(3)
    node.receive(hb(1, 0, None), 100)
    return node


def node3_heard_1_2_only(epoch: int = 3) -> Driven:
    """4 and 5 were never heard (down): suspected from the start."""
    node = started(3, epoch)
    node.now_ms = 100
    node.hear(1, 2)
    return node


def node4_awaiting_ok_from_5() -> Driven:
    return candidate_awaiting_ok(4)


def node3_deferred_to_4() -> Driven:
    node = candidate_awaiting_ok(3)
    node.receive(ok(4, 3), 2200)
    return node


def node2_promised_4_to_5() -> Driven:
    node = idle(2, epoch=3)
    node.receive(propose(5, 4), 1000)
    return node


def node5_pre_voting() -> Driven:
    return candidate_awaiting_ok(5)  # the highest id proposes at once: pre-vote for epoch 4 at 2100


def node5_proposing_4() -> Driven:
    node = node5_pre_voting()
    node.receive(granted(1, 4, pre=True, known=3), 2110)
    node.receive(granted(2, 4, pre=True, known=3), 2111)
    return node


def node5_confirming_4() -> Driven:
    """Won epoch 4 with the binding promises of 1 and 3 at 2121 and asked for confirmation, stamp 2121."""
    node = node5_proposing_4()
    node.receive(granted(1, 4, pre=False, known=4), 2120)
    node.receive(granted(3, 4, pre=False, known=4), 2121)
    return node


def node5_confirmed_by_1_peers_heard_at_5000() -> Driven:
    node = node5_confirming_4()
    node.receive(confirmed(1, 4, 2121), 2125)
    node.now_ms = 5000
    node.hear(1, 2, 3, 4)
    return node


def node2_confirmed_5() -> Driven:
    """Promised epoch 4 to 5 at 1000 and confirmed it at 1005 (echoing stamp 1200 of 5's clock)."""
    node = node2_promised_4_to_5()
    node.receive(confirm(5, 4, sent_ms=1200), 1005)
    return node


def node2_confirmed_5_peers_heard_at_4000() -> Driven:
    node = node2_confirmed_5()
    node.now_ms = 4000
    node.hear(1, 3, 4, 5)  # 5 is not suspected: the vote is free again because the lease is over
    return node


def node2_following_4_holding_5s_pre_vote() -> Driven:
    """Follows leader 4 under epoch 3 and holds node 5's pre-vote for epoch 4, received at 1000 (its
    deadline: 1000 + backoff_base_ms = 1100)."""
    node = follower(2, leader_id=4)
    node.receive(pre_vote(5, 4), 1000)
    return node


def rejoining(node_id: int, epoch: int, **kw: Any) -> Driven:
    """Restarted with `epoch` on disk; heard follower 1 (following 4 under epoch 3)."""
    node = started(node_id, epoch, **kw)
    node.receive(hb(1, 3, 4), 5)
    return node


def leader5_after(silent: tuple[int, ...], until_ms: int) -> Driven:
    node = leader(5, epoch=4)
    advance(node, until_ms, silent=silent)
    return node


# -------------------------------------------------------------------------------------------- the table

ROWS: list[Row] = [
    # --- start-up -----------------------------------------------------------------------------------
    Row(
        "start: heartbeat, listen through the start-up blackout (failure_timeout), no quorum yet",
        lambda: Driven(ALGORITHM, 3, epoch=2),
        lambda n: n.start(0),
        [
            log("started", epoch=2),
            Broadcast(hb(3, 2, None)),
            SetTimer(HEARTBEAT, 1000),
            SetTimer(LISTEN, 3000),
            RoleChanged(NO_QUORUM, None, 2),
        ],
        role=NO_QUORUM,
    ),
    Row(
        "restarted: no promise during the blackout, even to a pre-vote it would otherwise grant",
        lambda: _restarted_and_heard(3, at_ms=0),
        lambda n: n.receive(pre_vote(4, 3), 2000),
        [Send(4, refused(3, 3, pre=True, known=2))],
    ),
    Row(
        "restarted: no election during the blackout; listen again (a full window, past its end)",
        lambda: _restarted_and_heard(3, at_ms=0),
        lambda n: n.receive(election(1, 2), 2000),
        [Send(1, ok(3, 2)), SetTimer(LISTEN, 4000)],
    ),
    Row(
        "restarted: accepting a leader ends the blackout, so that leader's RESIGN is handed off at once",
        lambda: _then(_restarted_and_heard(3, at_ms=0), hb(5, 2, 5), at_ms=200),
        lambda n: n.receive(propose(4, 3, resigned_leader=5), 300),
        [
            Persist(DurableState(3, 4)),
            SetTimer(COORDINATOR, 5300),
            Send(4, granted(3, 3, pre=False, known=3)),
            RoleChanged(CANDIDATE, None, 3),
        ],
        durable=DurableState(3, 4),
    ),
    Row(
        "restarted: the leader it accepted may be the one it backed before the crash: it backs it until"
        " the blackout would have ended, also after dropping it",
        lambda: _then(_then(_restarted_and_heard(3, at_ms=0), coordinator(5, 2), 200), hb(5, 2, None), 250),
        lambda n: n.receive(pre_vote(4, 3), 2000),
        [Send(4, refused(3, 3, pre=True, known=2))],
    ),
    Row(
        "restarted: once the blackout is over, the same pre-vote is granted",
        lambda: _restarted_and_heard(3, at_ms=0),
        lambda n: n.receive(pre_vote(4, 3), 3000),
        [Send(4, granted(3, 3, pre=True, known=2))],
    ),
    Row(
        "no-quorum start-up: listen window ends, no election",
        node3_heard_1,
        lambda n: n.fire(LISTEN, 2000),
        [log("no_quorum", WARNING, epoch=0)],  # it does not run, and says why
        role=NO_QUORUM,
        durable=DurableState(0, None),
    ),
    Row(
        "a majority becomes reachable: listen again before electing",
        node3_heard_1,
        lambda n: n.receive(hb(2, 0, None), 150),
        [
            log("peer_recovered", NOTICE, peer=2, epoch=0),
            Send(2, hb(3, 0, None)),
            SetTimer(LISTEN, 2150),
            RoleChanged(FOLLOWER, None, 0),
        ],
    ),
    Row(
        "listen window ends without a leader: ELECTION to every higher id only",
        lambda: idle(3, epoch=3),
        lambda n: n.fire(LISTEN, 2100),
        [
            log("election_started", epoch=3),
            Send(4, election(3, 3)),
            Send(5, election(3, 3)),
            SetTimer(ELECTION, 7100),
            RoleChanged(CANDIDATE, None, 3),
        ],
    ),
    Row(
        "the highest id has nobody to ask: pre-vote at once, nothing persisted",
        lambda: idle(5, epoch=3),
        lambda n: n.fire(LISTEN, 2100),
        [
            log("election_started", epoch=3),
            Broadcast(pre_vote(5, 4)),
            SetTimer(PROPOSAL, 7100),
            RoleChanged(CANDIDATE, None, 3),
        ],
        durable=DurableState(3, None),
    ),
    Row(
        "higher ids already suspected are not waited for",
        node3_heard_1_2_only,
        lambda n: n.fire(LISTEN, 2100),
        [
            log("election_started", epoch=3),
            Send(4, election(3, 3)),
            Send(5, election(3, 3)),
            Broadcast(pre_vote(3, 4)),
            SetTimer(PROPOSAL, 7100),
            RoleChanged(CANDIDATE, None, 3),
        ],
    ),
    # --- ELECTION / OK / timers -----------------------------------------------------------------------
    Row(
        "OK from a higher id: defer, await COORDINATOR for election_timeout",
        candidate_awaiting_ok,
        lambda n: n.receive(ok(4, 3), 2200),
        [CancelTimer(ELECTION), SetTimer(COORDINATOR, 7200)],
        role=CANDIDATE,
    ),
    Row(
        "OK from a lower id is ignored",
        candidate_awaiting_ok,
        lambda n: n.receive(ok(2, 3), 2200),
        [],
    ),
    Row(
        "OK while not electing is ignored",
        lambda: idle(3, epoch=3),
        lambda n: n.receive(ok(4, 3), 1000),
        [],
        role=FOLLOWER,
    ),
    Row(
        "no OK within election_timeout: run for leader (pre-vote)",
        lambda: _advanced(candidate_awaiting_ok(), 7000),
        lambda n: n.fire(ELECTION, 7100),
        [log("election_timeout", epoch=3), Broadcast(pre_vote(3, 4)), SetTimer(PROPOSAL, 12100)],
    ),
    Row(
        "no COORDINATOR within election_timeout after deferring: start over",
        lambda: _advanced(node3_deferred_to_4(), 7100),
        lambda n: n.fire(COORDINATOR, 7200),
        [
            log("election_started", epoch=3),
            Send(4, election(3, 3)),
            Send(5, election(3, 3)),
            SetTimer(ELECTION, 12200),
        ],
    ),
    Row(
        "PeerUnreachable of the only awaited higher id: propose at once",
        node4_awaiting_ok_from_5,
        lambda n: n.unreachable(5, 2200),
        [CancelTimer(ELECTION), Broadcast(pre_vote(4, 4)), SetTimer(PROPOSAL, 7200)],
    ),
    Row(
        "PeerUnreachable of one of two awaited higher ids: keep waiting for the other",
        candidate_awaiting_ok,
        lambda n: n.unreachable(4, 2200),
        [],
        role=CANDIDATE,
    ),
    Row(
        "the only awaited higher id becomes suspected: propose at once",
        lambda: _advanced(node4_awaiting_ok_from_5(), 3000, silent=(5,)),
        lambda n: n.fire(DETECTOR, 3100),
        [
            log("peer_suspected", WARNING, peer=5, epoch=3),
            CancelTimer(ELECTION),
            Broadcast(pre_vote(4, 4)),
            SetTimer(PROPOSAL, 8100),
            SetTimer(DETECTOR, 5100),
        ],
    ),
    Row(
        "the node deferred to becomes unreachable: start over at once",
        node3_deferred_to_4,
        lambda n: n.unreachable(4, 2300),
        [
            CancelTimer(COORDINATOR),
            log("election_started", epoch=3),
            Send(4, election(3, 3)),
            Send(5, election(3, 3)),
            SetTimer(ELECTION, 7300),
        ],
    ),
    Row(
        "COORDINATOR with a higher epoch while deferring: follow it",
        node3_deferred_to_4,
        lambda n: n.receive(coordinator(4, 4), 2300),
        [
            Persist(DurableState(4, None)),
            CancelTimer(COORDINATOR),
            log("leader_accepted", NOTICE, epoch=4, leader=4),
            RoleChanged(FOLLOWER, 4, 4),
        ],
        durable=DurableState(4, None),
    ),
    Row(
        "ELECTION from a lower id without a leader: OK, then our own election",
        lambda: idle(3, epoch=3),
        lambda n: n.receive(election(1, 3), 1000),
        [
            Send(1, ok(3, 3)),
            log("election_started", epoch=3),
            Send(4, election(3, 3)),
            Send(5, election(3, 3)),
            SetTimer(ELECTION, 6000),
            RoleChanged(CANDIDATE, None, 3),
        ],
    ),
    Row(
        "ELECTION from a lower id while already electing: OK only",
        candidate_awaiting_ok,
        lambda n: n.receive(election(1, 3), 2200),
        [Send(1, ok(3, 3))],
    ),
    Row(
        "ELECTION from a lower id while following a live leader: OK only, no election",
        lambda: follower(3),
        lambda n: n.receive(election(1, 3), 1000),
        [Send(1, ok(3, 3))],
        role=FOLLOWER,
    ),
    Row(
        "ELECTION from a lower id to the leader: OK and COORDINATOR",
        lambda: leader(5, epoch=4),
        lambda n: n.receive(election(1, 4), LEADER_MS + 100),
        [Send(1, ok(5, 4)), Send(1, coordinator(5, 4))],
        role=LEADER,
    ),
    Row(
        "ELECTION from a higher id is ignored",
        lambda: follower(3),
        lambda n: n.receive(election(4, 3), 1000),
        [],
    ),
    Row(
        "leader silent for failure_timeout: suspected, election",
        lambda: _advanced(follower(3), 3000, silent=(5,)),
        lambda n: n.fire(DETECTOR, 3100),
        [
            log("peer_suspected", WARNING, peer=5, epoch=3, leader=5),
            log("leader_lost", WARNING, epoch=3, leader=5),
            log("election_started", epoch=3),
            Send(4, election(3, 3)),
            Send(5, election(3, 3)),
            SetTimer(ELECTION, 8100),
            SetTimer(DETECTOR, 5100),
            RoleChanged(CANDIDATE, None, 3),
        ],
    ),
    Row(
        "leader's connection refused: the highest live id runs at once",
        lambda: follower(4),
        lambda n: n.unreachable(5, 1000),
        [
            log("leader_lost", WARNING, epoch=3, leader=5),
            log("election_started", epoch=3),
            Send(5, election(4, 3)),
            Broadcast(pre_vote(4, 4)),
            SetTimer(PROPOSAL, 6000),
            RoleChanged(CANDIDATE, None, 3),
        ],
    ),
    Row(
        "the leader stops claiming (its heartbeat names no leader): election",
        lambda: follower(2),
        lambda n: n.receive(hb(5, 3, None), 1000),
        [
            log("leader_lost", WARNING, epoch=3, leader=5),
            log("election_started", epoch=3),
            Send(3, election(2, 3)),
            Send(4, election(2, 3)),
            Send(5, election(2, 3)),
            SetTimer(ELECTION, 6000),
            RoleChanged(CANDIDATE, None, 3),
        ],
    ),
    # --- promises -----------------------------------------------------------------------------------
    Row(
        "pre-vote granted: binds nothing, persists nothing",
        lambda: idle(2, epoch=3),
        lambda n: n.receive(pre_vote(5, 4), 1000),
        [Send(5, granted(2, 4, pre=True, known=3))],
        role=FOLLOWER,
        durable=DurableState(3, None),
    ),
    Row(
        "binding proposal: promise persisted before the PROMISE is sent",
        lambda: idle(2, epoch=3),
        lambda n: n.receive(propose(5, 4), 1000),
        [
            Persist(DurableState(4, 5)),
            CancelTimer(LISTEN),
            SetTimer(COORDINATOR, 6000),
            Send(5, granted(2, 4, pre=False, known=4)),
            RoleChanged(CANDIDATE, None, 4),
        ],
        durable=DurableState(4, 5),
    ),
    Row(
        "at most one candidate per epoch: a second candidate for the promised epoch is refused",
        node2_promised_4_to_5,
        lambda n: n.receive(propose(4, 4), 1001),
        [Send(4, refused(2, 4, pre=False, known=4))],
        durable=DurableState(4, 5),
    ),
    Row(
        "a repeat from the promised candidate is answered again",
        node2_promised_4_to_5,
        lambda n: n.receive(propose(5, 4), 1001),
        [
            Persist(DurableState(4, 5)),
            CancelTimer(COORDINATOR),
            SetTimer(COORDINATOR, 6001),
            Send(5, granted(2, 4, pre=False, known=4)),
        ],
        durable=DurableState(4, 5),
    ),
    Row(
        "pre-vote for an epoch already promised is refused",
        node2_promised_4_to_5,
        lambda n: n.receive(pre_vote(5, 4), 1001),
        [Send(5, refused(2, 4, pre=True, known=4))],
    ),
    Row(
        "pre-vote above the promised epoch is granted (and binds nothing)",
        node2_promised_4_to_5,
        lambda n: n.receive(pre_vote(4, 5), 1001),
        [Send(4, granted(2, 5, pre=True, known=4))],
        durable=DurableState(4, 5),
    ),
    Row(
        "binding proposal at an accepted epoch is refused",
        lambda: idle(2, epoch=3),
        lambda n: n.receive(propose(5, 3), 1000),
        [Send(5, refused(2, 3, pre=False, known=3))],
        durable=DurableState(3, None),
    ),
    Row(
        "binding proposal below our epoch is refused",
        lambda: idle(2, epoch=3),
        lambda n: n.receive(propose(5, 2), 1000),
        [Send(5, refused(2, 2, pre=False, known=3))],
    ),
    Row(
        "pre-vote at our own epoch is refused",
        lambda: idle(2, epoch=3),
        lambda n: n.receive(pre_vote(5, 3), 1000),
        [Send(5, refused(2, 3, pre=True, known=3))],
    ),
    Row(
        "following a live leader: a pre-vote only that leader makes it refuse is held, not answered yet"
        " (preempt=false); PRE_VOTE_DEFER at backoff_base_ms, the back-off the candidate would wait",
        lambda: follower(2, leader_id=4),
        lambda n: n.receive(pre_vote(5, 4), 1000),
        [SetTimer(PRE_VOTE_DEFER, 1100)],
        role=FOLLOWER,
        durable=DurableState(3, None),
    ),
    Row(
        "held pre-vote: its leader's PeerUnreachable hint -> leader lost, and the pre-vote granted now",
        node2_following_4_holding_5s_pre_vote,
        lambda n: n.unreachable(4, 1005),
        [
            log("leader_lost", WARNING, epoch=3, leader=4),
            log("election_started", epoch=3),
            Send(3, election(2, 3)),
            Send(4, election(2, 3)),
            Send(5, election(2, 3)),
            SetTimer(ELECTION, 6005),
            Send(5, granted(2, 4, pre=True, known=3)),
            CancelTimer(PRE_VOTE_DEFER),
            RoleChanged(CANDIDATE, None, 3),
        ],
        durable=DurableState(3, None),
    ),
    Row(
        "held pre-vote: no hint by its deadline -> refused then, as it would have been at once",
        node2_following_4_holding_5s_pre_vote,
        lambda n: n.fire(PRE_VOTE_DEFER, 1100),
        [Send(5, refused(2, 4, pre=True, known=3))],
        role=FOLLOWER,
    ),
    Row(
        "held pre-vote: a newer one from the same candidate replaces it (the older goes unanswered), a"
        " copy changes nothing, and the hint answers the newer one",
        node2_following_4_holding_5s_pre_vote,
        lambda n: [
            *n.receive(pre_vote(5, 5), 1010),
            *n.receive(pre_vote(5, 5), 1011),
            *n.unreachable(4, 1020),
        ],
        [
            SetTimer(PRE_VOTE_DEFER, 1110),
            log("leader_lost", WARNING, epoch=3, leader=4),
            log("election_started", epoch=3),
            Send(3, election(2, 3)),
            Send(4, election(2, 3)),
            Send(5, election(2, 3)),
            SetTimer(ELECTION, 6020),
            Send(5, granted(2, 5, pre=True, known=3)),
            CancelTimer(PRE_VOTE_DEFER),
            RoleChanged(CANDIDATE, None, 3),
        ],
    ),
    Row(
        "held pre-vote: its leader resigns -> granted at once (the lease it owed the leader is released)",
        node2_following_4_holding_5s_pre_vote,
        lambda n: n.receive(resign(4, 3), 1010),
        [
            log("leader_lost", NOTICE, epoch=3, leader=4),
            log("election_started", epoch=3),
            SetTimer(COORDINATOR, 6010),
            Send(5, granted(2, 4, pre=True, known=3)),
            CancelTimer(PRE_VOTE_DEFER),
            RoleChanged(CANDIDATE, None, 3),
        ],
    ),
    Row(
        "held pre-vote: a leader of a higher epoch replaces ours -> answered at once by the rules as they"
        " are now: refused, naming the epoch (never a stale grant)",
        node2_following_4_holding_5s_pre_vote,
        lambda n: n.receive(coordinator(3, 4), 1010),
        [
            Persist(DurableState(4, None)),
            log("leader_accepted", NOTICE, epoch=4, leader=3),
            Send(5, refused(2, 4, pre=True, known=4)),
            CancelTimer(PRE_VOTE_DEFER),
            RoleChanged(FOLLOWER, 3, 4),
        ],
        durable=DurableState(4, None),
    ),
    Row(
        "held pre-vote: held per candidate, each answered at its own deadline",
        lambda: _then(node2_following_4_holding_5s_pre_vote(), pre_vote(3, 4), 1050),
        lambda n: [*n.fire(PRE_VOTE_DEFER, 1100), *n.fire(PRE_VOTE_DEFER, 1150)],
        [
            Send(5, refused(2, 4, pre=True, known=3)),
            SetTimer(PRE_VOTE_DEFER, 1150),
            Send(3, refused(2, 4, pre=True, known=3)),
        ],
    ),
    Row(
        "held pre-vote: the candidate's binding PROPOSE supersedes it and is answered at once, as before",
        node2_following_4_holding_5s_pre_vote,
        lambda n: n.receive(propose(5, 4), 1010),
        [Send(5, refused(2, 4, pre=False, known=3)), CancelTimer(PRE_VOTE_DEFER)],
        role=FOLLOWER,
        durable=DurableState(3, None),
    ),
    Row(
        "following a live leader: a catch-up probe (pre-vote for epoch 0) is answered at once, as before",
        lambda: follower(2, leader_id=4),
        lambda n: n.receive(Propose(5, 0, pre_vote=True, sent_ms=777), 1000),
        [Send(5, promise(2, 0, pre_vote=True, granted=False, known_epoch=3, echo_ms=777))],
    ),
    Row(
        "following a live leader: a pre-vote refused for another reason too (its epoch) is answered at once",
        lambda: follower(2, leader_id=4),
        lambda n: n.receive(pre_vote(5, 3), 1000),
        [Send(5, refused(2, 3, pre=True, known=3))],
    ),
    Row(
        "following a live leader: a pre-vote from that leader itself (its re-election) is granted at once",
        lambda: follower(2, leader_id=4),
        lambda n: n.receive(pre_vote(4, 4), 1000),
        [Send(4, granted(2, 4, pre=True, known=3))],
    ),
    Row(
        "following a live leader: binding proposal from a higher id refused (preempt=false)",
        lambda: follower(2, leader_id=4),
        lambda n: n.receive(propose(5, 4), 1000),
        [Send(5, refused(2, 4, pre=False, known=3))],
        role=FOLLOWER,
        durable=DurableState(3, None),
    ),
    Row(
        "preempt=true: a follower promises an id above its live leader",
        lambda: follower(2, leader_id=4, preempt=True),
        lambda n: n.receive(propose(5, 4), 1000),
        [
            Persist(DurableState(4, 5)),
            SetTimer(COORDINATOR, 6000),
            Send(5, granted(2, 4, pre=False, known=4)),
            RoleChanged(CANDIDATE, None, 4),
        ],
    ),
    Row(
        "preempt=true: an id below the live leader is still refused",
        lambda: follower(2, leader_id=4, preempt=True),
        lambda n: n.receive(propose(3, 4), 1000),
        [Send(3, refused(2, 4, pre=False, known=3))],
    ),
    Row(
        "a leader steps down at once on a higher-epoch binding proposal, then promises it",
        lambda: leader(4, epoch=4),
        lambda n: n.receive(propose(5, 5), LEADER_MS + 100),
        [
            log("peer_recovered", NOTICE, peer=5, epoch=4, leader=4),
            Send(5, hb(4, 4, 4, sent_ms=LEADER_MS + 100)),
            log("stepped_down", WARNING, epoch=4, leader=4),
            Persist(DurableState(5, 5)),
            SetTimer(COORDINATOR, LEADER_MS + 100 + 5000),
            Send(5, granted(4, 5, pre=False, known=5)),
            RoleChanged(CANDIDATE, None, 5),
        ],
    ),
    Row(
        "a leader refuses a pre-vote at once (preempt=false: it knows it is alive, nothing to hold) and"
        " keeps leading: a pre-vote binds nobody",
        lambda: leader(4, epoch=4),
        lambda n: n.receive(pre_vote(5, 5), LEADER_MS + 100),
        [
            log("peer_recovered", NOTICE, peer=5, epoch=4, leader=4),
            Send(5, hb(4, 4, 4, sent_ms=LEADER_MS + 100)),
            Send(5, refused(4, 5, pre=True, known=4)),
        ],
        role=LEADER,
    ),
    Row(
        "preempt=true: a leader promises a higher id and steps down",
        lambda: leader(4, epoch=4, preempt=True),
        lambda n: n.receive(propose(5, 5), LEADER_MS + 100),
        [
            log("peer_recovered", NOTICE, peer=5, epoch=4, leader=4),
            Send(5, hb(4, 4, 4, sent_ms=LEADER_MS + 100)),
            log("stepped_down", WARNING, epoch=4, leader=4),
            Persist(DurableState(5, 5)),
            SetTimer(COORDINATOR, LEADER_MS + 100 + 5000),
            Send(5, granted(4, 5, pre=False, known=5)),
            RoleChanged(CANDIDATE, None, 5),
        ],
    ),
    Row(
        "preempt=true: a leader's pre-vote grant binds nothing, it keeps leading",
        lambda: leader(4, epoch=4, preempt=True),
        lambda n: n.receive(pre_vote(5, 5), LEADER_MS + 100),
        [
            log("peer_recovered", NOTICE, peer=5, epoch=4, leader=4),
            Send(5, hb(4, 4, 4, sent_ms=LEADER_MS + 100)),
            Send(5, granted(4, 5, pre=True, known=4)),
        ],
        role=LEADER,
        durable=DurableState(4, 4),
    ),
    # --- candidate: pre-vote, proposal, backoff ---------------------------------------------------------
    Row(
        "pre-vote won: persist the epoch (voted for itself) before broadcasting the proposal",
        node5_pre_voting,
        lambda n: [
            *n.receive(granted(1, 4, pre=True, known=3), 2110),
            *n.receive(granted(2, 4, pre=True, known=3), 2111),
        ],
        [
            Persist(DurableState(4, 5)),
            Broadcast(propose(5, 4)),
            SetTimer(PROPOSAL, 7111),
            RoleChanged(CANDIDATE, None, 4),
        ],
    ),
    Row(
        "the binding proposal goes above every epoch a voter reported",
        node5_pre_voting,
        lambda n: [
            *n.receive(granted(1, 4, pre=True, known=3), 2110),
            *n.receive(refused(3, 4, pre=True, known=6), 2111),
            *n.receive(granted(2, 4, pre=True, known=3), 2112),
        ],
        [
            Persist(DurableState(7, 5)),
            Broadcast(propose(5, 7)),
            SetTimer(PROPOSAL, 7112),
            RoleChanged(CANDIDATE, None, 7),
        ],
    ),
    Row(
        "a majority promised: ask the voters to confirm (stamped), no COORDINATOR yet",
        node5_proposing_4,
        lambda n: [
            *n.receive(granted(1, 4, pre=False, known=4), 2120),
            *n.receive(granted(3, 4, pre=False, known=4), 2121),
        ],
        [
            CancelTimer(PROPOSAL),
            Broadcast(confirm(5, 4, sent_ms=2121)),
            SetTimer(PROPOSAL, 2121 + 3000),
        ],
        role=CANDIDATE,
    ),
    Row(
        "a majority confirmed: lead, broadcast COORDINATOR with the epoch",
        node5_confirming_4,
        lambda n: [*n.receive(confirmed(1, 4, 2121), 2125), *n.receive(confirmed(3, 4, 2121), 2126)],
        [
            CancelTimer(PROPOSAL),
            log("became_leader", NOTICE, epoch=4, leader=5),
            Broadcast(coordinator(5, 4)),
            RoleChanged(LEADER, 5, 4),
        ],
        role=LEADER,
    ),
    Row(
        "confirmations of another stamp (an earlier attempt) or another epoch are ignored",
        node5_confirming_4,
        lambda n: [*n.receive(confirmed(1, 4, 2111), 2125), *n.receive(confirmed(3, 3, 2121), 2126)],
        [],
        role=CANDIDATE,
    ),
    Row(
        "voters no longer hold the promise (promised higher since): no leader once a majority is impossible",
        node5_confirming_4,
        lambda n: [
            *n.receive(confirm_refused(1, 4, known_epoch=6), 2125),
            *n.receive(confirm_refused(2, 4, known_epoch=6), 2126),
            *n.receive(confirm_refused(3, 4, known_epoch=6), 2127),
        ],
        [
            CancelTimer(PROPOSAL),
            log("election_failed", WARNING, epoch=4),
            SetTimer(BACKOFF, 2261),
        ],
        role=CANDIDATE,
    ),
    Row(
        "late answers to the proposal or the pre-vote of the epoch being confirmed are not refusals to"
        " confirm (CONFIRM_REFUSED is its own message: a voter that refused the pre-vote may hold the"
        " binding promise since)",
        node5_confirming_4,
        lambda n: [
            *n.receive(refused(1, 4, pre=False, known=6), 2125),
            *n.receive(refused(2, 4, pre=True, known=6), 2126),
            *n.receive(refused(3, 4, pre=True, known=6), 2127),
        ],
        [],
        role=CANDIDATE,
    ),
    Row(
        "no majority confirms within failure_timeout of the stamp: no leader, backoff",
        node5_confirmed_by_1_peers_heard_at_5000,
        lambda n: n.fire(PROPOSAL, 5121),
        [log("election_failed", WARNING, epoch=4), SetTimer(BACKOFF, 5255)],
        role=CANDIDATE,
    ),
    Row(
        "a winner paused past stamp + failure_timeout reads a late confirmation before its overdue timer:"
        " the expired echoes back nothing, so it does not lead; its timer ends the attempt (simulator seed"
        " 98067, where the winner claimed epoch 1 after epoch 2 had a leader)",
        node5_confirmed_by_1_peers_heard_at_5000,
        lambda n: [*n.receive(confirmed(3, 4, 2121), 5200), *n.fire(PROPOSAL, 5200)],
        [log("election_failed", WARNING, epoch=4), SetTimer(BACKOFF, 5334)],
        role=CANDIDATE,
    ),
    Row(
        "voter: CONFIRM of the promise it holds: CONFIRMED echoing the winner's stamp",
        node2_promised_4_to_5,
        lambda n: n.receive(confirm(5, 4, sent_ms=1200), 1005),
        [Send(5, confirmed(2, 4, 1200))],
        durable=DurableState(4, 5),
    ),
    Row(
        "voter: CONFIRM of a promise it does not hold: refused, with its own epoch",
        lambda: idle(2, epoch=3),
        lambda n: n.receive(confirm(5, 4, sent_ms=1200), 1005),
        [Send(5, confirm_refused(2, 4, known_epoch=3))],
        durable=DurableState(3, None),
    ),
    Row(
        "voter: after confirming, no vote for anyone else until failure_timeout (the winner counts on it)",
        node2_confirmed_5,
        lambda n: [*n.receive(pre_vote(4, 5), 1500), *n.receive(propose(4, 5), 1501)],
        [Send(4, refused(2, 5, pre=True, known=4)), Send(4, refused(2, 5, pre=False, known=4))],
        durable=DurableState(4, 5),
    ),
    Row(
        "voter: the winner it confirmed may itself move on to a higher epoch",
        node2_confirmed_5,
        lambda n: n.receive(pre_vote(5, 5), 1500),
        [Send(5, granted(2, 5, pre=True, known=4))],
    ),
    Row(
        "voter: failure_timeout after confirming, it votes again",
        node2_confirmed_5_peers_heard_at_4000,
        lambda n: n.receive(pre_vote(4, 5), 1005 + 3000),
        [Send(4, granted(2, 5, pre=True, known=4))],
    ),
    Row(
        "answers to an earlier attempt (other epoch or phase) are ignored",
        node5_proposing_4,
        lambda n: [
            *n.receive(granted(1, 4, pre=True, known=3), 2120),
            *n.receive(granted(3, 3, pre=False, known=3), 2121),
            *n.receive(granted(4, 4, pre=True, known=3), 2122),
        ],
        [],
        role=CANDIDATE,
    ),
    Row(
        "pre-vote refused by a majority: no leader, warning, backoff (100 ms x U(0.5, 1.5))",
        node5_pre_voting,
        lambda n: [
            *n.receive(refused(1, 4, pre=True, known=3), 2110),
            *n.receive(refused(2, 4, pre=True, known=3), 2110),
            *n.receive(refused(3, 4, pre=True, known=3), 2110),
        ],
        [
            CancelTimer(PROPOSAL),
            log("election_failed", WARNING, epoch=3),
            SetTimer(BACKOFF, 2110 + int(100 * (0.5 + random.Random(0).random()))),
        ],
        durable=DurableState(3, None),
    ),
    Row(
        "binding proposal refused by a majority: no leader; the persisted epoch stays",
        node5_proposing_4,
        lambda n: [
            *n.receive(refused(1, 4, pre=False, known=4), 2120),
            *n.receive(refused(2, 4, pre=False, known=4), 2120),
            *n.receive(refused(3, 4, pre=False, known=4), 2120),
        ],
        [
            CancelTimer(PROPOSAL),
            log("election_failed", WARNING, epoch=4),
            SetTimer(BACKOFF, 2120 + int(100 * (0.5 + random.Random(0).random()))),
        ],
        durable=DurableState(4, 5),
    ),
    Row(
        "no majority answered within election_timeout: election_failed, backoff",
        lambda: _advanced(node5_pre_voting(), 7000),
        lambda n: n.fire(PROPOSAL, 7100),
        [
            log("election_failed", WARNING, epoch=3),
            SetTimer(BACKOFF, 7100 + int(100 * (0.5 + random.Random(0).random()))),
        ],
    ),
    # --- leader claims: acceptance and rejection ------------------------------------------------------
    Row(
        "COORDINATOR with a lower epoch: message_rejected, fencing heartbeat back",
        lambda: follower(2),
        lambda n: n.receive(coordinator(4, 2), 1000),
        [log("message_rejected", WARNING, peer=4, epoch=3, leader=5), Send(4, hb(2, 3, 5))],
        role=FOLLOWER,
        durable=DurableState(3, None),
    ),
    Row(
        "leader heartbeat with a lower epoch: message_rejected, fencing heartbeat back",
        lambda: follower(2),
        lambda n: n.receive(hb(4, 2, 4), 1000),
        [log("message_rejected", WARNING, peer=4, epoch=3, leader=5), Send(4, hb(2, 3, 5))],
    ),
    Row(
        "the leader itself rejects a lower-epoch COORDINATOR and fences its sender",
        lambda: leader(5, epoch=4),
        lambda n: n.receive(coordinator(4, 3), LEADER_MS + 100),
        [
            log("message_rejected", WARNING, peer=4, epoch=4, leader=5),
            Send(4, hb(5, 4, 5, sent_ms=LEADER_MS + 100)),
        ],
        role=LEADER,
    ),
    Row(
        "a stale leader claim is rejected and logged even before a majority is heard",
        lambda: _heard(started(2, epoch=3), 4),
        lambda n: n.receive(coordinator(4, 2), 20),
        [log("message_rejected", WARNING, peer=4, epoch=3), Send(4, hb(2, 3, None))],
    ),
    Row(
        "COORDINATOR with a higher epoch: persist it, follow",
        lambda: follower(2),
        lambda n: n.receive(coordinator(4, 4), 1000),
        [
            Persist(DurableState(4, None)),
            log("leader_accepted", NOTICE, epoch=4, leader=4),
            RoleChanged(FOLLOWER, 4, 4),
        ],
        durable=DurableState(4, None),
    ),
    Row(
        "COORDINATOR of the epoch we promised: follow, nothing to persist",
        node2_promised_4_to_5,
        lambda n: n.receive(coordinator(5, 4), 1010),
        [
            CancelTimer(COORDINATOR),
            log("leader_accepted", NOTICE, epoch=4, leader=5),
            RoleChanged(FOLLOWER, 5, 4),
        ],
        durable=DurableState(4, 5),
    ),
    Row(
        "a leader steps down on a COORDINATOR with a higher epoch",
        lambda: leader(5, epoch=4),
        lambda n: n.receive(coordinator(4, 5), LEADER_MS + 100),
        [
            log("stepped_down", WARNING, epoch=4, leader=5),
            Persist(DurableState(5, None)),
            log("leader_accepted", NOTICE, epoch=5, leader=4),
            RoleChanged(FOLLOWER, 4, 5),
        ],
    ),
    Row(
        "a leader steps down on a leader heartbeat with a higher epoch",
        lambda: leader(5, epoch=4),
        lambda n: n.receive(hb(4, 5, 4), LEADER_MS + 100),
        [
            log("stepped_down", WARNING, epoch=4, leader=5),
            Persist(DurableState(5, None)),
            log("leader_accepted", NOTICE, epoch=5, leader=4),
            RoleChanged(FOLLOWER, 4, 5),
        ],
    ),
    Row(
        "a leader steps down on a heartbeat that follows a rival under a higher epoch, and proposes above it",
        lambda: leader(5, epoch=4),
        lambda n: n.receive(hb(3, 5, 2), LEADER_MS + 100),
        [
            log("stepped_down", WARNING, epoch=4, leader=5),
            log("election_started", epoch=4),
            Broadcast(pre_vote(5, 6)),
            SetTimer(PROPOSAL, LEADER_MS + 100 + 5000),
            RoleChanged(CANDIDATE, None, 4),
        ],
    ),
    Row(
        "a leader that hears a higher epoch nobody leads re-runs above it at once: stamped, no pre-vote",
        lambda: leader(5, epoch=4),
        lambda n: n.receive(hb(3, 7, None), LEADER_MS + 100),
        [
            log("reelection_started", NOTICE, epoch=4, leader=5),
            Persist(DurableState(8, 5)),
            Broadcast(propose(5, 8, sent_ms=LEADER_MS + 100)),
            SetTimer(PROPOSAL, LEADER_MS + 100 + 5000),
            RoleChanged(CANDIDATE, None, 8),
        ],
        durable=DurableState(8, 5),
    ),
    Row(
        "re-election: the followers' grants echo the stamp, so the incumbent leads again a round trip later",
        lambda: _then(leader(5, epoch=4), hb(3, 7, None), LEADER_MS + 100),
        lambda n: [
            *n.receive(granted(1, 8, pre=False, known=8, echo_ms=LEADER_MS + 100), LEADER_MS + 103),
            *n.receive(granted(2, 8, pre=False, known=8, echo_ms=LEADER_MS + 100), LEADER_MS + 104),
        ],
        [
            CancelTimer(PROPOSAL),
            log("became_leader", NOTICE, epoch=8, leader=5),
            Broadcast(coordinator(5, 8)),
            RoleChanged(LEADER, 5, 8),
        ],
        role=LEADER,
    ),
    Row(
        "a follower grants its own live leader's binding proposal (re-election) and echoes the stamp",
        lambda: follower(2),
        lambda n: n.receive(propose(5, 8, sent_ms=990), 1000),
        [
            Persist(DurableState(8, 5)),
            SetTimer(COORDINATOR, 6000),
            Send(5, granted(2, 8, pre=False, known=8, echo_ms=990)),
            RoleChanged(CANDIDATE, None, 8),
        ],
        durable=DurableState(8, 5),
    ),
    Row(
        "a follower still refuses a binding proposal of anyone but its live leader",
        lambda: follower(2),
        lambda n: n.receive(propose(4, 8, sent_ms=990), 1000),
        [Send(4, refused(2, 8, pre=False, known=3))],
        role=FOLLOWER,
    ),
    # --- quorum -------------------------------------------------------------------------------------
    Row(
        "leader: a majority silent for failure_timeout -> quorum_lost, step down, no-quorum",
        lambda: leader5_after(silent=(1, 2, 3), until_ms=5000),
        lambda n: n.fire(DETECTOR, 5100),
        [
            log("peer_suspected", WARNING, peer=1, epoch=4, leader=5),
            log("peer_suspected", WARNING, peer=2, epoch=4, leader=5),
            log("peer_suspected", WARNING, peer=3, epoch=4, leader=5),
            log("quorum_lost", WARNING, epoch=4, leader=5),
            log("stepped_down", WARNING, epoch=4, leader=5),
            SetTimer(DETECTOR, 7100),
            RoleChanged(NO_QUORUM, None, 4),
        ],
        role=NO_QUORUM,
    ),
    Row(
        "leader: a minority silent -> keeps leading",
        lambda: leader5_after(silent=(1,), until_ms=5000),
        lambda n: n.fire(DETECTOR, 5100),
        [log("peer_suspected", WARNING, peer=1, epoch=4, leader=5), SetTimer(DETECTOR, 7100)],
        role=LEADER,
    ),
    Row(
        "leader resumes after a long pause, heartbeat timer first: steps down before broadcasting",
        lambda: leader(5, epoch=4),
        lambda n: n.fire(HEARTBEAT, 12100),
        [
            log("peer_suspected", WARNING, peer=1, epoch=4, leader=5),
            log("peer_suspected", WARNING, peer=2, epoch=4, leader=5),
            log("peer_suspected", WARNING, peer=3, epoch=4, leader=5),
            log("peer_suspected", WARNING, peer=4, epoch=4, leader=5),
            log("quorum_lost", WARNING, epoch=4, leader=5),
            log("stepped_down", WARNING, epoch=4, leader=5),
            Broadcast(hb(5, 4, None)),
            SetTimer(HEARTBEAT, 13100),
            CancelTimer(DETECTOR),
            RoleChanged(NO_QUORUM, None, 4),
        ],
        role=NO_QUORUM,
    ),
    Row(
        "leader resumes after a long pause, an ELECTION first: steps down, OK without COORDINATOR",
        lambda: leader(5, epoch=4),
        lambda n: n.receive(election(1, 4), 12100),
        [
            log("peer_suspected", WARNING, peer=1, epoch=4, leader=5),
            log("peer_suspected", WARNING, peer=2, epoch=4, leader=5),
            log("peer_suspected", WARNING, peer=3, epoch=4, leader=5),
            log("peer_suspected", WARNING, peer=4, epoch=4, leader=5),
            log("quorum_lost", WARNING, epoch=4, leader=5),
            log("stepped_down", WARNING, epoch=4, leader=5),
            log("peer_recovered", NOTICE, peer=1, epoch=4),
            Send(1, hb(5, 4, None)),
            Send(1, ok(5, 4)),
            RoleChanged(NO_QUORUM, None, 4),
        ],
        role=NO_QUORUM,
    ),
    Row(
        "leader resumes after a long pause, SIGTERM first: steps down, so no RESIGN of a lost epoch",
        lambda: leader(5, epoch=4),
        lambda n: n.shutdown(12100),
        [
            log("peer_suspected", WARNING, peer=1, epoch=4, leader=5),
            log("peer_suspected", WARNING, peer=2, epoch=4, leader=5),
            log("peer_suspected", WARNING, peer=3, epoch=4, leader=5),
            log("peer_suspected", WARNING, peer=4, epoch=4, leader=5),
            log("quorum_lost", WARNING, epoch=4, leader=5),
            log("stepped_down", WARNING, epoch=4, leader=5),
            RoleChanged(NO_QUORUM, None, 4),  # the step-down is announced before the node stops
        ],
    ),
    Row(
        "a COORDINATOR naming a non-member is rejected (no crash, no leader)",
        lambda: follower(2),
        lambda n: n.receive(coordinator(9, 7, sender=4), 1000),
        [log("message_rejected", WARNING, epoch=3, leader=5)],
        role=FOLLOWER,
    ),
    Row(
        "follower: a majority silent -> drops its leader, no-quorum, no election",
        lambda: _advanced(follower(2), 3000, silent=(3, 4, 5)),
        lambda n: n.fire(DETECTOR, 3100),
        [
            log("peer_suspected", WARNING, peer=3, epoch=3, leader=5),
            log("peer_suspected", WARNING, peer=4, epoch=3, leader=5),
            log("peer_suspected", WARNING, peer=5, epoch=3, leader=5),
            log("leader_lost", WARNING, epoch=3, leader=5),
            log("no_quorum", WARNING, epoch=3),  # it would elect, but hears 2 of 5
            SetTimer(DETECTOR, 5100),
            RoleChanged(NO_QUORUM, None, 3),
        ],
        role=NO_QUORUM,
    ),
    # --- RESIGN and shutdown ------------------------------------------------------------------------
    Row(
        "RESIGN from our leader: the highest live id proposes at once, binding, no pre-vote (handoff)",
        lambda: follower(4),
        lambda n: n.receive(resign(5, 3), 1000),
        [
            log("leader_lost", NOTICE, epoch=3, leader=5),
            log("election_started", epoch=3),
            Persist(DurableState(4, 4)),
            Broadcast(propose(4, 4, resigned_leader=5, sent_ms=1000)),  # stamped
            SetTimer(PROPOSAL, 6000),
            RoleChanged(CANDIDATE, None, 4),
        ],
    ),
    Row(
        "handoff: grants that echo the proposal's stamp are the confirmations: lead without a CONFIRM round",
        lambda: _then(follower(4), resign(5, 3), 1000),
        lambda n: [
            *n.receive(granted(1, 4, pre=False, known=4, echo_ms=1000), 1003),
            *n.receive(granted(2, 4, pre=False, known=4, echo_ms=1000), 1004),
        ],
        [
            CancelTimer(PROPOSAL),
            log("became_leader", NOTICE, epoch=4, leader=4),
            Broadcast(coordinator(4, 4)),
            RoleChanged(LEADER, 4, 4),
        ],
        role=LEADER,
    ),
    Row(
        "handoff: a voter's grant of a stamped proposal echoes the stamp, and it then backs the candidate",
        lambda: follower(2),
        lambda n: [
            *n.receive(propose(4, 4, resigned_leader=5, sent_ms=990), 1000),
            *n.receive(pre_vote(3, 5), 1500),
        ],
        [
            Persist(DurableState(4, 4)),
            SetTimer(COORDINATOR, 6000),
            Send(4, granted(2, 4, pre=False, known=4, echo_ms=990)),
            RoleChanged(CANDIDATE, None, 4),
            Send(3, refused(2, 5, pre=True, known=4)),
        ],
    ),
    Row(
        "handoff: a voter still following the resigned leader promises a candidate that holds its RESIGN",
        lambda: follower(2),
        lambda n: n.receive(propose(4, 4, resigned_leader=5), 1000),
        [
            Persist(DurableState(4, 4)),
            SetTimer(COORDINATOR, 6000),
            Send(4, granted(2, 4, pre=False, known=4)),
            RoleChanged(CANDIDATE, None, 4),
        ],
    ),
    Row(
        "handoff: naming another node as resigned does not make a voter drop its live leader",
        lambda: follower(2),
        lambda n: n.receive(propose(4, 4, resigned_leader=3), 1000),
        [Send(4, refused(2, 4, pre=False, known=3))],
        role=FOLLOWER,
    ),
    Row(
        "RESIGN from our leader: a lower id asks nobody, it waits for the COORDINATOR of the highest live id",
        lambda: follower(2),
        lambda n: n.receive(resign(5, 3), 1000),
        [
            log("leader_lost", NOTICE, epoch=3, leader=5),
            log("election_started", epoch=3),
            SetTimer(COORDINATOR, 6000),
            RoleChanged(CANDIDATE, None, 3),
        ],
    ),
    Row(
        "RESIGN from a node that is not our leader: no election",
        lambda: follower(2),
        lambda n: n.receive(resign(4, 3), 1000),
        [],
        role=FOLLOWER,
    ),
    Row(
        "RESIGN of another epoch than ours: no election",
        lambda: follower(2),
        lambda n: n.receive(resign(5, 2), 1000),
        [],
        role=FOLLOWER,
    ),
    Row(
        "ShutdownRequested on the leader: RESIGN broadcast under its epoch, then silence",
        lambda: leader(5, epoch=4),
        lambda n: [
            *n.shutdown(LEADER_MS + 100),
            *n.fire(HEARTBEAT, LEADER_MS + 200),
            *n.receive(election(1, 4), LEADER_MS + 300),
        ],
        [
            Broadcast(resign(5, 4)),
            log("resigned", NOTICE, epoch=4, leader=5),
            RoleChanged(FOLLOWER, None, 4),
        ],
    ),
    Row(
        "ShutdownRequested on a follower: nothing to hand off, then silence",
        lambda: follower(2),
        lambda n: [*n.shutdown(1000), *n.fire(HEARTBEAT, 1100), *n.receive(election(1, 3), 1200)],
        [],
    ),
    # --- rejoin -------------------------------------------------------------------------------------
    Row(
        "rejoin: a leader at our epoch is heartbeating -> follow it, no election (even as a higher id)",
        lambda: rejoining(5, epoch=3),
        lambda n: [*n.receive(hb(4, 3, 4), 6), *n.fire(LISTEN, 2000)],
        [
            log("peer_recovered", NOTICE, peer=4, epoch=3),
            Send(4, hb(5, 3, None)),
            CancelTimer(LISTEN),
            log("leader_accepted", NOTICE, epoch=3, leader=4),
            RoleChanged(FOLLOWER, 4, 3),
        ],
        durable=DurableState(3, None),
    ),
    Row(
        "rejoin: a leader above our epoch -> persist its epoch, follow",
        lambda: rejoining(5, epoch=2),
        lambda n: n.receive(hb(4, 3, 4), 6),
        [
            log("peer_recovered", NOTICE, peer=4, epoch=2),
            Send(4, hb(5, 2, None)),
            Persist(DurableState(3, None)),
            CancelTimer(LISTEN),
            log("leader_accepted", NOTICE, epoch=3, leader=4),
            RoleChanged(FOLLOWER, 4, 3),
        ],
    ),
    Row(
        "rejoin: a leader below our epoch -> message_rejected, fence, no follow",
        lambda: rejoining(5, epoch=4),
        lambda n: n.receive(hb(4, 3, 4), 6),
        [
            log("peer_recovered", NOTICE, peer=4, epoch=4),
            Send(4, hb(5, 4, None)),
            log("message_rejected", WARNING, peer=4, epoch=4),
            Send(4, hb(5, 4, None)),
            SetTimer(LISTEN, 2006),
            RoleChanged(FOLLOWER, None, 4),
        ],
        durable=DurableState(4, None),
    ),
    Row(
        "rejoin with preempt=true: a higher id does not follow a lower leader, it runs (classic Bully)",
        lambda: rejoining(5, epoch=3, preempt=True),
        lambda n: n.receive(hb(4, 3, 4), 6),
        [
            log("peer_recovered", NOTICE, peer=4, epoch=3),
            Send(4, hb(5, 3, None)),
            log("election_started", epoch=3),
            Broadcast(pre_vote(5, 4)),
            SetTimer(PROPOSAL, 5006),
            SetTimer(LISTEN, 2006),
            RoleChanged(CANDIDATE, None, 3),
        ],
    ),
    Row(
        "rejoin with preempt=true: a lower id follows a higher leader",
        lambda: rejoining(3, epoch=3, preempt=True),
        lambda n: n.receive(hb(4, 3, 4), 6),
        [
            log("peer_recovered", NOTICE, peer=4, epoch=3),
            Send(4, hb(3, 3, None)),
            CancelTimer(LISTEN),
            log("leader_accepted", NOTICE, epoch=3, leader=4),
            RoleChanged(FOLLOWER, 4, 3),
        ],
    ),
    Row(
        "a message from a non-member is rejected and changes nothing",
        lambda: follower(2),
        lambda n: n.receive(coordinator(9, 9), 1000),
        [log("message_rejected", WARNING, epoch=3, leader=5)],
        role=FOLLOWER,
        durable=DurableState(3, None),
    ),
]


def _advanced(node: Driven, to_ms: int, silent: tuple[int, ...] = ()) -> Driven:
    advance(node, to_ms, silent=silent)
    return node


def _heard(node: Driven, *peer_ids: int) -> Driven:
    node.now_ms = 10
    node.hear(*peer_ids)
    return node


@pytest.mark.parametrize("row", [pytest.param(r, id=r.id) for r in ROWS])
def test_transition(row: Row) -> None:
    node = row.given()
    actions = row.when(node)
    assert actions == row.then
    if row.role is not None:
        assert node.role is row.role
    if row.durable is not None:
        assert node.durable == row.durable


def test_row_ids_are_unique() -> None:
    ids = [row.id for row in ROWS]
    assert len(ids) == len(set(ids))
