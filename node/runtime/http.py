"""Read-only HTTP: GET /status, /leader (200 only on the leader: a load-balancer check), /metrics.

HEAD and OPTIONS are answered like GET (same status and headers; HEAD without a body), because load
balancers check with them: HAProxy's `option httpchk` sends OPTIONS unless told otherwise, and a
`/leader` that answered OPTIONS with 405 would mark every server down.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterable, Mapping
from wsgiref.types import StartResponse, WSGIEnvironment

from gevent.pool import Pool
from gevent.pywsgi import WSGIServer

from node.core.actions import Role
from node.core.view import NodeView
from node.runtime.config import Address
from node.runtime.metrics import CONTENT_TYPE, Metrics

MAX_HTTP_CLIENTS = 32  # concurrent connections; more wait in the listen backlog
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


class _NoDelayWSGIServer(WSGIServer):  # type: ignore[misc]
    """pywsgi writes headers and body in two sends; with Nagle on, a kept-alive client's delayed ACK
    then stalls every reply by ~40 ms. A load balancer polling /leader over keep-alive must not wait."""

    def handle(self, sock: socket.socket, address: tuple[str, int]) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle(sock, address)


def make_http_server(address: Address, app: StatusApp) -> WSGIServer:
    """Not started yet: the caller binds it with start() so that READY=1 follows a bound port."""
    # log=None: no access log line per request (a load balancer polls /leader every few seconds).
    return _NoDelayWSGIServer((address.host, address.port), app, spawn=Pool(MAX_HTTP_CLIENTS), log=None)
