"""The control socket: the only way to change what a running node does (switchover, maintenance).

A Unix socket on the node's own host, not a network listener: whoever may open it already has the
host's privileges for this service (root, or a member of the service's group), so the host's own access
control is the authority. No secret travels, and nothing on the network can ask a node to hand off
(docs/operations.md, "The control socket"; the HTTP API stays read-only).

- `bind_control_socket` creates it mode 0660 before it listens (so there is no moment when it is open
  to more), replaces a stale socket left by a crash, and refuses to start over a live one or a file
  that is not a socket.
- `ControlServer` answers one request per connection (node/control.py has the protocol), each
  connection in its own greenlet, at most MAX_CONTROL_CONNECTIONS at once. Hostile local input is
  bounded: a request line of at most MAX_REQUEST_BYTES, read within READ_TIMEOUT_S; anything else gets
  an error reply and the connection is closed. The handler (the daemon's) runs in that greenlet and
  steps the core only through the dispatcher.
- `ControlRequests` is what each request does: `status` reads the view; `switchover` and
  `maintenance` run in the dispatcher (`in_dispatcher`), so that the core's refusal and the step that
  follows see one state, and each is a `control_request` journal entry naming who asked (uid, pid).
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
import gevent.pool
from gevent import socket as gsocket
from gevent.server import StreamServer

from node.control import (
    MAX_REQUEST_BYTES,
    MaintenanceRequest,
    Request,
    RequestError,
    SwitchoverRequest,
    encode_line,
    error_reply,
    parse_request,
)
from node.core.actions import EventName, LogLevel
from node.core.events import Event, SwitchoverRequested
from node.core.protocol import Algorithm
from node.core.view import NodeView
from node.runtime.eligibility import Eligibility
from node.runtime.journal import Journal

SOCKET_MODE = 0o660  # owner (the service user) and the service's group; nobody else
MAX_CONTROL_CONNECTIONS = 8  # more wait in the listen backlog
LISTEN_BACKLOG = 64  # a burst of local clients waits here instead of failing with EAGAIN
READ_TIMEOUT_S = 2.0  # the whole request line, from accept
WRITE_TIMEOUT_S = 2.0
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


class ControlSocketError(OSError):
    """The control socket cannot be created; the message names the path and what to do (exit 1)."""


@dataclass(frozen=True, slots=True)
class Requester:
    """Who is on the other end (SO_PEERCRED): for the journal, and the maintenance file's note."""

    pid: int
    uid: int
    gid: int

    def __str__(self) -> str:
        return f"uid {self.uid} (pid {self.pid})"


Handler = Callable[[Request, Requester], dict[str, Any]]


def bind_control_socket(path: Path) -> socket.socket:
    """A listening Unix socket at `path`, mode 0660. ControlSocketError when it cannot be had."""
    try:
        path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        _remove_stale(path)
        sock: socket.socket = gsocket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    except ControlSocketError:
        raise
    except OSError as exc:
        raise ControlSocketError(f"cannot create the control socket {path}: {exc.strerror or exc}") from exc
    try:
        sock.bind(str(path))
        # Until listen() nobody can connect: setting 0660 now, whatever the umask made, leaves no window.
        os.chmod(path, SOCKET_MODE)
        sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        raise ControlSocketError(
            f"cannot create the control socket {path}: {exc.strerror or exc}; "
            "set control_socket in node.toml to a path in a directory this user may write"
        ) from exc
    return sock


def _remove_stale(path: Path) -> None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ControlSocketError(
            f"control_socket {path} exists and is not a socket: remove it or choose another path"
        )
    with gsocket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            os.unlink(path)  # left by a node that died: nobody listens on it
            return
        except OSError as exc:
            raise ControlSocketError(
                f"control_socket {path} cannot be checked: {exc.strerror or exc}"
            ) from exc
    raise ControlSocketError(
        f"control_socket {path} is in use by another running process (another leader-node?); "
        "each node needs its own"
    )


class ControlServer:
    def __init__(self, path: Path, handle: Handler) -> None:
        self.path = path
        self._handle = handle
        self._listener: socket.socket | None = None
        self._inode: int | None = None
        self.server: StreamServer | None = None

    def bind(self) -> None:
        self._listener = bind_control_socket(self.path)
        self._inode = os.stat(self.path).st_ino
        self.server = StreamServer(
            self._listener, self._serve, spawn=gevent.pool.Pool(MAX_CONTROL_CONNECTIONS)
        )

    def serve_forever(self) -> None:
        assert self.server is not None, "bind() first"
        self.server.serve_forever()

    def close(self) -> None:
        """Stop answering and remove the socket file (only ours: a successor may have bound its own)."""
        if self.server is not None:
            self.server.close()
        if self._listener is not None:
            self._listener.close()
        with contextlib.suppress(OSError):
            if self._inode is not None and os.stat(self.path).st_ino == self._inode:
                os.unlink(self.path)

    def _serve(self, conn: socket.socket, _address: object) -> None:
        try:
            reply = self._answer(conn)
            with gevent.Timeout(WRITE_TIMEOUT_S, False):
                conn.sendall(encode_line(reply))
        except OSError:
            pass  # the client went away: nothing to answer
        finally:
            conn.close()

    def _answer(self, conn: socket.socket) -> dict[str, Any]:
        line, problem = read_request_line(conn, READ_TIMEOUT_S)
        if problem is not None:
            return error_reply(problem)
        try:
            request = parse_request(line)
        except RequestError as exc:
            return error_reply(str(exc))
        return self._handle(request, peer_credentials(conn))


