"""Running the operator's hooks: one way to run a program for all three of them, and the role-change hook.

`[hooks]` in node.toml names up to three executables (docs/operations.md has the contract of each):

- `on_role_change`, run as `HOOK ROLE EPOCH LEADER_ID` (LEADER_ID empty when there is none) with the
  same values in the environment (LEADER_NODE_NODE_ID, LEADER_NODE_ROLE, LEADER_NODE_PREVIOUS_ROLE,
  LEADER_NODE_EPOCH, LEADER_NODE_LEADER_ID), once per change of the role that /status reports, and once
  with role `stopped` when the node stops (`HookRunner`, below);
- `before_lead`, the gate a winner runs before it takes office, and `health_check`, run every
  `health_interval`: node/runtime/eligibility.py.

Every run goes through `run_hook`: outside the dispatcher (a greenlet of its own waits for it, so an
election never waits for a hook), with the node's private environment removed, killed with its whole
process group after `[hooks] timeout`, its first 2,000 bytes of stderr kept. A run is one journal entry
`hook_finished` (`report_hook`: HOOK names the hook's key, HOOK_PATH its file, EXIT_STATUS, DURATION_MS,
STDERR, and the fields of that hook such as ROLE and EPOCH).

The role-change runner is serialised and in order. Changes that come faster than the hook are coalesced
(`next_run`, pure), but the last role is always delivered, and a `leader` run is always followed by a
non-leader run before the next `leader` run: a hook that starts something on `leader` always gets its stop.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import gevent
import gevent.event
import gevent.os

from node.core.actions import EventName, LogLevel
from node.runtime.journal import FieldValue, Journal

LEADER = "leader"
STOPPED = "stopped"
MAX_STDERR_BYTES = 2000  # kept for the journal; the rest of a hook's stderr is read and dropped
POLL_INTERVAL_S = 0.01  # how often a run's exit (and its cancellation) is looked at
# Variables of the daemon's own environment a hook must not inherit: they belong to the daemon's unit.
_PRIVATE_ENV = frozenset(
    {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"}
)


@dataclass(frozen=True, slots=True)
class HooksConfig:
    """node.toml's [hooks] table."""

    on_role_change: Path | None = None
    before_lead: Path | None = None  # the gate: a winner takes office only once it exited 0
    health_check: Path | None = None  # exit 0 = healthy; otherwise the node may not run for leader
    timeout_ms: int = 10_000  # every run of every hook is killed (its process group) after this
    health_interval_ms: int = 2_000  # from the end of one health check to the start of the next


# -- one run of any hook -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HookResult:
    """How one run ended. `exit_status` is negative when a signal killed it (-9 at the timeout), 126 or
    127 when it could not be started (as a shell reports them)."""

    exit_status: int
    duration_ms: int
    stderr: bytes
    timeout_ms: int
    timed_out: bool = False
    cancelled: bool = False  # killed because the node no longer needed its answer

    @property
    def passed(self) -> bool:
        return self.exit_status == 0 and not self.timed_out and not self.cancelled

    @property
    def outcome(self) -> str:
        """A few words for the journal and for GateFinished.detail: "exit status 1", "killed after the
        10000 ms timeout"."""
        if self.timed_out:
            return f"killed after the {self.timeout_ms} ms timeout"
        if self.cancelled:
            return "killed: its answer was no longer needed"
        if self.exit_status < 0:
            return f"killed by signal {-self.exit_status}"
        return f"exit status {self.exit_status}"


def hook_environment(values: Mapping[str, str]) -> dict[str, str]:
    """The daemon's environment without what belongs to its unit (sd_notify, socket activation), plus
    `values` (the LEADER_NODE_* variables of one run)."""
    env = {key: value for key, value in os.environ.items() if key not in _PRIVATE_ENV}
    return env | dict(values)


def run_hook(
    hook: Path,
    args: Sequence[str],
    env: Mapping[str, str],
    timeout_ms: int,
    cancelled: Callable[[], bool] | None = None,
) -> HookResult:
    """Run `hook args...` to its end in the calling greenlet (never the dispatcher: this waits).

    Its whole process group is killed after `timeout_ms`, or as soon as `cancelled()` returns True (a
    gate the node gave up, a node that stops). Nothing here blocks the node: the wait and the stderr
    reads are gevent's."""
    started = time.monotonic()
    try:
        # The standard library's Popen starts the child with vfork + exec (about 0.3 ms); gevent's
        # forks the whole node first, which stalls it for 3-13 ms in the very election that changed
        # its role.
        process = subprocess.Popen(
            [str(hook), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=dict(env),
            start_new_session=True,  # its own process group, killed whole at the timeout
            close_fds=True,
        )
    except OSError as exc:
        return HookResult(
            exit_status=126 if isinstance(exc, PermissionError) else 127,
            duration_ms=_ms_since(started),
            stderr=f"cannot run {hook}: {exc.strerror or exc}".encode(),
            timeout_ms=timeout_ms,
        )
    assert process.stderr is not None
    stderr_fd = process.stderr.fileno()
    os.set_blocking(stderr_fd, False)
    reader = gevent.spawn(_read_bounded, stderr_fd, MAX_STDERR_BYTES)
    timed_out = was_cancelled = False
    deadline = started + timeout_ms / 1000
    try:
        while (status := process.poll()) is None:
            if time.monotonic() >= deadline:
                timed_out = True
            elif cancelled is not None and cancelled():
                was_cancelled = True
            else:
                gevent.sleep(POLL_INTERVAL_S)
                continue
            _kill_group(process)
            while (status := process.poll()) is None:
                gevent.sleep(POLL_INTERVAL_S)
            break
    except BaseException:  # the waiting greenlet itself was killed: take the run with it
        _kill_group(process)
        reader.kill()
        process.stderr.close()
        raise
    # A child the hook left behind may hold stderr open: do not wait for it.
    reader.join(timeout=0.5)
    stderr = reader.value if reader.successful() and reader.value is not None else b""
    reader.kill()
    process.stderr.close()
    return HookResult(
        exit_status=status,
        duration_ms=_ms_since(started),
        stderr=stderr,
        timeout_ms=timeout_ms,
        timed_out=timed_out,
        cancelled=was_cancelled,
    )


def report_hook(
    journal: Journal,
    node_id: int,
    name: str,
    *,
    hook: Path,
    args: Sequence[str],
    result: HookResult,
    **fields: FieldValue,
) -> None:
    """One `hook_finished` entry: HOOK is the key of [hooks] (`on_role_change`, `before_lead`,
    `health_check`), so that one query finds every run of one hook whatever its file is called."""
    journal.event(
        EventName.HOOK_FINISHED,
        f"node {node_id} ran {name} {shlex.join([str(hook), *args])}: {result.outcome}, "
        f"{result.duration_ms} ms",
        LogLevel.INFO if result.passed else LogLevel.WARNING,
        HOOK=name,
        HOOK_PATH=str(hook),
        EXIT_STATUS=result.exit_status,
        DURATION_MS=result.duration_ms,
        STDERR=result.stderr.decode("utf-8", "replace").strip() or None,
        **fields,
    )


def _ms_since(started_s: float) -> int:
    return round((time.monotonic() - started_s) * 1000)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):  # gone already
            os.killpg(process.pid, signal.SIGKILL)


