"""Issue 13, items 3 and 4 on real processes: a recorded session replayed without the secret does not
keep followers on a paused leader, and slow connections to the peer port do not starve the members."""

from __future__ import annotations

import contextlib
import re
import socket
import struct
import threading
import time
from collections.abc import Callable

from node.core.session import parse_hello

from .cluster import Cluster, wait_until

HEARTBEAT_S, FAILURE_TIMEOUT_S, ELECTION_TIMEOUT_S = 0.1, 0.5, 1.0
# A silent leader is replaced within failure_timeout + listen + 2 x election_timeout + backoff cap
# (docs/architecture.md, rule 4); the margin is for a loaded machine.
ELECTION_BOUND_S = FAILURE_TIMEOUT_S + 2 * HEARTBEAT_S + 2 * ELECTION_TIMEOUT_S + 0.5 + 3


class RecordingProxy:
    """Forwards connections to `upstream_port` and records, per connection, what the connecting side
    sent (the node that opened it: a whole session, HELLO first)."""

    def __init__(self, upstream_port: int) -> None:
        self._upstream_port = upstream_port
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(16)
        self.port = int(self._server.getsockname()[1])
        self.sessions: list[bytearray] = []
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = [self._server]
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self) -> None:
        while True:
            try:
                downstream, _ = self._server.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(("127.0.0.1", self._upstream_port), timeout=5)
            except OSError:  # the node is not up yet: refuse like it would
                downstream.close()
                continue
            upstream.settimeout(None)
            recorded = bytearray()
            with self._lock:
                self.sessions.append(recorded)
                self._sockets += [downstream, upstream]
            threading.Thread(target=self._pump, args=(downstream, upstream, recorded), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, downstream, None), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, recorded: bytearray | None) -> None:
        try:
            while data := source.recv(65536):
                if recorded is not None:
                    with self._lock:
                        recorded += data
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def recorded_from(self, sender: int, min_bytes: int) -> bytes | None:
        """The longest recorded session opened by node `sender`, once it holds `min_bytes`."""
        with self._lock:
            candidates = [bytes(s) for s in self.sessions if len(s) >= min_bytes]
        for session in sorted(candidates, key=len, reverse=True):
            (length,) = struct.unpack(">I", session[:4])
            if parse_hello(session[4 : 4 + length]).sender == sender:
                return session
        return None

    def close(self) -> None:
        with self._lock:
            for sock in self._sockets:
                sock.close()


def route_through_proxies(cluster: Cluster, proxies: dict[int, RecordingProxy]) -> None:
    """Every node reaches every other node through that node's proxy (its own `listen` is unchanged)."""
    for node in cluster.nodes.values():
        text = node.config_path.read_text()
        text = text.replace("[peers]\n", f'listen = "127.0.0.1:{node.port}"\n[peers]\n')
        for other_id, proxy in proxies.items():
            if other_id != node.node_id:
                other_port = cluster.nodes[other_id].port
                text = re.sub(
                    rf'^{other_id} = "127\.0\.0\.1:{other_port}"$',
                    f'{other_id} = "127.0.0.1:{proxy.port}"',
                    text,
                    flags=re.MULTILINE,
                )
        node.config_path.write_text(text)


def rejections(cluster: Cluster, node_id: int, reason: str) -> float:
    return cluster.metrics(node_id).get(f'leader_node_peer_rejections_total{{reason="{reason}"}}', 0.0)


