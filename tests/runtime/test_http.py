"""Three real nodes on loopback: /status, /leader and /metrics as the contract describes them."""

from __future__ import annotations

import json
from collections.abc import Callable

from node.core.session import PROTOCOL_VERSION

from .cluster import Cluster, http_get


def test_status_leader_and_metrics(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(1, 2, 3)
    cluster.start()
    cluster.wait_serving()
    leader_id, epoch = cluster.wait_leader()
    # Bully without preempt: usually 3, but a node that starts late follows whoever already leads.
    assert epoch >= 1

    for node_id in (1, 2, 3):
        status = cluster.status(node_id)
        assert status is not None
        assert set(status) == {
            "node_id",
            "role",
            "leader_id",
            "epoch",
            "algorithm",
            "peers",
            "quorum",
            "catching_up",
            "protocol_version",
            "eligible",
            "ineligible_reason",
        }
        assert (status["eligible"], status["ineligible_reason"]) == (True, None)
        assert status["protocol_version"] == PROTOCOL_VERSION
        assert status["catching_up"] is False  # a new cluster: every member answered epoch 0
        assert status["node_id"] == node_id
        assert status["role"] == ("leader" if node_id == leader_id else "follower")
        assert status["algorithm"] == "bully"
        assert status["quorum"] == {"size": 2, "reachable": 3}
        assert set(status["peers"]) == {str(p) for p in (1, 2, 3) if p != node_id}
        for peer in status["peers"].values():
            assert peer["state"] == "alive"
            assert 0 <= peer["last_seen_ms"] < 500
            assert peer["eligible"] is True

    reply = http_get(cluster.nodes[leader_id].url + "/leader")
    assert reply is not None and reply[0] == 200
    assert json.loads(reply[1]) == {
        "leader_id": leader_id,
        "epoch": epoch,
        "address": f"127.0.0.1:{cluster.nodes[leader_id].port}",
    }
    followers = [n for n in (1, 2, 3) if n != leader_id]
    for follower in followers:
        reply = http_get(cluster.nodes[follower].url + "/leader")
        assert reply is not None and reply[0] == 503
        assert json.loads(reply[1])["leader_id"] == leader_id

    leader_metrics = cluster.metrics(leader_id)
    assert leader_metrics["leader_node_is_leader"] == 1
    assert leader_metrics["leader_node_epoch"] == epoch
    assert leader_metrics["leader_node_leader_changes_total"] >= 1
    assert leader_metrics[f'leader_node_peer_up{{peer="{followers[0]}"}}'] == 1
    assert leader_metrics['leader_node_messages_sent_total{type="HEARTBEAT"}'] > 0
    assert leader_metrics['leader_node_messages_sent_total{type="COORDINATOR"}'] >= 2
    assert leader_metrics['leader_node_messages_received_total{type="HEARTBEAT"}'] > 0
    assert leader_metrics["leader_node_frames_rejected_total"] == 0
    assert leader_metrics["leader_node_state_writes_total"] >= 1
    assert cluster.metrics(followers[0])["leader_node_is_leader"] == 0
    assert sum(cluster.metrics(n)["leader_node_elections_total"] for n in (1, 2, 3)) >= 1

    not_found = http_get(cluster.nodes[1].url + "/nope")
    assert not_found is not None and not_found[0] == 404
