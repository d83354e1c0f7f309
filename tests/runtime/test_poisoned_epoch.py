"""Recovering from a poisoned epoch, on real processes (issue 13, item 2; docs/operations.md,
"Recovering from a poisoned epoch").

Before the door bounded epochs (EPOCH_MAX, EPOCH_JUMP_MAX in node/algorithms/machine.py), one signed
COORDINATOR with an epoch near 2^63 was accepted and persisted by every member. Such a state file is
written here by hand on all three nodes of a cluster that had elected a leader, and the test shows what
the nodes do with it now (they run, but each rejects the others' messages as implausible: no leader,
no quorum, for as long as the files stay), that the recovery refuses to touch a running node, and that
the documented procedure (stop all, `write-state --epoch N --force` with one N above the last
legitimate epoch on every member, start all) gives the cluster a leader again.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

from node.algorithms.base import EPOCH_MAX
from node.core.state import DurableState
from node.runtime.statefile import STATE_FILE_NAME, StateFile

from .cluster import Cluster, wait_until

POISONED = 2**63 - 2  # above EPOCH_MAX (2^62): its successor cannot even be sent
NODES = (1, 2, 3)


def write_state(cluster: Cluster, node_id: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "node",
            "write-state",
            "--config",
            str(cluster.nodes[node_id].config_path),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def rejects_both_peers_as_implausible(cluster: Cluster, node_id: int) -> bool:
    rejected = {
        int(e["PEER_ID"])
        for e in cluster.events(node_id, "message_rejected")
        if "implausibly far above" in str(e.get("MESSAGE", "")) and "PEER_ID" in e
    }
    return rejected >= set(NODES) - {node_id}


def test_a_poisoned_epoch_on_every_member_is_recovered_by_write_state_force(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(*NODES)
    cluster.start()
    cluster.wait_serving()
    _, legit_epoch = cluster.wait_leader()
    for node_id in NODES:
        assert cluster.terminate(node_id) == 0
    # What the accepted COORDINATOR left on every member: its epoch, accepted from the "leader".
    for node_id in NODES:
        StateFile(cluster.nodes[node_id].state_dir).save(DurableState(POISONED, None))

    # The current behaviour: every node starts and stays up, but each one's epoch is implausible to
    # the others (above EPOCH_MAX), so every message is rejected: no quorum, no leader.
    cluster.start()
    cluster.wait_serving()
    for node_id in NODES:
        wait_until(
            lambda n=node_id: rejects_both_peers_as_implausible(cluster, n),
            15,
            f"node {node_id} to reject both",
        )
    statuses = cluster.statuses()
    assert all(s is not None and s["epoch"] == POISONED for s in statuses.values()), statuses
    assert all(s is not None and s["leader_id"] is None for s in statuses.values()), statuses
    assert all(cluster.nodes[n].running for n in NODES)  # not a crash loop: a standstill

    # Recovery refuses to touch a running node (the state directory's lock is held), and plain
    # write-state refuses to go back.
    running = write_state(cluster, 1, "--epoch", str(legit_epoch + 1000), "--force")
    assert running.returncode == 1
    assert "stop the node first" in running.stderr

    # The procedure: stop every member, pick one epoch above the last legitimate one, write it on
    # every member, start them all.
    for node_id in NODES:
        assert cluster.terminate(node_id) == 0
    plain = write_state(cluster, 1, "--epoch", str(legit_epoch + 1000))
    assert plain.returncode == 1 and "epochs never go back" in plain.stderr
    chosen = legit_epoch + 1000
    assert chosen <= EPOCH_MAX
    for node_id in NODES:
        done = write_state(cluster, node_id, "--epoch", str(chosen), "--force")
        assert done.returncode == 0, done.stderr
        assert f"wrote epoch {chosen}" in done.stdout
        assert f"(forced; it held epoch {POISONED}, voted for None)" in done.stdout
        state_dir = cluster.nodes[node_id].state_dir
        backups = list(state_dir.glob(f"{STATE_FILE_NAME}.bak-*"))
        assert len(backups) == 1 and str(backups[0]) in done.stdout
        assert StateFile(state_dir).load() == DurableState(chosen, None)

    cluster.start()
    cluster.wait_serving()
    new_leader, new_epoch = cluster.wait_leader()
    assert new_epoch > chosen
    assert new_leader in NODES
    print(f"poisoned at {POISONED}, recovered at {chosen}: node {new_leader} leads epoch {new_epoch}")
