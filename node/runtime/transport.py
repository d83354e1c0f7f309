"""TCP transport: one inbound server, one outbound link (greenlet + bounded queue) per peer.

Each node sends on connections it opened and receives on connections peers opened, so a link never has
to multiplex replies. Isolation is the point: every peer has its own queue and greenlet, so a slow,
dead or black-holed peer only ever stalls its own link.

Bounds (the numbers come from `TransportLimits.from_settings`):
- outbound queue: `queue_max_frames` per peer, drop-OLDEST when full (the newest heartbeat or election
  message supersedes older ones); a frame that waited longer than `frame_max_age_ms` is dropped as stale
  rather than delivered late in a burst after a reconnect;
- `connect_timeout_ms` per attempt, then capped exponential backoff with full jitter between attempts;
- `send_timeout_ms` for one frame: a peer that reads nothing for that long loses its connection;
- inbound: `max_inbound_connections`, each closed after `inbound_idle_timeout_ms` of silence (live peers
  heartbeat every `heartbeat_interval`) so that connections of vanished hosts cannot pile up.

The outbound socket is also read (peers never write on it), so that a peer's FIN or RST is noticed at
once, not at the next send: a killed process is reported as `PeerUnreachable` within milliseconds.
"""

from __future__ import annotations

import errno
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import gevent
import gevent.event
from gevent import socket as gsocket
from gevent.pool import Pool
from gevent.server import StreamServer

from node.core.codec import FrameDecoder, encode_frame
from node.core.errors import RemoteProtocolError
from node.core.messages import Message
from node.core.protocol import RandomSource
from node.core.settings import Settings
from node.runtime.config import Address
from node.runtime.metrics import Metrics

RECV_CHUNK_BYTES = 64 * 1024
# Errors that say "the peer process is not there" (as opposed to "slow" or "unknown"): worth a hint.
_UNREACHABLE_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.EPIPE,
        errno.ECONNABORTED,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
    }
)


