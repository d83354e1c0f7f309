"""What every election algorithm shares: heartbeats, failure detection, epochs and promises, quorum.

An algorithm (Bully, Ring) only decides *who* runs for leader and *when*; this class decides whether a
candidate may lead. The safety rules live here, in one place:

- A candidate leads under epoch E only after a majority of the configured cluster (itself included)
  promised E. First a pre-vote ("would you promise E?") that binds nobody, so a node cut off from the
  majority never inflates its epoch; then the real proposal, persisted before it is sent; then the
  confirmation: the winner asks whether a majority still holds that promise (CONFIRM) and takes office
  only when they echo its stamp (CONFIRMED), which starts its lease. A voter that confirmed, or echoed a
  leader's heartbeat, promises nobody else until echo + failure_timeout, so no leader of a higher epoch
  can exist while an older one still acts on its lease (see docs/algorithms.md, "Leases").
- A node promises at most one candidate per epoch and never an epoch at or below one it promised or
  accepted; it does not promise while it follows a live leader (no disruption on rejoin), except to a
  higher id when `preempt` is set.
- Messages from a leader under a lower epoch are rejected; a leader that hears of a higher epoch steps
  down; a leader (or follower) that has not heard from a majority within failure_timeout drops it.

The contract with an algorithm (a subclass; also in docs/algorithms.md, "The contract"):

- Hooks it may override: `_start_election()` (run its election; the node that should lead calls
  `_propose()`), `_on_pre_vote_won(known_epoch)` (bind the won pre-vote: by default a broadcast
  proposal), `_epoch_above(known_epoch)`, `_announce_leadership(epoch)`, `_on_peer_unavailable(peer)`,
  `_on_algorithm_timer(timer)`, `_forget_election()` (drop its own election state), and `handlers` entries
  for its own message types.
- Helpers it calls: `_send`, `_broadcast`, `_log`, `_set_timer`, `_cancel_timer`, `_persist`;
  `_await_election(phase)` / `_leave_phase()` / `_reset_election()` / `_wait_for_coordinator()` (the
  shared `phase`); `_propose()`, `_end_pre_vote()`, `_learn_epoch(epoch)`, `_fail_attempt(reason)`,
  `_begin_election(reason)`, `_elect_unless_led(reason)`, `_abandon_election()`; the promise rules
  `_may_vote`, `_abstains`, `_grant_promise`; `_seek_confirmation(epoch, initiator)` (take office) and
  `_on_leader_claim(leader, epoch, via)` (someone leads).
- State it may read, never write: `settings`, `node_id`, `epoch`, `phase`, `_durable`, `_leader_id`,
  `_is_leader`, `_handoff_from`, `_now_ms`, and the detector's queries (`_detector.is_available`, ...).
  Every write goes through a helper (checked by tests/algorithms/test_contract.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from node.algorithms.catchup import EpochCatchUp, is_catch_up_traffic
from node.algorithms.lease import (
    LeaderLease,
    OwedLease,
    StartupBlackout,
    support_until_ms,
    unexpired,
    votes_again_in_ms,
)
from node.core.actions import (
    Action,
    Broadcast,
    CancelTimer,
    EventName,
    Log,
    LogLevel,
    Persist,
    Role,
    RoleChanged,
    Send,
    SetTimer,
)
from node.core.detector import FailureDetector
from node.core.errors import LocalProtocolError
from node.core.events import (
    Event,
    MessageReceived,
    PeerUnreachable,
    ShutdownRequested,
    Start,
    TimerFired,
    TimerId,
)
from node.core.messages import (
    Answer,
    Confirm,
    Confirmed,
    ConfirmRefused,
    Coordinator,
    Heartbeat,
    Message,
    MsgType,
    PreVoteAnswer,
    Promise,
    Propose,
    Resign,
)
from node.core.protocol import RandomSource
from node.core.settings import Settings
from node.core.state import DurableState
from node.core.view import NodeView, PeerView


@dataclass(slots=True)
class Proposal:
    """A candidacy for `epoch`: first a pre-vote, then (if a majority would) the binding proposal."""

    epoch: int
    pre_vote: bool
    grants: set[int] = field(default_factory=set)
    rejects: set[int] = field(default_factory=set)
    known_epoch: int = 0  # the highest epoch any voter reported
    stamp_ms: int | None = None  # a stamped (handoff) proposal: grants echo it and back us at once
    leases: dict[int, int] = field(default_factory=dict)  # voter -> end of the support its grant echoed


@dataclass(slots=True)
class Confirmation:
    """A won election: the winner waits for a majority to confirm their promise of `epoch` (made to
    `initiator`) before it takes office. Each confirmation echoes `stamp_ms` and backs the winner until
    stamp + failure_timeout."""

    epoch: int
    initiator: int
    stamp_ms: int
    leases: dict[int, int] = field(default_factory=dict)  # voter -> end of the support it confirmed
    refused: set[int] = field(default_factory=set)


# Honest clusters add a few epochs per election. An epoch more than EPOCH_JUMP_MAX above our own is
# rejected at the door (`_on_message`), and so is any above EPOCH_MAX: the highest epoch a node then
# proposes (EPOCH_MAX + 2 x members) still fits a message field (2**63 - 1), so no frame can push a
# node to an epoch whose successor cannot be sent.
EPOCH_JUMP_MAX = 2**32
EPOCH_MAX = 2**62


class Phase(StrEnum):
    """Where a node stands in an election of its algorithm (besides the proposal and confirmation)."""

    IDLE = "idle"
    AWAIT_OK = "await-ok"  # Bully: sent ELECTION to higher ids, waiting for any OK
    AWAIT_TOKEN = "await-token"  # Ring, the initiator: its ELECTION token is going round
    AWAIT_COORDINATOR = "await-coordinator"  # deferred to a candidate, or promised: waiting for it to lead


def _epoch_held_by_sender(message: Message) -> int:
    """The epoch the sender has promised or accepted, as far as this message tells (to propose above it)."""
    if isinstance(message, Answer):
        return message.known_epoch  # its `epoch` is the one it answers about
    if isinstance(message, Propose) and message.pre_vote:
        return 0  # a pre-vote's epoch is only a wish
    return message.epoch


class ElectionNode:
    name = "base"

    def __init__(self, settings: Settings, state: DurableState, rng: RandomSource) -> None:
        self.settings = settings
        self._rng = rng
        self._durable = state
        self._detector = FailureDetector(settings.peer_ids, settings.failure_timeout_ms)
        self._now_ms = 0
        self._out: list[Action] = []
        self._leader_id: int | None = None  # this node's own id while it leads (`_is_leader`)
        self._phase = Phase.IDLE
        self._proposal: Proposal | None = None
        self._confirming: Confirmation | None = None
        self._confirmed_winner: tuple[int, int] | None = None  # voter: (epoch, the winner it confirmed)
        self._backoff_pending = False
        self._failed_attempts = 0
        self._highest_epoch_seen = state.epoch  # volatile: from voters' answers, to propose above them
        self._had_quorum = False
        self._no_quorum_warned_ms: int | None = None  # the last warning of the current spell without quorum
        self._handoff_from: int | None = None  # a leader whose RESIGN started the current election
        self._successors: set[int] = set()  # after a RESIGN: the higher live ids, one of which succeeds
        # A node without its state votes for nobody until it learns an epoch above what it may have
        # promised (node/algorithms/catchup.py); set at Start.
        self._catch_up: EpochCatchUp | None = None
        # Leases (node/algorithms/lease.py): the leader's, the one this node owes as a voter, and the
        # start-up blackout.
        self._lease = LeaderLease(settings.failure_timeout_ms)
        self._owed = OwedLease(settings.failure_timeout_ms)
        self._blackout = StartupBlackout(settings.failure_timeout_ms)
        self._leader_stamp_ms: int | None = None  # follower: the last `sent_ms` of our leader, echoed back
        self._detector_armed_at_ms: int | None = None
        self._published: tuple[Role, int | None, int] | None = None
        self._stopped = False
        # message type -> handler: the transition table, readable by tests and docs
        self.handlers: dict[MsgType, Callable[[Any], None]] = {
            MsgType.HEARTBEAT: self._on_heartbeat,
            MsgType.COORDINATOR: self._on_coordinator,
            MsgType.PROPOSE: self._on_propose,
            MsgType.PROMISE: self._on_promise,
            MsgType.PRE_VOTE_ANSWER: self._on_pre_vote_answer,
            MsgType.RESIGN: self._on_resign,
            MsgType.CONFIRM: self._on_confirm,
            MsgType.CONFIRMED: self._on_confirmed,
            MsgType.CONFIRM_REFUSED: self._on_confirm_refused,
        }

    # ------------------------------------------------------------------ the one entry point

    def step(self, event: Event) -> list[Action]:
        if self._stopped:
            return []
        self._now_ms = event.now_ms
        self._expire_peers()
        self._check_quorum()
        match event:
            case Start():
                self._on_start()
            case MessageReceived(message=message):
                self._on_message(message)
            case TimerFired(timer=timer):
                self._on_timer(timer)
            case PeerUnreachable(peer_id=peer_id):
                self._on_unreachable(peer_id)
            case ShutdownRequested():
                self._on_shutdown()
        if not self._stopped:
            self._check_quorum()
            self._arm_detector()
            self._publish()
        out, self._out = self._out, []
        return out

    def view(self, now_ms: int) -> NodeView:
        peers = {}
        for peer_id in self.settings.peer_ids:
            heard_ms = self._detector.last_heard_ms(peer_id)
            peers[peer_id] = PeerView(
                state=self._detector.state(peer_id),
                last_seen_ms=None if heard_ms is None else max(0, now_ms - heard_ms),
            )
        role, leader_id = self._role(), self._leader_id
        if self._is_leader and self._lease.supporters(now_ms) < self.settings.quorum_size:
            # The lease ran out since the last step (a paused process answering HTTP before its overdue
            # lease timer runs): never report leading then; it steps down at its next step.
            role = Role.CANDIDATE if self._quorum_reachable() else Role.NO_QUORUM
            leader_id = None
        return NodeView(
            node_id=self.node_id,
            algorithm=self.name,
            role=role,
            leader_id=leader_id,
            epoch=self._durable.epoch,
            peers=peers,
            quorum_size=self.settings.quorum_size,
            reachable=self._reachable(),
            catching_up=self._catch_up is not None,
        )

    # ------------------------------------------------------------------ hooks for algorithms

    def _start_election(self) -> None:
        """Run the algorithm's election; it ends in `_propose()` on the node that should lead."""
        self._propose()

    def _on_peer_unavailable(self, peer_id: int) -> None:
        """A peer became suspected or hinted unreachable (after the leader check)."""

    def _forget_election(self) -> None:
        """Forget algorithm-specific election state (the phase is back to IDLE)."""

    def _on_algorithm_timer(self, timer: TimerId) -> None:
        """ELECTION (and other algorithm timers) fired."""

    def _announce_leadership(self, epoch: int) -> None:
        """This node just became leader of `epoch`: tell every peer (Ring circulates it instead)."""
        self._broadcast(Coordinator(self.node_id, epoch, self.node_id, self.node_id))

    # ------------------------------------------------------------------ the phase, shared

    @property
    def phase(self) -> Phase:
        return self._phase

    def _await_election(self, phase: Phase) -> None:
        """Enter an algorithm's own waiting phase (AWAIT_OK, AWAIT_TOKEN): ELECTION fires after
        election_timeout unless the phase ends first."""
        self._phase = phase
        self._set_timer(TimerId.ELECTION, self.settings.election_timeout_ms)

    def _wait_for_coordinator(self) -> None:
        """This node deferred to a candidate: give it election_timeout to announce itself."""
        self._set_timer(TimerId.COORDINATOR, self.settings.election_timeout_ms)
        self._phase = Phase.AWAIT_COORDINATOR

    def _leave_phase(self) -> None:
        """Back to IDLE, the algorithm's election state forgotten; timers untouched (the caller's)."""
        self._phase = Phase.IDLE
        self._forget_election()

    def _reset_election(self) -> None:
        """Back to IDLE (a leader is known, quorum is gone, an attempt ended): the ELECTION timer of a
        waiting phase cancelled, the algorithm's election state forgotten."""
        if self._phase in (Phase.AWAIT_OK, Phase.AWAIT_TOKEN):
            self._cancel_timer(TimerId.ELECTION)
        self._leave_phase()

    # ------------------------------------------------------------------ small helpers

    @property
    def node_id(self) -> int:
        return self.settings.node_id

    @property
    def epoch(self) -> int:
        return self._durable.epoch

    @property
    def _is_leader(self) -> bool:
        return self._leader_id == self.node_id

    def _emit(self, action: Action) -> None:
        self._out.append(action)

    def _log(
        self, event: EventName, message: str, level: LogLevel = LogLevel.INFO, **fields: int | None
    ) -> None:
        self._emit(
            Log(
                event=event,
                message=f"node {self.node_id} {message}",
                level=level,
                peer_id=fields.get("peer_id"),
                epoch=fields.get("epoch", self.epoch),
                leader_id=fields.get("leader_id", self._leader_id),
            )
        )

    def _send(self, peer_id: int, message: Message) -> None:
        self._emit(Send(peer_id, message))

    def _broadcast(self, message: Message) -> None:
        self._emit(Broadcast(message))

    def _set_timer(self, timer: TimerId, delay_ms: int) -> None:
        self._emit(SetTimer(timer, self._now_ms + delay_ms))

    def _cancel_timer(self, timer: TimerId) -> None:
        self._emit(CancelTimer(timer))

    def _persist(self, state: DurableState) -> None:
        if state.epoch < self._durable.epoch:
            raise LocalProtocolError(f"epoch would go backwards: {self._durable.epoch} -> {state.epoch}")
        if self._catch_up is not None:
            state = replace(state, recovering=True)  # an epoch learned mid-catch-up is no floor yet
        self._durable = state
        self._emit(Persist(state))

    def _heartbeat(self) -> Heartbeat:
        if self._is_leader:
            return Heartbeat(self.node_id, self.epoch, self.node_id, sent_ms=self._now_ms)
        echo_ms = self._leader_stamp_ms if self._leader_id is not None else None
        return Heartbeat(self.node_id, self.epoch, self._leader_id, echo_ms=echo_ms)

    def _support_until_ms(self, echo_ms: int) -> int:
        return support_until_ms(echo_ms, self._now_ms, self.settings.failure_timeout_ms)

    def _lease_supporters(self) -> int:
        return self._lease.supporters(self._now_ms)

    def _lease_deadline_ms(self) -> int | None:
        return self._lease.deadline_ms(self._now_ms, self.settings.quorum_size)

    def _reachable(self) -> int:
        return 1 + self._detector.alive_count()

    def _quorum_reachable(self) -> bool:
        return self._reachable() >= self.settings.quorum_size

    def _leader_is_live(self) -> bool:
        return self._leader_id is not None and self._detector.is_available(self._leader_id)

    def _learn_epoch(self, epoch: int) -> None:
        """Some node holds `epoch`: a later candidacy of ours proposes above it."""
        self._highest_epoch_seen = max(self._highest_epoch_seen, epoch)

    def _electing(self) -> bool:
        return (
            self._proposal is not None
            or self._confirming is not None
            or self._backoff_pending
            or self._phase is not Phase.IDLE
        )

    def _role(self) -> Role:
        if self._is_leader:
            return Role.LEADER
        if self._leader_id is not None:
            return Role.FOLLOWER
        if not self._quorum_reachable():
            return Role.NO_QUORUM
        return Role.CANDIDATE if self._electing() else Role.FOLLOWER

    def _publish(self) -> None:
        current = (self._role(), self._leader_id, self.epoch)
        if current != self._published:
            self._published = current
            self._emit(RoleChanged(*current))

    # ------------------------------------------------------------------ failure detection and quorum

    def _expire_peers(self) -> None:
        for peer_id in self._detector.expire(self._now_ms):
            self._log(
                EventName.PEER_SUSPECTED,
                f"suspects peer {peer_id}: silent for {self.settings.failure_timeout_ms} ms",
                LogLevel.WARNING,
                peer_id=peer_id,
            )
            self._peer_down(peer_id)

    def _arm_detector(self) -> None:
        # Deadlines only move later as peers are heard, so the timer is re-armed only when it is not
        # armed or a new peer's deadline is earlier; a timer that fires early just re-arms.
        deadlines = [self._detector.next_deadline_ms()]
        if self._is_leader:
            deadlines.append(self._lease_deadline_ms())
        known = [d for d in deadlines if d is not None]
        deadline_ms = min(known) if known else None
        if deadline_ms is None:
            if self._detector_armed_at_ms is not None:
                self._detector_armed_at_ms = None
                self._cancel_timer(TimerId.DETECTOR)
            return
        if self._detector_armed_at_ms is None or deadline_ms < self._detector_armed_at_ms:
            self._detector_armed_at_ms = deadline_ms
            self._emit(SetTimer(TimerId.DETECTOR, deadline_ms))

    def _peer_down(self, peer_id: int) -> None:
        if peer_id == self._leader_id and not self._is_leader:
            self._leader_lost(f"leader {peer_id} is unreachable")
        if peer_id in self._successors:
            self._successors.discard(peer_id)
            if not self._successors and self._leader_id is None and not self._is_leader:
                self._abandon_election()
                self._begin_election(f"node {peer_id}, the successor of the resigned leader, is unreachable")
        self._on_peer_unavailable(peer_id)

    def _check_quorum(self) -> None:
        if self._is_leader and self._lease_supporters() < self.settings.quorum_size:
            self._log(
                EventName.QUORUM_LOST,
                f"has no acknowledged support from a majority within {self.settings.failure_timeout_ms} ms "
                f"(lease of epoch {self.epoch} ran out)",
                LogLevel.WARNING,
            )
            self._step_down("leader lease ran out")
            self._abandon_election()
            if self._quorum_reachable():
                self._set_timer(TimerId.LISTEN, self._listen_ms())  # hear out a successor first
            else:
                self._no_quorum_warned_ms = self._now_ms  # the first warning of this spell
        has_quorum = self._quorum_reachable()
        if not has_quorum and (self._is_leader or self._leader_id is not None or self._electing()):
            reachable = self._reachable()
            # quorum_lost marks the loss of a leader (ours or our leadership); a candidate just gives up.
            event = (
                EventName.QUORUM_LOST
                if self._is_leader or self._leader_id is not None
                else EventName.ELECTION_ABANDONED
            )
            self._log(
                event,
                f"hears only {reachable} of {self.settings.cluster_size} nodes "
                f"(quorum {self.settings.quorum_size}) within {self.settings.failure_timeout_ms} ms",
                LogLevel.WARNING,
            )
            self._no_quorum_warned_ms = self._now_ms  # the first warning of this spell
            if self._is_leader:
                self._step_down("quorum lost")
            self._leader_id = None
            self._abandon_election()
        elif has_quorum and not self._had_quorum and self._leader_id is None and not self._is_leader:
            # A majority just became reachable (start-up, heal): listen for a leader before electing.
            self._set_timer(TimerId.LISTEN, self._listen_ms())
        self._had_quorum = has_quorum
        if has_quorum:
            self._no_quorum_warned_ms = None
        elif (
            self._no_quorum_warned_ms is not None
            and self._now_ms - self._no_quorum_warned_ms >= self.settings.election_timeout_ms
        ):
            self._warn_no_quorum()  # it lasts: again, at most once per election_timeout

    def _warn_no_quorum(self) -> None:
        """This node would run for leader (or has been without a majority for a while) but hears too few
        members: it does not declare itself leader, and says so."""
        self._no_quorum_warned_ms = self._now_ms
        self._log(
            EventName.NO_QUORUM,
            f"hears only {self._reachable()} of {self.settings.cluster_size} nodes "
            f"(quorum {self.settings.quorum_size}) within {self.settings.failure_timeout_ms} ms: "
            "it does not run for leader",
            LogLevel.WARNING,
        )

    # ------------------------------------------------------------------ events

    def _on_start(self) -> None:
        self._log(
            EventName.STARTED,
            f"started ({self.name}, epoch {self.epoch}, {self.settings.cluster_size} members)",
        )
        # Before this start it may have echoed a leader's stamps (a node without a state file may have
        # lost one): no vote until that lease is over, unless it learns that no leader ever existed.
        self._blackout.start(self._now_ms)
        if self._durable.recovering or self._durable == DurableState():
            self._catch_up = EpochCatchUp(
                started_ms=self._now_ms,
                settle_ms=self.settings.failure_timeout_ms,
                peer_ids=frozenset(self.settings.peer_ids),
                quorum_size=self.settings.quorum_size,
            )
            self._log(
                EventName.CATCH_UP_STARTED,
                "has no state from before this start (a new node, or its state was lost): it votes for "
                "nobody until the other members tell it an epoch above any promise it may have made",
                LogLevel.NOTICE,
            )
            self._probe_epochs()
            self._finish_catch_up_if_known()  # a one-node cluster has nobody to ask
        self._broadcast(self._heartbeat())
        self._set_timer(TimerId.HEARTBEAT, self.settings.heartbeat_interval_ms)
        self._set_timer(TimerId.LISTEN, self._listen_ms())

    def _in_startup_blackout(self) -> bool:
        """For failure_timeout after (re)start this node votes for nobody (docs/algorithms.md, "Leases")."""
        return self._blackout.active(self._now_ms)

    def _owes_lease(self, resigned_leader: int | None = None, candidate: int | None = None) -> bool:
        """Our echoes may still back a leader's lease: no vote for anyone else until it runs out."""
        return self._owed.binds(
            self._now_ms,
            following=self._leader_id,
            exempt=(candidate, resigned_leader),
            is_gone=self._detector.is_hinted,
        )

    def _owe_lease(self, leader_id: int) -> None:
        """We just echoed `leader_id`'s stamp: it counts on us until failure_timeout from now at most."""
        self._owed.owe(leader_id, self._now_ms)

    def _listen_ms(self) -> int:
        """How long to listen for a leader from now: listen_ms, and at least until this node may vote
        again (end of the start-up blackout, end of a lease it still backs)."""
        return max(self.settings.listen_ms, votes_again_in_ms(self._now_ms, self._owed, self._blackout))

    def _on_message(self, message: Message) -> None:
        sender = message.sender
        if sender not in self._detector.peer_ids or sender == self.node_id:
            self._log(
                EventName.MESSAGE_REJECTED,
                f"ignores {message.type} from non-member {sender}",
                LogLevel.WARNING,
            )
            return
        claimed = max(message.epoch, message.known_epoch if isinstance(message, Answer) else 0)
        if claimed > min(self.epoch + EPOCH_JUMP_MAX, EPOCH_MAX):
            # Honest epochs grow by a few per election: one this far ahead is a forged or corrupt frame,
            # and accepting it could walk every node's epoch to where the next one cannot be written.
            self._log(
                EventName.MESSAGE_REJECTED,
                f"rejects {message.type} from node {sender}: epoch {claimed} is implausibly far above ours",
                LogLevel.WARNING,
                peer_id=sender,
            )
            return
        self._learn_epoch(_epoch_held_by_sender(message))
        if self._detector.heard(sender, self._now_ms):
            self._log(EventName.PEER_RECOVERED, f"hears peer {sender} again", LogLevel.NOTICE, peer_id=sender)
            self._send(sender, self._heartbeat())  # a rejoining peer learns the leader at once
        handler = self.handlers.get(message.type)
        if handler is not None:
            handler(message)

    def _on_timer(self, timer: TimerId) -> None:
        if timer is TimerId.HEARTBEAT:
            self._broadcast(self._heartbeat())
            if self._catch_up is not None:
                self._probe_epochs()
            self._set_timer(TimerId.HEARTBEAT, self.settings.heartbeat_interval_ms)
        elif timer is TimerId.DETECTOR:
            self._detector_armed_at_ms = None  # expiry already ran at the top of step()
        elif timer is TimerId.LISTEN:
            if self._leader_id is None and not self._is_leader and not self._electing():
                self._begin_election("no leader heard while listening")
        elif timer is TimerId.BACKOFF:
            self._backoff_pending = False
            if self._leader_id is None and not self._is_leader:
                self._begin_election("retry after backoff")
        elif timer is TimerId.PROPOSAL:
            if self._proposal is not None:
                self._fail_attempt(f"no majority answered for epoch {self._proposal.epoch} in time")
            elif self._confirming is not None:
                self._fail_attempt(f"no majority confirmed epoch {self._confirming.epoch} in time")
        elif timer is TimerId.COORDINATOR:
            if self._leader_id is None and not self._is_leader:
                self._abandon_election()  # a handoff that did not happen is over too: the full path now
                self._begin_election("no COORDINATOR arrived in time")
        else:
            self._on_algorithm_timer(timer)

    def _on_unreachable(self, peer_id: int) -> None:
        if peer_id in self._detector.peer_ids and self._detector.hint_unreachable(peer_id):
            self._peer_down(peer_id)

    def _on_shutdown(self) -> None:
        if self._is_leader:
            self._broadcast(Resign(sender=self.node_id, epoch=self.epoch))
            self._log(
                EventName.RESIGNED,
                f"resigns leadership of epoch {self.epoch} (shutting down)",
                LogLevel.NOTICE,
            )
            self._leader_id = None
        self._publish()  # also announces a step-down made earlier in this step (quorum lost)
        self._stopped = True

    # ------------------------------------------------------------------ leadership transitions

    def _begin_election(self, reason: str) -> None:
        if self._is_leader or self._leader_id is not None or self._electing():
            return
        if not self._quorum_reachable():
            if self._no_quorum_warned_ms is None:
                self._warn_no_quorum()  # repeated by _check_quorum while it lasts
            return  # the LISTEN timer re-arms when a majority is back
        if self._catch_up is not None or self._in_startup_blackout() or self._owes_lease():
            self._set_timer(TimerId.LISTEN, self._listen_ms())
            return
        self._log(EventName.ELECTION_STARTED, f"starts an election: {reason}")
        if self._handoff_from is not None and self._defer_to_successor():
            return
        self._start_election()

    def _defer_to_successor(self) -> bool:
        """Our leader resigned: the highest live id succeeds it, and a lower id waits for its COORDINATOR
        (docs/algorithms.md, the RESIGN rows). False when this node is the successor."""
        self._successors = {
            peer_id
            for peer_id in self.settings.peer_ids
            if peer_id > self.node_id and self._detector.is_available(peer_id)
        }
        if not self._successors:
            return False  # we are the successor
        self._wait_for_coordinator()
        return True

    def _leader_lost(self, reason: str) -> None:
        if self._leader_id is None:
            return
        self._log(EventName.LEADER_LOST, reason, LogLevel.WARNING)
        self._leader_id = None
        self._begin_election(reason)

    def _step_down(self, reason: str) -> None:
        if not self._is_leader:
            return
        self._log(
            EventName.STEPPED_DOWN, f"steps down as leader of epoch {self.epoch}: {reason}", LogLevel.WARNING
        )
        self._leader_id = None

    def _seek_confirmation(self, epoch: int, initiator: int) -> None:
        """This node won `epoch` (promised to `initiator`: itself, or the ring election's initiator): it
        leads once a majority confirmed they still hold that promise, their echoes starting its lease
        (docs/algorithms.md, "Leases", step 4)."""
        expected = DurableState(epoch, initiator)
        if self._durable != expected:
            raise LocalProtocolError(
                f"would lead epoch {epoch} without having persisted {expected}: {self._durable}"
            )
        current = self._confirming
        if (self._is_leader and self.epoch == epoch) or (current is not None and current.epoch == epoch):
            return  # a copy of the message that chose us
        self._abandon_election()
        self._confirming = Confirmation(epoch, initiator, stamp_ms=self._now_ms)
        self._broadcast(Confirm(self.node_id, epoch, initiator, sent_ms=self._now_ms))
        # Confirmations later than stamp + failure_timeout would back nothing: give up by then.
        self._set_timer(TimerId.PROPOSAL, self.settings.failure_timeout_ms)
        self._tally_confirmations()

    def _tally_confirmations(self) -> None:
        confirming = self._confirming
        if confirming is None:
            return
        # Only confirmations whose echo is younger than failure_timeout back us: a winner that was paused
        # (SIGSTOP) may read them long after its stamp, before its overdue PROPOSAL timer fires.
        live = unexpired(confirming.leases, self._now_ms)
        if 1 + len(live) >= self.settings.quorum_size:
            self._become_leader(confirming.epoch, live)
            return
        may_still_confirm = [
            peer_id
            for peer_id in self.settings.peer_ids
            if peer_id not in confirming.leases
            and peer_id not in confirming.refused
            and self._detector.is_available(peer_id)
        ]
        if 1 + len(live) + len(may_still_confirm) < self.settings.quorum_size:
            self._fail_attempt(
                f"{len(confirming.refused)} no longer hold their promise of epoch {confirming.epoch} "
                f"and too few others can confirm it"
            )

    def _become_leader(self, epoch: int, leases: dict[int, int]) -> None:
        """Lead `epoch`, backed by the confirmed `leases` (voter -> end of its support)."""
        self._abandon_election()
        self._leader_id = self.node_id
        self._failed_attempts = 0
        self._lease.begin(leases)
        self._log(EventName.BECAME_LEADER, f"became leader of epoch {epoch}", LogLevel.NOTICE)
        self._announce_leadership(epoch)

    def _accept_leader(self, leader_id: int, epoch: int) -> None:
        self._step_down(f"node {leader_id} leads the higher epoch {epoch}")
        if leader_id != self._leader_id or epoch != self.epoch:
            self._leader_stamp_ms = None  # a stamp is only meaningful to the leader whose clock made it
        if epoch > self.epoch:
            self._persist(DurableState(epoch, None))
        self._abandon_election()
        self._failed_attempts = 0
        # The blackout ends, but this may be the leader we backed before the crash: back it for as long
        # as the blackout would have lasted.
        self._blackout.end_on_accepting(leader_id, self._now_ms, self._owed)
        if self._leader_id != leader_id:
            self._leader_id = leader_id
            self._log(
                EventName.LEADER_ACCEPTED,
                f"follows leader {leader_id} of epoch {epoch}",
                LogLevel.NOTICE,
                epoch=epoch,  # the epoch accepted (the node's own, once it is persisted)
            )

    def _abandon_election(self) -> None:
        self._proposal = None
        self._confirming = None
        self._successors = set()
        self._backoff_pending = False
        self._handoff_from = None
        for timer in (TimerId.PROPOSAL, TimerId.BACKOFF, TimerId.COORDINATOR, TimerId.LISTEN):
            self._cancel_timer(timer)
        self._reset_election()

    # ------------------------------------------------------------------ proposals and promises

    def _propose(self) -> None:
        """Run for leader: pre-vote, then the binding proposal; lead once a majority promised."""
        if not self._quorum_reachable():
            self._fail_attempt("no majority reachable")
            return
        # Rejections taught us of higher epochs: ask for one above all of them, or we would be refused again.
        known_epoch = max(self.epoch, self._highest_epoch_seen)
        if self._handoff_from is not None:
            # The leader resigned: nobody is left to protect from disruption, so skip the pre-vote round.
            self._on_pre_vote_won(known_epoch)
            return
        self._proposal = Proposal(epoch=known_epoch + 1, pre_vote=True, grants={self.node_id})
        self._proposal.known_epoch = known_epoch
        self._broadcast(Propose(self.node_id, self._proposal.epoch, pre_vote=True))
        self._set_timer(TimerId.PROPOSAL, self.settings.election_timeout_ms)
        self._tally()

    def _tally(self) -> None:
        proposal = self._proposal
        if proposal is None:
            return
        if len(proposal.grants) >= self.settings.quorum_size:
            if proposal.pre_vote:
                self._on_pre_vote_won(max(self.epoch, proposal.known_epoch))
            else:
                self._proposal = None
                live = unexpired(proposal.leases, self._now_ms)
                if 1 + len(live) >= self.settings.quorum_size:
                    self._become_leader(proposal.epoch, live)  # the grants were the confirmations
                else:
                    self._seek_confirmation(proposal.epoch, self.node_id)
        else:
            # Voters that are suspected or unreachable will not answer in time: fail early instead of
            # waiting out the whole election_timeout for a majority that cannot form.
            may_still_grant = [
                peer_id
                for peer_id in self.settings.peer_ids
                if peer_id not in proposal.grants
                and peer_id not in proposal.rejects
                and self._detector.is_available(peer_id)
            ]
            if len(proposal.grants) + len(may_still_grant) < self.settings.quorum_size:
                phase = "pre-vote" if proposal.pre_vote else "proposal"
                self._fail_attempt(
                    f"{len(proposal.rejects)} rejected the {phase} for epoch {proposal.epoch} "
                    f"and too few others can answer"
                )

    def _on_pre_vote_won(self, known_epoch: int) -> None:
        """Hook: a majority would promise. Bind it to an epoch above `known_epoch`, the highest epoch any
        voter reported; here by a broadcast proposal (Ring passes a token round the ring instead)."""
        # A handoff has no rival candidates to wait out: its grants may double as confirmations.
        self._propose_binding(
            self._epoch_above(known_epoch),
            stamped=self._handoff_from is not None,
            resigned=self._handoff_from,
        )

    def _epoch_above(self, known_epoch: int) -> int:
        """The epoch this node proposes when `known_epoch` is the highest it knows of (Ring: a ballot)."""
        return known_epoch + 1

    def _propose_binding(self, epoch: int, *, stamped: bool, resigned: int | None = None) -> None:
        """Persist a promise of `epoch` to ourselves, then ask every peer for theirs. A stamped proposal
        carries our clock: a grant echoes it and backs us like a CONFIRMED, so no confirmation round."""
        self._persist(DurableState(epoch, self.node_id))
        stamp_ms = self._now_ms if stamped else None
        self._proposal = Proposal(
            epoch=epoch, pre_vote=False, grants={self.node_id}, known_epoch=epoch, stamp_ms=stamp_ms
        )
        self._broadcast(
            Propose(self.node_id, epoch, pre_vote=False, resigned_leader=resigned, sent_ms=stamp_ms)
        )
        self._set_timer(TimerId.PROPOSAL, self.settings.election_timeout_ms)
        self._tally()

    def _reelect(self, reason: str) -> None:
        """A leader learned of a higher epoch that no rival leads: leave the old epoch and propose one
        above everything heard of, stamped, without a pre-vote (docs/algorithms.md, "Re-election of the
        incumbent")."""
        epoch = self._epoch_above(max(self.epoch, self._highest_epoch_seen))
        self._log(
            EventName.REELECTION_STARTED,
            f"leaves epoch {self.epoch} and runs again for epoch {epoch} as its incumbent leader: {reason}",
            LogLevel.NOTICE,
        )
        self._leader_id = None
        self._abandon_election()
        self._propose_binding(epoch, stamped=True)

    def _fail_attempt(self, reason: str) -> None:
        self._proposal = None
        self._confirming = None
        self._handoff_from = None  # retries take the full path, pre-vote included
        self._cancel_timer(TimerId.PROPOSAL)
        self._reset_election()
        self._failed_attempts += 1
        # Jitter first, then the cap: no retry ever waits longer than backoff_cap_ms (election_timeout).
        uncapped_ms = self.settings.backoff_base_ms * 2 ** min(self._failed_attempts - 1, 16)
        delay_ms = max(1, min(self.settings.backoff_cap_ms, int(uncapped_ms * (0.5 + self._rng.random()))))
        self._log(
            EventName.ELECTION_FAILED, f"does not lead: {reason}; retries in {delay_ms} ms", LogLevel.WARNING
        )
        self._backoff_pending = True
        self._set_timer(TimerId.BACKOFF, delay_ms)

    def _may_promise(
        self, candidate: int, epoch: int, pre_vote: bool, resigned_leader: int | None = None
    ) -> bool:
        return not self._abstains(candidate, resigned_leader) and self._may_vote(
            candidate, epoch, pre_vote, resigned_leader
        )

    def _abstains(self, candidate: int, resigned_leader: int | None = None) -> bool:
        """For now this node votes for nobody (it may still back a leader it cannot see); this passes."""
        return (
            self._catch_up is not None
            or self._in_startup_blackout()
            or self._owes_lease(resigned_leader, candidate)
        )

    def _may_vote(
        self, candidate: int, epoch: int, pre_vote: bool, resigned_leader: int | None = None
    ) -> bool:
        """The lasting rules: one candidate per epoch, epochs only go up, a live leader is not disrupted."""
        if epoch < self.epoch:
            return False
        if epoch == self.epoch and (pre_vote or self._durable.voted_for != candidate):
            return False  # at most one candidate per epoch; a repeat to the same one is answered again
        if self._is_leader:
            return self.settings.preempt and candidate > self.node_id
        if self._leader_is_live() and self._leader_id not in (candidate, resigned_leader):
            # Our own leader may ask (its re-election: _reelect); anyone else would disrupt it.
            assert self._leader_id is not None
            return self.settings.preempt and candidate > self._leader_id
        return True

    def _grant_promise(self, epoch: int, candidate: int, reason: str, *, rewrite: bool = False) -> None:
        """Bind this node to `candidate` for `epoch` (the rules allowed it): leave any office or election,
        persist the promise (before whatever the caller sends next), and wait for the candidate's
        COORDINATOR. The promise held already is written again only with `rewrite` (a repeated PROPOSE)."""
        self._step_down(reason)
        if rewrite or self._durable != DurableState(epoch, candidate):
            self._persist(DurableState(epoch, candidate))
        self._leader_id = None
        self._abandon_election()
        self._wait_for_coordinator()

    def _elect_unless_led(self, reason: str) -> None:
        """Start an election unless this node follows a live leader (a leader it can no longer reach is
        forgotten first)."""
        if self._leader_is_live():
            return
        self._leader_id = None
        self._begin_election(reason)

    def _end_pre_vote(self) -> None:
        """The pre-vote is won and the algorithm binds it its own way (Ring: its token): the tally ends."""
        self._proposal = None
        self._cancel_timer(TimerId.PROPOSAL)

    def _on_propose(self, message: Propose) -> None:
        if self._is_leader and not message.pre_vote and message.epoch > self.epoch:
            # A binding proposal exists only after a majority pre-voted for it: they no longer follow us.
            self._step_down(f"node {message.sender} proposes the higher epoch {message.epoch}")
            self._leader_id = None
        granted = self._may_promise(message.sender, message.epoch, message.pre_vote, message.resigned_leader)
        echo_ms = None
        if granted and not message.pre_vote:
            self._grant_promise(
                message.epoch,
                message.sender,
                f"promised epoch {message.epoch} to node {message.sender}",
                rewrite=True,
            )
            if message.sent_ms is not None:  # a stamped handoff proposal: this grant confirms it too
                self._owe_lease(message.sender)
                echo_ms = message.sent_ms
        elif message.pre_vote:
            echo_ms = message.sent_ms  # a catch-up probe's stamp: proves our answer is fresh
        answer = PreVoteAnswer if message.pre_vote else Promise
        self._send(message.sender, answer(self.node_id, message.epoch, granted, self.epoch, echo_ms))

    def _on_pre_vote_answer(self, message: PreVoteAnswer) -> None:
        if is_catch_up_traffic(message):  # the answer to a probe: no candidacy asks for epoch 0
            self._on_probe_answer(message)
            return
        self._count_answer(message, pre_vote=True)

    def _on_promise(self, message: Promise) -> None:
        self._count_answer(message, pre_vote=False)

    def _count_answer(self, message: Promise | PreVoteAnswer, *, pre_vote: bool) -> None:
        proposal = self._proposal
        if proposal is None or message.epoch != proposal.epoch or pre_vote != proposal.pre_vote:
            return  # an answer to an earlier attempt
        self._learn_epoch(message.known_epoch)
        proposal.known_epoch = max(proposal.known_epoch, message.known_epoch)
        (proposal.grants if message.granted else proposal.rejects).add(message.sender)
        if message.granted and message.echo_ms is not None and message.echo_ms == proposal.stamp_ms:
            proposal.leases[message.sender] = self._support_until_ms(message.echo_ms)
        self._tally()

    # ------------------------------------------------------------------ catching up after a lost state

    def _probe_epochs(self) -> None:
        """Ask the members we still need for their epoch: a pre-vote for epoch 0, which all refuse,
        naming their epoch and echoing our stamp."""
        catch_up = self._catch_up
        assert catch_up is not None
        wanted = catch_up.wanted(self._now_ms)
        if not wanted:
            return
        probe = Propose(self.node_id, 0, pre_vote=True, sent_ms=catch_up.probe(self._now_ms))
        if len(wanted) == len(self.settings.peer_ids):
            self._broadcast(probe)
        else:
            for peer_id in wanted:
                self._send(peer_id, probe)

    def _on_probe_answer(self, message: PreVoteAnswer) -> None:
        catch_up = self._catch_up
        if catch_up is None or message.echo_ms is None:
            return
        catch_up.record(message.sender, message.echo_ms, message.known_epoch)
        self._finish_catch_up_if_known()

    def _finish_catch_up_if_known(self) -> None:
        catch_up = self._catch_up
        if catch_up is None:
            return
        floor = catch_up.floor(self._now_ms)
        if floor is None:
            return
        self._catch_up = None
        epoch = max(self.epoch, floor)
        self._learn_epoch(epoch)
        if epoch > self.epoch or self._durable.recovering:
            # The floor on disk: no promise at or below it. (It never promised while catching up.)
            voted_for = self._durable.voted_for if epoch == self.epoch else None
            self._persist(DurableState(epoch, voted_for))
        self._log(
            EventName.CATCH_UP_FINISHED,
            f"learned epoch {floor} from {len(catch_up.answers)} of {len(catch_up.peer_ids)} members: "
            f"votes again, above epoch {epoch}",
            LogLevel.NOTICE,
        )
        if catch_up.learned_nothing_was_ever_elected(floor) and self._blackout.started_ms is not None:
            # A new cluster: no leader ever existed, so no lease waits on us. Elect after listen_ms.
            self._blackout.lift()
            if self._leader_id is None and not self._is_leader and not self._electing():
                wait_ms = catch_up.started_ms + self.settings.listen_ms - self._now_ms
                self._set_timer(TimerId.LISTEN, max(1, wait_ms))

    # ------------------------------------------------------------------ leader announcements

    def _on_heartbeat(self, message: Heartbeat) -> None:
        if message.leader_id == message.sender:
            self._on_leader_claim(message.sender, message.epoch, via=message.sender)
            if self._leader_id == message.sender and message.epoch == self.epoch:
                self._leader_stamp_ms = message.sent_ms
                if message.sent_ms is not None:  # our next heartbeat echoes it: we back this leader
                    self._owe_lease(message.sender)
            return
        if (
            self._is_leader
            and message.leader_id == self.node_id
            and message.epoch == self.epoch
            and message.echo_ms is not None
        ):
            self._lease.echoed(message.sender, message.echo_ms, self._now_ms)
        if message.sender == self._leader_id and not self._is_leader:
            self._leader_lost(f"leader {message.sender} no longer claims to lead")
        elif self._is_leader and message.epoch > self.epoch:
            if message.leader_id in (None, self.node_id):
                # Not a rival's follower: a rejoining node, or a candidacy that never won. Keep office
                # and move our followers above it (docs/algorithms.md, "Re-election of the incumbent").
                self._reelect(f"node {message.sender} holds the higher epoch {message.epoch}")
                return
            rival = f"node {message.leader_id}"
            self._step_down(f"node {message.sender} follows {rival} under the higher epoch {message.epoch}")
            self._begin_election("stepped down")

    def _on_confirm(self, message: Confirm) -> None:
        if not self._may_confirm(message):
            self._send(message.sender, ConfirmRefused(self.node_id, message.epoch, known_epoch=self.epoch))
            return
        self._confirmed_winner = (message.epoch, message.sender)
        self._owe_lease(message.sender)
        self._send(message.sender, Confirmed(self.node_id, message.epoch, echo_ms=message.sent_ms))

    def _may_confirm(self, message: Confirm) -> bool:
        """We hold the promise the winner asks about, and it is the one winner of that epoch we back.

        Honest elections have one winner per (epoch, initiator). A member that lies (a forged Ring
        COORDINATOR naming another holder of the promise) could make a second one ask: so a voter
        confirms at most one winner per epoch, never one other than the leader it follows, and none in
        its start-up blackout (it may have confirmed another before it restarted)."""
        if self._durable != DurableState(message.epoch, message.initiator) or self._is_leader:
            return False
        if self._leader_id not in (None, message.sender) or self._in_startup_blackout():
            return False
        confirmed = self._confirmed_winner
        return confirmed is None or confirmed[0] != message.epoch or confirmed[1] == message.sender

    def _on_confirmed(self, message: Confirmed) -> None:
        confirming = self._confirming
        if confirming is None or message.epoch != confirming.epoch or message.echo_ms != confirming.stamp_ms:
            return  # an answer to an earlier attempt
        confirming.leases[message.sender] = self._support_until_ms(message.echo_ms)
        self._tally_confirmations()

    def _on_confirm_refused(self, message: ConfirmRefused) -> None:
        confirming = self._confirming
        if confirming is None or message.epoch != confirming.epoch:
            return  # an answer to an earlier attempt
        confirming.refused.add(message.sender)  # it promised a higher epoch since, or backs another winner
        self._tally_confirmations()

    def _on_coordinator(self, message: Coordinator) -> None:
        self._on_leader_claim(message.leader_id, message.epoch, via=message.sender)

    def _on_leader_claim(self, leader_id: int, epoch: int, via: int) -> None:
        if leader_id == self.node_id:
            return
        if leader_id not in self._detector.peer_ids:
            self._log(
                EventName.MESSAGE_REJECTED,
                f"ignores a leader claim for non-member {leader_id}",
                LogLevel.WARNING,
            )
            return
        if epoch < self.epoch:
            self._log(
                EventName.MESSAGE_REJECTED,
                f"rejects node {leader_id} as leader: its epoch {epoch} is below ours {self.epoch}",
                LogLevel.WARNING,
                peer_id=via,
            )
            self._send(via, self._heartbeat())  # fence: the stale leader learns the higher epoch
            return
        if not self._quorum_reachable():
            return  # cut off from a majority: we would drop this leader at once (quorum_lost)
        if epoch == self.epoch and self._is_leader:
            # We hold a majority of promises for this epoch, so the claim is false: a buggy or hostile
            # member. Reject it; a remote frame never ends this node (or its office).
            self._log(
                EventName.MESSAGE_REJECTED,
                f"rejects node {leader_id}'s claim to lead epoch {epoch}, which this node leads",
                LogLevel.WARNING,
                peer_id=via,
            )
            return
        if self.settings.preempt and leader_id < self.node_id:
            # Classic Bully: a higher id does not follow a lower one; it takes over.
            self._step_down(f"node {leader_id} leads the higher epoch {epoch}")
            if epoch > self.epoch:
                self._persist(DurableState(epoch, None))
            self._leader_id = None
            self._begin_election(f"preempts leader {leader_id}")
            return
        self._accept_leader(leader_id, epoch)

    def _on_resign(self, message: Resign) -> None:
        self._detector.hint_unreachable(message.sender)
        if message.sender == self._leader_id and message.epoch == self.epoch:
            reason = f"leader {message.sender} resigned epoch {message.epoch}"
            self._log(EventName.LEADER_LOST, reason, LogLevel.NOTICE)
            self._leader_id = None
            self._abandon_election()
            self._handoff_from = message.sender
            self._begin_election(f"leader {message.sender} resigned")
        self._on_peer_unavailable(message.sender)
