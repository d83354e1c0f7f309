"""A read-only snapshot of a node for /status, leaderctl and the simulator."""

from __future__ import annotations

from dataclasses import dataclass

from node.core.actions import Role
from node.core.detector import PeerState
from node.core.session import PROTOCOL_VERSION


@dataclass(frozen=True, slots=True)
class PeerView:
    state: PeerState
    last_seen_ms: int | None  # milliseconds since the last message from this peer; None if never heard
    eligible: bool = True  # as its last heartbeat said: it may run for leader


@dataclass(frozen=True, slots=True)
class NodeView:
    node_id: int
    algorithm: str
    role: Role
    leader_id: int | None
    epoch: int
    peers: dict[int, PeerView]
    quorum_size: int
    reachable: int  # alive peers + this node
    catching_up: bool = False  # started without its state: votes for nobody until it learns the epoch
    ineligible_reason: str | None = None  # why this node may not run for leader now; None: it may

    @property
    def eligible(self) -> bool:
        return self.ineligible_reason is None

    def to_json(self) -> dict[str, object]:
        return {
            "node_id": self.node_id,
            "role": self.role.value,
            "leader_id": self.leader_id,
            "epoch": self.epoch,
            "algorithm": self.algorithm,
            "peers": {
                str(peer_id): {
                    "state": peer.state.value,
                    "last_seen_ms": peer.last_seen_ms,
                    "eligible": peer.eligible,
                }
                for peer_id, peer in sorted(self.peers.items())
            },
            "quorum": {"size": self.quorum_size, "reachable": self.reachable},
            "catching_up": self.catching_up,
            "eligible": self.eligible,
            "ineligible_reason": self.ineligible_reason,
            "protocol_version": PROTOCOL_VERSION,
        }
