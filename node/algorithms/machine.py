"""The state an election node holds and the plumbing its parts share: the one entry point
(`step(event) -> actions`), the dispatch of events, the shared phase, and the helpers that emit actions.

The rules live beside it, one concern per module, all combined into `ElectionNode` (base.py):
following.py (leaders, their liveness and quorum), voting.py (whom this node may promise) and base.py
(running for leader, confirmation, the hooks of the algorithms). docs/algorithms.md explains them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from node.algorithms.catchup import EpochCatchUp
from node.algorithms.lease import LeaderLease, OwedLease, StartupBlackout, support_until_ms, votes_again_in_ms
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
    EligibilityChanged,
    Event,
    GateFinished,
    MessageReceived,
    PeerUnreachable,
    ShutdownRequested,
    Start,
    SwitchoverRequested,
    TimerFired,
    TimerId,
)
from node.core.messages import Answer, Heartbeat, Message, MsgType, Propose
from node.core.protocol import RandomSource
from node.core.settings import Settings
from node.core.state import DurableState
from node.core.view import NodeView, PeerView

if TYPE_CHECKING:
    from node.algorithms.base import Confirmation, Proposal  # a candidacy's tallies (base.py)
    from node.algorithms.voting import DeferredPreVote  # a pre-vote answered later (voting.py)


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


class Machine:
    """State and plumbing; the election rules are in the parts that derive from it."""

    name = "base"

    def __init__(self, settings: Settings, state: DurableState, rng: RandomSource) -> None:
        self.settings = settings
        # Read at every step: kept as plain attributes (settings are frozen; its properties recompute).
        self.node_id = settings.node_id
        self._quorum_size = settings.quorum_size
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
        # Eligibility and hand-off (handoff.py): why this node may not run for leader (from the runtime:
        # health check, maintenance), the end of its hold-off after handing an epoch on, the peers whose
        # heartbeats said they may not, and the before_lead gate: (epoch, initiator) while it runs, the
        # epoch whose gate passed.
        self._ineligible_reason: str | None = None
        self._held_off_until_ms: int | None = None
        self._ineligible_peers: set[int] = set()
        self._gating: tuple[int, int] | None = None
        self._gate_passed: int | None = None
        self._handoff_to: int | None = None  # the successor a RESIGN named (a switchover with a target)
        # Ring: a leader accepted through another node's relay, and no claim from the leader itself yet
        # (its own older heartbeat, sent before it took office, may still be on the way).
        self._accepted_via_relay_ms: int | None = None
        # Pre-votes this node refuses only because it follows a live leader, by candidate (a member id),
        # answered when that changes or at their deadline (voting.py); and when PRE_VOTE_DEFER is armed.
        self._deferred_pre_votes: dict[int, DeferredPreVote] = {}
        self._pre_vote_timer_ms: int | None = None
        # message type -> handler: the transition table (filled by ElectionNode and the algorithms)
        self.handlers: dict[MsgType, Callable[[Any], None]] = {}

    if TYPE_CHECKING:
        # Steps the other parts provide: following.py (leaders, their liveness, quorum), voting.py
        # (whom this node may promise), base.py (candidacy, confirmation, the algorithms' hooks).
        def _expire_peers(self) -> None: ...
        def _arm_detector(self) -> None: ...
        def _check_quorum(self) -> None: ...
        def _peer_down(self, peer_id: int) -> None: ...
        def _step_down(self, reason: str) -> None: ...
        def _probe_epochs(self) -> None: ...
        def _finish_catch_up_if_known(self) -> None: ...
        def _answer_deferred_pre_votes(self) -> None: ...
        def _begin_election(self, reason: str) -> None: ...
        def _abandon_election(self) -> None: ...
        def _fail_attempt(self, reason: str) -> None: ...
        def _reelect(self, reason: str) -> None: ...
        def _forget_election(self) -> None: ...
        def _on_algorithm_timer(self, timer: TimerId) -> None: ...
        def _on_peer_unavailable(self, peer_id: int) -> None: ...
        def _elect_unless_led(self, reason: str) -> None: ...
        def _seek_confirmation(self, epoch: int, initiator: int) -> None: ...
        def _may_succeed(self, peer_id: int) -> bool: ...
        def _eligible(self) -> bool: ...
        def _why_ineligible(self) -> str | None: ...
        def _peer_eligible(self, peer_id: int) -> bool: ...
        def _on_eligibility_changed(self, reason: str | None) -> None: ...
        def _on_hold_off_over(self) -> None: ...
        def _on_gate_finished(self, epoch: int, passed: bool, detail: str) -> None: ...
        def _on_gate_timeout(self) -> None: ...
        def _on_switchover(self, target: int | None) -> None: ...
        def _resign(self, why: str, *, successor: int | None, staying: bool) -> None: ...

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
            case GateFinished(epoch=epoch, passed=passed, detail=detail):
                self._on_gate_finished(epoch, passed, detail)
            case EligibilityChanged(reason=reason):
                self._on_eligibility_changed(reason)
            case SwitchoverRequested(target=target):
                self._on_switchover(target)
        if not self._stopped:
            self._check_quorum()
            if self._deferred_pre_votes or self._pre_vote_timer_ms is not None:
                self._answer_deferred_pre_votes()  # whatever this event changed, by the rules as they are now
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
                eligible=self._peer_eligible(peer_id),
            )
        role, leader_id, epoch = self.role_view(now_ms)
        return NodeView(
            node_id=self.node_id,
            algorithm=self.name,
            role=role,
            leader_id=leader_id,
            epoch=epoch,
            peers=peers,
            quorum_size=self.settings.quorum_size,
            reachable=self._reachable(),
            catching_up=self._catch_up is not None,
            ineligible_reason=self._why_ineligible(),
        )

    def role_view(self, now_ms: int) -> tuple[Role, int | None, int]:
        role, leader_id = self._role(), self._leader_id
        if self._is_leader and self._lease.supporters(now_ms) < self._quorum_size:
            # The lease ran out since the last step (a paused process answering HTTP before its overdue
            # lease timer runs): never report leading then; it steps down at its next step.
            role = Role.CANDIDATE if self._quorum_reachable() else Role.NO_QUORUM
            leader_id = None
        return role, leader_id, self._durable.epoch

    # ------------------------------------------------------------------ the shared phase

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
        eligible = self._eligible()
        return Heartbeat(self.node_id, self.epoch, self._leader_id, echo_ms=echo_ms, eligible=eligible)

    def _support_until_ms(self, echo_ms: int) -> int:
        return support_until_ms(echo_ms, self._now_ms, self.settings.failure_timeout_ms)

    def _lease_supporters(self) -> int:
        return self._lease.supporters(self._now_ms)

    def _lease_deadline_ms(self) -> int | None:
        return self._lease.deadline_ms(self._now_ms, self._quorum_size)

    def _reachable(self) -> int:
        return 1 + self._detector.alive_count()

    def _quorum_reachable(self) -> bool:
        return 1 + self._detector.alive_count() >= self._quorum_size  # _reachable(), inlined

    def _leader_is_live(self) -> bool:
        return self._leader_id is not None and self._detector.is_available(self._leader_id)

    def _learn_epoch(self, epoch: int) -> None:
        """Some node holds `epoch`: a later candidacy of ours proposes above it."""
        self._highest_epoch_seen = max(self._highest_epoch_seen, epoch)

    def _electing(self) -> bool:
        return (
            self._proposal is not None
            or self._confirming is not None
            or self._gating is not None
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
            lost = (
                "may have lost promises (a state file record it could not read, or a restart mid-catch-up)"
                if self._durable.recovering
                else "has no state from before this start (a new node, or its state was lost)"
            )
            self._log(
                EventName.CATCH_UP_STARTED,
                f"{lost}: it votes for nobody until the other members tell it an epoch above any promise "
                "it may have made",
                LogLevel.NOTICE,
            )
            self._probe_epochs()
            self._finish_catch_up_if_known()  # a one-node cluster has nobody to ask
        self._broadcast(self._heartbeat())
        self._set_timer(TimerId.HEARTBEAT, self.settings.heartbeat_interval_ms)
        self._set_timer(TimerId.LISTEN, self._listen_ms())

    # ------------------------------------------------------------------ what keeps a node from voting

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

    # ------------------------------------------------------------------ dispatch

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
        elif timer is TimerId.GATE:
            self._on_gate_timeout()
        elif timer is TimerId.HOLD_OFF:
            self._on_hold_off_over()
        elif timer is TimerId.PRE_VOTE_DEFER:
            self._pre_vote_timer_ms = None  # the step's end answers the pre-votes whose deadline passed
        else:
            self._on_algorithm_timer(timer)

    def _on_unreachable(self, peer_id: int) -> None:
        if peer_id in self._detector.peer_ids and self._detector.hint_unreachable(peer_id):
            self._peer_down(peer_id)

    def _on_shutdown(self) -> None:
        if self._is_leader:
            self._resign("shutting down", successor=None, staying=False)
        self._publish()  # also announces a step-down made earlier in this step (quorum lost)
        self._stopped = True
