"""Test harness for the election algorithms: one node driven by hand, or several in memory.

`Driven` wraps one algorithm for table tests: feed it events at chosen times and compare the actions it
returns, with `Log` actions reduced to their structured fields (the message text is free-form prose).

`Cluster` runs several nodes on a perfect in-memory network in virtual time (no sockets, no sleeps),
in the spirit of etcd-raft's interaction tests. Each step's actions are executed like the runtime does
(timers replace each other by id, a crashed peer refuses connections, ...) and checked against the safety
rules after every step: persist before send, epochs never decrease, one leader per epoch.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from node.algorithms import make_algorithm
from node.core.actions import (
    Action,
    Broadcast,
    CancelTimer,
    Log,
    LogLevel,
    Persist,
    Role,
    RoleChanged,
    Send,
    SetTimer,
)
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
    Confirm,
    Confirmed,
    ConfirmRefused,
    Coordinator,
    Election,
    Heartbeat,
    Message,
    MsgType,
    Ok,
    PreVoteAnswer,
    Promise,
    Propose,
    Resign,
    TokenRefused,
)
from node.core.protocol import Algorithm
from node.core.settings import Settings
from node.core.state import DurableState

ALGORITHM = "bully"
MEMBERS_5 = (1, 2, 3, 4, 5)


# ---------------------------------------------------------------------------------------------- one node


@dataclass(frozen=True, slots=True)
class Logged:
    """A `Log` action without its prose: what the journal's structured fields carry."""

    event: str
    level: LogLevel = LogLevel.INFO
    peer_id: int | None = None
    epoch: int | None = None
    leader_id: int | None = None


def logged(action: Log) -> Logged:
    return Logged(action.event, action.level, action.peer_id, action.epoch, action.leader_id)


def normalise(actions: Iterable[Action]) -> list[Any]:
    return [logged(a) if isinstance(a, Log) else a for a in actions]


def settings(node_id: int, members: Sequence[int] = MEMBERS_5, **overrides: Any) -> Settings:
    return Settings(node_id=node_id, member_ids=tuple(members), **overrides)


def probe_answers(
    actions: Sequence[Action], peer_ids: Iterable[int], known_epoch: int = 0
) -> list[PreVoteAnswer]:
    """Every peer's answer to the catch-up probe among `actions` (none if there is no probe): a refusal
    of epoch 0 that names `known_epoch` and echoes the probe's stamp."""
    return [
        PreVoteAnswer(peer_id, 0, granted=False, known_epoch=known_epoch, echo_ms=action.message.sent_ms)
        for action in actions
        if isinstance(action, Broadcast) and isinstance(action.message, Propose) and action.message.epoch == 0
        for peer_id in peer_ids
    ]


