"""Leaders: following one, fencing a stale one, noticing a lost one, and quorum.

A follower accepts a leader's claim (heartbeat or COORDINATOR) unless its epoch is below ours (it is
fenced: answered with our heartbeat); a leader steps down when it hears of a higher epoch that another
node leads, and drops office when its lease from a majority runs out; any node without a majority within
failure_timeout drops its leader (docs/algorithms.md, "What both share").
"""

from __future__ import annotations

from node.algorithms.machine import Machine, Phase
from node.core.actions import EventName, LogLevel, SetTimer
from node.core.events import TimerId
from node.core.messages import Coordinator, Heartbeat, Resign
from node.core.state import DurableState


class Following(Machine):
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
        deadline_ms = self._detector.next_deadline_ms()
        if self._is_leader:
            lease_ms = self._lease_deadline_ms()
            if lease_ms is not None and (deadline_ms is None or lease_ms < deadline_ms):
                deadline_ms = lease_ms  # the earlier of the two
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
        if self._is_leader and self._lease_supporters() < self._quorum_size:
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

    # ------------------------------------------------------------------ leadership transitions

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

    def _elect_unless_led(self, reason: str) -> None:
        """Start an election unless this node follows a live leader (a leader it can no longer reach is
        forgotten first)."""
        if self._leader_is_live():
            return
        self._leader_id = None
        self._begin_election(reason)

    # ------------------------------------------------------------------ leader announcements

    def _on_heartbeat(self, message: Heartbeat) -> None:
        if message.eligible:
            self._ineligible_peers.discard(message.sender)
        else:
            self._ineligible_peers.add(message.sender)
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
            if not self._sent_before_office(message):
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

    def _sent_before_office(self, message: Heartbeat) -> bool:
        """Ring: we accepted our leader from a relayed COORDINATOR and have heard no claim from it
        directly. Its heartbeat of the same epoch without a claim may be one it sent before it took
        office, overtaken by the COORDINATOR going round the ring: not a sign that it stopped leading,
        for failure_timeout (after that, or once it claimed office itself, it is one)."""
        since_ms = self._accepted_via_relay_ms
        return (
            since_ms is not None
            and message.epoch == self.epoch
            and self._now_ms - since_ms < self.settings.failure_timeout_ms
        )

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
        new_leader = leader_id != self._leader_id or epoch != self.epoch
        self._accept_leader(leader_id, epoch)
        if via == leader_id:
            self._accepted_via_relay_ms = None  # it claimed office to us itself
        elif new_leader:
            self._accepted_via_relay_ms = self._now_ms

    def _on_resign(self, message: Resign) -> None:
        """A leader resigned (it stops, or hands off and stays), or a winner we wait for declined its
        epoch: elect a successor at once (handoff.py)."""
        sender = message.sender
        if message.staying:
            self._ineligible_peers.add(sender)  # until its heartbeat says otherwise
        else:
            self._detector.hint_unreachable(sender)
        ours = sender == self._leader_id and message.epoch == self.epoch and not self._is_leader
        declined = (
            self._leader_id is None and self._phase is Phase.AWAIT_COORDINATOR and message.epoch >= self.epoch
        )
        if ours or declined:
            reason = (
                f"leader {sender} resigned epoch {message.epoch}"
                if ours
                else f"node {sender} declined epoch {message.epoch}"
            )
            event = EventName.LEADER_LOST if ours else EventName.ELECTION_ABANDONED
            self._log(event, reason, LogLevel.NOTICE)
            if ours:
                # Whether it stops or stays, it left office before it sent this: the lease we owe it
                # would only keep its successor waiting (a stopping one is also hinted unreachable).
                self._owed.release(sender)
            self._leader_id = None
            self._abandon_election()
            self._handoff_from = sender
            if message.successor in self.settings.member_ids and message.successor != sender:
                self._handoff_to = message.successor
            self._begin_election(reason)
        if not message.staying:
            self._on_peer_unavailable(sender)
