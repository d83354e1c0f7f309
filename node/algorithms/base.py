"""ElectionNode: what every election algorithm shares, and where "one leader per epoch" is decided.

An algorithm (Bully, Ring) only decides *who* runs for leader and *when*; ElectionNode decides whether a
candidate may lead. It is one class in four modules, one concern each: this one (running for leader,
confirmation, taking office, the algorithms' hooks), voting.py (whom a node may promise), following.py
(leaders, their liveness, quorum) and machine.py (state, the entry point, dispatch, helpers). The safety
rules, in one place:

- A candidate leads under epoch E only after a majority of the configured cluster (itself included)
  promised E. First a pre-vote ("would you promise E?") that binds nobody, so a node cut off from the
  majority never inflates its epoch; then the real proposal, persisted before it is sent; then the
  confirmation: the winner asks whether a majority still holds that promise (CONFIRM) and takes office
  only when they echo its stamp (CONFIRMED), which starts its lease. A voter that confirmed, or echoed a
  leader's heartbeat, promises nobody else until echo + failure_timeout, so no leader of a higher epoch
  can exist while an older one still acts on its lease (see docs/algorithms.md, "Leases").
- A node promises at most one candidate per epoch and never an epoch at or below one it promised or
  accepted; it does not promise while it follows a live leader (no disruption on rejoin), except to a
  higher id when `preempt` is set. A pre-vote refused for that reason alone is held for up to
  backoff_base_ms and answered by the rules of the moment its leader is lost, or then (voting.py).
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

from dataclasses import dataclass, field

from node.algorithms.catchup import is_catch_up_traffic
from node.algorithms.following import Following
from node.algorithms.handoff import Handoff
from node.algorithms.lease import unexpired
from node.algorithms.machine import EPOCH_JUMP_MAX, EPOCH_MAX, Phase
from node.algorithms.voting import Voting
from node.core.actions import EventName, LogLevel
from node.core.errors import LocalProtocolError
from node.core.events import TimerId
from node.core.messages import (
    Confirm,
    Confirmed,
    ConfirmRefused,
    Coordinator,
    MsgType,
    PreVoteAnswer,
    Promise,
    Propose,
)
from node.core.protocol import RandomSource
from node.core.settings import Settings
from node.core.state import DurableState

__all__ = ["EPOCH_JUMP_MAX", "EPOCH_MAX", "ElectionNode", "Phase"]


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


class ElectionNode(Following, Voting, Handoff):
    """The shared election node: an algorithm (bully.py, ring.py) derives from it."""

    def __init__(self, settings: Settings, state: DurableState, rng: RandomSource) -> None:
        super().__init__(settings, state, rng)
        self.handlers.update(
            {
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
        )

    # ------------------------------------------------------------------ hooks an algorithm may override

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

    # ------------------------------------------------------------------ running for leader

    def _begin_election(self, reason: str) -> None:
        if self._is_leader or self._leader_id is not None or self._electing():
            return
        if not self._quorum_reachable():
            if self._no_quorum_warned_ms is None:
                self._warn_no_quorum()  # repeated by _check_quorum while it lasts
            return  # the LISTEN timer re-arms when a majority is back
        if not self._eligible():
            return  # it votes, it does not run; it elects again once eligible (handoff.py)
        if self._catch_up is not None or self._in_startup_blackout() or self._owes_lease():
            self._set_timer(TimerId.LISTEN, self._listen_ms())
            return
        self._log(EventName.ELECTION_STARTED, f"starts an election: {reason}")
        if self._handoff_from is not None and self._defer_to_successor():
            return
        self._start_election()

    def _defer_to_successor(self) -> bool:
        """Our leader resigned: the highest live id succeeds it, and a lower id waits for its COORDINATOR
        (docs/algorithms.md, the RESIGN rows); a switchover names its successor. Nodes that may not
        run (their heartbeats said so) are passed over. False when this node is the successor."""
        named = self._handoff_to
        if named == self.node_id:
            return False
        if named is not None and self._detector.is_available(named):
            self._successors = {named}
        else:
            self._successors = {
                peer_id
                for peer_id in self.settings.peer_ids
                if peer_id > self.node_id and self._may_succeed(peer_id)
            }
        if not self._successors:
            return False  # we are the successor
        self._wait_for_coordinator()
        return True

    # ------------------------------------------------------------------ confirmation and taking office

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
        if self._gate_holds_office(epoch, initiator):
            return  # it declined, or its before_lead gate runs (handoff.py)
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

    def _abandon_election(self) -> None:
        self._proposal = None
        self._confirming = None
        self._successors = set()
        self._backoff_pending = False
        self._handoff_from = None
        self._handoff_to = None
        self._gating = None
        for timer in (TimerId.PROPOSAL, TimerId.BACKOFF, TimerId.COORDINATOR, TimerId.LISTEN, TimerId.GATE):
            self._cancel_timer(timer)
        self._reset_election()

    # ------------------------------------------------------------------ proposals and their tally

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
                confirmed = 1 + len(live) >= self.settings.quorum_size
                gate_passed = not self.settings.gated or self._gate_passed == proposal.epoch
                if confirmed and gate_passed and self._eligible():
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
        self._gate_passed = epoch  # it keeps its office: its before_lead gate passed when it took it
        self._propose_binding(epoch, stamped=True)

    def _fail_attempt(self, reason: str) -> None:
        self._proposal = None
        self._confirming = None
        self._handoff_from = None  # retries take the full path, pre-vote included
        self._handoff_to = None
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

    def _end_pre_vote(self) -> None:
        """The pre-vote is won and the algorithm binds it its own way (Ring: its token): the tally ends."""
        self._proposal = None
        self._cancel_timer(TimerId.PROPOSAL)

    # ------------------------------------------------------------------ answers

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
