"""Real `python -m node run` processes on 127.0.0.1, for loopback runtime tests and benchmarks.

Every process a Cluster starts is SIGKILLed by `close()` (the `make_cluster` fixture calls it in a
finally, also when the test fails). Synchronisation is by polling with deadlines (`wait_until`), never by
sleeping. Each node's stderr event lines go to `<dir>/node<ID>.log` (appended across restarts), parsed by
`events()`. Each node's control socket is `<socket_dir>/<ID>.sock` in a short directory of its own under
/tmp (a Unix socket's path is at most 107 bytes, which a test's tmp_path can exceed), removed by `close()`.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from node.core.codec import encode_body
from node.core.errors import RemoteProtocolError
from node.core.messages import Message
from node.core.session import (
    NONCE_BYTES,
    Acceptor,
    Connector,
    FrameReader,
    Keyring,
    SessionSender,
    parse_hello,
)

SECRET = b"loopback-test-secret-0123456789"
CLUSTER_NAME = "leader-node"  # the default cluster_name
T = TypeVar("T")
_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


_handed_out_ports: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A free port below the ephemeral range. Not a kernel-picked one: that comes from the range that
    outbound connections use too, so a peer's connection could take it before the node binds it."""
    low, _ = _ephemeral_range()
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(10_000, max(10_001, low))
        if port in _handed_out_ports:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out_ports.add(port)
        return port
    raise RuntimeError("no free port found below the ephemeral range")


