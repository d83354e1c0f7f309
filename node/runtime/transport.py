"""TCP transport: one inbound server, one outbound link (greenlet + bounded queue) per peer.

Each node sends on connections it opened and receives on connections peers opened, so a link never has
to multiplex replies. Isolation is the point: every peer has its own queue and greenlet, so a slow,
dead or black-holed peer only ever stalls its own link.

Every connection starts with the handshake of node/core/session.py (docs/security.md): the link sends
HELLO, reads the acceptor's WELCOME (the only bytes an acceptor ever writes), sends FINISH, and then
seals each queued message body with the session's next sequence number and MAC as it writes it.

Bounds (the numbers come from `TransportLimits.from_settings`):
- outbound queue: `queue_max_frames` per peer, drop-OLDEST when full (the newest heartbeat or election
  message supersedes older ones); a frame that waited longer than `frame_max_age_ms` is dropped as stale
  rather than delivered late in a burst after a reconnect;
- `connect_timeout_ms` per attempt, then capped exponential backoff between attempts, each wait drawn
  from 0.5-1.0 of the ceiling;
- `send_timeout_ms` for one frame: a peer that reads nothing for that long loses its connection;
- inbound, before the handshake completed: at most `max_unauthenticated_connections` in all (when full,
  a new connection evicts the oldest: an honest handshake takes one round trip, a squatter's slot is
  the one to go) and `max_unauthenticated_per_source` from one IP address (more are closed at once);
  each must complete its handshake within `handshake_timeout_ms` of being accepted;
- inbound, authenticated: one session per member (a new session of a member replaces its old one), in
  a budget of its own, so that unauthenticated connections never take a member's slot; each frame must
  complete within `frame_timeout_ms` once its first byte arrived, and a session is closed after
  `inbound_idle_timeout_ms` of silence (live peers heartbeat every `heartbeat_interval`) so that
  connections of vanished hosts cannot pile up.
Every refusal is counted by reason (`Metrics.inbound_rejected`) and reported through `on_rejected`.

The outbound socket is also read after the handshake (peers never write on it then), so that a peer's
FIN or RST is noticed at once, not at the next send: a killed process is reported as `PeerUnreachable`
within milliseconds.
"""

from __future__ import annotations

import errno
import secrets
import socket
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import gevent
import gevent.event
from gevent import socket as gsocket
from gevent.pool import Pool
from gevent.server import StreamServer

from node.core.codec import encode_body
from node.core.errors import RemoteProtocolError
from node.core.messages import Message
from node.core.protocol import RandomSource
from node.core.session import NONCE_BYTES, Acceptor, Connector, Keyring, SessionError, SessionSender
from node.core.settings import Settings
from node.runtime.config import Address
from node.runtime.metrics import Metrics
from node.runtime.trace import Trace

