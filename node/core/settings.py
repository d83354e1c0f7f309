"""What the pure core needs to know of the configuration (the runtime parses the file into this).

The rules on ids and timers are decided here, once: `Settings` enforces them, and node.toml validation
(node/runtime/config.py, `leader-node check-config`, which the Ansible role runs on every rendered file)
calls the same functions, so the daemon, the simulator and the deployment accept the same values.
"""

from __future__ import annotations

from dataclasses import dataclass

from node.core.durations import (
    DEFAULT_ELECTION_TIMEOUT_MS,
    DEFAULT_FAILURE_TIMEOUT_MS,
    DEFAULT_HEARTBEAT_INTERVAL_MS,
)
from node.core.messages import MAX_INTEGER

MIN_NODE_ID = 1  # ids start at 1
# The largest id a message can carry (node/core/messages.py validates every id field against the same
# constant): a configured id above it could never be sent or accepted, so the file check refuses it.
MAX_NODE_ID = MAX_INTEGER

# Sane ranges for the timers (docs/configuration.md, "Timer ranges"). Below 10 ms a heartbeat is
# below the scheduling noise of a loaded host (and of the 10 ms floor of the retry backoff); above a
# minute a heartbeat, or ten minutes a failure or election timeout, a dead leader would go unnoticed
# for longer than any operator wants: such a value is almost certainly a unit typo ("600s" for "600ms").
HEARTBEAT_INTERVAL_MIN_MS = 10
HEARTBEAT_INTERVAL_MAX_MS = 60_000
FAILURE_TIMEOUT_MAX_MS = 600_000
ELECTION_TIMEOUT_MAX_MS = 600_000


class SettingsError(ValueError):
    """A value breaks one of the rules below. `field` is the node.toml key it comes from."""

    def __init__(self, field_name: str, problem: str) -> None:
        super().__init__(f"{field_name}: {problem}")
        self.field = field_name
        self.problem = problem


def check_node_id(field_name: str, value: object) -> int:
    """A node id is a positive integer (not a bool) that a message can carry (at most MAX_NODE_ID)."""
    if type(value) is not int or value < MIN_NODE_ID:
        raise SettingsError(
            field_name, f"must be a positive integer (ids start at {MIN_NODE_ID}), got {value!r}"
        )
    if value > MAX_NODE_ID:
        raise SettingsError(
            field_name, f"{value} is above {MAX_NODE_ID} (2^63 - 1), the largest id a message can carry"
        )
    return value


def check_timers(heartbeat_interval_ms: int, failure_timeout_ms: int, election_timeout_ms: int) -> None:
    """2 x heartbeat_interval < failure_timeout <= election_timeout, each within its sane range."""
    for name, value, low, high in (
        ("heartbeat_interval", heartbeat_interval_ms, HEARTBEAT_INTERVAL_MIN_MS, HEARTBEAT_INTERVAL_MAX_MS),
        ("failure_timeout", failure_timeout_ms, 1, FAILURE_TIMEOUT_MAX_MS),
        ("election_timeout", election_timeout_ms, 1, ELECTION_TIMEOUT_MAX_MS),
    ):
        if value <= 0:
            raise SettingsError(name, f"{value} ms must be above zero")
        if value < low:
            raise SettingsError(name, f"{value} ms is below the minimum of {low} ms")
        if value > high:
            raise SettingsError(name, f"{value} ms is above the maximum of {high} ms ({high // 1000} s)")
    if failure_timeout_ms <= 2 * heartbeat_interval_ms:
        raise SettingsError(
            "failure_timeout",
            f"{failure_timeout_ms} ms must be above 2 x heartbeat_interval ({2 * heartbeat_interval_ms} ms), "
            "or one lost heartbeat would make a live peer look dead",
        )
    if election_timeout_ms < failure_timeout_ms:
        raise SettingsError(
            "election_timeout",
            f"{election_timeout_ms} ms must be at least failure_timeout ({failure_timeout_ms} ms), "
            "or an election step would give up before a silent peer is even suspected",
        )


def quorum_size(cluster_size: int) -> int:
    """Majority of the configured cluster, the node itself included: floor(N/2)+1."""
    return cluster_size // 2 + 1


@dataclass(frozen=True, slots=True)
class Settings:
    node_id: int
    member_ids: tuple[int, ...]  # every configured member, this node included
    heartbeat_interval_ms: int = DEFAULT_HEARTBEAT_INTERVAL_MS
    failure_timeout_ms: int = DEFAULT_FAILURE_TIMEOUT_MS
    election_timeout_ms: int = DEFAULT_ELECTION_TIMEOUT_MS
    preempt: bool = False
    # before_lead is configured: a winner runs it (RunGate) and takes office only if it passes. The core
    # gives up on a gate that has not answered within gate_timeout_ms plus a margin (the runtime kills it
    # at gate_timeout_ms and reports it failed).
    gated: bool = False
    gate_timeout_ms: int = 10_000

    def __post_init__(self) -> None:
        for member_id in self.member_ids:
            check_node_id("member_ids", member_id)
        if self.node_id not in self.member_ids:
            raise ValueError(f"node_id {self.node_id} is not a member {self.member_ids}")
        if len(set(self.member_ids)) != len(self.member_ids):
            raise ValueError("member ids must be unique")
        check_timers(self.heartbeat_interval_ms, self.failure_timeout_ms, self.election_timeout_ms)

    @property
    def peer_ids(self) -> tuple[int, ...]:
        return tuple(sorted(i for i in self.member_ids if i != self.node_id))

    @property
    def cluster_size(self) -> int:
        return len(self.member_ids)

    @property
    def quorum_size(self) -> int:
        return quorum_size(self.cluster_size)

    @property
    def listen_ms(self) -> int:
        """How long a starting or rejoining node listens for a leader before it elects one."""
        return 2 * self.heartbeat_interval_ms

    @property
    def backoff_base_ms(self) -> int:
        return max(10, self.heartbeat_interval_ms // 10)

    @property
    def backoff_cap_ms(self) -> int:
        return self.election_timeout_ms
