"""A peer's bad input is its problem: the connection is closed, a warning logged, the node serves on."""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable

import pytest

from node.core.session import Connector, Keyring

from .cluster import CLUSTER_NAME, SECRET, Cluster, wait_until


def hello(sender: int, receiver: int = 1, secret: bytes = SECRET, cluster: str = CLUSTER_NAME) -> bytes:
    return Connector(
        cluster=cluster, node_id=sender, peer_id=receiver, keyring=Keyring((secret,)), nonce=bytes(16)
    ).hello_frame


def send_and_wait_for_close(port: int, data: bytes, timeout_s: float = 5) -> bool:
    """True when the node closes the connection (EOF or reset) after receiving `data`."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(data)
        try:
            return sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False


BAD_FRAMES = {
    "garbage": b"\x00\x00\x00\x05hello",
    "oversize length prefix": struct.pack(">I", 10_000_000) + b"x",
    "not json": struct.pack(">I", 4) + b"\xff\xfe{]",
    "another secret": hello(2, secret=b"a-different-cluster-secret!"),
    "another cluster": hello(2, cluster="another-cluster"),
    "addressed to another node": hello(2, receiver=3),
}


@pytest.mark.parametrize("frame", list(BAD_FRAMES.values()), ids=list(BAD_FRAMES))
def test_bad_frame_closes_the_connection_and_is_logged(
    make_cluster: Callable[..., Cluster], frame: bytes
) -> None:
    cluster = make_cluster(1, 2)
    cluster.start()
    cluster.wait_serving()
    node = cluster.nodes[1]

    def hears_node_2() -> bool:
        status = cluster.status(1)
        return status is not None and status["peers"]["2"]["state"] == "alive"

    wait_until(hears_node_2, 10, "node 1 hears node 2")  # the precondition, under any machine load
    assert send_and_wait_for_close(node.port, frame), "the node kept the connection open"
    rejected = wait_until(lambda: cluster.events(1, "message_rejected"), 5, "message_rejected in the log")
    assert rejected[0]["PRIORITY"] == "4"
    assert rejected[0]["REMOTE"].startswith("127.0.0.1:")
    assert cluster.metrics(1)["leader_node_frames_rejected_total"] == 1
    # Still serving peers: node 2 stays alive in its view, and node 1 accepts new connections.
    assert node.running
    assert hears_node_2()


def test_rejections_are_rate_limited_and_the_node_keeps_serving(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(1, 2)
    cluster.start()
    cluster.wait_leader()
    for _ in range(20):
        assert send_and_wait_for_close(cluster.nodes[1].port, BAD_FRAMES["garbage"])
    wait_until(
        lambda: cluster.metrics(1)["leader_node_frames_rejected_total"] == 20, 5, "20 rejected frames counted"
    )
    assert len(cluster.events(1, "message_rejected")) == 1  # one line per host per 10 s
    leader = cluster.agreed_leader()
    assert leader is not None and leader[0] == 2
    assert cluster.status(1) is not None


def test_frame_from_a_non_member_is_rejected(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(1, 2)
    cluster.start()
    cluster.wait_serving()
    assert send_and_wait_for_close(cluster.nodes[1].port, hello(77))
    rejected = wait_until(lambda: cluster.events(1, "message_rejected"), 5, "message_rejected in the log")
    assert "77" in rejected[0]["MESSAGE"]
