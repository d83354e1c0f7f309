"""Who may lead, as the host sees it: the before_lead gate, the health check and maintenance.

The core decides what eligibility means for an election (node/algorithms/handoff.py); this module only
finds out and reports, each part outside the dispatcher so that a slow hook never delays a step:

- `GateRunner` runs `[hooks] before_lead` for a `RunGate(epoch)` action and hands the dispatcher its
  result (GateFinished). One gate runs at a time: the gate of an epoch the node has since given up is
  killed when the next one starts.
- `HealthChecker` runs `[hooks] health_check` every `health_interval` and reports its verdict when it
  changes: None (healthy) or why not.
- `MaintenanceFlag` is the operator's `leaderctl maintenance on|off`, kept as a file in state_dir so
  that it survives a restart (and a reboot: written like the state file).
- `Eligibility` combines the two into the one reason the core hears (EligibilityChanged), maintenance
  first, and remembers what the core was last told so that it hears only changes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import gevent
import gevent.event

from node.runtime.hooks import HookResult, HooksConfig, hook_environment, report_hook, run_hook
from node.runtime.journal import Journal
from node.runtime.statefile import remove_durably, write_durably

MAINTENANCE_FILE_NAME = "maintenance"
MAINTENANCE = "maintenance"  # the reason the core hears while the flag is set
HEALTH_PENDING = "health check has not passed yet"  # from the start until the first check passes


def ineligible_reason(health: str | None, maintenance: bool) -> str | None:
    """The one reason the core hears: maintenance wins (it is what the operator asked for and what
    only the operator ends), then a failing health check; None: this node may run for leader."""
    return MAINTENANCE if maintenance else health


def health_verdict(result: HookResult) -> str | None:
    """None when the check passed, else the reason /status shows: "health check failed: exit status 1",
    "health check timed out after 2000 ms"."""
    if result.passed:
        return None
    if result.timed_out:
        return f"health check timed out after {result.timeout_ms} ms"
    return f"health check failed: {result.outcome}"


class MaintenanceFlag:
    """`<state_dir>/maintenance`: present = in maintenance. Its content (when and by whom it was set)
    is for people; only its presence counts, so an operator may also create or remove it by hand while
    the node is stopped."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / MAINTENANCE_FILE_NAME

    def load(self) -> bool:
        return self.path.exists()

    def set(self, on: bool, by: str) -> None:
        """Durable when it returns (fsync of the file and of the directory); OSError propagates."""
        if on:
            note = {
                "maintenance": True,
                "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "by": by,
            }
            write_durably(self.path, json.dumps(note, sort_keys=True).encode() + b"\n")
        else:
            remove_durably(self.path)


class Eligibility:
    """The health verdict and the maintenance flag, and what the core was last told. Used by the
    dispatcher only (no locking needed: it never yields while it uses this)."""

    def __init__(self, state_dir: Path, health_check: Path | None) -> None:
        self.maintenance_flag = MaintenanceFlag(state_dir)
        self.maintenance = self.maintenance_flag.load()
        # With a health check, a node is not eligible before its first check passed: a node restarted
        # with a broken service must not win the election of its first seconds.
        self.health: str | None = HEALTH_PENDING if health_check is not None else None
        self._told: str | None = None  # the core starts eligible

    @property
    def reason(self) -> str | None:
        return ineligible_reason(self.health, self.maintenance)

    def news(self) -> tuple[bool, str | None]:
        """(whether the reason differs from what the core was last told, the reason); marks it told."""
        reason = self.reason
        if reason == self._told:
            return False, reason
        self._told = reason
        return True, reason

    def set_maintenance(self, on: bool, by: str) -> bool:
        """Persist the flag, then hold it; True when it changed. OSError: nothing changed."""
        if on == self.maintenance:
            return False
        self.maintenance_flag.set(on, by)
        self.maintenance = on
        return True


class GateRunner:
    """Runs before_lead for the dispatcher's RunGate actions; `deliver(epoch, passed, detail)` is called
    from the gate's greenlet (it must only enqueue)."""

    def __init__(self, node_id: int, journal: Journal, deliver: Callable[[int, bool, str], None]) -> None:
        self.node_id = node_id
        self._journal = journal
        self._deliver = deliver
        self._current: int | None = None  # the epoch whose gate should run; older runs are killed
        self._stopped = False

    def start(self, hook: Path | None, epoch: int, timeout_ms: int) -> None:
        """From the dispatcher: never blocks."""
        self._current = epoch
        gevent.spawn(self._run, hook, epoch, timeout_ms)

    def stop(self) -> None:
        """The node stops: a gate that runs is killed (within POLL_INTERVAL_S), its answer dropped."""
        self._stopped = True

    def _run(self, hook: Path | None, epoch: int, timeout_ms: int) -> None:
        if hook is None:  # before_lead was removed by a reload: the election still waits for a gate
            self._deliver(epoch, False, "before_lead is no longer configured (restart to apply)")
            return
        args = [str(epoch)]
        env = hook_environment({"LEADER_NODE_NODE_ID": str(self.node_id), "LEADER_NODE_EPOCH": str(epoch)})
        result = run_hook(
            hook, args, env, timeout_ms, cancelled=lambda: self._stopped or self._current != epoch
        )
        report_hook(
            self._journal, self.node_id, "before_lead", hook=hook, args=args, result=result, EPOCH=epoch
        )
        if not result.cancelled:
            self._deliver(epoch, result.passed, result.outcome)


class HealthChecker:
    """Runs health_check every `health_interval` (counted from the end of one run, so runs never
    overlap) and calls `deliver(verdict)` when the verdict changes (from its own greenlet: it must only
    enqueue). `config` is replaced by a reload; a removed health_check reports healthy."""

    def __init__(
        self, node_id: int, config: HooksConfig, journal: Journal, deliver: Callable[[str | None], None]
    ) -> None:
        self.node_id = node_id
        self.config = config
        self._journal = journal
        self._deliver = deliver
        self._verdict: str | None = HEALTH_PENDING if config.health_check is not None else None
        self._wake = gevent.event.Event()
        self._stopped = False

    def reconfigure(self, config: HooksConfig) -> None:
        self.config = config
        self._wake.set()  # a new hook or interval takes effect now, not after the old interval

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    def run_forever(self) -> None:
        while not self._stopped:
            hook = self.config.health_check
            if hook is None:
                self._set(None)
                self._wake.wait()
            else:
                self._check(hook)
                self._wake.wait(self.config.health_interval_ms / 1000)
            self._wake.clear()

    def _check(self, hook: Path) -> None:
        env = hook_environment({"LEADER_NODE_NODE_ID": str(self.node_id)})
        result = run_hook(hook, [], env, self.config.timeout_ms, cancelled=lambda: self._stopped)
        if result.cancelled:
            return
        verdict = health_verdict(result)
        if verdict != self._verdict:
            # Only a change is journalled (a check every 2 s would drown the journal): the run that
            # started failing, with its stderr, and the one that passed again.
            report_hook(self._journal, self.node_id, "health_check", hook=hook, args=[], result=result)
        self._set(verdict)

    def _set(self, verdict: str | None) -> None:
        if verdict != self._verdict:
            self._verdict = verdict
            self._deliver(verdict)
