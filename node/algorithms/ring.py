"""Ring election (Chang-Roberts / LeLann), made safe by the shared quorum and epoch rules.

Members form a logical ring ordered by id; a node's successor is the next higher id, wrapping round, and
a successor that is suspected or hinted unreachable is skipped (across any chain of failed nodes).

0. Pre-vote (base `_propose`): "would you promise an epoch above E?". It binds and persists nothing, so a
   node cut off from a majority, or one whose peers follow a live leader, never inflates its epoch.
1. ELECTION token. The initiator persists a promise of its own epoch E to itself and sends
   ELECTION(E, initiator, ids=[initiator]). Each node that may promise E to this election (the base rules,
   `_may_promise`) persists (E, voted_for=initiator) *before* it appends its id and passes the token on;
   a node that may not answers the initiator with TOKEN_REFUSED and the token dies there.
   Back at the initiator, the token is valid only if a majority of the configured cluster is listed;
   the winner is the highest listed id. The initiator decides at most once per epoch.
2. COORDINATOR(leader=winner, E, initiator). The initiator hands it to the winner, which leads if its
   durable promise is exactly (E, initiator) and passes the message round the ring; it stops before it
   would reach the winner again. Starting the round at the winner means nobody follows a node that has
   not yet taken office (see docs/algorithms.md).

Epochs are ballots: a node only proposes epochs that are congruent to its rank modulo N, so two
initiators never propose the same epoch and, of several elections in flight, the one with the highest
epoch absorbs the others: every node promises it over a lower one, and a lower token dies at the first
node that promised the higher. (Absorbing by "longest list" cannot be safe: a node that promised E to one
initiator may not promise E to another, however long its list.)

Bounds: a token copy moves at most N hops (each hop adds a new id; a node already listed drops it), a node
relays a given election's token and COORDINATOR once, and each initiator's wait is election_timeout.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from node.algorithms.base import ElectionNode, Phase
from node.core.actions import EventName, LogLevel
from node.core.events import TimerId
from node.core.messages import Coordinator, Election, MsgType, TokenRefused
from node.core.protocol import RandomSource
from node.core.settings import Settings
from node.core.state import DurableState

__all__ = ["Phase", "Ring"]  # Phase (base.py): AWAIT_TOKEN while the initiator's token goes round

RingMessage = Election | Coordinator


@dataclass(frozen=True, slots=True)
class InFlight:
    """The last ring message this node passed on, kept for a resend while its receiver may still die."""

    peer_id: int
    message: RingMessage
    sent_at_ms: int


class Ring(ElectionNode):
    name = "ring"

    def __init__(self, settings: Settings, state: DurableState, rng: RandomSource) -> None:
        super().__init__(settings, state, rng)
        self.ring = tuple(sorted(settings.member_ids))
        self._token_epoch: int | None = None  # the epoch of this node's own token while it goes round
        self._handed_to: int | None = None  # the winner this initiator handed its COORDINATOR to
        self._in_flight: InFlight | None = None
        # (epoch, initiator) of the last token / COORDINATOR relayed: copies of it are dropped
        self._relayed_token: tuple[int, int] | None = None
        self._relayed_coordinator: tuple[int, int] | None = None
        self.handlers[MsgType.ELECTION] = self._on_token
        self.handlers[MsgType.COORDINATOR] = self._on_coordinator_round
        self.handlers[MsgType.TOKEN_REFUSED] = self._on_token_refused

    # ------------------------------------------------------------------ the ring

    def _ring_after(self, node_id: int) -> list[int]:
        """Every other member in ring order, starting at `node_id`'s successor."""
        at = self.ring.index(node_id)
        return [*self.ring[at + 1 :], *self.ring[:at]]

    def next_hop(self, message: RingMessage) -> int | None:
        """Where this node passes `message`: the first live node on its way, skipping the failed ones.

        A token goes no further than its initiator (only the initiator can end phase 1, so it is sent
        there even when suspected) and skips nodes already listed; a COORDINATOR stops before its leader.
        """
        path = self._ring_after(self.node_id)
        if isinstance(message, Election):
            if message.initiator != self.node_id:
                path = path[: path.index(message.initiator) + 1]
            passed = (*message.ids, *message.abstained)
            live = [p for p in path if p not in passed and self._detector.is_available(p)]
            fallback = path[-1:] if message.initiator != self.node_id else []
        else:
            if message.leader_id != self.node_id:
                path = path[: path.index(message.leader_id)]
            live = [p for p in path if self._detector.is_available(p)]
            fallback = []
        candidates = live or fallback
        return candidates[0] if candidates else None

    def _pass_on(self, message: RingMessage) -> int | None:
        hop = self.next_hop(message)
        if hop is not None:
            self._send(hop, message)
            self._in_flight = InFlight(hop, message, self._now_ms)
        return hop

    def ballot_above(self, epoch: int) -> int:
        """This node's lowest epoch in the round after `epoch`: round x N + rank, always above `epoch`."""
        size = len(self.ring)
        return (epoch // size + 1) * size + self.ring.index(self.node_id)

    # ------------------------------------------------------------------ hooks

    def _epoch_above(self, known_epoch: int) -> int:
        return self.ballot_above(known_epoch)  # also for an incumbent's re-election (base._reelect)

    def _on_pre_vote_won(self, known_epoch: int) -> None:
        self._end_pre_vote()
        epoch = self.ballot_above(known_epoch)
        self._persist(DurableState(epoch, self.node_id))
        self._token_epoch = epoch
        self._await_election(Phase.AWAIT_TOKEN)
        token = Election(self.node_id, epoch, initiator=self.node_id, ids=(self.node_id,))
        if self._pass_on(token) is None:
            self._conclude(token)  # nobody else to ask: a one-node cluster, or every peer unreachable

    def _announce_leadership(self, epoch: int) -> None:
        initiator = self._durable.voted_for
        assert initiator is not None  # _seek_confirmation checked the durable promise
        self._relayed_coordinator = (epoch, initiator)
        self._pass_on(Coordinator(self.node_id, epoch, leader_id=self.node_id, initiator=initiator))

    def _forget_election(self) -> None:
        self._token_epoch = self._handed_to = self._in_flight = None

    def _on_algorithm_timer(self, timer: TimerId) -> None:
        if timer is TimerId.ELECTION and self.phase is Phase.AWAIT_TOKEN:
            self._fail_attempt(
                f"the ring token of epoch {self._token_epoch} did not come back within "
                f"{self.settings.election_timeout_ms} ms"
            )

    def _on_peer_unavailable(self, peer_id: int) -> None:
        if self.phase is Phase.AWAIT_COORDINATOR and peer_id == self._handed_to:
            self._reset_election()
            self._cancel_timer(TimerId.COORDINATOR)
            self._begin_election(f"node {peer_id}, which this node's election chose, is unreachable")
            return
        sent = self._in_flight
        if sent is None or sent.peer_id != peer_id:
            return
        self._in_flight = None
        if self._now_ms - sent.sent_at_ms > self.settings.failure_timeout_ms or not self._still_due(sent):
            return  # the receiver had time to pass it on before it failed (or the round is over)
        hop = self.next_hop(sent.message)
        if hop is not None and hop != peer_id:
            self._log(
                EventName.RING_REPAIRED,
                f"passes the {sent.message.type} of epoch {sent.message.epoch} to node {hop}: "
                f"node {peer_id} is unreachable",
                peer_id=peer_id,
            )
            self._pass_on(replace(sent.message, sender=self.node_id))

    def _still_due(self, sent: InFlight) -> bool:
        message = sent.message
        if isinstance(message, Coordinator):
            return self._leader_id == message.leader_id and self.epoch == message.epoch
        if message.initiator == self.node_id:
            return self.phase is Phase.AWAIT_TOKEN and self._token_epoch == message.epoch
        promised = self._durable == DurableState(message.epoch, message.initiator)
        return promised and self.phase is Phase.AWAIT_COORDINATOR

    # ------------------------------------------------------------------ phase 1: the ELECTION token

    def _on_token(self, token: Election) -> None:
        if token.initiator == self.node_id:
            current = self.phase is Phase.AWAIT_TOKEN and token.epoch == self._token_epoch
            if not current or self._durable != DurableState(token.epoch, self.node_id):
                return  # a late copy: that election is decided, failed or abandoned
            hop = self.next_hop(token) if len(token.ids) < self.settings.quorum_size else None
            if hop is None:
                self._conclude(token)
                return
            # Short of a majority because a node on the way could not see nodes that we can see.
            self._log(
                EventName.RING_REPAIRED,
                f"passes its token on to node {hop}, which the ring skipped",
                peer_id=hop,
            )
            self._pass_on(replace(token, sender=self.node_id))
            return
        seen = self.node_id in token.ids or self.node_id in token.abstained
        if seen or (token.epoch, token.initiator) == self._relayed_token:
            return  # a copy (network duplicate, or a resend after a repair): the first one went on
        if not self._well_formed(token):
            self._log(EventName.MESSAGE_REJECTED, f"drops a malformed token {token}", LogLevel.WARNING)
            return
        if not self._may_vote(token.initiator, token.epoch, pre_vote=False):
            self._refuse(token)
            return
        if self._abstains(token.initiator):
            self._abstain(token)
            return
        if self.phase is Phase.AWAIT_TOKEN:
            self._log(
                EventName.ELECTION_ABSORBED,
                f"gives up its election of epoch {self._token_epoch} for node {token.initiator}'s "
                f"higher epoch {token.epoch}",
            )
        reason = f"promised epoch {token.epoch} to node {token.initiator}'s ring election"
        self._grant_promise(token.epoch, token.initiator, reason)
        self._relayed_token = (token.epoch, token.initiator)
        self._pass_on(replace(token, sender=self.node_id, ids=(*token.ids, self.node_id)))

    def _abstain(self, token: Election) -> None:
        """We may not vote yet, but the others may: pass the token on without our id (a refusal here
        would kill the round, and with it every vote still to come). Nothing is promised or persisted."""
        self._log(
            EventName.ELECTION_ABSTAINED,
            f"passes node {token.initiator}'s ring election of epoch {token.epoch} on without voting "
            f"({'start-up blackout' if self._in_startup_blackout() else 'still backing a lease'})",
            peer_id=token.initiator,
        )
        self._relayed_token = (token.epoch, token.initiator)
        self._pass_on(replace(token, sender=self.node_id, abstained=(*token.abstained, self.node_id)))

    def _well_formed(self, token: Election) -> bool:
        ids, abstained = token.ids, token.abstained
        members = set(self.ring)
        listed = (*ids, *abstained)
        return (
            token.initiator in members
            and ids[:1] == (token.initiator,)
            and len(set(listed)) == len(listed)
            and set(listed) <= members
        )

    def _refuse(self, token: Election) -> None:
        self._log(
            EventName.MESSAGE_REJECTED,
            f"refuses epoch {token.epoch} to node {token.initiator}'s ring election (own epoch {self.epoch})",
            peer_id=token.initiator,
        )
        self._send(token.initiator, TokenRefused(self.node_id, token.epoch, known_epoch=self.epoch))

    def _on_token_refused(self, message: TokenRefused) -> None:
        if self.phase is Phase.AWAIT_TOKEN and message.epoch == self._token_epoch:
            self._fail_attempt(f"node {message.sender} refused epoch {message.epoch}: the token died there")

    def _conclude(self, token: Election) -> None:
        """The token is back: phase 1 is over. Decide once, from the promises it lists."""
        self._reset_election()
        promised = len(token.ids)
        if promised < self.settings.quorum_size:
            self._fail_attempt(
                f"only {promised} of {self.settings.cluster_size} nodes promised epoch {token.epoch} "
                f"(quorum {self.settings.quorum_size})"
            )
            return
        if self._handoff_to == self.node_id:
            winner = self.node_id  # a switchover named this initiator: it runs for itself
        else:
            eligible = [
                i for i in token.ids if (self._eligible() if i == self.node_id else self._peer_eligible(i))
            ]
            if not eligible:
                self._fail_attempt(f"none of the {promised} nodes that promised epoch {token.epoch} may lead")
                return
            winner = max(eligible)
        self._log(EventName.ELECTION_DECIDED, f"ring election of epoch {token.epoch} chose node {winner}")
        if winner == self.node_id:
            self._seek_confirmation(token.epoch, self.node_id)
            return
        self._send(winner, Coordinator(self.node_id, token.epoch, leader_id=winner, initiator=self.node_id))
        self._wait_for_coordinator()
        self._handed_to = winner

    # ------------------------------------------------------------------ phase 2: the COORDINATOR round

    def _on_coordinator_round(self, message: Coordinator) -> None:
        if (message.epoch, message.initiator) == self._relayed_coordinator:
            return  # a copy, or the round came back
        if not {message.leader_id, message.initiator} <= set(self.ring):
            self._log(
                EventName.MESSAGE_REJECTED,
                f"drops a COORDINATOR naming non-members: {message}",
                LogLevel.WARNING,
            )
            return
        if message.leader_id == self.node_id:
            self._take_office(message)
            return
        self._on_leader_claim(message.leader_id, message.epoch, via=message.sender)
        # Passed on also when it is stale for us (we fenced its leader): the nodes after us judge it for
        # themselves, so one node cannot end the round for all. Never an epoch above our durable one.
        following = self._leader_id == message.leader_id and self.epoch == message.epoch
        if following or message.epoch < self.epoch:
            self._relayed_coordinator = (message.epoch, message.initiator)
            self._pass_on(replace(message, sender=self.node_id))

    def _take_office(self, message: Coordinator) -> None:
        # Only the initiator decides who won its election, and it tells the winner itself: a COORDINATOR
        # naming us that anyone else sends (a member that lies) is no decision.
        if (
            message.sender != message.initiator
            or self._durable != DurableState(message.epoch, message.initiator)
            or not self._quorum_reachable()
        ):
            self._log(
                EventName.MESSAGE_REJECTED,
                f"does not lead epoch {message.epoch} for node {message.initiator}'s election (told by node "
                f"{message.sender}): its promise is {self._durable}, {self._reachable()} of "
                f"{self.settings.cluster_size} reachable",
                LogLevel.WARNING,
                peer_id=message.sender,
            )
            return
        self._seek_confirmation(message.epoch, message.initiator)
