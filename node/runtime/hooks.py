"""The role-change hook: the operator's program, run on every change of this node's role.

`[hooks] on_role_change` in node.toml names an executable; it runs as `HOOK ROLE EPOCH LEADER_ID`
(LEADER_ID empty when there is none) with the same values in the environment (LEADER_NODE_NODE_ID,
LEADER_NODE_ROLE, LEADER_NODE_PREVIOUS_ROLE, LEADER_NODE_EPOCH, LEADER_NODE_LEADER_ID), once per change
of the role that /status reports, and once with role `stopped` when the node stops.

- Outside the dispatcher: the dispatcher only appends to a list; one greenlet runs the hook, so an
  election never waits for it.
- Serialised and in order. Changes that come faster than the hook are coalesced (`next_run`, pure), but
  the last role is always delivered, and a `leader` run is always followed by a non-leader run before
  the next `leader` run: a hook that starts something on `leader` always gets its stop.
- Each run is killed, its whole process group, after `[hooks] timeout`; each run is one journal entry
  `hook_finished` (HOOK, ROLE, EPOCH, EXIT_STATUS, DURATION_MS, and up to 2,000 bytes of its stderr).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import gevent
import gevent.event
import gevent.os

from node.core.actions import EventName, LogLevel
from node.runtime.journal import Journal

LEADER = "leader"
STOPPED = "stopped"
MAX_STDERR_BYTES = 2000  # kept for the journal; the rest of a hook's stderr is read and dropped
# Variables of the daemon's own environment a hook must not inherit: they belong to the daemon's unit.
_PRIVATE_ENV = frozenset(
    {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"}
)


@dataclass(frozen=True, slots=True)
class HooksConfig:
    """node.toml's [hooks] table."""

    on_role_change: Path | None = None
    timeout_ms: int = 10_000


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
        self._process: subprocess.Popen[bytes] | None = None

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

    # -- one run --------------------------------------------------------------------------------------

    def _run(self, hook: Path, update: RoleUpdate) -> None:
        leader = "" if update.leader_id is None else str(update.leader_id)
        env = {key: value for key, value in os.environ.items() if key not in _PRIVATE_ENV}
        env |= {
            "LEADER_NODE_NODE_ID": str(self.node_id),
            "LEADER_NODE_ROLE": update.role,
            "LEADER_NODE_PREVIOUS_ROLE": self._delivered or "",
            "LEADER_NODE_EPOCH": str(update.epoch),
            "LEADER_NODE_LEADER_ID": leader,
        }
        started = time.monotonic()
        stderr = b""
        timed_out = False
        try:
            # The standard library's Popen starts the child with vfork + exec (about 0.3 ms); gevent's
            # forks the whole node first, which stalls it for 3-13 ms in the very election that changed
            # its role. The wait and the stderr reads below are gevent's, so nothing blocks.
            process = subprocess.Popen(
                [str(hook), update.role, str(update.epoch), leader],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,  # its own process group, killed whole at the timeout
                close_fds=True,
            )
        except OSError as exc:
            exit_status = 126 if isinstance(exc, PermissionError) else 127  # as a shell reports them
            stderr = f"cannot run {hook}: {exc.strerror or exc}".encode()
        else:
            self._process = process
            assert process.stderr is not None
            stderr_fd = process.stderr.fileno()
            os.set_blocking(stderr_fd, False)
            reader = gevent.spawn(_read_bounded, stderr_fd, MAX_STDERR_BYTES)
            try:
                exit_status = _wait(process, self.config.timeout_ms / 1000)
            except subprocess.TimeoutExpired:
                timed_out = True
                self._kill_current()
                exit_status = _wait(process, None)
            finally:
                self._process = None
            # A child the hook left behind may hold stderr open: do not wait for it.
            reader.join(timeout=0.5)
            stderr = reader.value if reader.successful() and reader.value is not None else b""
            reader.kill()
            process.stderr.close()
        duration_s = time.monotonic() - started
        self._report(hook, update, exit_status, duration_s=duration_s, stderr=stderr, timed_out=timed_out)

    def _kill_current(self) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):  # gone already
                os.killpg(process.pid, signal.SIGKILL)

    def _report(
        self,
        hook: Path,
        update: RoleUpdate,
        exit_status: int,
        *,
        duration_s: float,
        stderr: bytes,
        timed_out: bool,
    ) -> None:
        duration_ms = round(duration_s * 1000)
        if timed_out:
            outcome = f"killed after the {self.config.timeout_ms} ms timeout"
        elif exit_status < 0:
            outcome = f"killed by signal {-exit_status}"
        else:
            outcome = f"exit status {exit_status}"
        leader = "" if update.leader_id is None else str(update.leader_id)
        self._journal.event(
            EventName.HOOK_FINISHED,
            f"node {self.node_id} ran {hook} {update.role} {update.epoch} {leader!r}: {outcome}, "
            f"{duration_ms} ms",
            LogLevel.INFO if exit_status == 0 else LogLevel.WARNING,
            HOOK=str(hook),
            ROLE=update.role,
            EPOCH=update.epoch,
            LEADER_ID=update.leader_id,
            EXIT_STATUS=exit_status,
            DURATION_MS=duration_ms,
            STDERR=stderr.decode("utf-8", "replace").strip() or None,
        )


def _read_bounded(fd: int, limit: int) -> bytes:
    """Read the non-blocking `fd` to its end (cooperatively), keeping the first `limit` bytes."""
    kept = b""
    while chunk := gevent.os.nb_read(fd, 65536):
        if len(kept) < limit:
            kept += chunk[: limit - len(kept)]
    return kept


def _wait(process: subprocess.Popen[bytes], timeout_s: float | None) -> int:
    """The exit status, polled every 10 ms without blocking the node; TimeoutExpired at `timeout_s`."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while (status := process.poll()) is None:
        if deadline is not None and time.monotonic() >= deadline:
            raise subprocess.TimeoutExpired(process.args, timeout_s or 0)
        gevent.sleep(0.01)
    return status
