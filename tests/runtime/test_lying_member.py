"""A member that holds the secret and lies, on real processes (issue 13, findings 1 and 2).

The cluster has four members; nodes 1-3 run and the test speaks as member 4 over real, authenticated
sessions (MemberClient: the handshake, then sequenced frames). What it sends is well signed, so no
connection check can stop it; the algorithm's door must:

1. a HEARTBEAT claiming leadership of the epoch the receiver leads: once made the leader raise and exit
   70. Sent to each new leader in turn, it kept the cluster leaderless. Now rejected and logged, and
   the leader keeps office;
2. a COORDINATOR with epoch 2^63 - 1: once accepted and persisted by every node, after which each one
   crash-looped (the next proposal, epoch + 1, could not be sent). Now rejected as implausible, never
   persisted, and the nodes keep their leader and epoch.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from node.core.messages import Coordinator, Heartbeat

from .cluster import Cluster, MemberClient, wait_until

LIAR = 4
RUNNING = (1, 2, 3)


def started(make_cluster: Callable[..., Cluster]) -> tuple[Cluster, int, int]:
    cluster = make_cluster(1, 2, 3, 4)
    cluster.start(*RUNNING)
    leader, epoch = cluster.wait_leader(RUNNING, timeout_s=20)
    return cluster, leader, epoch


def test_a_claim_to_the_epoch_a_leader_leads_never_ends_it(make_cluster: Callable[..., Cluster]) -> None:
    cluster, leader, epoch = started(make_cluster)
    for lies in (1, 2, 3):  # each leader in turn, as the attack did: here the same one keeps office
        liar = MemberClient(cluster.nodes[leader].port, sender=LIAR, receiver=leader)
        liar.send(Heartbeat(LIAR, epoch, LIAR, sent_ms=int(time.monotonic() * 1000)))
        wait_until(
            lambda lies=lies: (
                len(
                    [
                        e
                        for e in cluster.events(leader, "message_rejected")
                        if "which this node leads" in e.get("MESSAGE", "")
                    ]
                )
                >= lies
            ),
            5,
            f"node {leader} to reject claim {lies}",
        )
        liar.close()
    assert cluster.nodes[leader].running
    assert cluster.wait_leader(RUNNING, timeout_s=5) == (leader, epoch)
    assert not cluster.events(leader, "crashed")
    assert not cluster.events(leader, "stepped_down")


def test_an_epoch_near_2_63_is_rejected_at_the_door_and_never_persisted(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster, leader, epoch = started(make_cluster)
    poison = 2**63 - 1
    for node_id in RUNNING:
        liar = MemberClient(cluster.nodes[node_id].port, sender=LIAR, receiver=node_id)
        liar.send(Coordinator(LIAR, poison, LIAR, LIAR))
        wait_until(
            lambda node_id=node_id: [
                e
                for e in cluster.events(node_id, "message_rejected")
                if "implausibly far above ours" in e.get("MESSAGE", "")
            ],
            5,
            f"node {node_id} to reject the epoch",
        )
        liar.close()
    assert cluster.wait_leader(RUNNING, timeout_s=5) == (leader, epoch)
    for node_id in RUNNING:
        assert cluster.nodes[node_id].running
        state = (cluster.nodes[node_id].state_dir / "state.json").read_text()
        assert str(poison) not in state, state
        status = cluster.status(node_id)
        assert status is not None and status["epoch"] == epoch