def unwind_on_sigterm() -> None:
    """Make SIGTERM raise SystemExit in the main thread, so that `finally` blocks (Cluster.close) run and
    no node outlives a benchmark that was stopped."""

    def handler(signum: int, _frame: object) -> None:
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def wait_until(predicate: Callable[[], T], timeout_s: float, what: str, interval_s: float = 0.01) -> T:
    """Poll `predicate` until it returns something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)  # a poll interval, not synchronisation: the deadline decides


def process_alive(pid: int) -> bool:
    """The process runs (a zombie waiting for its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def parse_event_line(line: str) -> dict[str, Any] | None:
    """A stderr event line -> {"ts": datetime, "EVENT": ..., ...}; None for other output (tracebacks)."""
    stamp, _, rest = line.partition(" leader-node ")
    if not rest:
        return None
    try:
        event: dict[str, Any] = {"ts": datetime.fromisoformat(stamp)}
    except ValueError:
        return None
    for key, value in _FIELD.findall(rest):
        event[key] = json.loads(value) if value.startswith('"') else value
    return event


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text -> {'name{labels}': value}."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def http_get(url: str, timeout_s: float = 1.0) -> tuple[int, bytes] | None:
    """(status, body), or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())
    except (OSError, TimeoutError):
        return None


@dataclass
class Node:
    node_id: int
    port: int
    http_port: int
    config_path: Path
    log_path: Path
    state_dir: Path
    control_socket: Path
    process: subprocess.Popen[bytes] | None = None
    started_at: list[datetime] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Cluster:
    """`node_ids` are real processes; `external` ids are members played by the test (fake peers)."""

    def __init__(
        self,
        directory: Path,
        node_ids: Iterable[int] = (1, 2, 3),
        *,
        external: dict[int, int] | None = None,
        heartbeat_interval: str = "100ms",
        failure_timeout: str = "500ms",
        election_timeout: str = "1s",
        algorithm: str = "bully",
        extra_config: str = "",
    ) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "secret").write_bytes(SECRET + b"\n")
        (directory / "secret").chmod(0o600)  # group/others-readable would log a config_warning
        self.socket_dir = Path(tempfile.mkdtemp(prefix="ln-ctl-"))
        self.nodes: dict[int, Node] = {}
        for node_id in node_ids:
            self.nodes[node_id] = Node(
                node_id=node_id,
                port=free_port(),
                http_port=free_port(),
                config_path=directory / f"node{node_id}.toml",
                log_path=directory / f"node{node_id}.log",
                state_dir=directory / f"state{node_id}",
                control_socket=self.socket_dir / f"{node_id}.sock",
            )
        members = {node_id: node.port for node_id, node in self.nodes.items()} | dict(external or {})
        peers = "".join(f'{member_id} = "127.0.0.1:{port}"\n' for member_id, port in sorted(members.items()))
        for node in self.nodes.values():
            node.config_path.write_text(
                f"node_id = {node.node_id}\n"
                f'http_listen = "127.0.0.1:{node.http_port}"\n'
                f'algorithm = "{algorithm}"\n'
                f'heartbeat_interval = "{heartbeat_interval}"\n'
                f'failure_timeout = "{failure_timeout}"\n'
                f'election_timeout = "{election_timeout}"\n'
                f'secret_file = "secret"\n'
                f'state_dir = "{node.state_dir.name}"\n'
                f'control_socket = "{node.control_socket}"\n'
                f"{extra_config}"
                f"[peers]\n{peers}"
            )

    # -- processes ----------------------------------------------------------------------------------------

    def start(self, *node_ids: int, env: dict[str, str] | None = None) -> None:
        """Start the given nodes (all when none given); returns at once, see wait_serving()."""
        for node_id in node_ids or tuple(self.nodes):
            node = self.nodes[node_id]
            assert not node.running, f"node {node_id} is already running"
            child_env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "WATCHDOG_"))}
            child_env |= {"LEADER_NODE_LOG": "stderr", "JOURNAL_STREAM": ""} | (env or {})
            with node.log_path.open("ab") as log:
                node.started_at.append(datetime.now().astimezone())
                node.process = subprocess.Popen(
                    [sys.executable, "-m", "node", "run", "--config", str(node.config_path)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                    env=child_env,
                )

    def signal(self, node_id: int, signum: signal.Signals) -> datetime:
        """Send `signum`; returns the wall time just before sending (event lines carry wall time)."""
        process = self.nodes[node_id].process
        assert process is not None
        sent_at = datetime.now().astimezone()
        process.send_signal(signum)
        return sent_at

    def kill(self, node_id: int) -> datetime:
        sent_at = self.signal(node_id, signal.SIGKILL)
        self.wait_exit(node_id, timeout_s=10)
        return sent_at

    def pause(self, node_id: int) -> datetime:
        """SIGSTOP: a silent node whose sockets stay open (no FIN, no RST)."""
        return self.signal(node_id, signal.SIGSTOP)

    def resume(self, node_id: int) -> datetime:
        return self.signal(node_id, signal.SIGCONT)

    def restart(self, node_id: int) -> datetime:
        """SIGKILL (if running) and start again with the same ports and state directory."""
        if self.nodes[node_id].running:
            self.kill(node_id)
        self.start(node_id)
        return self.nodes[node_id].started_at[-1]

    def terminate(self, node_id: int, timeout_s: float = 10) -> int:
        self.signal(node_id, signal.SIGTERM)
        return self.wait_exit(node_id, timeout_s)

    def wait_exit(self, node_id: int, timeout_s: float) -> int:
        process = self.nodes[node_id].process
        assert process is not None
        return process.wait(timeout=timeout_s)

    def close(self) -> None:
        """Kill everything this cluster started (SIGKILL also ends SIGSTOPped processes)."""
        for node in self.nodes.values():
            if node.process is not None and node.process.poll() is None:
                node.process.kill()
                node.process.wait(timeout=10)
        shutil.rmtree(self.socket_dir, ignore_errors=True)

    # -- observation --------------------------------------------------------------------------------------

    def status(self, node_id: int) -> dict[str, Any] | None:
        reply = http_get(self.nodes[node_id].url + "/status", timeout_s=0.5)
        if reply is None or reply[0] != 200:
            return None
        result: dict[str, Any] = json.loads(reply[1])
        return result

    def metrics(self, node_id: int, timeout_s: float = 1.0) -> dict[str, float]:
        reply = http_get(self.nodes[node_id].url + "/metrics", timeout_s)
        assert reply is not None and reply[0] == 200, f"node {node_id} /metrics: {reply}"
        return parse_metrics(reply[1].decode())

    def statuses(self, node_ids: Iterable[int] | None = None) -> dict[int, dict[str, Any] | None]:
        return {node_id: self.status(node_id) for node_id in (node_ids or self.nodes)}

    def wait_serving(self, *node_ids: int, timeout_s: float = 15) -> None:
        for node_id in node_ids or tuple(self.nodes):
            wait_until(lambda n=node_id: self.status(n), timeout_s, f"node {node_id} to serve /status")

    def agreed_leader(self, node_ids: Iterable[int] | None = None) -> tuple[int, int] | None:
        """(leader_id, epoch) when every given node reports the same leader and epoch."""
        views = list(self.statuses(node_ids).values())
        if not views or any(view is None for view in views):
            return None
        pairs = {(view["leader_id"], view["epoch"]) for view in views if view is not None}
        if len(pairs) != 1:
            return None
        leader_id, epoch = pairs.pop()
        return None if leader_id is None else (int(leader_id), int(epoch))

    def wait_leader(self, node_ids: Iterable[int] | None = None, timeout_s: float = 15) -> tuple[int, int]:
        ids = tuple(node_ids or self.nodes)
        return wait_until(lambda: self.agreed_leader(ids), timeout_s, f"nodes {ids} to agree on a leader")

    def events(
        self, node_id: int, event: str | None = None, since: datetime | None = None
    ) -> list[dict[str, Any]]:
        node = self.nodes[node_id]
        if not node.log_path.exists():
            return []
        parsed = (parse_event_line(line) for line in node.log_path.read_text(errors="replace").splitlines())
        return [
            e
            for e in parsed
            if e is not None
            and (event is None or e.get("EVENT") == event)
            and (since is None or e["ts"] >= since)
        ]

    def log_text(self, node_id: int) -> str:
        path = self.nodes[node_id].log_path
        return path.read_text(errors="replace") if path.exists() else ""


class MemberClient:
    """A member played by the test on a connection it opens to a node: the handshake, then messages."""

    def __init__(
        self, port: int, *, sender: int, receiver: int, secret: bytes = SECRET, cluster: str = CLUSTER_NAME
    ) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        connector = Connector(
            cluster=cluster,
            node_id=sender,
            peer_id=receiver,
            keyring=Keyring((secret,)),
            nonce=os.urandom(NONCE_BYTES),
        )
        self.sock.sendall(connector.hello_frame)
        established = None
        while established is None:
            data = self.sock.recv(65536)
            if not data:
                self.sock.close()
                raise ConnectionError(f"node {receiver} closed the connection during the handshake")
            established = connector.receive(data)
        finish, self._sender = established
        self.sock.sendall(finish)

    @property
    def sender(self) -> SessionSender:
        return self._sender

    def send(self, message: Message) -> None:
        self.sock.sendall(self._sender.seal(encode_body(message)))

    def closed_by_peer(self, timeout_s: float = 5) -> bool:
        """True when the node closes this connection (EOF or reset) within `timeout_s`."""
        self.sock.settimeout(timeout_s)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()


class FramePeer:
    """A member played by the test: listens on a port, accepts the nodes' handshakes (as whichever member
    each HELLO addresses), decodes every frame, records arrival times."""

    def __init__(self, secret: bytes = SECRET) -> None:
        self._secret = secret
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(16)
        self.port = int(self._server.getsockname()[1])
        self.received: list[tuple[float, Message]] = []  # (time.monotonic(), message)
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._read_loop, args=(conn,), daemon=True).start()

    def _read_loop(self, conn: socket.socket) -> None:
        with conn:
            try:
                acceptor = self._accept_hello(conn)
                if acceptor is None:
                    return
                while True:
                    arrived = time.monotonic()
                    while (message := acceptor.next_message()) is not None:
                        with self._lock:
                            self.received.append((arrived, message))
                    if output := acceptor.take_output():
                        conn.sendall(output)
                    data = conn.recv(65536)
                    if not data:
                        return
                    acceptor.receive(data)
            except (OSError, RemoteProtocolError):
                return

    def _accept_hello(self, conn: socket.socket) -> Acceptor | None:
        """Read up to the first whole frame (the HELLO) to learn which member to play."""
        buffered = b""
        reader = FrameReader()
        while (payload := reader.next_payload()) is None:
            data = conn.recv(65536)
            if not data:
                return None
            buffered += data
            reader.receive(data)
        hello = parse_hello(payload)
        acceptor = Acceptor(
            cluster=hello.cluster,
            node_id=hello.receiver,
            member_ids={hello.sender, hello.receiver},
            keyring=Keyring((self._secret,)),
            nonce=os.urandom(NONCE_BYTES),
        )
        acceptor.receive(buffered)
        return acceptor

    def arrivals(self, sender: int, msg_type: str) -> list[float]:
        with self._lock:
            return [t for t, m in self.received if m.sender == sender and m.type.value == msg_type]

    def close(self) -> None:
        self._closed = True
        self._server.close()


class BlackHole:
    """A member whose host is black-holed: SYNs to it are dropped, so connects hang until they time out.

    The listen backlog is filled with the test's own connections that are never accepted; Linux then
    drops further SYNs instead of refusing them, just like a host behind a DROP firewall rule.
    """

    def __init__(self) -> None:
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(0)
        self.port = int(self._server.getsockname()[1])
        self._fillers: list[socket.socket] = []
        for _ in range(4):  # more than the accept queue holds for backlog 0
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", self.port))  # EINPROGRESS once the queue is full: the point
            self._fillers.append(filler)

    def close(self) -> None:
        for filler in self._fillers:
            filler.close()
        self._server.close()
