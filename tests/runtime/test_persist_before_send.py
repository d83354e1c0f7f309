"""Persist before send, in the daemon itself (the simulator never runs the daemon's executor).

A voter that grants a binding proposal must have the promise on disk before the PROMISE leaves. Member 3
is played by the test (a FramePeer receives what the nodes send it; a MemberClient speaks as it). After
the leader of nodes 1 and 2 is killed, member 3 proposes a higher epoch to the survivor. With a working
disk the survivor's granted PROMISE arrives and its state file holds the promise; with its state
directory gone, the write fails and the process exits without a granted PROMISE ever reaching member 3.
(An executor that ran Persist after the Sends of the same step fails the second case: the PROMISE is
written to the socket before the dispatcher dies.)
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from node.core.messages import Promise, Propose
from node.core.state import DurableState
from node.runtime.daemon import EXIT_CRASHED
from node.runtime.statefile import StateFile

from .cluster import Cluster, FramePeer, MemberClient, wait_until

PLAYED = 3


def granted_promises(peer: FramePeer, sender: int, epoch: int) -> list[Promise]:
    return [
        m
        for _, m in list(peer.received)
        if isinstance(m, Promise) and m.sender == sender and m.epoch == epoch and m.granted
    ]


@pytest.mark.parametrize("disk", ["working", "gone"])
def test_a_granted_promise_leaves_only_after_it_is_on_disk(
    make_cluster: Callable[..., Cluster], disk: str
) -> None:
    peer = FramePeer()
    try:
        cluster = make_cluster(1, 2, external={PLAYED: peer.port})
        for node in cluster.nodes.values():  # nodes with a past: no catch-up, which member 3 never answers
            node.state_dir.mkdir()
            StateFile(node.state_dir).save(DurableState(epoch=1))
        cluster.start()
        cluster.wait_serving()
        leader, epoch = cluster.wait_leader()
        voter = 1 if leader == 2 else 2
        cluster.kill(leader)
        # The voter no longer has a live leader (it cannot win alone: member 3 never answers it).
        wait_until(
            lambda: (s := cluster.status(voter)) is not None and s["leader_id"] is None,
            10,
            f"node {voter} to lose leader {leader}",
        )
        state_dir = cluster.nodes[voter].state_dir
        if disk == "gone":
            state_dir.rename(state_dir.with_name("moved-away"))
            state_dir.write_text("not a directory")

        proposed = epoch + 5
        client = MemberClient(cluster.nodes[voter].port, sender=PLAYED, receiver=voter)
        try:
            client.send(Propose(sender=PLAYED, epoch=proposed, pre_vote=False))
            if disk == "working":
                wait_until(lambda: granted_promises(peer, voter, proposed), 10, "the granted PROMISE")
                assert StateFile(state_dir).load() == DurableState(proposed, PLAYED)
            else:
                assert cluster.wait_exit(voter, timeout_s=15) == EXIT_CRASHED
                assert granted_promises(peer, voter, proposed) == []
                answers = [m for _, m in list(peer.received) if isinstance(m, Promise) and m.sender == voter]
                assert [m for m in answers if m.epoch == proposed] == [], answers
        finally:
            client.close()
    finally:
        peer.close()