RECV_CHUNK_BYTES = 64 * 1024
# Reconnects without a pause after a connection was lost or reset (then the backoff), until a connection
# lives for backoff_cap_ms or a connect is refused.
RECONNECTS_AT_ONCE_MAX = 3
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
    handshake_timeout_ms: int = 1000
    frame_timeout_ms: int = 3000
    queue_max_frames: int = 64
    max_unauthenticated_connections: int = 16
    max_unauthenticated_per_source: int = 4
    # Only a backstop: connections over the caps above are closed by their greenlet at once.
    max_inbound_greenlets: int = 1024

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
            handshake_timeout_ms=min(max(100, heartbeat_ms), 1000),
            frame_timeout_ms=settings.failure_timeout_ms,
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
    sender: SessionSender
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
        connector: Callable[[int], Connector],
        on_handshake_failed: Callable[[str, str], None] = lambda remote, reason: None,
        trace: Trace | None = None,
    ) -> None:
        """`connector(peer_id)` starts a handshake (the current keyring, a fresh nonce)."""
        self.peer_id = peer_id
        self.address = address
        self._limits = limits
        self._metrics = metrics
        self._clock_ms = clock_ms
        self._on_unreachable = on_unreachable
        self._rng = rng
        self._connector = connector
        self._on_handshake_failed = on_handshake_failed
        self._trace = trace if trace is not None else Trace(0, "")
        self._queue: deque[tuple[int, str, bytes]] = deque()  # (enqueued at ms, message type, body)
        self._wake = gevent.event.Event()
        self._sending = False
        self.state = LinkState.CONNECTING
        self.greenlet = gevent.Greenlet(self._run)
        self.greenlet.name = f"link-{peer_id}"

    def start(self) -> None:
        self.greenlet.start()

    def enqueue(self, msg_type: str, body: bytes) -> None:
        """Queue a message body (`codec.encode_body`); it is sealed for the session that writes it."""
        if len(self._queue) >= self._limits.queue_max_frames:
            self._queue.popleft()
            self._metrics.messages_dropped["queue_full"] += 1
        self._queue.append((self._clock_ms(), msg_type, body))
        self._wake.set()

    @property
    def settled(self) -> bool:
        """Nothing more will leave soon: queue drained, or no connection to drain it into."""
        if self.state is LinkState.BACKOFF:
            return True
        return self.state is LinkState.CONNECTED and not self._queue and not self._sending

    def _run(self) -> None:
        attempt = 0
        reconnects_at_once = 0  # since the last connection that lived, or the last refused connect
        while True:
            self.state = LinkState.CONNECTING
            try:
                sock = gsocket.create_connection(
                    (self.address.host, self.address.port), timeout=self._limits.connect_timeout_ms / 1000
                )
            except OSError as exc:  # refused, timed out, unresolvable, ...
                self._trace.mark("connect_failed", self.peer_id, exc.errno)
                if _reports_unreachable(exc):
                    self._on_unreachable(self.peer_id, f"connect: {exc.strerror or exc}")
                reconnects_at_once = 0
                self.state = LinkState.BACKOFF
                gevent.sleep(self._backoff_ms(attempt) / 1000)
                attempt += 1
                continue
            attempt = 0
            self.state = LinkState.CONNECTED
            connected_ms = self._clock_ms()
            reason = self._serve(sock)
            self._trace.mark("link_lost", self.peer_id, reason is not None)
            # A lost connection is news only if the peer's port is gone too: reconnect at once and let
            # a refused connect give the hint (a crashed process: ~1 ms later). A reset from a live peer
            # (a stale connection after a partition heals, an idle connection it closed) is no hint.
            # While the kernel tears a killed process down, its listening socket may still accept the
            # reconnect and reset it in the handshake: reconnect at once again, a few times, rather than
            # give the hint a backoff later (a voter that still follows the dead leader refuses pre-votes).
            if self._clock_ms() - connected_ms >= self._limits.backoff_cap_ms:
                reconnects_at_once = 0  # it lived: its loss starts a new series
            if reason is not None and reconnects_at_once < RECONNECTS_AT_ONCE_MAX:
                reconnects_at_once += 1
                continue
            # A short pause otherwise: a peer that accepts and drops at once must not spin us.
            self.state = LinkState.BACKOFF
            gevent.sleep(self._backoff_ms(0) / 1000)

    def _backoff_ms(self, attempt: int) -> float:
        """Capped exponential backoff, jittered over 0.5-1.0 of the ceiling (not full jitter: a wait is never
        under half of it), so that restarted peers are not hit in lockstep."""
        ceiling_ms = min(self._limits.backoff_cap_ms, self._limits.backoff_base_ms * 2 ** min(attempt, 16))
        return float(ceiling_ms * (0.5 + 0.5 * self._rng.random()))

    def _serve(self, sock: Any) -> str | None:
        """Handshake, then pump the queue into `sock` until the connection dies; why it died if that is
        worth a hint."""
        sock.settimeout(None)  # the send timeout is a gevent.Timeout per frame; the watcher waits forever
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # each frame is a whole message: no Nagle
        try:
            try:
                sender = self._handshake(sock)
            except OSError as exc:
                return f"handshake: {exc.strerror or exc}" if _reports_unreachable(exc) else None
            if sender is None:
                return None
            connection = _Connection(sock, sender)
            watcher = gevent.spawn(self._watch, connection)
            try:
                return self._pump(connection)
            finally:
                watcher.kill(block=False)
        finally:
            sock.close()

    def _handshake(self, sock: Any) -> SessionSender | None:
        """HELLO, WELCOME, FINISH within `handshake_timeout_ms`; None when the peer closed, refused or
        was too slow (a peer that rejects our HELLO just closes: its log says why)."""
        connector = self._connector(self.peer_id)
        with gevent.Timeout(self._limits.handshake_timeout_ms / 1000, False):
            sock.sendall(connector.hello_frame)
            while data := sock.recv(RECV_CHUNK_BYTES):
                try:
                    established = connector.receive(data)
                except SessionError as exc:
                    self._on_handshake_failed(str(self.address), str(exc))
                    return None
                if established is not None:
                    finish, sender = established
                    sock.sendall(finish)
                    return sender
        return None

    def _pump(self, connection: _Connection) -> str | None:
        while True:
            while not self._queue and connection.lost is None:
                self._wake.clear()
                self._wake.wait()
            if connection.lost is not None:
                return connection.lost
            enqueued_ms, msg_type, body = self._queue.popleft()
            if self._clock_ms() - enqueued_ms > self._limits.frame_max_age_ms:
                self._metrics.messages_dropped["stale"] += 1
                continue
            frame = connection.sender.seal(body)
            self._sending = True
            self._trace.mark("sent", msg_type, self.peer_id)  # before: the peer may read it at once
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
        """Read the outbound socket only to see it die: EOF means the peer closed, an error means reset.
        A peer writes nothing after its WELCOME: bytes here are a broken peer, the connection is dropped."""
        try:
            if connection.sock.recv(RECV_CHUNK_BYTES):
                connection.lost = "the peer wrote after the handshake"
                connection.sock.shutdown(socket.SHUT_RDWR)
            else:
                connection.lost = "connection closed by peer"
        except OSError as exc:
            connection.lost = f"connection lost: {exc.strerror or exc}"
        self._wake.set()


