"""Votes: whom this node may promise, and the promise itself.

A node promises at most one candidate per epoch, never an epoch at or below one it promised or accepted,
and nobody while it follows a live leader; it votes for nobody while it still backs a lease, in its
start-up blackout, or while it catches up after losing its state. A promise is persisted before it is
sent. A winner takes office only once a majority confirmed (CONFIRM / CONFIRMED) that it still holds
that promise (docs/algorithms.md, "What both share" and "Leases").
"""

from __future__ import annotations

from node.algorithms.machine import Machine
from node.core.actions import EventName, LogLevel
from node.core.events import TimerId
from node.core.messages import Confirm, Confirmed, ConfirmRefused, PreVoteAnswer, Promise, Propose
from node.core.state import DurableState


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
