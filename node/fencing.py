"""Fencing tokens on the resource side: a write carrying an older leader's epoch is refused.

The epoch a leader was elected under is its fencing token. A resource that several leaders may write
to in turn (a file, a table, an object) remembers the highest token it has accepted, per resource,
and refuses any write that carries a lower one. A paused old leader that wakes up and writes is
therefore refused as soon as the new leader has written once, whatever it believes.

    store = FenceStore(Path("/var/lib/app/fences.json"))
    store.admit("orders", token=leader.epoch)      # StaleTokenError when an older leader writes
    store.write("orders", token=leader.epoch, value="...")  # the same, with the value kept alongside

Durable: every change is written to a temporary file, fsynced, and renamed over the store, before the
call returns; the token and the value of one write land together. Thread-safe within a process; one
process per store file (the fenced-store service below is that process).

`leader-node fenced-store --listen 127.0.0.1:8080 --state DIR` serves a FenceStore over HTTP, the
reference for applications (docs/operations.md, "Fencing tokens"):

    PUT /resources/NAME   header Fencing-Token: EPOCH, body: the value (at most 64 KiB)
        200 {"resource", "token", "value"}; 409 when EPOCH is below the resource's token; 400 bad input
    GET /resources/NAME   200 {"resource", "token", "value"}; 404 when never written
"""

from __future__ import annotations

import argparse
import json
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MAX_VALUE_BYTES = 64 * 1024
MAX_TOKEN = 2**63 - 1
_RESOURCE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
STORE_FILE_NAME = "fences.json"


class StaleTokenError(Exception):
    def __init__(self, resource: str, token: int, highest: int) -> None:
        super().__init__(f"resource {resource!r}: token {token} is below {highest}, already accepted")
        self.resource = resource
        self.token = token
        self.highest = highest


@dataclass(frozen=True, slots=True)
class Entry:
    token: int
    value: str | None = None


class FenceStore:
    """The highest token accepted per resource (and the value written with it), in one JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._entries: dict[str, Entry] = {}
        if path.exists():
            raw = json.loads(path.read_text(encoding="utf-8"))
            self._entries = {name: Entry(int(e["token"]), e.get("value")) for name, e in raw.items()}

    def get(self, resource: str) -> Entry | None:
        with self._lock:
            return self._entries.get(resource)

    def admit(self, resource: str, token: int) -> None:
        """Accept `token` for `resource` (raising StaleTokenError when below the highest so far) and
        remember it durably before returning. Equal tokens pass: the same leader writing again."""
        self._change(resource, token, None, keep_value=True)

    def write(self, resource: str, token: int, value: str) -> None:
        """admit() and store `value` with the token, in one durable write."""
        self._change(resource, token, value, keep_value=False)

    def _change(self, resource: str, token: int, value: str | None, *, keep_value: bool) -> None:
        _check_resource(resource)
        if type(token) is not int or not 0 <= token <= MAX_TOKEN:
            raise ValueError(f"a token is an integer 0..2^63-1, got {token!r}")
        with self._lock:
            current = self._entries.get(resource)
            if current is not None and token < current.token:
                raise StaleTokenError(resource, token, current.token)
            kept = current.value if keep_value and current is not None else value
            entries = {**self._entries, resource: Entry(token, kept)}
            self._save(entries)
            self._entries = entries

    def _save(self, entries: dict[str, Entry]) -> None:
        body = {name: {"token": e.token, "value": e.value} for name, e in sorted(entries.items())}
        temporary = self.path.with_name(self.path.name + ".tmp")
        with temporary.open("w", encoding="utf-8") as out:
            json.dump(body, out)
            out.flush()
            os.fsync(out.fileno())
        temporary.replace(self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def _check_resource(resource: str) -> None:
    if not _RESOURCE.match(resource):
        raise ValueError(f"a resource name is 1-128 of A-Z a-z 0-9 . _ -, got {resource!r}")


# -- the reference service -------------------------------------------------------------------------------


def _handler(store: FenceStore) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "leader-node-fenced-store"
        timeout = 5  # a client that stops sending does not keep a thread

        def _reply(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body, sort_keys=True).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _resource(self) -> str | None:
            prefix = "/resources/"
            if not self.path.startswith(prefix) or not _RESOURCE.match(self.path[len(prefix) :]):
                self._reply(404, {"error": "use /resources/NAME (NAME: 1-128 of A-Z a-z 0-9 . _ -)"})
                return None
            return self.path[len(prefix) :]

        def do_GET(self) -> None:
            resource = self._resource()
            if resource is None:
                return
            entry = store.get(resource)
            if entry is None:
                self._reply(404, {"error": f"{resource} was never written"})
            else:
                self._reply(200, {"resource": resource, "token": entry.token, "value": entry.value})

        def do_PUT(self) -> None:
            resource = self._resource()
            if resource is None:
                return
            token_text = self.headers.get("Fencing-Token", "")
            length_text = self.headers.get("Content-Length", "")
            if not token_text.isdigit() or int(token_text) > MAX_TOKEN:
                self._reply(400, {"error": "a Fencing-Token header with the writer's epoch is required"})
                return
            if not length_text.isdigit() or int(length_text) > MAX_VALUE_BYTES:
                self._reply(400, {"error": f"a Content-Length of at most {MAX_VALUE_BYTES} is required"})
                return
            try:
                value = self.rfile.read(int(length_text)).decode("utf-8")
            except UnicodeDecodeError:
                self._reply(400, {"error": "the value must be UTF-8 text"})
                return
            try:
                store.write(resource, int(token_text), value)
            except StaleTokenError as exc:
                self._reply(409, {"error": str(exc), "token": exc.token, "highest": exc.highest})
                return
            self._reply(200, {"resource": resource, "token": int(token_text), "value": value})

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per request on stderr is noise for a reference service

    return Handler


def serve(listen: tuple[str, int], state_dir: Path) -> ThreadingHTTPServer:
    """A FenceStore under `state_dir` served on `listen`; the caller runs serve_forever()."""
    state_dir.mkdir(parents=True, exist_ok=True)
    store = FenceStore(state_dir / STORE_FILE_NAME)
    return ThreadingHTTPServer(listen, _handler(store))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="leader-node fenced-store", description="A resource that refuses writes from stale leaders."
    )
    parser.add_argument("--listen", default="127.0.0.1:8080", help="host:port (127.0.0.1:8080)")
    parser.add_argument("--state", type=Path, required=True, help=f"directory of {STORE_FILE_NAME}")
    args = parser.parse_args(argv)
    host, _, port = str(args.listen).rpartition(":")
    if not host or not port.isdigit():
        parser.error(f"--listen must be host:port, got {args.listen!r}")
    server = serve((host.strip("[]"), int(port)), args.state)
    print(f"fenced-store on {args.listen}, state {args.state / STORE_FILE_NAME}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