class Driven:
    """One algorithm instance, its durable state as last persisted, and every action it produced."""

    def __init__(
        self,
        node_id: int,
        members: Sequence[int] = MEMBERS_5,
        epoch: int = 0,
        voted_for: int | None = None,
        rng: random.Random | None = None,
        **overrides: Any,
    ) -> None:
        self.settings = settings(node_id, members, **overrides)
        self.durable = DurableState(epoch, voted_for)
        self.algorithm: Algorithm = make_algorithm(
            ALGORITHM, self.settings, self.durable, rng or random.Random(0)
        )
        self.now_ms = -(10**9)  # before any event (given-states may start nodes before 0)
        self.history: list[Action] = []
        self.armed: dict[TimerId, int] = {}  # timer -> deadline, as a driver would hold them

    @property
    def node_id(self) -> int:
        return self.settings.node_id

    def step(self, event: Event) -> list[Any]:
        """Feed one event; its actions, normalised, without the `CancelTimer`s of timers that were not
        armed (no-ops for a driver). Also checks persist-before-send on them."""
        assert event.now_ms >= self.now_ms, "time goes forward"
        self.now_ms = event.now_ms
        if isinstance(event, TimerFired):
            self.armed.pop(event.timer, None)
        actions = self.algorithm.step(event)
        self.durable = check_persist_before_send(self.node_id, self.durable, actions)
        self.history.extend(actions)
        effective: list[Action] = []
        for action in actions:
            if isinstance(action, SetTimer):
                self.armed[action.timer] = action.at_ms
            elif isinstance(action, CancelTimer) and self.armed.pop(action.timer, None) is None:
                continue
            effective.append(action)
        return normalise(effective)

    # event shorthands -----------------------------------------------------------------------------

    def start(self, at_ms: int = 0, *, new_cluster: bool = True) -> list[Any]:
        """Start. A node without a state (epoch 0) first catches up (node/algorithms/catchup.py); with
        `new_cluster` every peer answers its probe at once with epoch 0, as in a cluster never elected."""
        before = len(self.history)
        actions = self.step(Start(at_ms))
        if new_cluster:
            for answer in probe_answers(self.history[before:], self.settings.peer_ids):
                self.receive(answer, at_ms)
        return actions

    def receive(self, message: Message, at_ms: int | None = None) -> list[Any]:
        return self.step(MessageReceived(self.now_ms if at_ms is None else at_ms, message))

    def fire(self, timer: TimerId, at_ms: int | None = None) -> list[Any]:
        return self.step(TimerFired(self.now_ms if at_ms is None else at_ms, timer))

    def unreachable(self, peer_id: int, at_ms: int | None = None) -> list[Any]:
        return self.step(PeerUnreachable(self.now_ms if at_ms is None else at_ms, peer_id))

    def shutdown(self, at_ms: int | None = None) -> list[Any]:
        return self.step(ShutdownRequested(self.now_ms if at_ms is None else at_ms))

    def hear(self, *peer_ids: int, leader_id: int | None = None, epoch: int | None = None) -> list[Any]:
        """Heartbeats from `peer_ids` (not claiming to lead) at the current time."""
        out: list[Any] = []
        for peer_id in peer_ids:
            # A follower of this node echoes a stamp of "now": it just heard our heartbeat (leader lease).
            echo_ms = self.now_ms if leader_id == self.node_id else None
            out += self.receive(
                Heartbeat(peer_id, self.durable.epoch if epoch is None else epoch, leader_id, echo_ms=echo_ms)
            )
        return out

    def view(self) -> Any:
        return self.algorithm.view(self.now_ms)

    @property
    def role(self) -> Role:
        return self.algorithm.view(self.now_ms).role

    @property
    def leader_id(self) -> int | None:
        return self.algorithm.view(self.now_ms).leader_id


def check_persist_before_send(node_id: int, durable: DurableState, actions: Sequence[Action]) -> DurableState:
    """Walk one step's actions in order: no message may carry an epoch of this node's that is not yet
    durable, no persisted epoch may go backwards, and a node leads only under an epoch it persisted with
    its own vote. Returns the durable state after the step."""
    for action in actions:
        if isinstance(action, Persist):
            assert action.state.epoch >= durable.epoch, (
                f"node {node_id}: epoch went back {durable} -> {action}"
            )
            durable = action.state
        elif isinstance(action, Send | Broadcast):
            epoch = own_epoch(action.message)
            assert epoch is None or epoch <= durable.epoch, (
                f"node {node_id} sent {action.message} before persisting epoch {epoch} (durable {durable})"
            )
        elif isinstance(action, Log) and action.event == "became_leader":
            assert durable == DurableState(action.epoch or 0, node_id), (
                f"node {node_id} leads epoch {action.epoch} but persisted {durable}"
            )
    return durable


def own_epoch(message: Message) -> int | None:
    """The epoch a message asserts as its sender's own (it must be durable before it leaves), or None for
    the messages that only echo or ask about a proposed epoch (pre-votes, refusals)."""
    if isinstance(message, Propose):
        return None if message.pre_vote else message.epoch
    if isinstance(message, Promise):
        return message.epoch if message.granted else None
    if isinstance(message, PreVoteAnswer | ConfirmRefused | TokenRefused):
        return None
    if isinstance(message, Election) and message.sender in message.abstained:
        return None  # a ring token passed on without a vote carries the initiator's epoch
    return message.epoch


# Shorthands for expected rows.
def hb(
    sender: int, epoch: int, leader_id: int | None, sent_ms: int | None = None, echo_ms: int | None = None
) -> Heartbeat:
    return Heartbeat(sender=sender, epoch=epoch, leader_id=leader_id, sent_ms=sent_ms, echo_ms=echo_ms)


def coordinator(leader_id: int, epoch: int, sender: int | None = None) -> Coordinator:
    return Coordinator(
        sender=leader_id if sender is None else sender, epoch=epoch, leader_id=leader_id, initiator=leader_id
    )


def election(sender: int, epoch: int) -> Election:
    return Election(sender=sender, epoch=epoch, initiator=sender)


