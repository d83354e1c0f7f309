"""The local control protocol: what `leaderctl switchover` and `leaderctl maintenance` say to the node on
its host, over the Unix socket `control_socket` (docs/operations.md, "The control socket").

One JSON object per connection each way, each on one line:

    {"op": "status"}                   -> {"ok": true, "status": {.. /status ..}, "maintenance": false, ..}
    {"op": "switchover", "to": 3}      -> {"ok": true, "leader_id": 1, "epoch": 7}  (the hand-off began)
    {"op": "switchover"}               -> the same, to the best eligible node
    {"op": "maintenance", "on": true}  -> {"ok": true, "maintenance": true, "changed": true, ..}
    {"op": "maintenance"}              -> the flag, unchanged
    anything refused or unreadable     -> {"ok": false, "error": "..."}

Standard library only: `leaderctl` imports this module (and the node's server, node/runtime/control.py,
parses requests with it). A request is at most MAX_REQUEST_BYTES; `parse_request` turns any bytes into a
request or a RequestError whose text is the reply's error, never an exception of another kind.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any

DEFAULT_CONTROL_SOCKET = "/run/leader-node/control.sock"
MAX_REQUEST_BYTES = 4096  # a request line, newline included; longer is refused unread
MAX_REPLY_BYTES = 1 << 20  # what the client reads at most (a /status of 64 members is ~10 KB)
_NODE_ID_MAX = 2**63 - 1  # node/core/settings.py MAX_NODE_ID, repeated: this module imports nothing of node


class RequestError(ValueError):
    """A request the node cannot take; the text says why (it becomes the reply's `error`)."""


class ControlError(Exception):
    """The client could not get an answer from the node (no socket, refused, timed out, garbled)."""


@dataclass(frozen=True, slots=True)
class StatusRequest:
    pass


@dataclass(frozen=True, slots=True)
class SwitchoverRequest:
    target: int | None  # None: the best eligible node


@dataclass(frozen=True, slots=True)
class MaintenanceRequest:
    on: bool | None  # None: only show the flag


Request = StatusRequest | SwitchoverRequest | MaintenanceRequest
_KEYS = {"status": {"op"}, "switchover": {"op", "to"}, "maintenance": {"op", "on"}}


def parse_request(line: bytes) -> Request:
    """One request line (without or with its newline) -> a Request; RequestError for anything else."""
    if len(line) > MAX_REQUEST_BYTES:
        raise RequestError(f"request longer than {MAX_REQUEST_BYTES} bytes")
    try:
        body = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        raise RequestError("request is not UTF-8") from None
    except RecursionError:  # "[[[[..." nested deeper than the parser's stack
        raise RequestError("request is not a JSON object: nested too deeply") from None
    except ValueError as exc:
        raise RequestError(f"request is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise RequestError('request must be a JSON object such as {"op": "status"}')
    op = body.get("op")
    if not isinstance(op, str) or op not in _KEYS:
        raise RequestError(f"op must be one of {', '.join(sorted(_KEYS))}, got {_show(op)}")
    unknown = sorted(str(key) for key in body if key not in _KEYS[op])
    if unknown:
        raise RequestError(f"unknown key {_show(unknown[0])} for op {op}")
    if op == "status":
        return StatusRequest()
    if op == "switchover":
        target = body.get("to")
        if target is not None and (type(target) is not int or not 1 <= target <= _NODE_ID_MAX):
            raise RequestError(f"to must be a node id (a positive integer) or null, got {_show(target)}")
        return SwitchoverRequest(target)
    on = body.get("on")
    if on is not None and type(on) is not bool:
        raise RequestError(f"on must be true or false, got {_show(on)}")
    return MaintenanceRequest(on)


def _show(value: object) -> str:
    text = json.dumps(value) if isinstance(value, str | int | float | bool | None | list) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def error_reply(message: str) -> dict[str, Any]:
    return {"ok": False, "error": message}


def encode_line(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True).encode() + b"\n"


def ask(socket_path: str, request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Send one request, return the reply object (`ok` true or false). ControlError when there is no
    answer: the message says what to check (the node runs? the path? the caller's group?)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.connect(socket_path)
        except FileNotFoundError:
            raise ControlError(f"no control socket at {socket_path}: is leader-node running here?") from None
        except PermissionError:
            raise ControlError(
                f"permission denied on {socket_path}: run as root or as a member of the service's group"
            ) from None
        except OSError as exc:
            raise ControlError(f"cannot connect to {socket_path}: {exc.strerror or exc}") from None
        try:
            sock.sendall(encode_line(request))
            data = b""
            while not data.endswith(b"\n") and len(data) <= MAX_REPLY_BYTES:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            raise ControlError(f"no answer on {socket_path} within {timeout_s:g} s") from None
        except OSError as exc:
            raise ControlError(f"{socket_path}: {exc.strerror or exc}") from None
    try:
        reply = json.loads(data)
    except ValueError:
        raise ControlError(f"unreadable answer on {socket_path}: {data[:200]!r}") from None
    if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
        raise ControlError(f"unexpected answer on {socket_path}: {data[:200]!r}")
    return reply
