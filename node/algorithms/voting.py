"""Votes: whom this node may promise, and the promise itself.

A node promises at most one candidate per epoch, never an epoch at or below one it promised or accepted,
and nobody while it follows a live leader; it votes for nobody while it still backs a lease, in its
start-up blackout, or while it catches up after losing its state. A promise is persisted before it is
sent. A winner takes office only once a majority confirmed (CONFIRM / CONFIRMED) that it still holds
that promise (docs/algorithms.md, "What both share" and "Leases").

A pre-vote that only a live leader makes this node refuse (it follows a leader other than the candidate,
and every other rule would let it promise) is not answered at once: it is held for up to
backoff_base_ms, and answered by the rules as they stand when its leader is lost or dropped, or at that
deadline. After a crash the candidate often hears of it a few ms before the voters do; held, their
answers are grants once their own hints arrive, instead of refusals that cost the candidate a back-off
and a second pre-vote. A pre-vote binds and persists nothing, so when it is answered cannot matter to
safety (docs/algorithms.md, "Pre-vote: a refusal held while the leader may be gone").
"""

from __future__ import annotations

from dataclasses import dataclass

from node.algorithms.catchup import is_catch_up_traffic
from node.algorithms.machine import Machine
from node.core.actions import EventName, LogLevel, SetTimer
from node.core.events import TimerId
from node.core.messages import Confirm, Confirmed, ConfirmRefused, PreVoteAnswer, Promise, Propose
from node.core.state import DurableState


@dataclass(frozen=True, slots=True)
class DeferredPreVote:
    """A pre-vote held because `leader_id`, the live leader this node followed when it came, was the only
    reason to refuse it; answered when that changes or at `deadline_ms`."""

    message: Propose
    leader_id: int
    deadline_ms: int


class Voting(Machine):
    # ------------------------------------------------------------------ the promise rules

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

    # ------------------------------------------------------------------ answering PROPOSE and CONFIRM

    def _on_propose(self, message: Propose) -> None:
        if not is_catch_up_traffic(message) and self._holds_back(message):
            return  # a pre-vote only our live leader makes us refuse: answered later
        if message.pre_vote:
            self._answer_pre_vote(message)
            return
        if self._is_leader and message.epoch > self.epoch:
            # A binding proposal exists only after a majority pre-voted for it: they no longer follow us.
            self._step_down(f"node {message.sender} proposes the higher epoch {message.epoch}")
            self._leader_id = None
        granted = self._may_promise(message.sender, message.epoch, False, message.resigned_leader)
        echo_ms = None
        if granted:
            self._grant_promise(
                message.epoch,
                message.sender,
                f"promised epoch {message.epoch} to node {message.sender}",
                rewrite=True,
            )
            if message.sent_ms is not None:  # a stamped handoff proposal: this grant confirms it too
                self._owe_lease(message.sender)
                echo_ms = message.sent_ms
        self._send(message.sender, Promise(self.node_id, message.epoch, granted, self.epoch, echo_ms))

    def _answer_pre_vote(self, message: Propose) -> None:
        """Answer a pre-vote by the rules as they stand now (it binds nothing; a catch-up probe's stamp is
        echoed, which proves the answer fresh)."""
        granted = self._may_promise(message.sender, message.epoch, True, message.resigned_leader)
        answer = PreVoteAnswer(self.node_id, message.epoch, granted, self.epoch, message.sent_ms)
        self._send(message.sender, answer)

    # ------------------------------------------------------------------ pre-votes held while led

    def _refuses_only_for_its_leader(self, message: Propose) -> bool:
        """A pre-vote this node refuses now only because it follows a live leader other than the
        candidate: every other rule would let it promise. (A leader refuses at once: it knows it is
        alive.)"""
        candidate, resigned = message.sender, message.resigned_leader
        return (
            not self._is_leader
            and self._leader_is_live()
            and self._leader_id not in (candidate, resigned)
            and message.epoch > self.epoch
            and not self._abstains(candidate, resigned)
            and not self._may_vote(candidate, message.epoch, True, resigned)
        )

    def _holds_back(self, message: Propose) -> bool:
        """Hold a pre-vote that only our live leader makes us refuse, one per candidate (a member: the
        door admits no other sender): a newer PROPOSE from the same candidate replaces the one held, which
        then goes unanswered (the candidate counts answers to its current attempt only). True when the
        message is held or is a copy of the one held: nothing to send now."""
        held = self._deferred_pre_votes.get(message.sender)
        holds = message.pre_vote and self._refuses_only_for_its_leader(message)
        if held is not None:
            if holds and message.epoch <= held.message.epoch:
                return True  # a copy, or an older attempt arriving late: the one held is answered
            if message.epoch >= held.message.epoch:
                del self._deferred_pre_votes[message.sender]  # the candidate moved on
        if not holds:
            return False
        assert self._leader_id is not None  # _refuses_only_for_its_leader: we follow a live leader
        deadline_ms = self._now_ms + self.settings.backoff_base_ms  # what the candidate would back off
        self._deferred_pre_votes[message.sender] = DeferredPreVote(message, self._leader_id, deadline_ms)
        return True

    def _answer_deferred_pre_votes(self) -> None:
        """At the end of a step: answer every held pre-vote whose reason is gone (this node no longer
        follows that leader: lost, dropped for quorum, replaced, its promise taken, ...) or whose deadline
        passed, by the rules as they stand now; PRE_VOTE_DEFER stays armed for the earliest of the rest."""
        deferred = self._deferred_pre_votes
        for candidate, held in list(deferred.items()):
            if (
                self._now_ms < held.deadline_ms
                and self._leader_id == held.leader_id
                and self._refuses_only_for_its_leader(held.message)
            ):
                continue
            del deferred[candidate]
            self._answer_pre_vote(held.message)
        deadline_ms = min((held.deadline_ms for held in deferred.values()), default=None)
        if deadline_ms != self._pre_vote_timer_ms:
            self._pre_vote_timer_ms = deadline_ms
            if deadline_ms is None:
                self._cancel_timer(TimerId.PRE_VOTE_DEFER)
            else:
                self._emit(SetTimer(TimerId.PRE_VOTE_DEFER, deadline_ms))

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
