"""Process lifecycle: sd_notify, SIGTERM, and the no-zombie rule (a dead critical greenlet ends it all)."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from node.runtime.daemon import EXIT_CRASHED
from node.runtime.journal import MESSAGE_IDS
from node.runtime.sdnotify import Notifier

from .cluster import Cluster, wait_until


class NotifyListener:
    """Plays systemd's side of sd_notify: a datagram socket collecting (time, message) pairs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self.messages: list[tuple[float, str]] = []
        self.on_ready: Callable[[], None] | None = None
        self._lock = threading.Lock()
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while True:
            try:
                data = self._sock.recv(4096)
            except OSError:
                return
            text = data.decode()
            if "READY=1" in text.split("\n") and self.on_ready is not None:
                self.on_ready()  # runs before any later datagram is read: "right after READY"
            with self._lock:
                self.messages.append((time.monotonic(), text))

    def lines(self) -> list[str]:
        with self._lock:
            return [line for _, text in self.messages for line in text.split("\n")]

    def close(self) -> None:
        self._sock.close()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifyListener]:
    listener = NotifyListener(tmp_path / "notify.sock")
    try:
        yield listener
    finally:
        listener.close()


def _can_connect(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def test_sd_notify_ready_status_watchdog_stopping(
    make_cluster: Callable[..., Cluster], notify: NotifyListener
) -> None:
    cluster = make_cluster(1, 2)
    node = cluster.nodes[2]
    bound_at_ready: list[bool] = []
    notify.on_ready = lambda: bound_at_ready.append(_can_connect(node.port) and _can_connect(node.http_port))
    cluster.start(1)
    cluster.start(2, env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "200000"})
    leader_id, epoch = cluster.wait_leader()

    wait_until(lambda: "READY=1" in notify.lines(), 10, "READY=1")
    assert bound_at_ready == [True], "READY=1 came before the ports were bound"
    role = "leader" if leader_id == 2 else "follower"
    expected = f"STATUS=role={role} leader={leader_id} epoch={epoch}"
    wait_until(lambda: expected in notify.lines(), 10, expected)
    # WATCHDOG_USEC=200 ms: pings every 100 ms while the critical greenlets live.
    wait_until(lambda: notify.lines().count("WATCHDOG=1") >= 5, 5, "five watchdog pings")

    assert cluster.terminate(2) == 0
    assert "STOPPING=1" in notify.lines()
    _assert_status_kept_after_stopping(notify)


def _assert_status_kept_after_stopping(notify: NotifyListener) -> None:
    """STOPPING=1 comes with STATUS=stopping, and no datagram after it sets another STATUS (a role)."""
    texts = [text.split("\n") for _, text in notify.messages]
    stopping_at = next(i for i, lines in enumerate(texts) if "STOPPING=1" in lines)
    assert "STATUS=stopping" in texts[stopping_at]
    later = [line for lines in texts[stopping_at + 1 :] for line in lines if line.startswith("STATUS=")]
    assert later == [], f"STATUS overwritten after STOPPING=1: {later}"


def test_notifier_sends_no_status_after_stopping(
    notify: NotifyListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify.path))
    notifier = Notifier()
    notifier.ready("role=follower leader=3 epoch=2")
    notifier.status("role=leader leader=1 epoch=3")
    notifier.stopping()
    notifier.status("role=follower leader=2 epoch=4")  # the hand-off's role change: dropped
    notifier.watchdog()  # still pinged while the node hands off
    wait_until(lambda: "WATCHDOG=1" in notify.lines(), 5, "the watchdog ping after STOPPING=1")
    assert [line for line in notify.lines() if line.startswith("STATUS=")] == [
        "STATUS=role=follower leader=3 epoch=2",
        "STATUS=role=leader leader=1 epoch=3",
        "STATUS=stopping",
    ]
    _assert_status_kept_after_stopping(notify)


def test_sigterm_exits_0_logging_stopping_and_the_leader_resigns(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(1, 2, 3)
    cluster.start()
    leader_id, epoch = cluster.wait_leader()

    assert cluster.terminate(1) == 0  # a follower
    stopping = cluster.events(1, "stopping")
    assert stopping and stopping[0]["EPOCH"] == str(epoch)  # every event carries the durable epoch
    assert stopping[0]["MESSAGE_ID"] == MESSAGE_IDS["stopping"]

    assert cluster.terminate(leader_id) == 0
    assert cluster.events(leader_id, "stopping")
    resigned = cluster.events(leader_id, "resigned")
    assert resigned and resigned[0]["EPOCH"] == str(epoch)
    assert "Traceback" not in cluster.log_text(leader_id)


def test_sighup_reloads_and_the_leader_keeps_office(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(1, 2, 3)
    cluster.start()
    leader_id, epoch = cluster.wait_leader()
    for node_id in (1, 2, 3):
        cluster.signal(node_id, signal.SIGHUP)
    wait_until(lambda: all(cluster.events(n, "config_reloaded") for n in (1, 2, 3)), 10, "SIGHUP reloads")
    assert all(cluster.nodes[n].process.poll() is None for n in (1, 2, 3))  # type: ignore[union-attr]
    assert cluster.wait_leader() == (leader_id, epoch)
    assert cluster.terminate(leader_id) == 0  # and SIGTERM still hands off
    assert cluster.events(leader_id, "resigned")


def test_a_node_that_cannot_persist_exits_non_zero(make_cluster: Callable[..., Cluster]) -> None:
    """A real fault, no mocks: the state directory of the follower with the higher id (the Bully
    successor) disappears (a file takes its place), then the leader dies. The successor must persist a
    new epoch to run for leader; the write fails, the dispatcher greenlet dies, and the whole process must
    exit non-zero rather than live on as a zombie."""
    cluster = make_cluster(1, 2, 3)
    cluster.start()
    leader_id, epoch = cluster.wait_leader()
    other, successor = sorted(n for n in (1, 2, 3) if n != leader_id)
    state_dir = cluster.nodes[successor].state_dir
    state_dir.rename(state_dir.with_name("moved-away"))
    state_dir.write_text("not a directory")

    cluster.kill(leader_id)
    exit_code = cluster.wait_exit(successor, timeout_s=15)
    assert exit_code == EXIT_CRASHED
    crashed = cluster.events(successor, "crashed")
    assert crashed and crashed[0]["PRIORITY"] == "3"
    assert "dispatcher" in crashed[0]["MESSAGE"]
    # Nothing left under the epoch it failed to persist (persist before send): the other node never
    # heard of an epoch above the old one.
    status = cluster.status(other)
    assert status is not None and status["epoch"] == epoch
