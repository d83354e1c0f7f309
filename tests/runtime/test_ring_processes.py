"""Ring on five real processes on 127.0.0.1: SIGKILL of the leader, of two adjacent nodes, a restart in
the middle of an election, three nodes started together (issue 4).

Same timers and rules as test_bully_processes.py (heartbeat 100 ms, failure_timeout 500 ms,
election_timeout 1 s; polling /status with deadlines, every process SIGKILLed afterwards). The ring is
1 -> 2 -> 3 -> 4 -> 5 -> 1; the winner of a ring election is the highest id its token collected.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from .cluster import Cluster, wait_until
from .test_bully_processes import (
    ELECTION_TIMEOUT_S,
    MEMBERS,
    events_since,
    three_started_together_converge,
    wait_new_leader,
)


def started_ring(make_cluster: Callable[..., Cluster]) -> tuple[Cluster, int, int]:
    cluster = make_cluster(*MEMBERS, algorithm="ring")
    cluster.start()
    cluster.wait_serving()
    leader, epoch = cluster.wait_leader(timeout_s=15)
    return cluster, leader, epoch


def one_leader_per_epoch(cluster: Cluster, since: datetime) -> list[Any]:
    became = events_since(cluster, "became_leader", since)
    epochs = [int(e["EPOCH"]) for e in became]
    assert len(epochs) == len(set(epochs)), f"two leaders of one epoch: {became}"
    return became


def test_sigkill_of_the_leader_gives_a_new_leader_within_two_election_timeouts(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster, leader, epoch = started_ring(make_cluster)
    assert leader == 5, "the token collects every id; the highest wins"
    survivors = [i for i in MEMBERS if i != leader]
    killed_at = time.monotonic()
    cluster.kill(leader)
    new_leader, new_epoch = wait_new_leader(cluster, survivors, (leader, epoch), 2 * ELECTION_TIMEOUT_S)
    assert time.monotonic() - killed_at <= 2 * ELECTION_TIMEOUT_S
    assert (new_leader, new_epoch > epoch) == (max(survivors), True)
    agreed = (new_leader, new_epoch)
    wait_until(lambda: cluster.agreed_leader(survivors) == agreed, 5, "every survivor agrees")
    one_leader_per_epoch(cluster, cluster.nodes[leader].started_at[0])


def test_two_adjacent_nodes_killed_are_skipped(make_cluster: Callable[..., Cluster]) -> None:
    """The leader 5 and its ring predecessor 4 die together: a token from 1, 2 or 3 must skip the chain
    4 -> 5 (both refuse connections) to come home, and 1, 2, 3 are still a majority of the five."""
    cluster, leader, epoch = started_ring(make_cluster)
    assert leader == 5
    started = cluster.nodes[1].started_at[0]
    cluster.kill(4)
    cluster.kill(5)
    survivors = (1, 2, 3)
    new_leader, new_epoch = wait_new_leader(cluster, survivors, (5, epoch), 2 * ELECTION_TIMEOUT_S + 5)
    assert new_leader == 3 and new_epoch > epoch
    wait_until(lambda: cluster.agreed_leader(survivors) == (3, new_epoch), 5, "1, 2 and 3 agree on 3")
    became = one_leader_per_epoch(cluster, started)
    assert [e["NODE_ID"] for e in became if int(e["EPOCH"]) == new_epoch] == ["3"]


def test_a_node_restarted_mid_election_rejoins_without_an_election_of_its_own(
    make_cluster: Callable[..., Cluster],
) -> None:
    """Node 2 is paused, then the leader 5 is killed: every token of the election that follows must pass
    node 2 (4 -> 1 -> 2, 3 -> 4 -> 1 -> 2, 1 -> 2) and stalls there. Once an election is under way, node 2
    crashes and restarts: the node that handed it the token gets a refused connection and passes the
    token on past it (ring repair), the survivors elect 4, and node 2 ends up following 4 without an
    election of its own (with an epoch on disk it stays out of votes for failure_timeout after start).
    """
    cluster, leader, epoch = started_ring(make_cluster)
    assert leader == 5
    cluster.pause(2)
    killed_at = cluster.kill(5)
    wait_until(
        lambda: events_since(cluster, "election_started", killed_at, (1, 3, 4)),
        2 * ELECTION_TIMEOUT_S,
        "an election after the leader's death",
    )
    cluster.kill(2)  # also ends the SIGSTOP
    cluster.start(2)
    restarted_at = cluster.nodes[2].started_at[-1]
    survivors = (1, 2, 3, 4)
    new_leader, new_epoch = wait_new_leader(cluster, survivors, (5, epoch), 2 * ELECTION_TIMEOUT_S + 5)
    assert new_leader == 4 and new_epoch > epoch
    wait_until(lambda: cluster.agreed_leader(survivors) == (4, new_epoch), 5, "node 2 follows 4 too")
    assert cluster.events(2, "election_started", since=restarted_at) == []
    one_leader_per_epoch(cluster, cluster.nodes[1].started_at[0])


def test_three_nodes_started_together_converge_on_one_leader_and_epoch(
    make_cluster: Callable[..., Cluster],
) -> None:
    three_started_together_converge(make_cluster, "ring", may_lead=[3, 4])
