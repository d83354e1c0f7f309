"""A restarted node comes back with the epoch on its disk, on real processes, for both algorithms.

The simulator checks "epochs never go back across a restart" on its own model of a disk; this test reads
the real state file. While a follower is down, its state file is raised above the cluster's epoch (what
a node that promised a later candidate would hold): the restarted node must announce that epoch
(`listening`, `started`), promise nothing below it, and the cluster must end up on an epoch above it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from node.core.state import SLOT_BYTES, SLOT_COUNT, DurableState, dump_slot, load_slots
from node.runtime.statefile import STATE_FILE_NAME, StateFile

from .cluster import Cluster, wait_until

NODES = (1, 2, 3)
RAISE_BY = 10


@pytest.mark.parametrize("algorithm", ["bully", "ring"])
def test_a_restarted_node_comes_back_with_the_epoch_on_its_disk(
    make_cluster: Callable[..., Cluster], algorithm: str
) -> None:
    cluster = make_cluster(*NODES, algorithm=algorithm)
    cluster.start()
    cluster.wait_serving()
    leader, epoch = cluster.wait_leader()
    follower = min(n for n in NODES if n != leader)
    cluster.kill(follower)

    state_file = StateFile(cluster.nodes[follower].state_dir)
    on_disk = state_file.load()
    assert on_disk.epoch >= epoch, f"the follower's state file says {on_disk}, the cluster epoch {epoch}"
    raised = DurableState(epoch=on_disk.epoch + RAISE_BY, voted_for=None)
    state_file.save(raised)

    cluster.start(follower)
    restarted_at = cluster.nodes[follower].started_at[-1]
    cluster.wait_serving(follower)
    for event in ("listening", "started"):
        seen = wait_until(
            lambda e=event: cluster.events(follower, e, since=restarted_at), 10, f"its {event} event"
        )
        assert seen[0]["EPOCH"] == str(raised.epoch), (event, seen[0])

    # The cluster moves above the raised epoch (the leader keeps office through one re-election, or
    # another is elected): nobody may stay below what the restarted node has promised.
    final_leader, final_epoch = wait_until(
        lambda: (agreed := cluster.agreed_leader()) is not None and agreed[1] > raised.epoch and agreed,
        30,
        f"every node on one leader above epoch {raised.epoch}",
    )
    assert final_leader in NODES
    for node_id in NODES:
        status = cluster.status(node_id)
        assert status is not None and status["epoch"] == final_epoch
    # What the restarted node accepted since its start never went below its disk.
    accepted = cluster.events(follower, "leader_accepted", since=restarted_at)
    accepted += cluster.events(follower, "became_leader", since=restarted_at)
    assert accepted and all(int(e["EPOCH"]) > raised.epoch for e in accepted), accepted
    cluster.kill(follower)
    assert state_file.load().epoch >= final_epoch


def test_a_node_restarted_over_a_torn_record_starts_from_the_other_and_catches_up(
    make_cluster: Callable[..., Cluster],
) -> None:
    """A power cut in the middle of a save leaves the slot being written torn: the restarted node says so
    (`state_record_invalid`), starts from the other record, and votes only after its catch-up."""
    cluster = make_cluster(*NODES)
    cluster.start()
    cluster.wait_serving()
    leader, epoch = cluster.wait_leader()
    follower = min(n for n in NODES if n != leader)
    cluster.kill(follower)

    state_dir = cluster.nodes[follower].state_dir
    state_file = StateFile(state_dir)
    on_disk = state_file.load()
    state_file.save(on_disk)  # two saves: the slots now hold different seqs
    state_file.save(on_disk)
    state_file.close()
    path = state_dir / STATE_FILE_NAME
    seq = load_slots(path.read_bytes()).seq
    # The save after it, cut by the power: the first 60 bytes of a promise of a higher epoch.
    torn_slot = (seq + 1) % SLOT_COUNT
    data = bytearray(path.read_bytes())
    data[torn_slot * SLOT_BYTES : torn_slot * SLOT_BYTES + 60] = dump_slot(
        DurableState(on_disk.epoch + RAISE_BY, leader), seq + 1
    )[:60]
    path.write_bytes(bytes(data))

    cluster.start(follower)
    restarted_at = cluster.nodes[follower].started_at[-1]
    cluster.wait_serving(follower)
    (invalid,) = cluster.events(follower, "state_record_invalid", since=restarted_at)
    assert invalid["PRIORITY"] == "4" and invalid["FILE"] == str(path) and invalid["SLOT"] == str(torn_slot)
    assert invalid["EPOCH"] == str(on_disk.epoch) and invalid["REASON"]
    wait_until(lambda: cluster.events(follower, "catch_up_finished", since=restarted_at), 10, "its catch-up")
    (started,) = cluster.events(follower, "catch_up_started", since=restarted_at)
    assert "may have lost promises" in started["MESSAGE"]
    assert cluster.wait_leader(timeout_s=15)[1] >= epoch
    # The catch-up's persist wrote the file whole again: both records valid, no longer recovering.
    loaded = load_slots(path.read_bytes())
    assert loaded.bad_slot is None and not loaded.state.recovering and loaded.state.epoch >= epoch