def read_request_line(conn: socket.socket, timeout_s: float) -> tuple[bytes, str | None]:
    """(the line, None), or (b"", why not): at most MAX_REQUEST_BYTES, within `timeout_s`. A line may
    end at the client's shutdown(SHUT_WR) instead of a newline."""
    data = b""
    timer = gevent.Timeout(timeout_s)
    timer.start()
    try:
        while b"\n" not in data:
            if len(data) > MAX_REQUEST_BYTES:
                return b"", f"request longer than {MAX_REQUEST_BYTES} bytes"
            chunk = conn.recv(MAX_REQUEST_BYTES + 1 - len(data))
            if not chunk:
                break
            data += chunk
    except gevent.Timeout as exc:
        if exc is not timer:
            raise
        return b"", f"no complete request line within {timeout_s:g} s"
    finally:
        timer.close()
    line, _, _ = data.partition(b"\n")
    if len(line) + 1 > MAX_REQUEST_BYTES:
        return b"", f"request longer than {MAX_REQUEST_BYTES} bytes"
    if not line.strip():
        return b"", 'empty request: send one JSON object such as {"op": "status"} and a newline'
    return line, None


def peer_credentials(conn: socket.socket) -> Requester:
    try:
        pid, uid, gid = _UCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    except OSError:
        return Requester(0, -1, -1)
    return Requester(pid, uid, gid)


Reply = dict[str, Any]


class ControlRequests:
    """What each request does. `handle` runs in the connection's greenlet; `_switchover` and
    `_maintenance` run in the dispatcher (`in_dispatcher` puts them there and waits for the reply)."""

    def __init__(
        self,
        algorithm: Algorithm,
        eligibility: Eligibility,
        journal: Journal,
        *,
        view: Callable[[], NodeView],
        step: Callable[[Event], None],
        clock_ms: Callable[[], int],
        tell_eligibility: Callable[[], None],
        in_dispatcher: Callable[[Callable[[], Reply]], Reply],
    ) -> None:
        self._algorithm = algorithm
        self._eligibility = eligibility
        self._journal = journal
        self._view = view
        self._step = step
        self._clock_ms = clock_ms
        self._tell_eligibility = tell_eligibility
        self._in_dispatcher = in_dispatcher

    def handle(self, request: Request, requester: Requester) -> Reply:
        match request:
            case SwitchoverRequest(target=target):
                return self._in_dispatcher(lambda: self._switchover(target, requester))
            case MaintenanceRequest(on=bool(on)):
                return self._in_dispatcher(lambda: self._maintenance(on, requester))
        return self._status()

    def _status(self) -> Reply:
        return {
            "ok": True,
            "status": self._view().to_json(),
            "maintenance": self._eligibility.maintenance,
            "health": self._eligibility.health,
        }

    def _switchover(self, target: int | None, requester: Requester) -> Reply:
        """Ask the core first (pure): a refused switchover changes nothing and says why."""
        view = self._view()
        refusal = self._algorithm.switchover_refusal(target)
        to = "the best eligible node" if target is None else f"node {target}"
        self._journal.event(
            EventName.CONTROL_REQUEST,
            f"node {view.node_id}: switchover to {to} asked by {requester}: "
            + ("accepted" if refusal is None else f"refused: {refusal}"),
            LogLevel.NOTICE if refusal is None else LogLevel.WARNING,
            REQUEST="switchover",
            TARGET=target,
            REASON=refusal,
            REQUESTER_UID=requester.uid,
            REQUESTER_PID=requester.pid,
            EPOCH=view.epoch,
        )
        if refusal is not None:
            return error_reply(refusal)
        self._step(SwitchoverRequested(self._clock_ms(), target))
        return {"ok": True, "leader_id": view.node_id, "epoch": view.epoch}

    def _maintenance(self, on: bool, requester: Requester) -> Reply:
        """Persist the flag, then tell the core (a leader hands off, a winner declines)."""
        view = self._view()
        state = "on" if on else "off"
        try:
            changed = self._eligibility.set_maintenance(on, str(requester))
        except OSError as exc:
            problem = f"cannot write {self._eligibility.maintenance_flag.path}: {exc.strerror or exc}"
            self._journal.event(
                EventName.CONTROL_REQUEST,
                f"node {view.node_id}: maintenance {state} asked by {requester} failed: {problem}",
                LogLevel.ERROR,
                REQUEST="maintenance",
                REASON=problem,
                EPOCH=view.epoch,
            )
            return error_reply(f"{problem}; nothing changed")
        if changed:
            self._journal.event(
                EventName.CONTROL_REQUEST,
                f"node {view.node_id}: maintenance {state}, asked by {requester}",
                LogLevel.NOTICE,
                REQUEST="maintenance",
                MAINTENANCE=state,
                REQUESTER_UID=requester.uid,
                REQUESTER_PID=requester.pid,
                EPOCH=view.epoch,
            )
        self._tell_eligibility()
        return self._status() | {"changed": changed}
