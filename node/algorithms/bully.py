"""Bully election (Garcia-Molina), made safe under partitions by the shared quorum and epoch rules.

A node that finds no leader sends ELECTION to every higher id. A higher id answers OK and runs its own
election, and the initiator defers, waiting for a COORDINATOR. A node that hears no OK (or whose higher
ids are all suspected or unreachable, so there is nobody to wait for) runs for leader: it must still win
promises from a majority for a fresh epoch (base.ElectionNode._propose) before it leads.
"""

from __future__ import annotations

from node.algorithms.base import ElectionNode, Phase
from node.core.actions import EventName, LogLevel
from node.core.events import TimerId
from node.core.messages import Coordinator, Election, MsgType, Ok
from node.core.protocol import RandomSource
from node.core.settings import Settings
from node.core.state import DurableState

__all__ = ["Bully", "Phase"]  # Phase (base.py): AWAIT_OK while waiting for a higher id's OK


class Bully(ElectionNode):
    name = "bully"

    def __init__(self, settings: Settings, state: DurableState, rng: RandomSource) -> None:
        super().__init__(settings, state, rng)
        self._awaiting_ok_from: set[int] = set()
        self._deferred_to: set[int] = set()
        self.handlers[MsgType.ELECTION] = self._on_election
        self.handlers[MsgType.OK] = self._on_ok

    def _higher_ids(self) -> list[int]:
        """The higher ids that may run for leader (their heartbeats did not say otherwise)."""
        return [p for p in self.settings.peer_ids if p > self.node_id and self._peer_eligible(p)]

    # ------------------------------------------------------------------ hooks

    def _start_election(self) -> None:
        higher = self._higher_ids()
        if self._handoff_from is not None:
            self._propose()  # the leader resigned and no higher id is live: we succeed it (base)
            return
        for peer_id in higher:
            self._send(peer_id, Election(self.node_id, self.epoch, initiator=self.node_id))
        # Waiting for a crashed node costs the whole timeout; the detector already knows better.
        self._awaiting_ok_from = {peer_id for peer_id in higher if self._detector.is_available(peer_id)}
        if not self._awaiting_ok_from:
            self._propose()
            return
        self._await_election(Phase.AWAIT_OK)

    def _forget_election(self) -> None:
        self._awaiting_ok_from = set()
        self._deferred_to = set()

    def _on_algorithm_timer(self, timer: TimerId) -> None:
        if timer is TimerId.ELECTION and self.phase is Phase.AWAIT_OK:
            self._log(
                EventName.ELECTION_TIMEOUT, "heard no OK from a higher id: runs for leader", LogLevel.INFO
            )
            self._leave_phase()  # the timer fired: nothing to cancel
            self._propose()

    def _on_peer_unavailable(self, peer_id: int) -> None:
        if self.phase is Phase.AWAIT_OK and peer_id in self._awaiting_ok_from:
            self._awaiting_ok_from.discard(peer_id)
            if not self._awaiting_ok_from:
                self._reset_election()  # cancels ELECTION
                self._propose()
        elif (
            self.phase is Phase.AWAIT_COORDINATOR
            and peer_id in self._deferred_to
            and not any(self._detector.is_available(p) for p in self._deferred_to)
        ):
            self._reset_election()
            self._cancel_timer(TimerId.COORDINATOR)
            self._begin_election(f"node {peer_id}, which took over the election, is unreachable")

    # ------------------------------------------------------------------ messages

    def _on_election(self, message: Election) -> None:
        if message.sender > self.node_id:
            return  # only lower ids ask us; a higher one has nothing to learn from our OK
        if not self._is_leader and not self._eligible():
            return  # we may not run: no OK, so the lower id runs itself
        self._send(message.sender, Ok(self.node_id, self.epoch))
        if self._is_leader:
            self._send(message.sender, Coordinator(self.node_id, self.epoch, self.node_id, self.node_id))
        else:
            self._elect_unless_led(f"node {message.sender} asked for an election")

    def _on_ok(self, message: Ok) -> None:
        if message.sender < self.node_id or self.phase is Phase.IDLE:
            return
        self._deferred_to.add(message.sender)
        if self.phase is Phase.AWAIT_OK:
            self._cancel_timer(TimerId.ELECTION)
            self._awaiting_ok_from = set()
            self._wait_for_coordinator()