def ok(sender: int, epoch: int) -> Ok:
    return Ok(sender=sender, epoch=epoch)


def pre_vote(sender: int, epoch: int) -> Propose:
    return Propose(sender=sender, epoch=epoch, pre_vote=True)


def propose(sender: int, epoch: int, resigned_leader: int | None = None) -> Propose:
    return Propose(sender=sender, epoch=epoch, pre_vote=False, resigned_leader=resigned_leader)


def promise(
    sender: int, epoch: int, *, pre_vote: bool, granted: bool, known_epoch: int
) -> Promise | PreVoteAnswer:
    """The answer to a PROPOSE: PRE_VOTE_ANSWER to a pre-vote, PROMISE to a binding one."""
    answer = PreVoteAnswer if pre_vote else Promise
    return answer(sender=sender, epoch=epoch, granted=granted, known_epoch=known_epoch)


def confirm_refused(sender: int, epoch: int, known_epoch: int) -> ConfirmRefused:
    return ConfirmRefused(sender=sender, epoch=epoch, known_epoch=known_epoch)


def confirm(sender: int, epoch: int, sent_ms: int, initiator: int | None = None) -> Confirm:
    return Confirm(sender, epoch, sender if initiator is None else initiator, sent_ms=sent_ms)


def confirmed(sender: int, epoch: int, echo_ms: int) -> Confirmed:
    return Confirmed(sender, epoch, echo_ms=echo_ms)


def resign(sender: int, epoch: int) -> Resign:
    return Resign(sender=sender, epoch=epoch)


def messages_in(actions: Iterable[Any]) -> list[tuple[int | None, Message]]:
    """(destination or None for a broadcast, message) for every Send/Broadcast in `actions`."""
    out: list[tuple[int | None, Message]] = []
    for action in actions:
        if isinstance(action, Send):
            out.append((action.peer_id, action.message))
        elif isinstance(action, Broadcast):
            out.append((None, action.message))
    return out


def events_in(actions: Iterable[Any]) -> list[str]:
    return [a.event for a in actions if isinstance(a, Log | Logged)]


# ------------------------------------------------------------------------------------------- several nodes


@dataclass(order=True)
class _Item:
    at_ms: int
    seq: int
    node_id: int = field(compare=False)
    kind: str = field(compare=False)  # "msg" | "timer" | "unreachable"
    payload: Any = field(compare=False)


