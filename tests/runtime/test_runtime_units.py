"""Runtime pieces without processes: metrics text, the WSGI app, link queue bounds and backoff."""

from __future__ import annotations

import json
import random
import socket
import struct
from dataclasses import replace
from typing import Any

import gevent
from gevent import socket as gsocket

from node.core.actions import Role, RoleChanged
from node.core.detector import PeerState
from node.core.session import Connector, Keyring
from node.core.settings import Settings
from node.core.view import NodeView, PeerView
from node.runtime.config import Address
from node.runtime.http import StatusApp
from node.runtime.metrics import Metrics
from node.runtime.transport import RECONNECTS_AT_ONCE_MAX, LinkState, PeerLink, TransportLimits
from node.version import package_version

from .cluster import parse_metrics


def view(role: Role = Role.FOLLOWER, leader_id: int | None = 3) -> NodeView:
    return NodeView(
        node_id=1,
        algorithm="bully",
        role=role,
        leader_id=leader_id,
        epoch=7,
        peers={2: PeerView(PeerState.SUSPECTED, None), 3: PeerView(PeerState.ALIVE, 40)},
        quorum_size=2,
        reachable=2,
    )


def test_leader_changes_count_new_leader_epoch_pairs_only() -> None:
    metrics = Metrics()
    for action in [
        RoleChanged(Role.CANDIDATE, None, 1),
        RoleChanged(Role.FOLLOWER, 3, 1),
        RoleChanged(Role.FOLLOWER, 3, 1),  # same pair again: not a change
        RoleChanged(Role.NO_QUORUM, None, 1),
        RoleChanged(Role.FOLLOWER, 3, 2),  # same leader, new epoch: a change
        RoleChanged(Role.LEADER, 1, 3),
    ]:
        metrics.role_changed(action)
    assert metrics.leader_changes_total == 3


def test_metrics_text() -> None:
    metrics = Metrics()
    metrics.messages_sent["HEARTBEAT"] = 5
    metrics.messages_received["PROMISE"] = 2
    metrics.frames_rejected_total = 1
    text = metrics.render(view())
    samples = parse_metrics(text)
    assert samples["leader_node_is_leader"] == 0
    assert samples["leader_node_epoch"] == 7
    assert samples["leader_node_eligible"] == 1
    assert (
        parse_metrics(metrics.render(replace(view(), ineligible_reason="maintenance")))[
            "leader_node_eligible"
        ]
        == 0
    )
    assert samples['leader_node_peer_up{peer="2"}'] == 0
    assert samples['leader_node_peer_up{peer="3"}'] == 1
    assert samples['leader_node_messages_sent_total{type="HEARTBEAT"}'] == 5
    assert samples['leader_node_messages_sent_total{type="RESIGN"}'] == 0  # every type, even unused
    assert samples['leader_node_messages_received_total{type="PROMISE"}'] == 2
    assert samples["leader_node_frames_rejected_total"] == 1
    assert "# TYPE leader_node_elections_total counter" in text
    assert text.endswith("\n")


def test_metrics_for_operators() -> None:
    now = {"mono": 100.0, "wall": 1_700_000_000.0}
    metrics = Metrics(monotonic_s=lambda: now["mono"], wall_s=lambda: now["wall"])
    now["mono"] += 2  # started without a leader: 2 s leaderless
    metrics.role_changed(RoleChanged(Role.FOLLOWER, 3, 1))
    now["mono"] += 10
    now["wall"] += 12
    metrics.role_changed(RoleChanged(Role.NO_QUORUM, None, 1))  # lost it: a span opens
    now["mono"] += 0.5
    samples = parse_metrics(metrics.render(view(Role.NO_QUORUM, leader_id=None)))
    assert samples["leader_node_has_leader"] == 0
    assert samples['leader_node_role{role="no-quorum"}'] == 1
    assert [samples[f'leader_node_role{{role="{role.value}"}}'] for role in Role].count(1) == 1
    assert samples["leader_node_leaderless_seconds_total"] == 2.5  # the open span counts
    assert samples["leader_node_last_leader_change_timestamp_seconds"] == 1_700_000_000
    assert samples["leader_node_quorum_reachable"] == 1  # reachable 2 of quorum 2 in view()

    metrics.role_changed(RoleChanged(Role.LEADER, 1, 2))
    now["mono"] += 100
    samples = parse_metrics(metrics.render(view(Role.LEADER, leader_id=1)))
    assert samples["leader_node_has_leader"] == 1
    assert samples['leader_node_role{role="leader"}'] == 1
    assert samples['leader_node_role{role="follower"}'] == 0
    assert samples["leader_node_leaderless_seconds_total"] == 2.5  # closed, no longer growing
    assert samples["leader_node_last_leader_change_timestamp_seconds"] == 1_700_000_012
    assert samples[f'leader_node_build_info{{version="{package_version()}"}}'] == 1
    assert samples["process_start_time_seconds"] > 1_700_000_000
    assert "process_cpu_seconds_total" in samples


