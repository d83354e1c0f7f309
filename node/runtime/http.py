"""Read-only HTTP: GET /status, /leader (200 only on the leader: a load-balancer check), /metrics.

HEAD and OPTIONS are answered like GET (same status and headers; HEAD without a body), because load
balancers check with them: HAProxy's `option httpchk` sends OPTIONS unless told otherwise, and a
`/leader` that answered OPTIONS with 405 would mark every server down.

Slow or idle clients cannot starve the health check (issue 13, item 4; docs/operations.md, "Slow and
idle HTTP clients"): a request's head (request line and headers) must arrive within
REQUEST_HEAD_TIMEOUT_S of the connection opening or of its first byte on a kept-alive connection, and a
reply must be sent within the same time; a kept-alive connection idle for KEEPALIVE_IDLE_TIMEOUT_S is
closed; one source address may hold MAX_HTTP_CONNECTIONS_PER_SOURCE connections and all sources
together MAX_HTTP_CONNECTIONS. A connection beyond a cap is closed at once, never queued: a load
balancer whose check is refused tries again, one whose check waits in a backlog behind slow clients
only times out.
"""

from __future__ import annotations

import json
import socket
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from wsgiref.types import StartResponse, WSGIEnvironment

import gevent
from gevent.pywsgi import WSGIHandler, WSGIServer

from node.core.actions import Role
from node.core.view import NodeView
from node.runtime.config import Address
from node.runtime.metrics import CONTENT_TYPE, Metrics

MAX_HTTP_CONNECTIONS = 256  # open connections from all sources; one more is closed at once
MAX_HTTP_CONNECTIONS_PER_SOURCE = 8  # from one IP address: a single client cannot take the rest
REQUEST_HEAD_TIMEOUT_S = 2.0  # request line + headers, counted from accept or from the first byte
KEEPALIVE_IDLE_TIMEOUT_S = 10.0  # a kept-alive connection with no new request for this long is closed
_JSON = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
_TEXT = [("Content-Type", "text/plain; charset=utf-8")]
_PROMETHEUS = [("Content-Type", CONTENT_TYPE)]
METHODS = ("GET", "HEAD", "OPTIONS")
_ALLOW = ("Allow", ", ".join(METHODS))


class StatusApp:
    """The WSGI application. `view` returns a fresh snapshot of the algorithm at call time."""

    def __init__(self, view: Callable[[], NodeView], peers: Mapping[int, Address], metrics: Metrics) -> None:
        self._view = view
        self._peers = peers
        self._metrics = metrics

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/")
        if method not in METHODS:
            return self._reply(start_response, "405 Method Not Allowed", _TEXT, b"")
        if path == "/status":
            return self._json(start_response, "200 OK", self._view().to_json())
        if path == "/leader":
            return self._leader(start_response)
        if path == "/metrics":
            body = self._metrics.render(self._view()).encode()
            return self._reply(start_response, "200 OK", _PROMETHEUS, body)
        return self._reply(start_response, "404 Not Found", _TEXT, b"try /status, /leader or /metrics\n")

    def _leader(self, start_response: StartResponse) -> Iterable[bytes]:
        view = self._view()
        leader_id = view.leader_id
        address = self._peers.get(leader_id) if leader_id is not None else None
        body = {"leader_id": leader_id, "epoch": view.epoch, "address": str(address) if address else None}
        if view.role is Role.LEADER:
            return self._json(start_response, "200 OK", body)
        # 503 keeps a load balancer away; the body still tells a human whom this node believes in.
        body["role"] = view.role.value
        return self._json(start_response, "503 Service Unavailable", body)

    def _json(self, start_response: StartResponse, status: str, body: object) -> Iterable[bytes]:
        return self._reply(start_response, status, _JSON, json.dumps(body, sort_keys=True).encode() + b"\n")

    @staticmethod
    def _reply(
        start_response: StartResponse, status: str, headers: list[tuple[str, str]], body: bytes
    ) -> Iterable[bytes]:
        # Every reply names the methods (an OPTIONS answer should); pywsgi sends no body for HEAD but
        # keeps the GET's Content-Length, as HTTP wants.
        start_response(status, [*headers, _ALLOW, ("Content-Length", str(len(body)))])
        return [body]