class _EvictedError(Exception):
    """Raised in an unauthenticated connection's greenlet to close it (its slot went to a newer one)."""


class _ReplacedError(Exception):
    """Raised in a member's session greenlet when the member opened a newer session."""


@dataclass(eq=False, slots=True)
class _Inbound:
    """One inbound connection's bookkeeping."""

    greenlet: Any
    source: str  # the remote IP address
    peer_id: int | None = None  # set once authenticated


class Transport:
    def __init__(
        self,
        *,
        node_id: int,
        listen: Address,
        peers: dict[int, Address],
        keyring: Keyring,
        cluster_name: str,
        limits: TransportLimits,
        metrics: Metrics,
        clock_ms: Callable[[], int],
        deliver: Callable[[Message], None],
        on_unreachable: Callable[[int, str], None],
        on_rejected: Callable[[str, str], None],
        rng: RandomSource,
        trace: Trace | None = None,
    ) -> None:
        """`deliver` may block (back-pressure on the sending peer); `on_rejected(remote, reason)` logs
        (and must rate-limit: a flood of connections calls it for each one)."""
        self._node_id = node_id
        self.keyring = keyring  # replaced by a reload: used by handshakes that start afterwards
        self._cluster_name = cluster_name
        self._limits = limits
        self._metrics = metrics
        self._clock_ms = clock_ms
        self._deliver = deliver
        self._on_rejected = on_rejected
        self._trace = trace if trace is not None else Trace(node_id, "")
        self._member_ids = frozenset(peers) - {node_id}
        self._unauthenticated: OrderedDict[_Inbound, None] = OrderedDict()  # oldest first
        self._per_source: Counter[str] = Counter()  # unauthenticated connections by source IP
        self.sessions: dict[int, _Inbound] = {}  # authenticated: one per member
        self.links = {
            peer_id: PeerLink(
                peer_id=peer_id,
                address=address,
                limits=limits,
                metrics=metrics,
                clock_ms=clock_ms,
                on_unreachable=on_unreachable,
                rng=rng,
                connector=self._new_connector,
                on_handshake_failed=self._handshake_failed,
                trace=self._trace,
            )
            for peer_id, address in sorted(peers.items())
            if peer_id != node_id
        }
        self.server = StreamServer(
            (listen.host, listen.port), self._handle, spawn=Pool(limits.max_inbound_greenlets)
        )

    def bind(self) -> None:
        """Bind and listen now (raises OSError when the port is taken); accepting starts with the hub."""
        self.server.start()

    def start_links(self) -> None:
        for link in self.links.values():
            link.start()

    def send(self, peer_id: int, message: Message) -> None:
        self.links[peer_id].enqueue(message.type.value, encode_body(message))

    def broadcast(self, message: Message) -> None:
        body = encode_body(message)  # the JSON once; each link seals it with its own session
        for link in self.links.values():
            link.enqueue(message.type.value, body)

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

    # -- handshakes ------------------------------------------------------------------------------------

    def _new_connector(self, peer_id: int) -> Connector:
        return Connector(
            cluster=self._cluster_name,
            node_id=self._node_id,
            peer_id=peer_id,
            keyring=self.keyring,
            nonce=secrets.token_bytes(NONCE_BYTES),
        )

    def _handshake_failed(self, remote: str, reason: str) -> None:
        self._reject(remote, reason.partition(":")[0], f"handshake with {remote} failed: {reason}")

    def _reject(self, remote: str, label: str, text: str, *, frame: bool = False) -> None:
        self._metrics.inbound_rejected[label] += 1
        if frame:
            self._metrics.frames_rejected_total += 1
        self._on_rejected(remote, text)

    # -- inbound ---------------------------------------------------------------------------------------

    def _admit(self, source: str, remote_text: str) -> _Inbound | None:
        """Take an unauthenticated slot for a new connection, or refuse it (None)."""
        if self._per_source[source] >= self._limits.max_unauthenticated_per_source:
            self._reject(
                remote_text,
                "source_cap",
                f"source_cap: {self._per_source[source]} connections from {source} are still in their "
                "handshake; closed at once",
            )
            return None
        if len(self._unauthenticated) >= self._limits.max_unauthenticated_connections:
            oldest = next(iter(self._unauthenticated))
            self._forget(oldest)  # its greenlet reports itself as evicted
            oldest.greenlet.kill(_EvictedError, block=False)
        entry = _Inbound(gevent.getcurrent(), source)
        self._unauthenticated[entry] = None
        self._per_source[source] += 1
        return entry

    def _forget(self, entry: _Inbound) -> None:
        if entry.peer_id is None:
            if self._unauthenticated.pop(entry, False) is not False:
                self._per_source[entry.source] -= 1
                if self._per_source[entry.source] <= 0:
                    del self._per_source[entry.source]
        elif self.sessions.get(entry.peer_id) is entry:
            del self.sessions[entry.peer_id]

    def _promote(self, entry: _Inbound, peer_id: int) -> None:
        """The handshake completed: the connection leaves the unauthenticated pool for the member's
        session slot; an older session of the same member is closed."""
        self._forget(entry)
        entry.peer_id = peer_id
        old = self.sessions.get(peer_id)
        self.sessions[peer_id] = entry
        if old is not None:
            old.greenlet.kill(_ReplacedError, block=False)

    def _deadline_ms(
        self, acceptor: Acceptor, accepted_ms: int, frame_started_ms: int | None, idle_ms: int
    ) -> int:
        if acceptor.peer_id is None:
            return accepted_ms + self._limits.handshake_timeout_ms
        if frame_started_ms is not None:
            return frame_started_ms + self._limits.frame_timeout_ms
        return idle_ms + self._limits.inbound_idle_timeout_ms

    def _handle(self, sock: Any, remote: tuple[Any, ...]) -> None:
        """One inbound connection: handshake, then messages until EOF, a deadline, or the first bad frame."""
        remote_text = f"{remote[0]}:{remote[1]}"
        entry = self._admit(str(remote[0]), remote_text)
        if entry is None:
            sock.close()
            return
        accepted_ms = last_ms = self._clock_ms()
        frame_started_ms: int | None = None
        acceptor = Acceptor(
            cluster=self._cluster_name,
            node_id=self._node_id,
            member_ids=self._member_ids,
            keyring=self.keyring,
            nonce=secrets.token_bytes(NONCE_BYTES),
        )
        try:
            while True:
                remaining_ms = (
                    self._deadline_ms(acceptor, accepted_ms, frame_started_ms, last_ms) - self._clock_ms()
                )
                sock.settimeout(max(remaining_ms, 1) / 1000)
                data = sock.recv(RECV_CHUNK_BYTES)
                if not data:
                    return
                now_ms = self._clock_ms()
                acceptor.receive(data)
                while (message := acceptor.next_message()) is not None:
                    if entry.peer_id is None and acceptor.peer_id is not None:
                        self._promote(entry, acceptor.peer_id)
                    self._metrics.messages_received[message.type.value] += 1
                    self._trace.mark("recv", message.type.value, message.sender, message.epoch)
                    self._deliver(message)
                if entry.peer_id is None and acceptor.peer_id is not None:
                    self._promote(entry, acceptor.peer_id)
                if output := acceptor.take_output():
                    sock.sendall(output)  # the WELCOME, under the handshake deadline's socket timeout
                if acceptor.frame_in_progress:
                    frame_started_ms = now_ms if frame_started_ms is None else frame_started_ms
                else:
                    frame_started_ms, last_ms = None, now_ms
        except SessionError as exc:
            self._reject(remote_text, exc.reason, f"closed connection from {remote_text}: {exc}", frame=True)
        except RemoteProtocolError as exc:
            self._reject(remote_text, "malformed", f"closed connection from {remote_text}: {exc}", frame=True)
        except TimeoutError:
            if acceptor.peer_id is None:
                self._reject(
                    remote_text,
                    "handshake_timeout",
                    f"handshake_timeout: {remote_text} did not complete its handshake within "
                    f"{self._limits.handshake_timeout_ms} ms",
                )
            elif frame_started_ms is not None:
                self._reject(
                    remote_text,
                    "frame_timeout",
                    f"frame_timeout: node {acceptor.peer_id} at {remote_text} did not complete a frame "
                    f"within {self._limits.frame_timeout_ms} ms",
                )
            # else: an idle session; the peer reconnects if it lives
        except _EvictedError:
            self._reject(
                remote_text,
                "evicted",
                f"evicted: {remote_text} was still in its handshake when the unauthenticated pool "
                f"({self._limits.max_unauthenticated_connections}) was full",
            )
        except (_ReplacedError, OSError):
            pass  # a newer session of the same member, a reset: nothing to report
        finally:
            self._forget(entry)
            sock.close()