@dataclass(frozen=True, slots=True)
class TransportLimits:
    connect_timeout_ms: int
    send_timeout_ms: int
    backoff_base_ms: int
    backoff_cap_ms: int
    frame_max_age_ms: int
    inbound_idle_timeout_ms: int
    queue_max_frames: int = 64
    max_inbound_connections: int = 64

    @classmethod
    def from_settings(cls, settings: Settings) -> TransportLimits:
        heartbeat_ms = settings.heartbeat_interval_ms
        backoff_base_ms = max(10, heartbeat_ms // 20)
        return cls(
            connect_timeout_ms=max(100, heartbeat_ms),
            send_timeout_ms=settings.failure_timeout_ms,
            backoff_base_ms=backoff_base_ms,
            # Below the listen period (2 heartbeats) of a restarting peer, so it hears us before it elects.
            backoff_cap_ms=max(backoff_base_ms, heartbeat_ms // 2),
            frame_max_age_ms=settings.failure_timeout_ms,
            inbound_idle_timeout_ms=3 * settings.failure_timeout_ms,
        )


class LinkState(Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    BACKOFF = "backoff"


def _reports_unreachable(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in _UNREACHABLE_ERRNOS


@dataclass(slots=True)
class _Connection:
    """One outbound connection. Its own object, so a late watcher of an old connection cannot mark the
    next connection as lost."""

    sock: Any
    lost: str | None = None  # set by the watcher: why the connection died


class PeerLink:
    """Everything this node sends to one peer goes through here, in order, from one greenlet."""

    def __init__(
        self,
        *,
        peer_id: int,
        address: Address,
        limits: TransportLimits,
        metrics: Metrics,
        clock_ms: Callable[[], int],
        on_unreachable: Callable[[int, str], None],
        rng: RandomSource,
    ) -> None:
        self.peer_id = peer_id
        self.address = address
        self._limits = limits
        self._metrics = metrics
        self._clock_ms = clock_ms
        self._on_unreachable = on_unreachable
        self._rng = rng
        self._queue: deque[tuple[int, str, bytes]] = deque()  # (enqueued at ms, message type, frame)
        self._wake = gevent.event.Event()
        self._sending = False
        self.state = LinkState.CONNECTING
        self.greenlet = gevent.Greenlet(self._run)
        self.greenlet.name = f"link-{peer_id}"

    def start(self) -> None:
        self.greenlet.start()

    def enqueue(self, msg_type: str, frame: bytes) -> None:
        if len(self._queue) >= self._limits.queue_max_frames:
            self._queue.popleft()
            self._metrics.messages_dropped["queue_full"] += 1
        self._queue.append((self._clock_ms(), msg_type, frame))
        self._wake.set()

    @property
    def settled(self) -> bool:
        """Nothing more will leave soon: queue drained, or no connection to drain it into."""
        if self.state is LinkState.BACKOFF:
            return True
        return self.state is LinkState.CONNECTED and not self._queue and not self._sending

    def _run(self) -> None:
        attempt = 0
        retry_at_once = False
        while True:
            self.state = LinkState.CONNECTING
            try:
                sock = gsocket.create_connection(
                    (self.address.host, self.address.port), timeout=self._limits.connect_timeout_ms / 1000
                )
            except OSError as exc:  # refused, timed out, unresolvable, ...
                if _reports_unreachable(exc):
                    self._on_unreachable(self.peer_id, f"connect: {exc.strerror or exc}")
                self.state = LinkState.BACKOFF
                gevent.sleep(self._backoff_ms(attempt) / 1000)
                attempt += 1
                continue
            attempt = 0
            self.state = LinkState.CONNECTED
            connected_ms = self._clock_ms()
            reason = self._serve(sock)
            # A lost connection is news only if the peer's port is gone too: reconnect at once and let
            # a refused connect give the hint (a crashed process: ~1 ms later). A reset from a live peer
            # (a stale connection after a partition heals, an idle connection it closed) is no hint.
            lived_ms = self._clock_ms() - connected_ms
            if reason is not None and (not retry_at_once or lived_ms >= self._limits.backoff_cap_ms):
                retry_at_once = True
                continue
            retry_at_once = False
            # A short pause otherwise: a peer that accepts and drops at once must not spin us.
            self.state = LinkState.BACKOFF
            gevent.sleep(self._backoff_ms(0) / 1000)

    def _backoff_ms(self, attempt: int) -> float:
        """Capped exponential backoff with full jitter, so that restarted peers are not hit in lockstep."""
        ceiling_ms = min(self._limits.backoff_cap_ms, self._limits.backoff_base_ms * 2 ** min(attempt, 16))
        return float(ceiling_ms * (0.5 + 0.5 * self._rng.random()))

    def _serve(self, sock: Any) -> str | None:
        """Pump the queue into `sock` until the connection dies; why it died if that is worth a hint."""
        sock.settimeout(None)  # the send timeout is a gevent.Timeout per frame; the watcher waits forever
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # each frame is a whole message: no Nagle
        connection = _Connection(sock)
        watcher = gevent.spawn(self._watch, connection)
        try:
            return self._pump(connection)
        finally:
            watcher.kill(block=False)
            sock.close()

    def _pump(self, connection: _Connection) -> str | None:
        while True:
            while not self._queue and connection.lost is None:
                self._wake.clear()
                self._wake.wait()
            if connection.lost is not None:
                return connection.lost
            enqueued_ms, msg_type, frame = self._queue.popleft()
            if self._clock_ms() - enqueued_ms > self._limits.frame_max_age_ms:
                self._metrics.messages_dropped["stale"] += 1
                continue
            self._sending = True
            try:
                with gevent.Timeout(self._limits.send_timeout_ms / 1000):
                    connection.sock.sendall(frame)
            except gevent.Timeout:
                self._metrics.messages_dropped["connection_lost"] += 1
                return None  # slow is not dead: reconnect, but give the algorithm no hint
            except OSError as exc:
                self._metrics.messages_dropped["connection_lost"] += 1
                if connection.lost is not None:
                    return connection.lost
                return f"send: {exc.strerror or exc}" if _reports_unreachable(exc) else None
            finally:
                self._sending = False
            self._metrics.messages_sent[msg_type] += 1

    def _watch(self, connection: _Connection) -> None:
        """Read the outbound socket only to see it die: EOF means the peer closed, an error means reset."""
        try:
            while connection.sock.recv(RECV_CHUNK_BYTES):
                pass  # peers never write here; whatever arrives is ignored
            connection.lost = "connection closed by peer"
        except OSError as exc:
            connection.lost = f"connection lost: {exc.strerror or exc}"
        self._wake.set()


class Transport:
    def __init__(
        self,
        *,
        node_id: int,
        listen: Address,
        peers: dict[int, Address],
        secret: bytes,
        limits: TransportLimits,
        metrics: Metrics,
        clock_ms: Callable[[], int],
        deliver: Callable[[Message], None],
        on_unreachable: Callable[[int, str], None],
        on_rejected: Callable[[str, str], None],
        rng: RandomSource,
    ) -> None:
        """`deliver` may block (back-pressure on the sending peer); `on_rejected(remote, reason)` logs."""
        self._node_id = node_id
        self._secret = secret
        self._limits = limits
        self._metrics = metrics
        self._deliver = deliver
        self._on_rejected = on_rejected
        self._member_ids = frozenset(peers) - {node_id}
        self.links = {
            peer_id: PeerLink(
                peer_id=peer_id,
                address=address,
                limits=limits,
                metrics=metrics,
                clock_ms=clock_ms,
                on_unreachable=on_unreachable,
                rng=rng,
            )
            for peer_id, address in sorted(peers.items())
            if peer_id != node_id
        }
        self.server = StreamServer(
            (listen.host, listen.port), self._handle, spawn=Pool(limits.max_inbound_connections)
        )

    def bind(self) -> None:
        """Bind and listen now (raises OSError when the port is taken); accepting starts with the hub."""
        self.server.start()

    def start_links(self) -> None:
        for link in self.links.values():
            link.start()

    def send(self, peer_id: int, message: Message) -> None:
        self.links[peer_id].enqueue(message.type.value, encode_frame(message, self._secret))

    def broadcast(self, message: Message) -> None:
        frame = encode_frame(message, self._secret)  # no recipient in the frame: encode once
        for link in self.links.values():
            link.enqueue(message.type.value, frame)

    def flush(self, timeout_ms: int) -> bool:
        """Give queued frames (a leader's RESIGN) up to `timeout_ms` to leave. True if all settled."""
        with gevent.Timeout(timeout_ms / 1000, False):
            while not all(link.settled for link in self.links.values()):
                gevent.sleep(0.002)  # shutdown only: polling a few links briefly is simpler than events
            return True
        return False

    def close(self) -> None:
        self.server.close()
        for link in self.links.values():
            link.greenlet.kill(block=False)

    def _handle(self, sock: Any, remote: tuple[Any, ...]) -> None:
        """One inbound connection: decode frames until EOF, silence, or the first bad frame."""
        remote_text = f"{remote[0]}:{remote[1]}"
        decoder = FrameDecoder(self._secret)
        sock.settimeout(self._limits.inbound_idle_timeout_ms / 1000)
        try:
            while data := sock.recv(RECV_CHUNK_BYTES):
                decoder.receive(data)
                while (message := decoder.next_message()) is not None:
                    if message.sender not in self._member_ids:
                        raise RemoteProtocolError(f"sender {message.sender} is not a peer of this node")
                    self._metrics.messages_received[message.type.value] += 1
                    self._deliver(message)
        except RemoteProtocolError as exc:
            self._metrics.frames_rejected_total += 1
            self._on_rejected(remote_text, str(exc))
        except OSError:
            pass  # reset or idle timeout (socket.timeout is an OSError): the peer reconnects if it lives
        finally:
            sock.close()
