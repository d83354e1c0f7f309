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

    def to_json(self) -> dict[str, object]:
        return {
            "node_id": self.node_id,
            "role": self.role.value,
            "leader_id": self.leader_id,
            "epoch": self.epoch,
            "algorithm": self.algorithm,
            "peers": {
                str(peer_id): {"state": peer.state.value, "last_seen_ms": peer.last_seen_ms}
                for peer_id, peer in sorted(self.peers.items())
            },
            "quorum": {"size": self.quorum_size, "reachable": self.reachable},
            "catching_up": self.catching_up,
            "protocol_version": PROTOCOL_VERSION,
        }