def test_replayed_session_of_a_paused_leader_does_not_keep_followers(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(1, 2, 3)
    proxies = {node_id: RecordingProxy(node.port) for node_id, node in cluster.nodes.items()}
    stop = threading.Event()
    paused: list[int] = []
    try:
        route_through_proxies(cluster, proxies)
        cluster.start()
        leader_id, epoch = cluster.wait_leader()
        followers = [n for n in cluster.nodes if n != leader_id]
        # A few heartbeats of the leader's session to the first follower, as recorded off the wire.
        recorded = wait_until(
            lambda: proxies[followers[0]].recorded_from(leader_id, min_bytes=2000),
            10,
            f"a recorded session from leader {leader_id}",
        )

        def replay() -> None:
            while not stop.is_set():
                for follower in followers:
                    try:
                        with socket.create_connection(("127.0.0.1", cluster.nodes[follower].port), 1) as sock:
                            sock.sendall(recorded)
                    except OSError:
                        pass
                stop.wait(0.2)

        threading.Thread(target=replay, daemon=True).start()
        paused_at = time.monotonic()
        cluster.pause(leader_id)
        paused.append(leader_id)
        new_leader = wait_until(
            lambda: (found := cluster.agreed_leader(followers)) is not None and found[1] > epoch and found,
            ELECTION_BOUND_S,
            "the followers to elect a new leader while the replay runs",
        )
        elapsed = time.monotonic() - paused_at
        assert new_leader[0] in followers, new_leader
        assert elapsed < ELECTION_BOUND_S
        # The replay was refused: on the follower it was recorded for, the FINISH proof fails (a fresh
        # acceptor nonce); on the other, the HELLO is addressed to another node.
        wait_until(lambda: rejections(cluster, followers[0], "bad_auth") >= 2, 5, "bad_auth counted")
        wait_until(lambda: rejections(cluster, followers[1], "wrong_node") >= 2, 5, "wrong_node counted")
        assert cluster.events(followers[0], "message_rejected")
        # The new leader holds office while the replay goes on.
        assert cluster.agreed_leader(followers) == new_leader
    finally:
        stop.set()
        for node_id in paused:
            cluster.resume(node_id)
        for proxy in proxies.values():
            proxy.close()


class SlowClients:
    """`count` connections to `port` from 127.0.0.2 onwards (not a member's address), each sending one
    byte per second and reopened at most once a second when the node closes it."""

    def __init__(self, port: int, count: int, sources: int) -> None:
        self._port = port
        self._stop = threading.Event()
        self.opened = 0
        self._threads = [
            threading.Thread(target=self._run, args=(f"127.0.0.{2 + i % sources}",), daemon=True)
            for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def _run(self, source: str) -> None:
        while not self._stop.is_set():
            opened_at = time.monotonic()
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                    sock.bind((source, 0))
                    sock.settimeout(1)
                    sock.connect(("127.0.0.1", self._port))
                    self.opened += 1
                    while not self._stop.is_set():
                        sock.sendall(b"\x00")
                        self._stop.wait(1)
            except OSError:
                pass
            self._stop.wait(max(0.0, 1 - (time.monotonic() - opened_at)))

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)


def test_slow_connections_to_the_peer_port_do_not_starve_members(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(1, 2, 3)
    cluster.start()
    leader_id, _ = cluster.wait_leader()
    follower, _other = (n for n in cluster.nodes if n != leader_id)
    flood_started = time.monotonic()
    slow = [SlowClients(cluster.nodes[n].port, 100, sources=25) for n in (follower, leader_id)]
    try:
        wait_until(lambda: sum(s.opened for s in slow) >= 200, 10, "200 slow connections open")
        # The follower restarts under the flood: it needs new handshakes with both others.
        cluster.restart(follower)
        cluster.wait_serving(follower)
        leader_id, epoch = cluster.wait_leader(timeout_s=ELECTION_BOUND_S)
        killed_at = time.monotonic()
        cluster.kill(leader_id)
        survivors = [n for n in cluster.nodes if n != leader_id]
        new_leader = wait_until(
            lambda: (found := cluster.agreed_leader(survivors)) is not None and found[1] > epoch and found,
            ELECTION_BOUND_S,
            "the survivors to elect a new leader under the flood",
        )
        assert new_leader[0] in survivors
        assert time.monotonic() - killed_at < ELECTION_BOUND_S
        # The flood was bounded, not served: handshake deadlines and the per-source cap closed it.
        assert follower in survivors
        wait_until(
            lambda: sum(
                rejections(cluster, follower, r) for r in ("handshake_timeout", "source_cap", "evicted")
            ),
            5,
            "the flood's connections refused by the restarted follower",
        )
        # ... and the log stayed bounded: at most 5 message_rejected lines per second (two processes).
        lines = cluster.events(follower, "message_rejected")
        assert len(lines) <= 5 * (time.monotonic() - flood_started) + 10, len(lines)
    finally:
        for s in slow:
            s.close()
