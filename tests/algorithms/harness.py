"""Test harness for the election algorithms, for Bully and Ring alike: one node driven by hand, or a
cluster of them in memory.

`Driven(algorithm, node_id)` wraps one algorithm for table tests: feed it events at chosen times and
compare the actions it returns, with `Log` actions reduced to their structured fields (the message text is
free-form prose). Every step is checked by `check_persist_before_send`.

`Cluster(algorithm)` is the tests' face of the simulator's cluster, `node.sim.world.World`: the World
executes the actions the way the runtime does (timers replace each other by id, a send to a crashed peer
is refused, a crash resets its peers' connections, persists are durable at once, a paused node queues
its work) and checks the simulator's invariants after every step (persist before send, epochs never go
back, one leader per epoch with a majority of persisted promises behind it, no stale leader). The façade
adds what tests ask about: the messages sent, the journal events, whether the nodes agree on a leader, and
running until a condition holds, all in virtual time (no sockets, no sleeps). By default its network is
perfect (no loss, FIFO per link) with a latency drawn per message from [delay_ms_min, delay_ms_max];
`Cluster.around(world)` wraps a World built elsewhere (the simulator's own network and faults).

The message shorthands at the end (`promise`, `grant`, `token_refused`, `token`, ...) are where the
transition tables and cluster tests build protocol messages, so that a change of the messages touches one
place.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from node.algorithms import make_algorithm
from node.core.actions import (
    Action,
    Broadcast,
    CancelTimer,
    EventName,
    Log,
    LogLevel,
    Persist,
    Role,
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
from node.history.model import HistoryEvent
from node.sim.invariants import SafetyMonitor, asserted_epochs
from node.sim.network import Network, NetworkProfile
from node.sim.runner import algorithm_factory
from node.sim.trace import Trace
from node.sim.world import World

MEMBERS_5 = (1, 2, 3, 4, 5)
MAX_EVENTS_PER_CLUSTER = 1_000_000  # far above any test's run: a message storm fails the test


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
) -> list[Promise | PreVoteAnswer]:
    """Every peer's answer to the catch-up probe among `actions` (none if there is no probe): a refusal
    of epoch 0 that names `known_epoch` and echoes the probe's stamp."""
    return [
        promise(
            peer_id,
            0,
            pre_vote=True,
            granted=False,
            known_epoch=known_epoch,
            echo_ms=action.message.sent_ms,
        )
        for action in actions
        if isinstance(action, Broadcast) and isinstance(action.message, Propose) and action.message.epoch == 0
        for peer_id in peer_ids
    ]


