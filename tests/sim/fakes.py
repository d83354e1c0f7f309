"""Small algorithms that exercise the simulator without the real ones.

`HeartbeatOnly` never elects anyone: heartbeats and the failure detector alone.
`SelfAppointed` is deliberately unsafe: it leads as soon as it thinks it is the highest live id, with no
promises and no quorum, so the invariants must catch it.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from node.core.actions import Action, Broadcast, Log, Persist, Role, RoleChanged, SetTimer
from node.core.detector import FailureDetector
from node.core.events import Event, MessageReceived, Start, TimerFired, TimerId
from node.core.messages import Heartbeat
from node.core.settings import Settings
from node.core.state import DurableState
from node.core.view import NodeView, PeerView


class HeartbeatOnly:
    name = "heartbeat-only"

    def __init__(self, settings: Settings, state: DurableState, rng: random.Random) -> None:
        self.settings = settings
        self.state = state
        self.rng = rng
        self.detector = FailureDetector(settings.peer_ids, settings.failure_timeout_ms)
        self.role = Role.FOLLOWER
        self.leader_id: int | None = None

    def step(self, event: Event) -> list[Action]:
        actions: list[Action] = []
        now_ms = event.now_ms
        if isinstance(event, Start):
            actions.append(RoleChanged(self.role, self.leader_id, self.state.epoch))
            actions.append(Log("started", "started", epoch=self.state.epoch))
            actions += self._heartbeat(now_ms)
        elif isinstance(event, MessageReceived):
            sender = event.message.sender
            if self.detector.heard(sender, now_ms):
                actions.append(Log("peer_recovered", "peer back", peer_id=sender))
            actions += self.on_message(event)
        elif isinstance(event, TimerFired) and event.timer is TimerId.HEARTBEAT:
            actions += self._heartbeat(now_ms)
        for peer_id in self.detector.expire(now_ms):
            actions.append(Log("peer_suspected", "peer silent", peer_id=peer_id))
        deadline_ms = self.detector.next_deadline_ms()
        if deadline_ms is not None:
            actions.append(SetTimer(TimerId.DETECTOR, deadline_ms))
        return actions

    def on_message(self, event: MessageReceived) -> list[Action]:
        return []

    def _heartbeat(self, now_ms: int) -> list[Action]:
        message = Heartbeat(self.settings.node_id, self.state.epoch, self.leader_id)
        return [Broadcast(message), SetTimer(TimerId.HEARTBEAT, now_ms + self.settings.heartbeat_interval_ms)]

    def view(self, now_ms: int) -> NodeView:
        peers = {
            peer_id: PeerView(
                self.detector.state(peer_id),
                None if (last := self.detector.last_heard_ms(peer_id)) is None else now_ms - last,
            )
            for peer_id in self.settings.peer_ids
        }
        return NodeView(
            node_id=self.settings.node_id,
            algorithm=self.name,
            role=self.role,
            leader_id=self.leader_id,
            epoch=self.state.epoch,
            peers=peers,
            quorum_size=self.settings.quorum_size,
            reachable=self.detector.alive_count() + 1,
        )

    def role_view(self, now_ms: int) -> tuple[Role, int | None, int]:
        return self.role, self.leader_id, self.state.epoch


class SelfAppointed(HeartbeatOnly):
    """Leads whenever no higher id is alive in its detector: epochs persisted, but no quorum at all."""

    name = "self-appointed"

    def step(self, event: Event) -> list[Action]:
        actions = super().step(event)
        higher_alive = any(
            self.detector.is_alive(p) for p in self.settings.peer_ids if p > self.settings.node_id
        )
        if self.role is not Role.LEADER and not higher_alive and event.now_ms > 0:
            self.state = DurableState(self.state.epoch + 1, self.settings.node_id)
            self.role, self.leader_id = Role.LEADER, self.settings.node_id
            me = self.settings.node_id
            actions += [
                Persist(self.state),
                RoleChanged(Role.LEADER, me, self.state.epoch),
                Log("became_leader", "leading", epoch=self.state.epoch, leader_id=me),
            ]
        return actions

    def on_message(self, event: MessageReceived) -> list[Action]:
        message = event.message
        claims_lead = isinstance(message, Heartbeat) and message.leader_id == message.sender
        if claims_lead and (message.epoch > self.state.epoch or self.role is not Role.LEADER):
            self.role, self.leader_id = Role.FOLLOWER, message.sender
            if message.epoch > self.state.epoch:
                self.state = DurableState(message.epoch, None)
                return [Persist(self.state)]
        return []


Script = Callable[["Probe", Event], list[Action]]


class Probe:
    """Records every event it gets and answers with whatever `script` returns (a role is announced at
    start, as drivers expect)."""

    name = "probe"

    def __init__(self, settings: Settings, state: DurableState, script: Script) -> None:
        self.settings = settings
        self.state = state
        self.script = script
        self.events: list[Event] = []
        self.role = Role.FOLLOWER
        self.leader_id: int | None = None
        self.epoch = state.epoch

    def step(self, event: Event) -> list[Action]:
        self.events.append(event)
        actions = self.script(self, event)
        if isinstance(event, Start):
            actions = [RoleChanged(self.role, self.leader_id, self.epoch), *actions]
        return actions

    def view(self, now_ms: int) -> NodeView:
        return NodeView(
            node_id=self.settings.node_id,
            algorithm=self.name,
            role=self.role,
            leader_id=self.leader_id,
            epoch=self.epoch,
            peers={},
            quorum_size=self.settings.quorum_size,
            reachable=1,
        )

    def role_view(self, now_ms: int) -> tuple[Role, int | None, int]:
        return self.role, self.leader_id, self.epoch