def call(app: StatusApp, path: str, method: str = "GET") -> tuple[str, dict[str, str], bytes]:
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured["status"], captured["headers"] = status, dict(headers)

    body = b"".join(app({"REQUEST_METHOD": method, "PATH_INFO": path}, start_response))
    return captured["status"], captured["headers"], body


def test_status_app_routes() -> None:
    peers = {1: Address("10.0.0.1", 7700), 3: Address("10.0.0.3", 7700)}
    current = {"view": view()}
    app = StatusApp(lambda: current["view"], peers, Metrics())

    status, headers, body = call(app, "/status")
    assert status == "200 OK" and headers["Content-Type"] == "application/json"
    assert json.loads(body)["peers"]["3"] == {"state": "alive", "last_seen_ms": 40, "eligible": True}
    assert (json.loads(body)["eligible"], json.loads(body)["ineligible_reason"]) == (True, None)

    status, _, body = call(app, "/leader")
    assert status.startswith("503")
    assert json.loads(body) == {"leader_id": 3, "epoch": 7, "address": "10.0.0.3:7700", "role": "follower"}

    current["view"] = view(Role.LEADER, leader_id=1)
    status, _, body = call(app, "/leader")
    assert status == "200 OK"
    assert json.loads(body) == {"leader_id": 1, "epoch": 7, "address": "10.0.0.1:7700"}

    status, headers, _ = call(app, "/metrics")
    assert status == "200 OK" and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert call(app, "/status", method="POST")[0].startswith("405")
    assert call(app, "/status", method="POST")[1]["Allow"] == "GET, HEAD, OPTIONS"
    assert call(app, "/")[0].startswith("404")


def test_load_balancer_methods_answer_like_get() -> None:
    """HAProxy's httpchk sends OPTIONS by default, others send HEAD: /leader must answer both like GET."""
    peers = {1: Address("10.0.0.1", 7700), 3: Address("10.0.0.3", 7700)}
    current = {"view": view()}
    app = StatusApp(lambda: current["view"], peers, Metrics())
    for method in ("OPTIONS", "HEAD"):
        current["view"] = view()
        assert call(app, "/leader", method)[0].startswith("503")
        current["view"] = view(Role.LEADER, leader_id=1)
        status, headers, _ = call(app, "/leader", method)
        assert status == "200 OK" and headers["Allow"] == "GET, HEAD, OPTIONS"
        assert call(app, "/status", method)[0] == "200 OK"
        assert call(app, "/metrics", method)[0] == "200 OK"


def make_link(
    limits: TransportLimits,
    metrics: Metrics,
    now_ms: list[int],
    port: int = 9,
    hints: list[str] | None = None,
) -> PeerLink:
    return PeerLink(
        peer_id=2,
        address=Address("127.0.0.1", port),
        limits=limits,
        metrics=metrics,
        clock_ms=lambda: now_ms[0],
        on_unreachable=lambda peer_id, reason: None if hints is None else hints.append(reason),
        rng=random.Random(1),
        connector=lambda peer_id: Connector(
            cluster="test",
            node_id=1,
            peer_id=peer_id,
            keyring=Keyring((b"0123456789abcdef",)),
            nonce=bytes(16),
        ),
    )


