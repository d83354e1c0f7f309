"""The failover observer of benchmarks/failover.py and benchmarks/peers.py: one thread per surviving member
polls a small JSON status over one kept-alive HTTP/1.1 connection every few milliseconds and records every
change of the member's view (leader id, term); a failover ends at the poll reply that completes a majority
of the cluster reporting one new leader.

The same poll for every system measured, so that the systems differ only in what they answer: leader-node's
`GET /status`, etcd's `POST /v3/maintenance/status` (the gRPC gateway) and ZooKeeper's AdminServer
`GET /commands/leader`, each parsed into a View by the caller.
"""

from __future__ import annotations

import json
import math
import os
import socket
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

# A scrape of /metrics (between runs, not during one): a node of 51 on 2 busy cores can take seconds.
SCRAPE_TIMEOUT_S = 10.0
View = tuple[int, int | None]  # (leader id, term or epoch; None where the system does not report one)
Observation = View | None  # None: no leader, not serving, or no answer


class KeepAliveHttp:
    """One request (GET, or POST with a JSON body) over one kept-alive HTTP/1.1 connection, reconnecting
    after any error. Raw sockets, cheaper than http.client (the pollers share one GIL); a fresh connection
    per poll costs the polled process an accept each time, which at 5 ms x 4 members slowed the very
    election measured."""

    def __init__(self, port: int, path: str, body: bytes | None = None) -> None:
        self._port = port
        head = f"{'GET' if body is None else 'POST'} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self._request = (head + "\r\n").encode() + (body or b"")
        self._sock: socket.socket | None = None
        self._buffer = b""

    def get(self) -> Any:
        """The reply's JSON body; OSError or ValueError (the connection is then closed)."""
        try:
            return self._get()
        except (OSError, ValueError):
            self.close()
            raise

    def _get(self) -> Any:
        if self._sock is None:
            self._sock = socket.create_connection(("127.0.0.1", self._port), timeout=0.5)
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._buffer = b""
        self._sock.sendall(self._request)
        while b"\r\n\r\n" not in self._buffer:
            self._read()
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        if not lines[0].startswith(b"HTTP/1.1 200"):
            raise ValueError(f"reply {lines[0]!r}")
        lengths = [
            int(line.split(b":", 1)[1]) for line in lines if line.lower().startswith(b"content-length:")
        ]
        if not lengths:
            raise ValueError("reply without Content-Length")
        length = lengths[0]
        while len(self._buffer) < length:
            self._read()
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        if head.lower().find(b"connection: close") >= 0:
            self.close()
        return json.loads(body)

    def _read(self) -> None:
        assert self._sock is not None
        data = self._sock.recv(65536)
        if not data:
            raise ConnectionError("connection closed")
        self._buffer += data

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = None


class Poller(threading.Thread):
    """Polls one member every `interval_s`; records every change of its view with the monotonic time the
    reply arrived. `parse` turns a reply into a view (None: no leader or not serving); a reply it cannot
    read (KeyError, ValueError, TypeError) counts as no answer."""

    def __init__(
        self, member: int, client: KeepAliveHttp, parse: Callable[[Any], Observation], interval_s: float
    ) -> None:
        super().__init__(daemon=True, name=f"poll-{member}")
        self.member = member
        self._client = client
        self._parse = parse
        self._interval_s = interval_s
        self._halt = threading.Event()
        self.changes: list[tuple[float, Observation]] = []
        self.polls = 0
        self.first_poll_at = 0.0
        self.last_poll_at = 0.0
        self.first_reply = threading.Event()

    def run(self) -> None:
        self.first_poll_at = next_at = time.monotonic()
        while not self._halt.is_set():
            observation: Observation = None
            try:
                observation = self._parse(self._client.get())
                self.first_reply.set()
            except (OSError, ValueError, KeyError, TypeError):
                pass
            now = time.monotonic()
            self.polls += 1
            self.last_poll_at = now
            if not self.changes or self.changes[-1][1] != observation:
                self.changes.append((now, observation))
            next_at = max(next_at + self._interval_s, now)
            self._halt.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=2)
        self._client.close()

    @property
    def period_ms(self) -> float:
        """The mean time between two replies: the poll interval, or more when a reply takes longer."""
        return (self.last_poll_at - self.first_poll_at) * 1000 / max(1, self.polls - 1)


def is_successor(view: View, old: View) -> bool:
    """Another leader than `old`, under a higher term when both report one."""
    return view[0] != old[0] and (view[1] is None or old[1] is None or view[1] > old[1])


def majority_at(pollers: list[Poller], old: View, since: float, majority: int) -> tuple[float, View] | None:
    """The earliest poll time after `since` at which `majority` members reported one new leader."""
    timeline = sorted(((t, p.member, obs) for p in pollers for t, obs in p.changes), key=lambda e: e[:2])
    current: dict[int, Observation] = {}
    for t, member, observation in timeline:
        current[member] = observation
        if t < since:
            continue
        votes = Counter(view for view in current.values() if view is not None and is_successor(view, old))
        for view, count in votes.items():
            if count >= majority:
                return t, view
    return None


def load_averages() -> str:
    """The 1, 5 and 15 minute load averages, as `uptime` prints them: figures mean little at a high load."""
    return ", ".join(f"{load:.2f}" for load in os.getloadavg())


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(0.9 * len(ordered)) - 1]  # nearest rank


def summary_row(label: str, values: list[float]) -> str:
    return (
        f"| {label} | {len(values)} | {min(values):.0f} | {statistics.median(values):.0f} | "
        f"{p90(values):.0f} | {max(values):.0f} |"
    )