@dataclass
class _Member:
    node_id: int
    settings: Settings
    durable: DurableState = field(default_factory=DurableState)
    algorithm: Algorithm | None = None  # None: not running (never started or crashed)
    paused: bool = False
    held: list[_Item] = field(default_factory=list)  # events that arrived while paused
    timers: dict[TimerId, tuple[int, int]] = field(default_factory=dict)  # timer -> (at_ms, seq)
    role: Role = Role.FOLLOWER
    leader_id: int | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of the cluster transcript."""

    at_ms: int
    node_id: int
    log: Logged

    def __str__(self) -> str:
        log = self.log
        return f"{self.at_ms:>7} n{self.node_id} {log.event} epoch={log.epoch} leader={log.leader_id}"


class Cluster:
    """Several nodes on a perfect network (no loss, FIFO per link) in virtual time.

    Link latency is drawn per message from [delay_ms_min, delay_ms_max] with a seeded generator. A message
    to a node that is not running is lost and its sender gets a `PeerUnreachable` one latency later (the
    connection was refused); `crash(notify=True)` also tells every peer at once (its sockets closed).
    A paused node (SIGSTOP) receives nothing and fires no timer until `resume`; then everything it missed
    arrives at the resume time, timers first unless `messages_first` (the order a runtime sees is not
    guaranteed, so tests try both).
    """

    def __init__(
        self,
        members: Sequence[int] = MEMBERS_5,
        *,
        seed: int = 0,
        delay_ms_min: int = 1,
        delay_ms_max: int = 1,
        per_node: dict[int, dict[str, Any]] | None = None,
        durable: dict[int, DurableState] | None = None,
        **overrides: Any,
    ) -> None:
        self.rng = random.Random(seed)
        self.delay_ms_min = delay_ms_min
        self.delay_ms_max = delay_ms_max
        self.now_ms = 0
        self._seq = 0
        self._queue: list[_Item] = []
        self._last_delivery: dict[tuple[int, int], int] = {}
        self.members: dict[int, _Member] = {}
        for node_id in members:
            node_overrides = {**overrides, **(per_node or {}).get(node_id, {})}
            self.members[node_id] = _Member(
                node_id,
                settings(node_id, members, **node_overrides),
                (durable or {}).get(node_id, DurableState()),
            )
        self.transcript: list[Entry] = []
        self.sent: Counter[MsgType] = Counter()  # every message handed to the network, by type
        self.proposed_epochs: Counter[int] = Counter()  # PROPOSE by asked epoch (0: a catch-up probe)
        self.sent_log: list[tuple[int, int, int, MsgType]] = []  # (at_ms, src, dst, type)
        self.leaders_by_epoch: dict[int, set[int]] = {}
        self.leader_claims: list[tuple[int, int, Message]] = []  # (at_ms, node, leader-claiming message)

    # ------------------------------------------------------------------------------ node lifecycle

    def start(self, *node_ids: int, at_ms: int | None = None) -> None:
        if at_ms is not None:
            self.run_until_time(at_ms)
        for node_id in node_ids or tuple(self.members):
            member = self.members[node_id]
            assert member.algorithm is None, f"node {node_id} already runs"
            member.algorithm = make_algorithm(
                ALGORITHM, member.settings, member.durable, random.Random(self.rng.random())
            )
            member.timers.clear()
            member.paused = False
            member.held.clear()
            self._step(member, Start(self.now_ms))

    def crash(self, node_id: int, notify: bool = True) -> None:
        """Kill the process. `notify`: its peers see the TCP connections close (SIGKILL); otherwise they
        learn nothing (a host that vanished)."""
        member = self.members[node_id]
        member.algorithm = None
        member.timers.clear()
        member.held.clear()
        member.paused = False
        member.role, member.leader_id = Role.FOLLOWER, None
        if notify:
            for peer in self.running():
                if peer != node_id:
                    self._push(self.now_ms + self._latency(node_id, peer), peer, "unreachable", node_id)

    def restart(self, node_id: int) -> None:
        self.crash(node_id, notify=False)
        self.start(node_id)

    def shutdown(self, node_id: int) -> None:
        """SIGTERM: ShutdownRequested, then the process exits (its peers see the connections close)."""
        member = self.members[node_id]
        assert member.algorithm is not None
        self._step(member, ShutdownRequested(self.now_ms))
        self.crash(node_id, notify=True)

    def pause(self, node_id: int) -> None:
        self.members[node_id].paused = True

    def resume(self, node_id: int, messages_first: bool = False) -> None:
        member = self.members[node_id]
        member.paused = False
        held = sorted(member.held, key=lambda item: (item.kind != "msg") if messages_first else 0)
        member.held = []
        for item in held:  # everything overdue happens now, in the chosen order
            if item.kind == "timer":
                member.timers[item.payload] = (self.now_ms, self._seq)
                self._push(self.now_ms, node_id, "timer", item.payload, seq=self._seq)
            else:
                self._push(self.now_ms, node_id, item.kind, item.payload)

    def running(self) -> list[int]:
        return [i for i, m in self.members.items() if m.algorithm is not None]

    def live(self) -> list[int]:
        return [i for i, m in self.members.items() if m.algorithm is not None and not m.paused]

    # ------------------------------------------------------------------------------ observation

    def view(self, node_id: int) -> Any:
        algorithm = self.members[node_id].algorithm
        assert algorithm is not None
        return algorithm.view(self.now_ms)

    def leaders(self) -> list[int]:
        return [i for i in self.live() if self.members[i].role is Role.LEADER]

    def agreed_leader(self, among: Iterable[int] | None = None) -> tuple[int, int] | None:
        """(leader, epoch) when exactly one live node leads and every node in `among` (default: every live
        node) follows it under the same epoch."""
        leaders = self.leaders()
        if len(leaders) != 1:
            return None
        leader = leaders[0]
        epoch = self.members[leader].durable.epoch
        for node_id in self.live() if among is None else among:
            member = self.members[node_id]
            if member.leader_id != leader or member.durable.epoch != epoch:
                return None
        return leader, epoch

    def events(self, name: str, since_ms: int = 0, node_id: int | None = None) -> list[Entry]:
        return [
            e
            for e in self.transcript
            if e.log.event == name and e.at_ms >= since_ms and (node_id is None or e.node_id == node_id)
        ]

    def sent_since(self, since_ms: int) -> Counter[MsgType]:
        return Counter(msg_type for at_ms, _, _, msg_type in self.sent_log if at_ms >= since_ms)

    def epochs(self) -> dict[int, int]:
        return {i: m.durable.epoch for i, m in self.members.items()}

    def dump(self) -> str:
        return "\n".join(str(e) for e in self.transcript)

    # ------------------------------------------------------------------------------ running

    def run_until(self, done: Callable[[Cluster], bool], deadline_ms: int) -> bool:
        """Process events in time order until `done(self)` or the virtual clock passes `deadline_ms`."""
        while not done(self):
            if not self._queue or self._queue[0].at_ms > deadline_ms:
                self.now_ms = max(self.now_ms, deadline_ms)
                return done(self)
            self._process(heapq.heappop(self._queue))
        return True

    def run_until_time(self, at_ms: int) -> None:
        self.run_until(lambda _: False, at_ms)

    def run_for(self, duration_ms: int) -> None:
        self.run_until_time(self.now_ms + duration_ms)

    # ------------------------------------------------------------------------------ internals

    def _latency(self, src: int, dst: int) -> int:
        return self.rng.randint(self.delay_ms_min, self.delay_ms_max)

    def _push(self, at_ms: int, node_id: int, kind: str, payload: Any, seq: int | None = None) -> None:
        if seq is None:
            seq = self._seq
        self._seq += 1
        heapq.heappush(self._queue, _Item(at_ms, seq, node_id, kind, payload))

    def _deliver(self, src: int, dst: int, message: Message) -> None:
        self.sent[message.type] += 1
        if isinstance(message, Propose):
            self.proposed_epochs[message.epoch] += 1
        self.sent_log.append((self.now_ms, src, dst, message.type))
        if self.members[dst].algorithm is None:  # refused: the sender's transport notices
            self._push(self.now_ms + self._latency(src, dst), src, "unreachable", dst)
            return
        at_ms = max(self.now_ms + self._latency(src, dst), self._last_delivery.get((src, dst), 0))
        self._last_delivery[(src, dst)] = at_ms  # FIFO per link, like one TCP connection
        self._push(at_ms, dst, "msg", message)

    def _process(self, item: _Item) -> None:
        self.now_ms = max(self.now_ms, item.at_ms)
        member = self.members[item.node_id]
        if member.algorithm is None:
            return
        if item.kind == "timer" and member.timers.get(item.payload) != (item.at_ms, item.seq):
            return  # replaced or cancelled
        if member.paused:
            member.held.append(item)
            return
        if item.kind == "timer":
            del member.timers[item.payload]
            self._step(member, TimerFired(self.now_ms, item.payload))
        elif item.kind == "msg":
            self._step(member, MessageReceived(self.now_ms, item.payload))
        else:
            self._step(member, PeerUnreachable(self.now_ms, item.payload))

    def _step(self, member: _Member, event: Event) -> None:
        algorithm = member.algorithm
        assert algorithm is not None
        actions = algorithm.step(event)
        member.durable = check_persist_before_send(member.node_id, member.durable, actions)
        for action in actions:
            self._execute(member, action)

    def _execute(self, member: _Member, action: Action) -> None:
        node_id = member.node_id
        if isinstance(action, Send | Broadcast):
            message = action.message
            if isinstance(message, Coordinator) or (
                isinstance(message, Heartbeat) and message.leader_id == message.sender
            ):
                self.leader_claims.append((self.now_ms, node_id, message))
            targets = [action.peer_id] if isinstance(action, Send) else list(member.settings.peer_ids)
            for peer in targets:
                self._deliver(node_id, peer, message)
        elif isinstance(action, SetTimer):
            member.timers[action.timer] = (action.at_ms, self._seq)
            self._push(action.at_ms, node_id, "timer", action.timer)
        elif isinstance(action, CancelTimer):
            member.timers.pop(action.timer, None)
        elif isinstance(action, RoleChanged):
            member.role, member.leader_id = action.role, action.leader_id
            if action.role is Role.LEADER:
                self.leaders_by_epoch.setdefault(action.epoch, set()).add(node_id)
                assert self.leaders_by_epoch[action.epoch] == {node_id}, (
                    f"two leaders of epoch {action.epoch}\n{self.dump()}"
                )
        elif isinstance(action, Log):
            self.transcript.append(Entry(self.now_ms, node_id, logged(action)))