class _DeadlineHandler(WSGIHandler):  # type: ignore[misc]
    """pywsgi's handler with a deadline on every request and an idle limit between kept-alive ones."""

    server: BoundedWSGIServer
    _requests_done = 0

    def handle_one_request(self) -> Any:
        if self._requests_done and not self._next_request_arrives(self.server.keepalive_idle_timeout_s):
            self.server.idle_closed_total += 1
            return None  # None: pywsgi closes the connection
        # One timer from here to the reply sent: for the first request it also covers the wait for
        # the first byte (a connection that sends nothing is a slow request, not an idle one).
        deadline = gevent.Timeout(self.server.request_head_timeout_s)
        deadline.start()
        try:
            result = super().handle_one_request()
        except gevent.Timeout as exc:
            if exc is not deadline:
                raise
            self.server.timed_out_total += 1
            return None
        finally:
            deadline.close()
        self._requests_done += 1
        return result

    def _next_request_arrives(self, timeout_s: float) -> bool:
        """Wait for the first byte of the next request (or for one already buffered); False on idle
        timeout, EOF or a socket error."""
        try:
            with gevent.Timeout(timeout_s):
                return bool(self.rfile.peek(1))
        except (gevent.Timeout, OSError, ValueError):  # ValueError: rfile closed
            return False


class BoundedWSGIServer(WSGIServer):  # type: ignore[misc]
    """pywsgi with per-source and total connection caps (checked at accept, before any greenlet is
    spawned for the connection) and the deadlines of `_DeadlineHandler`.

    TCP_NODELAY on every connection: pywsgi writes headers and body in two sends; with Nagle on, a
    kept-alive client's delayed ACK then stalls every reply by ~40 ms. A load balancer polling /leader
    over keep-alive must not wait."""

    handler_class = _DeadlineHandler

    def __init__(
        self,
        listener: tuple[str, int],
        application: StatusApp,
        *,
        max_connections: int = MAX_HTTP_CONNECTIONS,
        max_connections_per_source: int = MAX_HTTP_CONNECTIONS_PER_SOURCE,
        request_head_timeout_s: float = REQUEST_HEAD_TIMEOUT_S,
        keepalive_idle_timeout_s: float = KEEPALIVE_IDLE_TIMEOUT_S,
    ) -> None:
        # spawn="default": one greenlet per accepted connection, bounded by the caps below (a gevent
        # Pool would stop accepting when full and leave the excess waiting in the listen backlog).
        # log=None: no access log line per request (a load balancer polls /leader every few seconds).
        super().__init__(listener, application, spawn="default", log=None)
        self.max_connections = max_connections
        self.max_connections_per_source = max_connections_per_source
        self.request_head_timeout_s = request_head_timeout_s
        self.keepalive_idle_timeout_s = keepalive_idle_timeout_s
        self.open_by_source: Counter[str] = Counter()
        self.refused_total = 0  # closed at accept: over a cap
        self.timed_out_total = 0  # closed: no complete request head (or reply) in time
        self.idle_closed_total = 0  # closed: kept alive, idle too long

    @property
    def open_connections(self) -> int:
        return self.open_by_source.total()

    def do_handle(self, sock: socket.socket, address: tuple[Any, ...]) -> None:
        source = str(address[0])
        if (
            self.open_connections >= self.max_connections
            or self.open_by_source[source] >= self.max_connections_per_source
        ):
            self.refused_total += 1
            sock.close()
            return
        self.open_by_source[source] += 1
        super().do_handle(sock, address)

    def handle(self, sock: socket.socket, address: tuple[Any, ...]) -> None:
        source = str(address[0])
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super().handle(sock, address)
        finally:
            self.open_by_source[source] -= 1
            if self.open_by_source[source] <= 0:
                del self.open_by_source[source]


def make_http_server(address: Address, app: StatusApp) -> BoundedWSGIServer:
    """Not started yet: the caller binds it with start() so that READY=1 follows a bound port."""
    return BoundedWSGIServer((address.host, address.port), app)