def test_link_queue_is_bounded_drop_oldest() -> None:
    limits = TransportLimits.from_settings(Settings(node_id=1, member_ids=(1, 2)))
    metrics = Metrics()
    link = make_link(limits, metrics, [0])  # never started: nothing drains the queue
    for i in range(limits.queue_max_frames + 10):
        link.enqueue("HEARTBEAT", str(i).encode())
    assert metrics.messages_dropped["queue_full"] == 10
    queued = [frame for _, _, frame in link._queue]
    assert len(queued) == limits.queue_max_frames
    assert queued[0] == b"10" and queued[-1] == str(limits.queue_max_frames + 9).encode()


def test_limits_from_default_settings() -> None:
    limits = TransportLimits.from_settings(Settings(node_id=1, member_ids=(1, 2)))
    assert limits.connect_timeout_ms == 1000
    assert limits.send_timeout_ms == 3000
    assert (limits.backoff_base_ms, limits.backoff_cap_ms) == (50, 500)
    # Inbound (issue 13, item 4): a handshake within min(connect timeout, 1 s), a begun frame within
    # failure_timeout; unauthenticated connections capped in all and per source address.
    assert (limits.handshake_timeout_ms, limits.frame_timeout_ms) == (1000, 3000)
    assert (limits.max_unauthenticated_connections, limits.max_unauthenticated_per_source) == (16, 4)
    fast = TransportLimits.from_settings(
        Settings(node_id=1, member_ids=(1, 2), heartbeat_interval_ms=100, failure_timeout_ms=500)
    )
    assert fast.handshake_timeout_ms == 100
    # The reconnect cap stays below a restarting peer's listen period, so it hears us before it elects.
    assert limits.backoff_cap_ms < Settings(node_id=1, member_ids=(1, 2)).listen_ms


def test_backoff_is_capped_exponential_with_jitter() -> None:
    limits = TransportLimits.from_settings(Settings(node_id=1, member_ids=(1, 2)))
    link = make_link(limits, Metrics(), [0])
    for attempt in range(30):
        delay_ms = link._backoff_ms(attempt)
        ceiling_ms = min(limits.backoff_cap_ms, limits.backoff_base_ms * 2**attempt)
        assert ceiling_ms / 2 <= delay_ms <= ceiling_ms


def _reset(conn: Any) -> None:
    """Close with an RST, as the kernel does to a connection of a killed process that holds unread data."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def test_a_killed_peers_resets_are_retried_at_once_then_its_refusal_is_the_hint() -> None:
    """While the kernel tears a killed peer down, its listener may still accept a reconnect and reset it in
    the handshake: the link reconnects at once (a few times) and the refused connect that follows is the
    hint, not a backoff later. A peer that keeps resetting gets the backoff."""
    limits = replace(
        TransportLimits.from_settings(Settings(node_id=1, member_ids=(1, 2))),
        backoff_base_ms=60_000,
        backoff_cap_ms=60_000,  # a backoff would outlast the test
    )
    listener = gsocket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    hints: list[str] = []
    link = make_link(limits, Metrics(), [0], port=port, hints=hints)
    link.start()
    try:
        with gevent.Timeout(5):
            for _ in range(2):  # the connection lost, then a reconnect the dying listener still took
                _reset(listener.accept()[0])
            listener.close()  # the process is gone: the next connect is refused
            while not hints:
                gevent.sleep(0.01)
        assert "refused" in hints[0]
    finally:
        link.greenlet.kill()
        listener.close()


def test_a_peer_that_keeps_resetting_gets_the_backoff() -> None:
    limits = replace(
        TransportLimits.from_settings(Settings(node_id=1, member_ids=(1, 2))),
        backoff_base_ms=60_000,
        backoff_cap_ms=60_000,
    )
    listener = gsocket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    link = make_link(limits, Metrics(), [0], port=listener.getsockname()[1])
    link.start()
    try:
        with gevent.Timeout(5):
            for _ in range(1 + RECONNECTS_AT_ONCE_MAX):  # the first connection and the reconnects at once
                _reset(listener.accept()[0])
        with gevent.Timeout(0.5, False):
            listener.accept()
            raise AssertionError("reconnected without a pause after its reconnects at once")
        assert link.state is LinkState.BACKOFF
    finally:
        link.greenlet.kill()
        listener.close()
