"""The simulated cluster: drives each node's algorithm with events and executes its actions.

Execution rules (what the runtime does for real):
- `Send`/`Broadcast` go through the `Network`. A message to a crashed peer is lost and the sender gets
  `PeerUnreachable(peer)` after `RST_DELAY_MS` (a refused connect on loopback), unless a partition
  blocks the path (iptables DROP gives no hint). A crash also sends that hint to every peer that had a
  connection to the crashed node (the kernel's RST). Either hint comes after the data the dead node
  had already sent to that peer (TCP order), except during a reorder fault.
- `SetTimer` replaces an armed timer of the same id; timers fire at exactly `at_ms` of virtual time.
- `Persist` is durable at once (the disk survives crashes); `Log` goes into the history.
- A paused node (SIGSTOP) queues its deliveries and timers and runs them, late, when resumed.
Invariants are checked after every step; the first safety violation stops the run.

Opt-ins for tests (tests/algorithms/harness.py), none of which the runner uses: `run_until(until=...)`
stops at the first item after which a condition holds, `on_send` sees every message an algorithm sends,
`crash(reset_connections=False)` kills a node without the peers' reset hints, and
`resume(messages_first=True)` runs a paused node's queued messages before its timers and hints.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from node.core.actions import (
    Action,
    Broadcast,
    CancelTimer,
    EventName,
    Log,
    Persist,
    Role,
    RoleChanged,
    RunGate,
    Send,
    SetTimer,
)
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
from node.core.messages import Coordinator, Heartbeat, Message
from node.core.protocol import Algorithm
from node.core.settings import Settings
from node.core.state import DurableState
from node.history.model import HistoryEvent
from node.sim.host import Delivery, HintDue, LocalDue, NodeItem, SimNode, TimerDue
from node.sim.invariants import NodeSnapshot, SafetyMonitor
from node.sim.network import MAX_HELD_MESSAGES, Network
from node.sim.scheduler import Scheduler
from node.sim.trace import Trace

AlgorithmFactory = Callable[[Settings, DurableState, random.Random], Algorithm]
SendHook = Callable[[int, tuple[int, ...], Message], None]  # (sender, destinations, message)

MAX_ACTIONS_PER_STEP = 1_000  # one event producing more actions than this is a bug
RST_DELAY_MS = (1, 5)  # a refused connect or a reset reaches the sender this fast on loopback
EXIT_DELAY_MS = (1, 50)  # a stopping node's queued frames are written (the runtime waits up to 500 ms)
# A step with only these changed no state. Exact types (`type(action) in`): no action type has subclasses.
_QUIET_ACTIONS = frozenset({Send, Broadcast, SetTimer, CancelTimer})
_ENDS_REELECTION = frozenset(
    {EventName.ELECTION_STARTED, EventName.ELECTION_FAILED, EventName.LEADER_ACCEPTED}
)
GATE_MS = (1, 200)  # how long a before_lead gate runs (a slow gate: around gate_timeout)
_TIMER_TEXT = {timer: timer.value for timer in TimerId}  # `.value` of an enum member is slow to read


class SimulationLimitError(Exception):
    """A stated bound was exceeded (events per run, actions per step, queue sizes)."""


@dataclass(frozen=True, slots=True)
class Callback:
    label: str
    run: Callable[[], None]


Item = NodeItem | Callback


class World:
    def __init__(
        self,
        *,
        settings: list[Settings],
        factory: AlgorithmFactory,
        rng: random.Random,
        network: Network,
        trace: Trace,
        safety: SafetyMonitor,
        max_events: int,
    ) -> None:
        self.nodes = {s.node_id: SimNode(s) for s in sorted(settings, key=lambda s: s.node_id)}
        self._factory = factory
        self.rng = rng
        self.network = network
        self.trace = trace
        self.safety = safety
        self.scheduler: Scheduler[Item] = Scheduler()
        self._generation = 0
        self._held: list[Delivery] = []
        self.max_events = max_events
        self.events = 0
        self.elections = 0
        self.leader_changes = 0
        self.on_step: Callable[[], None] | None = None  # extra check after a step that changed a view
        self.views_changed = False
        self.on_log: Callable[[HistoryEvent], None] | None = None  # scenario tests: react to a log line
        self.on_send: SendHook | None = None  # tests: see each Send/Broadcast (sender, destinations, message)
        self._leaders: set[int] = set()  # nodes whose last view said leader
        # The hosts' before_lead gates (the nemesis sets these): nodes whose gate fails, or runs slow.
        self.gate_failing: set[int] = set()
        self.gate_slow: set[int] = set()
        self.unhealthy: dict[int, str] = {}  # node -> why its host says it may not run for leader
        # action type -> how it is carried out (a Log: `_record`)
        self._executors: dict[type[Action], Callable[[SimNode, Any], None]] = {
            Send: self._execute_send,
            Broadcast: self._execute_broadcast,
            SetTimer: self._execute_set_timer,
            CancelTimer: self._execute_cancel_timer,
            Persist: self._execute_persist,
            RunGate: self._execute_run_gate,
            RoleChanged: self._execute_role_changed,
        }

    @property
    def now_ms(self) -> int:
        return self.scheduler.now_ms

    def log(self, text: str) -> None:
        self.trace.line(self.now_ms, text)

    def call_at(self, at_ms: int, label: str, run: Callable[[], None]) -> None:
        """Run `run` at `at_ms`; `label` goes into the trace when it runs (an empty label: silent)."""
        self.scheduler.at(at_ms, Callback(label, run))

    # --- the loop --------------------------------------------------------------------------------

    def run_until(self, end_ms: int, until: Callable[[], bool] | None = None) -> bool:
        """Run every item due up to `end_ms`, then move the clock to `end_ms`. With `until` (tests): stop
        right after the first item that makes it true, the clock at that item's time. Returns whether
        `until` stopped the run."""
        pop_due = self.scheduler.pop_due
        dispatch = self._dispatch
        while (item := pop_due(end_ms)) is not None:
            if isinstance(item, Callback):
                if item.label:
                    self.log(item.label)
                item.run()
            else:
                dispatch(item)
            if until is not None and until():
                return True
        self.scheduler.now_ms = max(self.scheduler.now_ms, end_ms)
        return False

    def _dispatch(self, item: NodeItem) -> None:
        if isinstance(item, Delivery):
            node = self.nodes[item.dst]
            if node.incarnation != item.incarnation or node.algorithm is None:
                return
            network = self.network
            if network.is_blocked(item.src, item.dst):
                network.dropped_messages += 1
                return
            if network.is_clogged(item.src, item.dst):
                self._hold(item)
                return
        else:
            node = self.nodes[item.node_id]
            if node.incarnation != item.incarnation or node.algorithm is None:
                return
            if isinstance(item, TimerDue) and node.timers.get(item.timer) != item.generation:
                return  # cancelled or replaced since
        if node.paused:
            node.stash_item(item)
            return
        self._run_item(node, item)

    def _run_item(self, node: SimNode, item: NodeItem) -> None:
        now_ms = self.scheduler.now_ms
        event: Event
        if isinstance(item, Delivery):
            src = item.src
            node.heard_ms[src] = now_ms
            node.stale_after_ms = None  # what it heard changed
            node.connected.add(src)
            self.nodes[src].connected.add(node.node_id)
            event = MessageReceived(now_ms, item.message)
            self.trace.delivery(now_ms, node.received_prefix, item.message)
        elif isinstance(item, TimerDue):
            del node.timers[item.timer]
            event = TimerFired(now_ms, item.timer)
            self.trace.line(now_ms, f"n{node.node_id} timer {_TIMER_TEXT[item.timer]}")
        elif isinstance(item, HintDue):
            event = PeerUnreachable(now_ms, item.peer_id)
            self.trace.line(now_ms, f"n{node.node_id} unreachable {item.peer_id}")
        else:
            event = item.make(now_ms)
            self.trace.line(now_ms, f"n{node.node_id} {item.label}")
            if isinstance(event, GateFinished) and event.passed:
                node.gates_passed.add(event.epoch)
            elif isinstance(event, EligibilityChanged):
                node.ineligible = event.reason is not None
        self._step(node, event)

    def _step(self, node: SimNode, event: Event) -> None:
        self.events += 1
        if self.events > self.max_events:
            raise SimulationLimitError(f"more than {self.max_events} events in one run (a storm?)")
        assert node.algorithm is not None
        actions = node.algorithm.step(event)
        if len(actions) > MAX_ACTIONS_PER_STEP:
            raise SimulationLimitError(f"node {node.node_id} produced {len(actions)} actions for {event!r}")
        quiet = True
        executors, record = self._executors, self._record
        for action in actions:
            kind = type(action)
            executors.get(kind, record)(node, action)
            if quiet and kind not in _QUIET_ACTIONS:
                quiet = False
        if not quiet or node.restarted:
            self._observe(node)
        if self._leaders:
            self._check_stale_leaders()
        if self.on_step is not None and self.views_changed:
            self.views_changed = False
            self.on_step()

    def _observe(self, node: SimNode) -> None:
        """Read the node's view after a step that changed something (it persisted, logged or
        published a role). Steps that only send and arm timers are not read, for speed: the view must
        match the last RoleChanged anyway, and that is checked here."""
        assert node.algorithm is not None
        now_ms = self.now_ms
        viewed = node.algorithm.role_view(now_ms)
        role, _, epoch = viewed
        self.safety.on_view(
            now_ms, node.node_id, role=role, epoch=epoch, durable=node.disk, restarted=node.restarted
        )
        self.safety.on_published(now_ms, node.node_id, viewed, node.published)
        node.restarted = False
        if viewed != (node.role, node.leader_id, node.epoch):
            node.role, node.leader_id, node.epoch = viewed
            self.views_changed = True
            if node.role is Role.LEADER:
                self._leaders.add(node.node_id)
            else:
                self._leaders.discard(node.node_id)

    def _check_stale_leaders(self) -> None:
        """Rule 3 for every leader, after every step. Fast path: each leader's deadline is cached until
        it hears from a peer (or restarts); only a passed deadline runs the full check, in id order."""
        now_ms = self.scheduler.now_ms
        for node_id in self._leaders:
            node = self.nodes[node_id]
            deadline_ms = node.stale_after_ms
            if deadline_ms is None:
                deadline_ms = self.safety.stale_leader_deadline_ms(node.heard_ms, node.started_ms)
                node.stale_after_ms = deadline_ms
            if now_ms > deadline_ms and node.running:
                break
        else:
            return
        for node_id in sorted(self._leaders):
            other = self.nodes[node_id]
            if other.running:
                self.safety.check_stale_leader(
                    now_ms, other.node_id, other.epoch, other.heard_ms, other.started_ms
                )

    # --- actions ---------------------------------------------------------------------------------

    def _execute(self, node: SimNode, action: Action) -> None:
        self._executors.get(type(action), self._record)(node, action)

    def _execute_send(self, node: SimNode, action: Send) -> None:
        self._check_send(node, action.message)
        if self.on_send is not None:
            self.on_send(node.node_id, (action.peer_id,), action.message)
        self._send(node, action.peer_id, action.message)

    def _execute_broadcast(self, node: SimNode, action: Broadcast) -> None:
        message = action.message
        self._check_send(node, message)
        if self.on_send is not None:
            self.on_send(node.node_id, node.peer_ids, message)
        for peer_id in node.peer_ids:
            self._send(node, peer_id, message)

    def _execute_set_timer(self, node: SimNode, action: SetTimer) -> None:
        self._generation += 1
        node.timers[action.timer] = self._generation
        due = TimerDue(node.node_id, node.incarnation, action.timer, self._generation)
        self.scheduler.at(action.at_ms, due)

    def _execute_cancel_timer(self, node: SimNode, action: CancelTimer) -> None:
        node.timers.pop(action.timer, None)

    def _execute_persist(self, node: SimNode, action: Persist) -> None:
        node_id = node.node_id
        self.safety.on_persist(self.now_ms, node_id, node.disk, action.state)
        node.disk = action.state
        self.log(f"n{node_id} persist epoch={action.state.epoch} voted_for={action.state.voted_for}")

    def _execute_run_gate(self, node: SimNode, action: RunGate) -> None:
        self._run_gate(node, action.epoch)

    def _execute_role_changed(self, node: SimNode, action: RoleChanged) -> None:
        node_id = node.node_id
        if action.role is Role.LEADER:
            barred = self._why_no_office(node, action.epoch)
            self.safety.on_office(self.now_ms, node_id, action.epoch, barred)
            node.reelecting = False
        node.published = (action.role, action.leader_id, action.epoch)
        self.log(f"n{node_id} role {action.role.value} leader={action.leader_id} epoch={action.epoch}")
        if action.role is Role.LEADER:
            self.leader_changes += 1
            self.safety.on_leader(self.now_ms, node_id, action.epoch)

    def _why_no_office(self, node: SimNode, epoch: int) -> str | None:
        """What should have kept `node` from taking office under `epoch`, if anything."""
        if node.settings.gated and epoch not in node.gates_passed and not node.reelecting:
            return "its before_lead gate did not pass for this epoch"
        if node.ineligible:
            return "its host told it that it may not run for leader"
        return None

    def _run_gate(self, node: SimNode, epoch: int) -> None:
        """The host runs the before_lead gate: it passes unless the nemesis made it fail; a slow one may
        outlast gate_timeout, and the runtime then kills it and reports it failed."""
        timeout_ms = node.settings.gate_timeout_ms
        if node.node_id in self.gate_slow:
            delay_ms = self.rng.randint(timeout_ms // 2, timeout_ms * 3 // 2)
        else:
            delay_ms = self.rng.randint(*GATE_MS)
        passed = node.node_id not in self.gate_failing
        detail = "exit status 0" if passed else "exit status 1"
        if delay_ms >= timeout_ms:
            delay_ms, passed, detail = timeout_ms, False, f"killed after {timeout_ms} ms"
        label = f"gate epoch={epoch} passed={passed}"
        self.tell(node.node_id, label, lambda now_ms: GateFinished(now_ms, epoch, passed, detail), delay_ms)

    def tell(self, node_id: int, label: str, make: Callable[[int], Event], delay_ms: int = 0) -> None:
        """Deliver a host event (gate result, health, an operator's request) to the node's current life."""
        node = self.nodes[node_id]
        self.scheduler.at(self.now_ms + delay_ms, LocalDue(node_id, node.incarnation, label, make))

    def set_eligible(self, node_id: int, reason: str | None) -> None:
        """The host's health check (or maintenance) changed: the node hears it at once if it runs, and
        again at each start while it lasts."""
        if reason is None:
            self.unhealthy.pop(node_id, None)
        else:
            self.unhealthy[node_id] = reason
        if self.nodes[node_id].alive:
            self.tell(node_id, f"eligibility {reason}", lambda now_ms: EligibilityChanged(now_ms, reason))

    def switchover(self, node_id: int, target: int | None) -> bool:
        """The operator's `leaderctl switchover` on `node_id`: asked only if the node would accept it."""
        node = self.nodes[node_id]
        if not node.running or node.algorithm is None:
            return False
        if node.algorithm.switchover_refusal(target) is not None:
            return False
        self.tell(node_id, f"switchover to {target}", lambda now_ms: SwitchoverRequested(now_ms, target))
        return True

    def _check_send(self, node: SimNode, message: Message) -> None:
        self.safety.on_send(self.now_ms, node.node_id, message, node.disk.epoch)
        if isinstance(message, (Heartbeat, Coordinator)) and message.leader_id == node.node_id:
            self.safety.on_claim(self.now_ms, node.node_id, message)

    def _record(self, node: SimNode, log: Log) -> None:
        node_id = node.node_id
        self.log(f"n{node_id} log {log.event} epoch={log.epoch} leader={log.leader_id} peer={log.peer_id}")
        event = HistoryEvent(
            self.now_ms, node_id, log.event, log.epoch, log.leader_id, log.peer_id, log.message, "sim"
        )
        self.trace.record(event)
        if log.event == EventName.REELECTION_STARTED:
            node.reelecting = True  # an incumbent keeps its office without a new gate (base._reelect)
        elif log.event in _ENDS_REELECTION:
            node.reelecting = False
        if log.event == EventName.ELECTION_STARTED:
            self.elections += 1
        elif log.event == EventName.BECAME_LEADER and log.epoch is not None:
            self.safety.on_leader(self.now_ms, node_id, log.epoch)
        elif log.event == EventName.LEADER_ACCEPTED and log.epoch is not None:
            self.safety.on_accept(self.now_ms, node_id, log.epoch, node.disk.epoch)
        if self.on_log is not None:
            self.on_log(event)  # a scenario may strike right here, before the step's next action

    def _send(self, node: SimNode, dst: int, message: Message) -> None:
        src = node.node_id
        peer = self.nodes.get(dst)
        if peer is None or dst == src:
            raise SimulationLimitError(f"node {src} sent {message!r} to non-peer {dst}")
        if peer.algorithm is None:
            if not (self.network.is_blocked(src, dst) or self.network.is_blocked(dst, src)):
                self.scheduler.at(self._hint_ms(dst, src), HintDue(src, node.incarnation, dst))
            return
        at = self.scheduler.at
        for at_ms in self.network.transit_delays_ms(src, dst, self.scheduler.now_ms):
            at(at_ms, Delivery(dst, peer.incarnation, src, message))

    def inject(self, src: int, dst: int, message: Message) -> None:
        """A message that `src`'s algorithm never produced (a forgery of the byzantine nemesis), sent on
        the link src -> dst like any other: partitions, drops, delays and clogs apply. No send-side rule
        is checked (the receiver's rules are)."""
        peer = self.nodes[dst]
        if not peer.alive or dst == src:
            return
        self.log(f"n{src} forges -> n{dst}: {message!r}")
        for at_ms in self.network.transit_delays_ms(src, dst, self.now_ms):
            self.scheduler.at(at_ms, Delivery(dst, peer.incarnation, src, message))

    # --- clogs -----------------------------------------------------------------------------------

    def _hold(self, item: Delivery) -> None:
        if len(self._held) >= MAX_HELD_MESSAGES:
            self._held.pop(0)
            self.network.dropped_messages += 1
        self._held.append(item)

    def release_held(self) -> None:
        """Reschedule clogged traffic whose link is no longer clogged (called after an unclog)."""
        still_held = []
        for item in self._held:
            if self.network.is_clogged(item.src, item.dst):
                still_held.append(item)
            else:
                at_ms = self.network.release_delay_ms(item.src, item.dst, self.now_ms)
                self.scheduler.at(at_ms, item)
        self._held = still_held

    # --- process control (the nemesis and tests call these) --------------------------------------

    def start(self, node_id: int) -> None:
        """Start (or restart) a node from its disk."""
        node = self.nodes[node_id]
        if node.alive:
            raise ValueError(f"node {node_id} is already running")
        node_rng = random.Random(self.rng.getrandbits(64))
        node.reborn(self._factory(node.settings, node.disk, node_rng), self.now_ms)
        self.log(f"n{node_id} start incarnation={node.incarnation} disk={node.disk}")
        self._step(node, Start(self.now_ms))
        reason = self.unhealthy.get(node_id)
        if reason is not None:  # the runtime's first health check (or its maintenance file) says so
            self.set_eligible(node_id, reason)

    def persist_unannounced(self, node_id: int, state: DurableState) -> None:
        """Write `state` to a stopped node's disk, as if it had persisted that promise (a candidacy, or a
        vote for one) just before it died and never sent it: nobody else knows of it."""
        node = self.nodes[node_id]
        if node.alive:
            raise ValueError(f"node {node_id} is running: only a stopped node's disk can be written")
        self.safety.on_persist(self.now_ms, node_id, node.disk, state)
        node.disk = state
        self.log(f"n{node_id} disk={state} (persisted, never announced)")

    def wipe(self, node_id: int) -> None:
        """Lose a stopped node's disk: it comes back without its state, as a new node would."""
        node = self.nodes[node_id]
        if node.alive:
            raise ValueError(f"node {node_id} is running: only a stopped node's disk can be wiped")
        self.safety.on_wipe(node_id)
        self.log(f"n{node_id} disk wiped (was {node.disk})")
        node.disk = DurableState()

    def crash(self, node_id: int, *, graceful: bool = False, reset_connections: bool = True) -> None:
        """SIGKILL (or the exit after a graceful stop). Peers with an open connection get a reset hint,
        if the path lets it through. `reset_connections=False` (tests): they get none and learn of the
        crash only from a later refused send or from silence."""
        node = self.nodes[node_id]
        if not node.alive:
            return
        self.log(f"n{node_id} {'exit' if graceful else 'crash'}{'' if reset_connections else ' (no reset)'}")
        self.views_changed = True
        self._leaders.discard(node_id)
        for peer_id in sorted(node.connected):
            peer = self.nodes[peer_id]
            peer.connected.discard(node_id)
            if reset_connections and peer.alive and not self.network.is_blocked(node_id, peer_id):
                self.scheduler.at(
                    self._hint_ms(node_id, peer_id), HintDue(peer_id, peer.incarnation, node_id)
                )
        node.kill()

    def _hint_ms(self, dead: int, peer: int) -> int:
        """When `peer` learns that `dead` is gone: a few ms from now, but never before the data `dead`
        sent it earlier (TCP delivers a connection's data before its FIN or RST, and a refused connect
        takes a round trip, longer than that data's remaining flight)."""
        return max(
            self.now_ms + self.rng.randint(*RST_DELAY_MS), self.network.last_delivery_ms(dead, peer) + 1
        )

    def stop(self, node_id: int) -> None:
        """SIGTERM (`systemctl stop`): the node hands off (a leader resigns), its last messages leave,
        then the process exits. A SIGSTOPped node cannot handle it in time: systemd kills it."""
        node = self.nodes[node_id]
        if not node.alive:
            return
        if node.paused:
            self.crash(node_id)
            return
        self.log(f"n{node_id} stop")
        self.trace.record(
            HistoryEvent(self.now_ms, node_id, EventName.STOPPING, message="SIGTERM", source="sim")
        )
        self._step(node, ShutdownRequested(self.now_ms))
        incarnation = node.incarnation
        exit_ms = self.now_ms + self.rng.randint(*EXIT_DELAY_MS)
        node.stopping = True
        self.call_at(exit_ms, "", lambda: self._exit(node_id, incarnation))

    def _exit(self, node_id: int, incarnation: int) -> None:
        node = self.nodes[node_id]
        if node.incarnation == incarnation and node.stopping:
            self.crash(node_id, graceful=True)

    def pause(self, node_id: int) -> None:
        node = self.nodes[node_id]
        if node.alive and not node.paused:
            self.log(f"n{node_id} pause")
            node.paused = True

    def resume(self, node_id: int, *, messages_first: bool = False) -> None:
        """SIGCONT: everything that came due while paused runs now, late, in its original order; with
        `messages_first` (tests), the queued messages before the timers and hints (a runtime does not
        guarantee either order)."""
        node = self.nodes[node_id]
        if not (node.alive and node.paused):
            return
        self.log(f"n{node_id} resume with {len(node.stash)} queued")
        node.paused = False
        if messages_first:
            node.stash = deque(sorted(node.stash, key=lambda item: not isinstance(item, Delivery)))
        while node.stash and node.alive:
            item = node.stash.popleft()
            if isinstance(item, TimerDue) and node.timers.get(item.timer) != item.generation:
                continue  # replaced by an earlier item of the same batch
            self._run_item(node, item)

    def snapshots(self) -> dict[int, NodeSnapshot]:
        """Role, leader and epoch of every live node, as of its last step."""
        return {
            node_id: NodeSnapshot(node.role, node.leader_id, node.epoch)
            for node_id, node in self.nodes.items()
            if node.alive
        }
