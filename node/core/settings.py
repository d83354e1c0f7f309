"""What the pure core needs to know of the configuration (the runtime parses the file into this)."""

from __future__ import annotations

from dataclasses import dataclass


def quorum_size(cluster_size: int) -> int:
    """Majority of the configured cluster, the node itself included: floor(N/2)+1."""
    return cluster_size // 2 + 1


@dataclass(frozen=True, slots=True)
class Settings:
    node_id: int
    member_ids: tuple[int, ...]  # every configured member, this node included
    heartbeat_interval_ms: int = 1000
    failure_timeout_ms: int = 3000
    election_timeout_ms: int = 5000
    preempt: bool = False

    def __post_init__(self) -> None:
        for member_id in self.member_ids:
            if type(member_id) is not int or member_id < 0:
                raise ValueError(f"member ids must be non-negative integers, got {member_id!r}")
        if self.node_id not in self.member_ids:
            raise ValueError(f"node_id {self.node_id} is not a member {self.member_ids}")
        if len(set(self.member_ids)) != len(self.member_ids):
            raise ValueError("member ids must be unique")
        if min(self.heartbeat_interval_ms, self.failure_timeout_ms, self.election_timeout_ms) <= 0:
            raise ValueError("timers must be positive")
        if self.failure_timeout_ms <= 2 * self.heartbeat_interval_ms:
            raise ValueError("failure_timeout must be above 2 x heartbeat_interval")

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
