"""Counters behind GET /metrics, rendered in the Prometheus text exposition format (version 0.0.4).

The node's own families are built from the counters below and a fresh NodeView at scrape time (a custom
collector, so nothing is kept twice); `prometheus_client` renders them together with its standard
`process_*` metrics. Its HTTP server is not used: the gevent WSGI server of node.runtime.http serves them.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable

from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from node.core.actions import EventName, Role, RoleChanged
from node.core.detector import PeerState
from node.core.messages import MsgType
from node.core.session import REASONS
from node.core.view import NodeView
from node.version import package_version

ELECTION_STARTED_EVENT = EventName.ELECTION_STARTED
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Every label value of leader_node_peer_rejections_total, exported from the start (0 until it happens).
INBOUND_REJECTION_REASONS = (
    *REASONS,
    "handshake_timeout",
    "frame_timeout",
    "source_cap",
    "evicted",
)


class Metrics:
    def __init__(
        self,
        monotonic_s: Callable[[], float] = time.monotonic,
        wall_s: Callable[[], float] = time.time,
    ) -> None:
        self._monotonic_s = monotonic_s
        self._wall_s = wall_s
        self.messages_sent: Counter[str] = Counter()  # frames fully written to a peer's socket
        self.messages_received: Counter[str] = Counter()  # authenticated frames from a member
        self.messages_dropped: Counter[str] = Counter()  # by reason: queue_full, stale, connection_lost
        self.frames_rejected_total = 0  # inbound frames that failed the codec (the connection was closed)
        # Inbound refusals by reason: the session's (REASONS) and the transport's caps and deadlines.
        self.inbound_rejected: Counter[str] = Counter()
        self.leader_changes_total = 0
        self.last_leader_change_s = 0.0  # wall time of the last new (leader, epoch); 0 = none yet
        self.elections_total = 0
        self.state_writes_total = 0
        self._leader: tuple[int, int] | None = None  # (leader_id, epoch) last announced
        # A node starts without a known leader: that time counts as leaderless.
        self._leaderless_s = 0.0  # closed leaderless spans
        self._leaderless_since: float | None = monotonic_s()  # start of the open span, if any
        self._process = ProcessCollector(registry=None)
        self._version = package_version()

    def role_changed(self, action: RoleChanged) -> None:
        """A new (leader, epoch) pair counts as a leader change; losing the leader does not (it opens a
        leaderless span, which the next known leader closes)."""
        now = self._monotonic_s()
        if action.leader_id is None:
            if self._leaderless_since is None:
                self._leaderless_since = now
            return
        if self._leaderless_since is not None:
            self._leaderless_s += now - self._leaderless_since
            self._leaderless_since = None
        leader = (action.leader_id, action.epoch)
        if leader != self._leader:
            self._leader = leader
            self.leader_changes_total += 1
            self.last_leader_change_s = self._wall_s()

    def leaderless_seconds(self) -> float:
        """Seconds this process has spent without a known leader, the open span included."""
        open_span = 0.0 if self._leaderless_since is None else self._monotonic_s() - self._leaderless_since
        return self._leaderless_s + open_span

    def render(self, view: NodeView) -> str:
        return generate_latest(_Scrape(self._families(view), self._process)).decode()

    def _families(self, view: NodeView) -> list[Metric]:
        families: list[Metric] = []

        def gauge(name: str, help_text: str, value: float) -> None:
            families.append(GaugeMetricFamily(name, help_text, value=value))

        def counter(name: str, help_text: str, value: float) -> None:
            families.append(CounterMetricFamily(name, help_text, value=value))

        def labelled(
            family: GaugeMetricFamily | CounterMetricFamily, samples: Iterable[tuple[str, float]]
        ) -> None:
            for label, value in samples:
                family.add_metric([label], value)
            families.append(family)

        gauge("leader_node_is_leader", "1 when this node is the leader.", int(view.role is Role.LEADER))
        gauge(
            "leader_node_has_leader",
            "1 when this node knows a leader (itself or another member), 0 when it has none.",
            int(view.leader_id is not None),
        )
        labelled(
            GaugeMetricFamily(
                "leader_node_role", "1 for this node's current role, 0 for the others.", labels=["role"]
            ),
            ((role.value, int(view.role is role)) for role in Role),
        )
        gauge(
            "leader_node_quorum_reachable",
            "1 when the failure detector holds a majority of the members (this node included) alive.",
            int(view.reachable >= view.quorum_size),
        )
        gauge("leader_node_epoch", "Highest epoch this node has promised or accepted.", view.epoch)
        gauge(
            "leader_node_eligible",
            "1 when this node may run for leader: its health check passes, it is not in maintenance and "
            "not holding off after handing leadership on.",
            int(view.eligible),
        )
        counter(
            "leader_node_leader_changes_total",
            "Times this node learned of a new (leader, epoch).",
            self.leader_changes_total,
        )
        gauge(
            "leader_node_last_leader_change_timestamp_seconds",
            "Unix time this node last learned of a new (leader, epoch); 0 before the first.",
            self.last_leader_change_s,
        )
        counter(
            "leader_node_leaderless_seconds_total",
            "Seconds this process has spent without a known leader, since its start.",
            self.leaderless_seconds(),
        )
        counter("leader_node_elections_total", "Elections this node started.", self.elections_total)
        labelled(
            GaugeMetricFamily(
                "leader_node_peer_up", "1 when the failure detector holds the peer alive.", labels=["peer"]
            ),
            (
                (str(peer_id), int(peer.state is PeerState.ALIVE))
                for peer_id, peer in sorted(view.peers.items())
            ),
        )
        msg_types = [t.value for t in MsgType]
        labelled(
            CounterMetricFamily(
                "leader_node_messages_sent_total",
                "Protocol messages written to peers, by type.",
                labels=["type"],
            ),
            ((t, self.messages_sent[t]) for t in msg_types),
        )
        labelled(
            CounterMetricFamily(
                "leader_node_messages_received_total",
                "Authenticated protocol messages received, by type.",
                labels=["type"],
            ),
            ((t, self.messages_received[t]) for t in msg_types),
        )
        labelled(
            CounterMetricFamily(
                "leader_node_messages_dropped_total",
                "Outbound messages dropped before reaching a peer, by reason.",
                labels=["reason"],
            ),
            ((r, self.messages_dropped[r]) for r in ("queue_full", "stale", "connection_lost")),
        )
        counter(
            "leader_node_frames_rejected_total",
            "Inbound frames rejected (size, JSON, handshake, MAC, sequence, sender); each closed its "
            "connection.",
            self.frames_rejected_total,
        )
        labelled(
            CounterMetricFamily(
                "leader_node_peer_rejections_total",
                "Inbound peer connections closed by this node, by reason (bad handshakes and frames, "
                "deadlines, per-source cap, evictions from the unauthenticated pool).",
                labels=["reason"],
            ),
            ((r, self.inbound_rejected[r]) for r in INBOUND_REJECTION_REASONS),
        )
        counter(
            "leader_node_state_writes_total",
            "Durable state writes (each fsynced before the next action).",
            self.state_writes_total,
        )
        labelled(
            GaugeMetricFamily(
                "leader_node_build_info",
                "Always 1; the version label names the running build.",
                labels=["version"],
            ),
            [(self._version, 1)],
        )
        return families


class _Scrape(Collector):
    """One scrape: the node's families of this moment, then the process collector's."""

    def __init__(self, families: list[Metric], process: ProcessCollector) -> None:
        self._families = families
        self._process = process

    def collect(self) -> Iterable[Metric]:
        yield from self._families
        yield from self._process.collect()
