"""Counters behind GET /metrics, rendered in the Prometheus text exposition format (version 0.0.4)."""

from __future__ import annotations

from collections import Counter

from node.core.actions import Role, RoleChanged
from node.core.detector import PeerState
from node.core.messages import MsgType
from node.core.view import NodeView

ELECTION_STARTED_EVENT = "election_started"


class Metrics:
    def __init__(self) -> None:
        self.messages_sent: Counter[str] = Counter()  # frames fully written to a peer's socket
        self.messages_received: Counter[str] = Counter()  # authenticated frames from a member
        self.messages_dropped: Counter[str] = Counter()  # by reason: queue_full, stale, connection_lost
        self.frames_rejected_total = 0  # inbound frames that failed the codec (the connection was closed)
        self.leader_changes_total = 0
        self.elections_total = 0
        self.state_writes_total = 0
        self._leader: tuple[int, int] | None = None  # (leader_id, epoch) last announced

    def role_changed(self, action: RoleChanged) -> None:
        """A new (leader, epoch) pair counts as a leader change; losing the leader does not."""
        if action.leader_id is None:
            return
        leader = (action.leader_id, action.epoch)
        if leader != self._leader:
            self._leader = leader
            self.leader_changes_total += 1

    def render(self, view: NodeView) -> str:
        lines: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, int]]) -> None:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(f"{name}{labels} {value}" for labels, value in samples)

        metric(
            "leader_node_is_leader",
            "gauge",
            "1 when this node is the leader.",
            [("", int(view.role is Role.LEADER))],
        )
        metric(
            "leader_node_epoch",
            "gauge",
            "Highest epoch this node has promised or accepted.",
            [("", view.epoch)],
        )
        metric(
            "leader_node_leader_changes_total",
            "counter",
            "Times this node learned of a new (leader, epoch).",
            [("", self.leader_changes_total)],
        )
        metric(
            "leader_node_elections_total",
            "counter",
            "Elections this node started.",
            [("", self.elections_total)],
        )
        metric(
            "leader_node_peer_up",
            "gauge",
            "1 when the failure detector holds the peer alive.",
            [
                (f'{{peer="{peer_id}"}}', int(peer.state is PeerState.ALIVE))
                for peer_id, peer in sorted(view.peers.items())
            ],
        )
        msg_types = [t.value for t in MsgType]
        metric(
            "leader_node_messages_sent_total",
            "counter",
            "Protocol messages written to peers, by type.",
            [(f'{{type="{t}"}}', self.messages_sent[t]) for t in msg_types],
        )
        metric(
            "leader_node_messages_received_total",
            "counter",
            "Authenticated protocol messages received, by type.",
            [(f'{{type="{t}"}}', self.messages_received[t]) for t in msg_types],
        )
        metric(
            "leader_node_messages_dropped_total",
            "counter",
            "Outbound messages dropped before reaching a peer, by reason.",
            [
                (f'{{reason="{r}"}}', self.messages_dropped[r])
                for r in ("queue_full", "stale", "connection_lost")
            ],
        )
        metric(
            "leader_node_frames_rejected_total",
            "counter",
            "Inbound frames rejected (size, JSON, type, HMAC, unknown sender); each closed its connection.",
            [("", self.frames_rejected_total)],
        )
        metric(
            "leader_node_state_writes_total",
            "counter",
            "Durable state writes (each fsynced before the next action).",
            [("", self.state_writes_total)],
        )
        return "\n".join(lines) + "\n"
