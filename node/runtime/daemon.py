"""The driver: turns sockets, timers and signals into events for one algorithm and executes its actions.

One greenlet (the dispatcher) owns the algorithm. Everything else only enqueues: inbound connections put
messages, peer links put unreachable hints, signal handlers set a flag, and the hooks and the control
socket put calls (`_Call`) that the dispatcher runs between two steps (the before_lead gate's result,
a changed health verdict, an operator's switchover or maintenance). The dispatcher stamps each event
with the monotonic clock when it takes it, steps the algorithm, and executes the returned actions in
order without yielding in between, so a `Persist` is on disk before the next action (a `Send` carrying
the new epoch) runs, and no other greenlet sees a half-applied step. Timers live in the dispatcher too:
it waits on the inbox with a timeout equal to the next timer deadline.

Exit codes: 0 after a clean SIGTERM/SIGINT; EXIT_CRASHED when a critical greenlet (dispatcher, peer
server, HTTP server, control socket, health checker, a peer link) dies, so systemd restarts us instead
of keeping a zombie node.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.event
import gevent.queue

from node.algorithms import make_algorithm
from node.control import error_reply
from node.core.actions import (
    Action,
    Broadcast,
    CancelTimer,
    EventName,
    Log,
    LogLevel,
    Persist,
    RoleChanged,
    RunGate,
    Send,
    SetTimer,
)
from node.core.errors import LocalProtocolError
from node.core.events import (
    EligibilityChanged,
    Event,
    GateFinished,
    MessageReceived,
    PeerUnreachable,
    ShutdownRequested,
    Start,
    TimerFired,
    TimerId,
)
from node.core.messages import Message
from node.core.session import Keyring
from node.core.view import NodeView
from node.runtime.config import ConfigError, NodeConfig, load_config
from node.runtime.control import ControlRequests, ControlServer
from node.runtime.eligibility import Eligibility, GateRunner, HealthChecker
from node.runtime.hooks import HookRunner, HooksConfig
from node.runtime.http import StatusApp, make_http_server
from node.runtime.journal import Journal, LineBudget, RateLimiter
from node.runtime.metrics import ELECTION_STARTED_EVENT, Metrics
from node.runtime.sdnotify import Notifier
from node.runtime.statefile import StateFile
from node.runtime.trace import Trace
from node.runtime.transport import Transport, TransportLimits
from node.version import package_version

EXIT_CRASHED = 70  # EX_SOFTWARE: an internal error; Restart=on-failure brings the node back
INBOX_MAX_ITEMS = 1024  # when full, inbound connections wait: back-pressure on the peers, not memory
SHUTDOWN_FLUSH_MS = 500  # how long a stopping node waits for its last messages (RESIGN) to leave
MAX_TIMER_FIRES_PER_PASS = 64  # a timer re-armed in the past cannot starve the inbox
REJECT_LOG_INTERVAL_MS = 10_000  # at most one message_rejected line per remote host per 10 s
# At most one peer_unreachable line per peer and reason per minute: a link retries every backoff.
UNREACHABLE_LOG_INTERVAL_MS = 60_000
REJECT_LOG_LINES_PER_S = 5  # and at most 5 such lines per second from all hosts together (a flood)
CONTROL_ANSWER_TIMEOUT_S = 5.0  # a control request the dispatcher has not answered by then gets an error
# What a reload (SIGHUP) applies; every other difference in node.toml needs a restart.
RELOADABLE_KEYS = ("secret_file", "previous_secret_file", "hooks")


def keyring_of(config: NodeConfig) -> Keyring:
    """The secrets a node knows, current first (docs/operations.md, "Rotating the cluster secret")."""
    previous = () if config.previous_secret is None else (config.previous_secret,)
    return Keyring((config.secret, *previous))


def restart_only_changes(old: NodeConfig, new: NodeConfig) -> list[str]:
    """The keys of node.toml whose change a reload cannot apply."""
    pairs = {
        "node_id": (old.node_id, new.node_id),
        "listen": (old.listen, new.listen),
        "http_listen": (old.http_listen, new.http_listen),
        "algorithm": (old.algorithm, new.algorithm),
        "peers": (dict(old.peers), dict(new.peers)),
        "heartbeat_interval": (old.settings.heartbeat_interval_ms, new.settings.heartbeat_interval_ms),
        "failure_timeout": (old.settings.failure_timeout_ms, new.settings.failure_timeout_ms),
        "election_timeout": (old.settings.election_timeout_ms, new.settings.election_timeout_ms),
        "preempt": (old.settings.preempt, new.settings.preempt),
        "state_dir": (old.state_dir, new.state_dir),
        "cluster_name": (old.cluster_name, new.cluster_name),
        "control_socket": (old.control_socket, new.control_socket),
        # The core knows whether a winner runs a gate and how long it waits for one (Settings).
        "hooks.before_lead": (old.settings.gated, new.settings.gated),
    }
    changed = [key for key, (before, after) in pairs.items() if before != after]
    both_gated = old.settings.gated and new.settings.gated
    if both_gated and old.settings.gate_timeout_ms != new.settings.gate_timeout_ms:
        changed.append("hooks.timeout")  # applies to the other hooks now, to before_lead at the restart
    return changed


def reloaded_hooks(old: NodeConfig, new: NodeConfig) -> HooksConfig:
    """The [hooks] a reload applies: all of the new table, except that before_lead is not added or
    removed (the election of the running node was built with or without a gate)."""
    if old.settings.gated != new.settings.gated:
        return dataclasses.replace(new.hooks, before_lead=old.hooks.before_lead)
    return new.hooks


def monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class _Unreachable:
    peer_id: int


class _Wake:
    """Inbox sentinel: look at the shutdown flag now."""


@dataclass(frozen=True, slots=True)
class _Call:
    """Run `run` in the dispatcher, between two steps: how another greenlet steps the core."""

    run: Callable[[], None]


_WAKE = _Wake()
_InboxItem = Message | _Unreachable | _Wake | _Call


def status_line(role: str, leader_id: int | None, epoch: int) -> str:
    return f"role={role} leader={leader_id if leader_id is not None else 'none'} epoch={epoch}"


class Daemon:
    def __init__(self, config: NodeConfig, journal: Journal, notifier: Notifier) -> None:
        """Loads the durable state (raises StateFileError) and builds everything; binds nothing yet."""
        self.config = config
        self.journal = journal
        self.notifier = notifier
        self.metrics = Metrics()
        self.trace = Trace(config.node_id)
        self.hooks = HookRunner(config.node_id, config.hooks, journal)
        self.state_file = StateFile(config.state_dir)
        self._state_lock_fd = self.state_file.lock()  # held for the life of the process
        initial_state = self.state_file.load()
        self._report_bad_record()
        self._initial_epoch = initial_state.epoch
        rng = random.SystemRandom()
        self.algorithm = make_algorithm(config.algorithm, config.settings, initial_state, rng)
        self.eligibility = Eligibility(config.state_dir, config.hooks.health_check)
        self.gate = GateRunner(config.node_id, journal, self._gate_finished)
        self.health = HealthChecker(config.node_id, config.hooks, journal, self._health_changed)
        self.control = ControlServer(
            config.control_socket,
            ControlRequests(
                self.algorithm,
                self.eligibility,
                journal,
                view=self.view,
                step=self._step,
                clock_ms=monotonic_ms,
                tell_eligibility=self._tell_eligibility,
                in_dispatcher=self._in_dispatcher,
            ).handle,
        )
        self._inbox: gevent.queue.Queue[_InboxItem] = gevent.queue.Queue(maxsize=INBOX_MAX_ITEMS)
        self._timers: dict[TimerId, int] = {}  # armed timer -> absolute deadline in ms
        self._shutdown_requested = False
        self._stopping = False
        self._exit_code: gevent.event.AsyncResult = gevent.event.AsyncResult()
        self._reject_limiter = RateLimiter(REJECT_LOG_INTERVAL_MS)
        self._unreachable_limiter = RateLimiter(UNREACHABLE_LOG_INTERVAL_MS)
        self._reject_budget = LineBudget(REJECT_LOG_LINES_PER_S, 1000)
        self.transport = Transport(
            node_id=config.node_id,
            listen=config.listen,
            peers=dict(config.peers),
            keyring=keyring_of(config),
            cluster_name=config.cluster_name,
            limits=TransportLimits.from_settings(config.settings),
            metrics=self.metrics,
            clock_ms=monotonic_ms,
            deliver=self._inbox.put,
            on_unreachable=self._peer_unreachable,
            on_rejected=self._frame_rejected,
            rng=rng,
            trace=self.trace,
        )
        self.http = make_http_server(config.http_listen, StatusApp(self.view, config.peers, self.metrics))
        self._critical: list[gevent.Greenlet] = []
        self._signal_handlers: list[Any] = []

    # -- lifecycle -------------------------------------------------------------------------------------

    def run(self) -> int:
        """Bind, announce READY, run until SIGTERM (0) or a critical greenlet dies (EXIT_CRASHED)."""
        self.transport.bind()
        try:
            self.http.start()
            try:
                self.control.bind()
            except OSError:
                self.http.close()
                raise
        except OSError:
            self.transport.server.close()
            raise
        # Kept referenced: gevent stops a signal watcher whose handle is garbage-collected.
        self._signal_handlers = [
            gevent.signal_handler(signum, self._request_shutdown)
            for signum in (signal.SIGTERM, signal.SIGINT)
        ]
        # SIGHUP (systemctl reload) re-reads node.toml and applies the secrets; its default action would
        # end the node without a hand-off.
        self._signal_handlers.append(gevent.signal_handler(signal.SIGHUP, self.reload))
        # The algorithm logs `started` on its Start event; this line is the runtime's half: where it listens.
        self.journal.event(
            EventName.LISTENING,
            f"node {self.config.node_id} ({self.config.algorithm}) listening on {self.config.listen}, "
            f"http on {self.config.http_listen}, control socket {self.config.control_socket}, "
            f"epoch {self._initial_epoch} from {self.state_file.path}"
            + (" (in maintenance)" if self.eligibility.maintenance else ""),
            EPOCH=self._initial_epoch,
            ALGORITHM=self.config.algorithm,
            VERSION=package_version(),
        )
        self._spawn_critical("dispatcher", self._dispatch_loop)
        self._spawn_critical("peer-server", self.transport.server.serve_forever)
        self._spawn_critical("http-server", self.http.serve_forever)
        self._spawn_critical("hook-runner", self.hooks.run_forever)
        self._spawn_critical("control-server", self.control.serve_forever)
        self._spawn_critical("health-checker", self.health.run_forever)
        for link in self.transport.links.values():
            link.greenlet.link(self._critical_exited)
            self._critical.append(link.greenlet)
        self.transport.start_links()
        if self.notifier.watchdog_interval_ms is not None:
            gevent.spawn(self._watchdog_loop, self.notifier.watchdog_interval_ms)
        view = self.view()
        self.notifier.ready(status_line(view.role.value, view.leader_id, view.epoch))
        code: int = self._exit_code.get()
        self.transport.close()
        self.http.close()
        self.control.close()
        self.journal.close()
        return code

    def _report_bad_record(self) -> None:
        """One of the state file's two records failed its checks: the node starts from the other one and
        catches up before it votes (node/core/state.py, load_slots). Logged once, at start."""
        loaded = self.state_file.loaded
        if loaded is None or loaded.bad_slot is None:
            return
        self.journal.event(
            EventName.STATE_RECORD_INVALID,
            f"state file {self.state_file.path}: the record in slot {loaded.bad_slot} is invalid: "
            f"{loaded.note}; starting from the other one (seq {loaded.seq}, epoch {loaded.state.epoch}) "
            "and catching up before voting. Normally a write that a crash cut short; without a crash, a "
            "failing disk",
            LogLevel.WARNING,
            EPOCH=loaded.state.epoch,
            FILE=str(self.state_file.path),
            SLOT=loaded.bad_slot,
            REASON=loaded.note,
        )

    def _spawn_critical(self, name: str, run: Any) -> None:
        greenlet = gevent.Greenlet(run)
        greenlet.name = name
        greenlet.link(self._critical_exited)
        self._critical.append(greenlet)
        greenlet.start()

    def _critical_exited(self, greenlet: gevent.Greenlet) -> None:
        if self._stopping or self._exit_code.ready():
            return
        reason = repr(greenlet.exception) if greenlet.exception is not None else "returned unexpectedly"
        self.journal.event(
            EventName.CRASHED,
            f"critical greenlet {greenlet.name} died: {reason}; exiting so that systemd restarts the node",
            LogLevel.ERROR,
            EPOCH=self._epoch(),
        )
        self._exit_code.set(EXIT_CRASHED)

    def critical_alive(self) -> bool:
        return all(not greenlet.dead for greenlet in self._critical)

    def _watchdog_loop(self, interval_ms: int) -> None:
        # The ping itself proves the hub is not blocked; the check proves no critical greenlet died.
        while self.critical_alive():
            self.notifier.watchdog()
            gevent.sleep(interval_ms / 1000)

    def reload(self) -> None:
        """SIGHUP: re-read node.toml; apply the secrets (new handshakes use the new keyring, sessions
        that are established keep theirs); name what needs a restart. A bad file changes nothing."""
        try:
            new = load_config(self.config.path)
            keyring = keyring_of(new)
        except (ConfigError, ValueError) as exc:
            self.journal.event(
                EventName.RELOAD_REJECTED,
                f"node {self.config.node_id} keeps its running configuration: {exc}",
                LogLevel.WARNING,
                REASON=str(exc),
                EPOCH=self._epoch(),
            )
            return
        old = self.config
        changed = [
            key
            for key, before, after in (
                ("secret_file", old.secret, new.secret),
                ("previous_secret_file", old.previous_secret, new.previous_secret),
                ("hooks", old.hooks, new.hooks),
            )
            if before != after
        ]
        self.transport.keyring = keyring
        hooks = reloaded_hooks(old, new)
        self.config = dataclasses.replace(
            old, secret=new.secret, previous_secret=new.previous_secret, hooks=hooks
        )
        self.hooks.config = hooks
        self.health.reconfigure(hooks)
        self.journal.event(
            EventName.CONFIG_RELOADED,
            f"node {old.node_id} reloaded {old.path}: "
            f"{'changed ' + ', '.join(changed) if changed else 'no reloadable change'}; "
            f"key ids {', '.join(keyring.ids)} (current first)",
            LogLevel.NOTICE,
            KEY_IDS=",".join(keyring.ids),
            CHANGED=",".join(changed) or None,
            EPOCH=self._epoch(),
        )
        restart_keys = restart_only_changes(old, new)
        if restart_keys:
            self.journal.event(
                EventName.RELOAD_NEEDS_RESTART,
                f"node {old.node_id}: {', '.join(restart_keys)} changed in {old.path}; a reload does not "
                "apply them, they take effect at the next restart (a leader hands off)",
                LogLevel.WARNING,
                KEYS=",".join(restart_keys),
                EPOCH=self._epoch(),
            )

    def _request_shutdown(self) -> None:
        """SIGTERM/SIGINT handler (in its own greenlet): only records the wish and wakes the dispatcher."""
        self._shutdown_requested = True
        self.trace.mark("sigterm")
        # A full inbox means the dispatcher is busy; it checks the flag before its next item anyway.
        with contextlib.suppress(gevent.queue.Full):
            self._inbox.put_nowait(_WAKE)

    def _shutdown(self) -> None:
        self._stopping = True
        self.notifier.stopping()
        self.journal.event(
            EventName.STOPPING,
            f"node {self.config.node_id} stopping (SIGTERM)",
            LogLevel.NOTICE,
            EPOCH=self._epoch(),
        )
        self._execute(self.algorithm.step(ShutdownRequested(monotonic_ms())))
        self.gate.stop()
        self.health.stop()
        self.transport.flush(SHUTDOWN_FLUSH_MS)
        self.trace.mark("flushed")
        self.hooks.stop(self.view().epoch)  # the `stopped` run, after the hand-off
        self._exit_code.set(0)

    # -- the dispatcher --------------------------------------------------------------------------------

    def view(self) -> NodeView:
        return self.algorithm.view(monotonic_ms())

    def _epoch(self) -> int | None:
        """The durable epoch: the runtime's own events carry it (EPOCH) like the algorithm's do."""
        try:
            return self.view().epoch
        except Exception:  # a broken algorithm must not also cost us the `crashed` line
            return None

    def _dispatch_loop(self) -> None:
        self._step(Start(monotonic_ms()))
        self._tell_eligibility()  # in maintenance, or a health check to pass first: before any election
        while not self._shutdown_requested:
            try:
                item = self._inbox.get(timeout=self._seconds_to_next_timer())
            except gevent.queue.Empty:
                item = None
            if isinstance(item, Message):
                self.trace.mark("step", item.type.value, item.sender, item.epoch)
                self._step(MessageReceived(monotonic_ms(), item))
                self.trace.mark("stepped")
            elif isinstance(item, _Unreachable):
                self.trace.mark("step", "UNREACHABLE", item.peer_id)
                self._step(PeerUnreachable(monotonic_ms(), item.peer_id))
            elif isinstance(item, _Call):
                item.run()
            self._fire_due_timers()
        self._shutdown()

    def _seconds_to_next_timer(self) -> float | None:
        if not self._timers:
            return None
        return max(0.0, (min(self._timers.values()) - monotonic_ms()) / 1000)

    def _fire_due_timers(self) -> None:
        for _ in range(MAX_TIMER_FIRES_PER_PASS):
            now_ms = monotonic_ms()
            due = [(at_ms, timer) for timer, at_ms in self._timers.items() if at_ms <= now_ms]
            if not due:
                return
            at_ms, timer = min(due)
            del self._timers[timer]  # fired timers are disarmed; the algorithm re-arms what it wants
            self.trace.mark("timer", timer.value, now_ms - at_ms)
            self._step(TimerFired(now_ms, timer))

    def _step(self, event: Event) -> None:
        self._execute(self.algorithm.step(event))

    def _execute(self, actions: list[Action]) -> None:
        """Execute in order. Nothing here yields, and Persist returns only once the state is on disk."""
        for action in actions:
            match action:
                case Send(peer_id=peer_id, message=message):
                    if peer_id not in self.transport.links:
                        raise LocalProtocolError(f"algorithm sent to {peer_id}, which is not a peer")
                    self.trace.mark("queue", message.type.value, peer_id)
                    self.transport.send(peer_id, message)
                case Broadcast(message=message):
                    self.trace.mark("queue", message.type.value, "*")
                    self.transport.broadcast(message)
                case SetTimer(timer=timer, at_ms=at_ms):
                    self._timers[timer] = at_ms
                case CancelTimer(timer=timer):
                    self._timers.pop(timer, None)
                case Persist(state=state):
                    self.trace.mark("persist", state.epoch, state.voted_for)
                    self.state_file.save(state)  # OSError kills the dispatcher: no send may follow
                    self.metrics.state_writes_total += 1
                    self.trace.mark("persisted", state.epoch)
                case RoleChanged(role=role, leader_id=leader_id, epoch=epoch):
                    self.trace.mark("role", role.value, leader_id, epoch)
                    self.metrics.role_changed(action)
                    self.notifier.status(status_line(role.value, leader_id, epoch))
                    self.hooks.role_changed(role.value, epoch, leader_id)
                case Log():
                    self._log(action)
                case RunGate(epoch=epoch):
                    # The gate's timeout is the one the core waits for (Settings), also after a reload.
                    gate_timeout_ms = self.config.settings.gate_timeout_ms
                    self.gate.start(self.config.hooks.before_lead, epoch, gate_timeout_ms)

    def _log(self, log: Log) -> None:
        if log.event == ELECTION_STARTED_EVENT:
            self.metrics.elections_total += 1
        self.journal.event(
            log.event, log.message, log.level, PEER_ID=log.peer_id, EPOCH=log.epoch, LEADER_ID=log.leader_id
        )

    # -- callbacks from the transport (other greenlets: enqueue only) ------------------------------------

    def _peer_unreachable(self, peer_id: int, reason: str) -> None:
        self._inbox.put(_Unreachable(peer_id))
        # The detector decides (peer_suspected); this line says why the connection failed.
        allowed, suppressed = self._unreachable_limiter.allow(f"{peer_id} {reason}", monotonic_ms())
        if allowed:
            more = f" ({suppressed} more attempts failed the same way)" if suppressed else ""
            self.journal.event(
                EventName.PEER_UNREACHABLE,
                f"node {self.config.node_id} cannot reach peer {peer_id}: {reason}{more}",
                PEER_ID=peer_id,
                REASON=reason,
                EPOCH=self._epoch(),
            )

    def _frame_rejected(self, remote: str, reason: str) -> None:
        host = remote.rsplit(":", 1)[0]
        now_ms = monotonic_ms()
        allowed, suppressed = self._reject_limiter.allow(host, now_ms)
        if allowed:
            allowed, suppressed_all = self._reject_budget.allow(now_ms)
            if not allowed:  # the host's turn is lost for this interval: counted in the budget instead
                return
            more = f" ({suppressed} more from this host suppressed)" if suppressed else ""
            more += f" ({suppressed_all} more from all hosts suppressed)" if suppressed_all else ""
            self.journal.event(
                EventName.MESSAGE_REJECTED,
                f"{reason}{more}",
                LogLevel.WARNING,
                REMOTE=remote,
                REASON=reason,
                EPOCH=self._epoch(),
            )

    # -- eligibility and the control socket ---------------------------------------------------------------

    def _tell_eligibility(self) -> None:
        """Dispatcher: step EligibilityChanged when the combined reason differs from the core's."""
        changed, reason = self.eligibility.news()
        if changed:
            self._step(EligibilityChanged(monotonic_ms(), reason))

    def _gate_finished(self, epoch: int, passed: bool, detail: str) -> None:
        """From the gate's greenlet: enqueue only."""
        self._inbox.put(_Call(lambda: self._step(GateFinished(monotonic_ms(), epoch, passed, detail))))

    def _health_changed(self, verdict: str | None) -> None:
        """From the health checker's greenlet: enqueue only."""

        def apply() -> None:
            self.eligibility.health = verdict
            self._tell_eligibility()

        self._inbox.put(_Call(apply))

    def _in_dispatcher(self, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """From a control connection's greenlet: `run` in the dispatcher, wait for its reply."""
        if self._shutdown_requested:
            return error_reply(f"node {self.config.node_id} is stopping")
        answer: gevent.event.AsyncResult = gevent.event.AsyncResult()
        try:
            self._inbox.put(_Call(lambda: answer.set(run())), timeout=CONTROL_ANSWER_TIMEOUT_S)
            reply: dict[str, Any] = answer.get(timeout=CONTROL_ANSWER_TIMEOUT_S)
        except (gevent.queue.Full, gevent.Timeout):
            return error_reply(
                f"node {self.config.node_id} did not answer within {CONTROL_ANSWER_TIMEOUT_S:g} s (busy or "
                "stopping); look at its status before asking again"
            )
        return reply