class Driven:
    """One algorithm instance ("bully" or "ring"), its durable state as last persisted, and every action
    it produced."""

    def __init__(
        self,
        algorithm: str,
        node_id: int,
        members: Sequence[int] = MEMBERS_5,
        epoch: int = 0,
        voted_for: int | None = None,
        *,
        rng: random.Random | None = None,
        **overrides: Any,
    ) -> None:
        self.settings = settings(node_id, members, **overrides)
        self.durable = DurableState(epoch, voted_for)
        self.algorithm: Algorithm = make_algorithm(
            algorithm, self.settings, self.durable, rng or random.Random(0)
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
        self.durable = check_persist_before_send(self.algorithm.name, self.node_id, self.durable, actions)
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

    def hear(
        self,
        *peer_ids: int,
        leader_id: int | None = None,
        epoch: int | None = None,
        at_ms: int | None = None,
    ) -> list[Any]:
        """Heartbeats from `peer_ids` (naming `leader_id` as their leader) at `at_ms` (default: now)."""
        out: list[Any] = []
        for peer_id in peer_ids:
            at = self.now_ms if at_ms is None else at_ms
            # A follower of this node echoes a stamp of "now": it just heard our heartbeat (leader lease).
            echo_ms = at if leader_id == self.node_id else None
            message = hb(peer_id, self.durable.epoch if epoch is None else epoch, leader_id, echo_ms=echo_ms)
            out += self.receive(message, at)
        return out

    def view(self) -> Any:
        return self.algorithm.view(self.now_ms)

    @property
    def role(self) -> Role:
        return self.algorithm.view(self.now_ms).role

    @property
    def leader_id(self) -> int | None:
        return self.algorithm.view(self.now_ms).leader_id


def check_persist_before_send(
    algorithm: str, node_id: int, durable: DurableState, actions: Sequence[Action]
) -> DurableState:
    """Walk one step's actions in order: no message may assert an epoch this node has not yet persisted
    (which epochs a message asserts is the simulator's rule, `node.sim.invariants.asserted_epochs`), no
    persisted epoch may go backwards, and a node leads only under a promise it persisted
    (`leader_vote_problem`). Returns the durable state after the step."""
    for action in actions:
        if isinstance(action, Persist):
            assert action.state.epoch >= durable.epoch, (
                f"node {node_id}: epoch went back {durable} -> {action}"
            )
            durable = action.state
        elif isinstance(action, Send | Broadcast):
            epoch = max(asserted_epochs(action.message), default=0)
            assert epoch <= durable.epoch, (
                f"node {node_id} sent {action.message} before persisting epoch {epoch} (durable {durable})"
            )
        elif isinstance(action, Log) and action.event == EventName.BECAME_LEADER:
            problem = leader_vote_problem(algorithm, node_id, action.epoch or 0, durable)
            assert problem is None, problem
    return durable


def leader_vote_problem(algorithm: str, node_id: int, epoch: int, durable: DurableState) -> str | None:
    """What is wrong with a node that becomes leader of `epoch` with `durable` on its disk, or None. It
    must hold a persisted promise of exactly that epoch: to itself in Bully (its own candidacy), to the
    ring election's initiator in Ring (any member; the winner need not be the initiator)."""
    if algorithm == "bully":
        ok = durable == DurableState(epoch, node_id)
    elif algorithm == "ring":
        ok = durable.epoch == epoch and durable.voted_for is not None
    else:
        raise ValueError(f"no leader rule for algorithm {algorithm!r}")
    return None if ok else f"node {node_id} leads epoch {epoch} but persisted {durable}"


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


@dataclass(frozen=True, slots=True)
class Sent:
    """One message an algorithm handed to its driver for one destination (a broadcast: one per peer)."""

    at_ms: int
    src: int
    dst: int
    message: Message


SendHook = Callable[[int, int, Message], None]  # (from, to, message)


def agreed_leader(world: World, among: Iterable[int] | None = None) -> tuple[int, int] | None:
    """(leader, epoch) when exactly one running node (alive, not paused) leads, it is one of `among`
    (default: every running node), and every node of `among` reports it as leader under that epoch (the
    views as of each node's last step, like the simulator's liveness check)."""
    running = {i: node for i, node in world.nodes.items() if node.running}
    leaders = [i for i, node in running.items() if node.role is Role.LEADER]
    nodes = list(running) if among is None else list(among)
    if len(leaders) != 1 or leaders[0] not in nodes:
        return None
    leader, epoch = leaders[0], running[leaders[0]].epoch
    for node_id in nodes:
        node = running.get(node_id)
        if node is None or (node.leader_id, node.epoch) != (leader, epoch):
            return None
    return leader, epoch


class Cluster:
    """Nodes of one algorithm on the simulator's World (see the module docstring).

    `link_ranges`: each link first draws its own delay range inside [delay_ms_min, delay_ms_max], as on
    the simulator's network (with 1..1 that changes no delay, only the random draws that follow).
    `per_node` overrides settings of single nodes; `durable` is what nodes find on their disks at their
    first start (persisted, never announced). Test scripts draw their own random choices from `rng`, the
    run's one generator, so a seed fixes everything.
    """

    def __init__(
        self,
        algorithm: str,
        members: Sequence[int] = MEMBERS_5,
        *,
        seed: int = 0,
        delay_ms_min: int = 1,
        delay_ms_max: int = 1,
        link_ranges: bool = False,
        per_node: dict[int, dict[str, Any]] | None = None,
        durable: dict[int, DurableState] | None = None,
        **overrides: Any,
    ) -> None:
        rng = random.Random(seed)
        node_settings = [
            settings(node_id, members, **{**overrides, **(per_node or {}).get(node_id, {})})
            for node_id in members
        ]
        profile = NetworkProfile(delay_ms_min, delay_ms_max, same_on_every_link=not link_ranges)
        world = World(
            settings=node_settings,
            factory=algorithm_factory(algorithm),
            rng=rng,
            network=Network(members, rng, profile),
            trace=Trace(),
            safety=SafetyMonitor(len(members), max(s.failure_timeout_ms for s in node_settings)),
            max_events=MAX_EVENTS_PER_CLUSTER,
        )
        self._attach(world)
        for node_id, state in (durable or {}).items():
            world.persist_unannounced(node_id, state)

    @classmethod
    def around(cls, world: World) -> Cluster:
        """The façade over a World built elsewhere, e.g. by `node.sim.runner.build_world` (the
        simulator's network: each link 1-30 ms)."""
        cluster = cls.__new__(cls)
        cluster._attach(world)
        return cluster

    def _attach(self, world: World) -> None:
        self.world = world
        self.sent_log: list[Sent] = []
        self.leader_claims: list[tuple[int, int, Message]] = []  # (at_ms, node, leader-claiming message)
        self._send_hooks: list[SendHook] = []
        world.on_send = self._on_send
        world.on_log = self._on_log

    @property
    def rng(self) -> random.Random:
        return self.world.rng

    @property
    def now_ms(self) -> int:
        return self.world.now_ms

    @property
    def network(self) -> Network:
        return self.world.network

    # ------------------------------------------------------------------------------ node lifecycle

    def start(self, *node_ids: int, at_ms: int | None = None) -> None:
        """Start (or restart, from its disk) the given nodes, default all, at `at_ms` (default: now)."""
        if at_ms is not None:
            self.run_until_time(at_ms)
        for node_id in node_ids or tuple(self.world.nodes):
            self.world.start(node_id)

    def crash(self, node_id: int, notify: bool = True) -> None:
        """Kill the process. `notify`: its peers see their connections reset (SIGKILL); otherwise they
        learn nothing until they send to it (refused) or it falls silent for failure_timeout."""
        self.world.crash(node_id, reset_connections=notify)

    def shutdown(self, node_id: int) -> None:
        """SIGTERM: ShutdownRequested, then the process exits at once (its peers see the connections
        close)."""
        assert self.world.nodes[node_id].alive
        self.world.stop(node_id)
        self.world.crash(node_id, graceful=True)

    def pause(self, node_id: int) -> None:
        """SIGSTOP: connections stay open, nothing is read or sent, no timer fires."""
        self.world.pause(node_id)

    def resume(self, node_id: int, messages_first: bool = False) -> None:
        """SIGCONT: what it missed runs now, in the order it came due, or its messages first (a runtime
        guarantees neither order, so tests try both)."""
        self.world.resume(node_id, messages_first=messages_first)

    def running(self) -> list[int]:
        return [i for i, node in self.world.nodes.items() if node.alive]

    def live(self) -> list[int]:
        return [i for i, node in self.world.nodes.items() if node.running]

    # ------------------------------------------------------------------------------ observation

    def view(self, node_id: int) -> Any:
        algorithm = self.world.nodes[node_id].algorithm
        assert algorithm is not None, f"node {node_id} does not run"
        return algorithm.view(self.now_ms)

    def role(self, node_id: int) -> Role:
        """The role as of the node's last step (follower once it crashed)."""
        return self.world.nodes[node_id].role

    def durable(self, node_id: int) -> DurableState:
        return self.world.nodes[node_id].disk

    def epochs(self) -> dict[int, int]:
        """Every node's durable epoch, running or not."""
        return {i: node.disk.epoch for i, node in self.world.nodes.items()}

    def leaders(self) -> list[int]:
        return [i for i in self.live() if self.world.nodes[i].role is Role.LEADER]

    def agreed_leader(self, among: Iterable[int] | None = None) -> tuple[int, int] | None:
        return agreed_leader(self.world, among)

    def events(self, name: str, since_ms: int = 0, node_id: int | None = None) -> list[HistoryEvent]:
        """The journal events `name` logged since `since_ms` (by `node_id`, default any), in order."""
        return [
            e
            for e in self.world.trace.history
            if e.event == name and e.time_ms >= since_ms and node_id in (None, e.node_id)
        ]

    @property
    def sent(self) -> Counter[MsgType]:
        """Every message handed to the network, by type (a broadcast counts once per peer)."""
        return self.sent_since(0)

    def sent_since(self, since_ms: int) -> Counter[MsgType]:
        return Counter(s.message.type for s in self.sent_log if s.at_ms >= since_ms)

    @property
    def proposed_epochs(self) -> Counter[int]:
        """PROPOSE messages by the epoch they ask for (0: a catch-up probe)."""
        return Counter(s.message.epoch for s in self.sent_log if isinstance(s.message, Propose))

    def dump(self) -> str:
        """The journal so far, one event a line (for an assertion's message)."""
        return "\n".join(
            f"{e.time_ms:>7} n{e.node_id} {e.event} epoch={e.epoch} leader={e.leader_id} peer={e.peer_id}"
            for e in self.world.trace.history
        )

    # ------------------------------------------------------------------------------ running

    def run_until(self, done: Callable[[Cluster], bool], deadline_ms: int) -> bool:
        """Run until `done(self)`, checked after every event, or until the clock reaches `deadline_ms`
        (then the clock stands there). Returns whether `done` came true."""
        if done(self):
            return True
        return self.world.run_until(deadline_ms, until=lambda: done(self))

    def run_until_time(self, at_ms: int) -> None:
        self.world.run_until(at_ms)

    def run_for(self, duration_ms: int) -> None:
        self.run_until_time(self.now_ms + duration_ms)

    def run_until_agreed(
        self, among: Iterable[int] | None = None, within_ms: int = 30_000
    ) -> tuple[int, int]:
        """Run until `agreed_leader(among)`, at most `within_ms` of virtual time; (leader, epoch)."""
        nodes = None if among is None else list(among)
        if not self.run_until(lambda c: c.agreed_leader(nodes) is not None, self.now_ms + within_ms):
            snapshots = self.world.snapshots()
            raise AssertionError(f"no agreement within {within_ms} ms: {snapshots}\n{self.dump()}")
        agreed = self.agreed_leader(nodes)
        assert agreed is not None
        return agreed

    def once(self, when: Callable[[int, int, Message], bool], then: Callable[[Cluster], None]) -> None:
        """Run `then` (at the current virtual time, once the sending step is over) after the first message
        sent that matches `when(from, to, message)`."""

        def hook(src: int, dst: int, message: Message) -> None:
            if when(src, dst, message):
                self._send_hooks.remove(hook)
                self.world.call_at(self.now_ms, "test fault", lambda: then(self))

        self._send_hooks.append(hook)

    # ------------------------------------------------------------------------------ the World's hooks

    def _on_send(self, src: int, destinations: tuple[int, ...], message: Message) -> None:
        if isinstance(message, Coordinator) or (
            isinstance(message, Heartbeat) and message.leader_id == message.sender
        ):
            self.leader_claims.append((self.now_ms, src, message))
        for dst in destinations:
            self.sent_log.append(Sent(self.now_ms, src, dst, message))
            for hook in list(self._send_hooks):
                hook(src, dst, message)

    def _on_log(self, event: HistoryEvent) -> None:
        if event.event == EventName.BECAME_LEADER:
            node = self.world.nodes[event.node_id]
            assert node.algorithm is not None
            problem = leader_vote_problem(node.algorithm.name, event.node_id, event.epoch or 0, node.disk)
            assert problem is None, f"{problem}\n{self.dump()}"


# ------------------------------------------------------------------------------------ message shorthands


def hb(
    sender: int, epoch: int, leader_id: int | None, sent_ms: int | None = None, echo_ms: int | None = None
) -> Heartbeat:
    return Heartbeat(sender=sender, epoch=epoch, leader_id=leader_id, sent_ms=sent_ms, echo_ms=echo_ms)


def coordinator(
    leader_id: int, epoch: int, sender: int | None = None, initiator: int | None = None
) -> Coordinator:
    """COORDINATOR naming `leader_id`, sent by the leader itself unless `sender` (a Ring relay); the
    election's `initiator` is the leader unless given (Ring)."""
    return Coordinator(
        sender=leader_id if sender is None else sender,
        epoch=epoch,
        leader_id=leader_id,
        initiator=leader_id if initiator is None else initiator,
    )


def election(sender: int, epoch: int) -> Election:
    """Bully's ELECTION (to the higher ids)."""
    return Election(sender=sender, epoch=epoch, initiator=sender)


def token(sender: int, epoch: int, initiator: int, *ids: int, abstained: tuple[int, ...] = ()) -> Election:
    """Ring's token: the initiator's election of `epoch`, with the ids that promised it (`ids`) and those
    that passed it on without a vote (`abstained`)."""
    return Election(sender=sender, epoch=epoch, initiator=initiator, ids=ids, abstained=abstained)


def ok(sender: int, epoch: int) -> Ok:
    return Ok(sender=sender, epoch=epoch)


def pre_vote(sender: int, epoch: int) -> Propose:
    return Propose(sender=sender, epoch=epoch, pre_vote=True)


def propose(
    sender: int, epoch: int, resigned_leader: int | None = None, sent_ms: int | None = None
) -> Propose:
    return Propose(
        sender=sender, epoch=epoch, pre_vote=False, resigned_leader=resigned_leader, sent_ms=sent_ms
    )


def promise(
    sender: int, epoch: int, *, pre_vote: bool, granted: bool, known_epoch: int, echo_ms: int | None = None
) -> Promise | PreVoteAnswer:
    """The answer to a PROPOSE: PRE_VOTE_ANSWER to a pre-vote, PROMISE to a binding one."""
    answer = PreVoteAnswer if pre_vote else Promise
    return answer(sender=sender, epoch=epoch, granted=granted, known_epoch=known_epoch, echo_ms=echo_ms)


def grant(sender: int, epoch: int, known_epoch: int = 0, *, pre_vote: bool = True) -> Promise | PreVoteAnswer:
    """A granted answer, by default to a pre-vote."""
    return promise(sender, epoch, pre_vote=pre_vote, granted=True, known_epoch=known_epoch)


def confirm_refused(sender: int, epoch: int, known_epoch: int) -> ConfirmRefused:
    return ConfirmRefused(sender=sender, epoch=epoch, known_epoch=known_epoch)


def token_refused(sender: int, epoch: int, known_epoch: int) -> TokenRefused:
    """Ring: the refusal of an initiator's token, naming the refuser's epoch."""
    return TokenRefused(sender=sender, epoch=epoch, known_epoch=known_epoch)


def confirm(sender: int, epoch: int, sent_ms: int, initiator: int | None = None) -> Confirm:
    return Confirm(sender, epoch, sender if initiator is None else initiator, sent_ms=sent_ms)


def confirmed(sender: int, epoch: int, echo_ms: int) -> Confirmed:
    return Confirmed(sender, epoch, echo_ms=echo_ms)


def resign(sender: int, epoch: int) -> Resign:
    return Resign(sender=sender, epoch=epoch)