def _read_bounded(fd: int, limit: int) -> bytes:
    """Read the non-blocking `fd` to its end (cooperatively), keeping the first `limit` bytes."""
    kept = b""
    while chunk := gevent.os.nb_read(fd, 65536):
        if len(kept) < limit:
            kept += chunk[: limit - len(kept)]
    return kept


# -- the role-change hook ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RoleUpdate:
    role: str  # a /status role (leader, follower, candidate, no-quorum), or `stopped`
    epoch: int
    leader_id: int | None


def next_run(
    delivered: str | None, pending: Sequence[RoleUpdate]
) -> tuple[RoleUpdate | None, list[RoleUpdate]]:
    """Which of the `pending` role changes (oldest first) the hook runs with next, given the role of its
    last run (`delivered`, None before the first), and what stays pending after that run.

    The latest change wins; the ones before it are coalesced. One exception: after a `leader` run, when
    the node lost leadership and won it again since, the hook first gets the last non-leader role, so
    that it stops what it started before it starts it again."""
    if not pending:
        return None, []
    latest = pending[-1]
    if delivered == LEADER and latest.role == LEADER:
        lost = [update for update in pending if update.role != LEADER]
        return (lost[-1], [latest]) if lost else (None, [])
    if latest.role == delivered:
        return None, []  # back to the role the hook last saw: nothing to tell it
    return latest, []


class HookRunner:
    """Runs `on_role_change` for the role updates the dispatcher hands it (`role_changed`)."""

    def __init__(self, node_id: int, config: HooksConfig, journal: Journal) -> None:
        self.node_id = node_id
        self.config = config
        self._journal = journal
        self._pending: list[RoleUpdate] = []
        self._last_role: str | None = None  # the role of the last update handed in
        self._delivered: str | None = None  # the role of the hook's last run
        self._wake = gevent.event.Event()
        self._idle = gevent.event.Event()
        self._idle.set()

    def role_changed(self, role: str, epoch: int, leader_id: int | None) -> None:
        """From the dispatcher: never blocks. Only changes of role count; none after `stopped`."""
        if self.config.on_role_change is None or self._last_role in (role, STOPPED):
            return
        self._last_role = role
        self._pending.append(RoleUpdate(role, epoch, leader_id))
        self._idle.clear()
        self._wake.set()

    def run_forever(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            while self._pending:
                update, self._pending = next_run(self._delivered, self._pending)
                if update is not None and self.config.on_role_change is not None:
                    self._run(self.config.on_role_change, update)
                    self._delivered = update.role
            self._idle.set()

    def stop(self, epoch: int) -> None:
        """The node is stopping (after its hand-off): a run in progress finishes (within its timeout),
        what was pending is dropped, and the hook runs once more with `stopped`. At most two timeouts."""
        if self.config.on_role_change is None or self._last_role == STOPPED:
            return
        self._last_role = STOPPED
        self._pending = [RoleUpdate(STOPPED, epoch, None)]
        self._idle.clear()
        self._wake.set()
        self._idle.wait(2 * self.config.timeout_ms / 1000 + 1)

    def _run(self, hook: Path, update: RoleUpdate) -> None:
        leader = "" if update.leader_id is None else str(update.leader_id)
        env = hook_environment(
            {
                "LEADER_NODE_NODE_ID": str(self.node_id),
                "LEADER_NODE_ROLE": update.role,
                "LEADER_NODE_PREVIOUS_ROLE": self._delivered or "",
                "LEADER_NODE_EPOCH": str(update.epoch),
                "LEADER_NODE_LEADER_ID": leader,
            }
        )
        args = [update.role, str(update.epoch), leader]
        result = run_hook(hook, args, env, self.config.timeout_ms)
        report_hook(
            self._journal,
            self.node_id,
            "on_role_change",
            hook=hook,
            args=args,
            result=result,
            ROLE=update.role,
            EPOCH=update.epoch,
            LEADER_ID=update.leader_id,
        )
