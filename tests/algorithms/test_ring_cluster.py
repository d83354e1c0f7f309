"""Ring clusters in memory: whole elections on the simulator's World (harness.Cluster), with its
invariants checked after every step (one leader per epoch, a majority of persisted promises behind every
leader, epochs never go back, persist before send, no stale leader), in virtual time.

The network is perfect unless a test says otherwise: every link delivers in order after exactly 1 ms.
Every message a node hands to its driver is counted by type (a broadcast counts once per peer), so the
cost of an election can be asserted: 2(n-1) for the pre-vote plus n ELECTION and n COORDINATOR hops
(n-1 when the initiator is the winner) for one initiator.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import pytest

from node.algorithms.catchup import is_catch_up_traffic
from node.core.actions import Role
from node.core.messages import Election, MsgType

from .harness import Cluster

ALGORITHM = "ring"
FAILURE_MS = 3_000
ELECTION_MS = 5_000
ELECTION_TYPES = (
    MsgType.PROPOSE,
    MsgType.PRE_VOTE_ANSWER,
    MsgType.PROMISE,
    MsgType.ELECTION,
    MsgType.TOKEN_REFUSED,
    MsgType.CONFIRM,
    MsgType.CONFIRMED,
    MsgType.CONFIRM_REFUSED,
    MsgType.COORDINATOR,
)
RING_TYPES = (MsgType.ELECTION, MsgType.COORDINATOR)


def ring_cluster(n: int, fast: Iterable[int] = (), seed: int = 0) -> Cluster:
    """n ring nodes 1..n on harness.Cluster, every link exactly 1 ms; `link_ranges` keeps the random
    draws of the simulator's network model, so each seed replays the run these tests were written
    against (with other draws, reset hints of two nodes killed together may arrive in the other order).
    Nodes in `fast` listen for 1.2 s instead of 2 s after start-up (heartbeat 600 ms), so they are the
    ones that start the first election. (Not sooner: the start-up's refused connections leave
    unreachable hints that the peers' first periodic heartbeat, at 1 s, clears; until then a hinted node
    would be skipped.)"""
    return Cluster(
        ALGORITHM,
        tuple(range(1, n + 1)),
        seed=seed,
        link_ranges=True,
        per_node={i: {"heartbeat_interval_ms": 600} for i in fast},
        failure_timeout_ms=FAILURE_MS,
        election_timeout_ms=ELECTION_MS,
    )


def election_messages(cluster: Cluster) -> dict[str, int]:
    """Messages sent so far by type, start-up catch-up traffic left out."""
    sent = Counter(s.message.type for s in cluster.sent_log if not is_catch_up_traffic(s.message))
    return {t.value: sent[t] for t in ELECTION_TYPES}


def catch_up_messages(cluster: Cluster) -> int:
    """Start-up, not election: the catch-up probes and their answers."""
    return sum(1 for s in cluster.sent_log if is_catch_up_traffic(s.message))


def logged_by(cluster: Cluster, name: str, node_id: int | None = None) -> list[int]:
    """The nodes that logged `name`, once per entry, in order."""
    return [e.node_id for e in cluster.events(name, node_id=node_id)]


def ring_cost(n: int, initiator: int) -> dict[str, int]:
    """One initiator on a perfect network: pre-vote to and from every peer, n token hops, the winner's
    confirmation round with the n-1 other voters, and the COORDINATOR handed to the winner (n) unless
    the initiator is the winner, then n-1 hops round."""
    return {
        "PROPOSE": n - 1,
        "PRE_VOTE_ANSWER": n - 1,
        "PROMISE": 0,  # a Ring voter promises by passing the token on
        "ELECTION": n,
        "TOKEN_REFUSED": 0,
        "CONFIRM": n - 1,
        "CONFIRMED": n - 1,
        "CONFIRM_REFUSED": 0,
        "COORDINATOR": n - 1 if initiator == n else n,
    }


@pytest.mark.parametrize("n", [3, 5, 7])
@pytest.mark.parametrize("position", ["lowest", "middle", "highest"])
def test_one_initiator_costs_2n_ring_messages(n: int, position: str) -> None:
    initiator = {"lowest": 1, "middle": (n + 1) // 2, "highest": n}[position]
    cluster = ring_cluster(n, fast=[initiator])
    cluster.start()
    leader, epoch = cluster.run_until_agreed()
    cluster.run_for(3 * ELECTION_MS)  # nothing else may happen: no churn, no stray message
    assert cluster.agreed_leader() == (leader, n + initiator - 1)
    assert (leader, epoch) == (n, n + initiator - 1)  # the highest id; the initiator's first ballot
    assert election_messages(cluster) == ring_cost(n, initiator)
    ring = cluster.sent[MsgType.ELECTION] + cluster.sent[MsgType.COORDINATOR]
    assert ring == (2 * n - 1 if initiator == n else 2 * n)
    assert logged_by(cluster, "election_started") == [initiator]
    # A new cluster: a probe and an answer per pair, and probes again only to nodes that had not started.
    assert 2 * n * (n - 1) <= catch_up_messages(cluster) < 3 * n * (n - 1)


# Measured on the perfect network, all k initiators starting in the same millisecond (see docs): the
# ballots order them, the highest id's token absorbs the others, each other token dies at the next
# initiator along the ring (one refusal each). Ring messages stay within 2n + 2(k - 1) + n.
@pytest.mark.parametrize(
    ("n", "initiators"),
    [(5, (1, 2)), (5, (2, 4)), (5, (1, 3, 5)), (5, (1, 2, 3, 4, 5)), (7, (3, 7)), (7, (1, 2, 3, 4, 5, 6, 7))],
)
def test_concurrent_initiators_end_with_one_leader_one_epoch_and_bounded_messages(
    n: int, initiators: tuple[int, ...]
) -> None:
    k = len(initiators)
    cluster = ring_cluster(n, fast=initiators)
    cluster.start()
    leader, epoch = cluster.run_until_agreed()
    cluster.run_for(3 * ELECTION_MS)
    assert cluster.agreed_leader() == (leader, epoch)
    assert leader == n
    assert epoch == n + max(initiators) - 1  # the highest ballot absorbed the others
    assert sorted(logged_by(cluster, "election_started")) == sorted(initiators)
    assert len(logged_by(cluster, "became_leader")) == 1
    counts = election_messages(cluster)
    assert counts["PROPOSE"] == counts["PRE_VOTE_ANSWER"] == k * (n - 1)
    assert counts["TOKEN_REFUSED"] == k - 1  # every other token dies once, at the next initiator
    assert counts["PROMISE"] == counts["CONFIRM_REFUSED"] == 0
    assert counts["ELECTION"] <= 2 * n  # absorbed tokens die before they reach the winner
    assert counts["COORDINATOR"] == (n - 1 if max(initiators) == n else n)
    assert counts["CONFIRM"] == counts["CONFIRMED"] == n - 1  # one winner confirms, once


def test_killed_leader_is_replaced_within_two_election_timeouts() -> None:
    cluster = ring_cluster(5, fast=[1])
    cluster.start()
    old_leader, old_epoch = cluster.run_until_agreed()
    cluster.run_for(2_000)
    cluster.crash(old_leader)  # SIGKILL: peers see the connections reset
    killed_ms = cluster.now_ms
    leader, epoch = cluster.run_until_agreed(among=[1, 2, 3, 4], within_ms=2 * ELECTION_MS)
    assert leader == 4 and epoch > old_epoch
    assert cluster.now_ms - killed_ms < 100  # the reset hint: no failure_timeout wait


def test_two_adjacent_failed_nodes_are_skipped_with_the_leader_gone_too() -> None:
    cluster = ring_cluster(7, fast=[1])
    cluster.start()
    assert cluster.run_until_agreed()[0] == 7
    cluster.run_for(2_000)
    for node_id in (3, 4, 7):  # a chain of two, and the leader
        cluster.crash(node_id)
    leader, _ = cluster.run_until_agreed(among=[1, 2, 5, 6], within_ms=2 * ELECTION_MS)
    assert leader == 6


def test_token_repaired_when_two_adjacent_nodes_die_as_it_reaches_them() -> None:
    cluster = ring_cluster(7, fast=[1])

    killed_ms: list[int] = []

    def kill_2_and_3(c: Cluster) -> None:
        killed_ms.append(c.now_ms)
        c.crash(2)
        c.crash(3)

    cluster.once(lambda src, _dst, m: isinstance(m, Election) and src == 1, kill_2_and_3)
    cluster.start()
    leader, _ = cluster.run_until_agreed(among=[1, 4, 5, 6, 7])
    assert leader == 7
    assert cluster.now_ms - killed_ms[0] < 100  # resent on the reset hints, no timeout
    assert logged_by(cluster, "ring_repaired", node_id=1) == [1, 1]  # 2 refused, then 3 refused
    assert logged_by(cluster, "election_failed") == []


def test_token_lost_with_a_silent_node_is_resent_when_that_node_is_suspected() -> None:
    cluster = ring_cluster(5, fast=[1])

    def isolate_3(c: Cluster) -> None:
        c.network.partition([[3], [1, 2, 4, 5]])  # the host vanished: no reset, only silence

    cluster.once(lambda src, dst, m: isinstance(m, Election) and (src, dst) == (2, 3), isolate_3)
    cluster.start()
    leader, _ = cluster.run_until_agreed(among=[1, 2, 4, 5])
    assert leader == 5
    assert logged_by(cluster, "ring_repaired") == [2]
    assert cluster.now_ms < ELECTION_MS  # before the initiator's token timeout


def test_token_lost_on_its_last_hop_restarts_after_election_timeout() -> None:
    """Every node promised, then the token is lost on its way home over a live link (nobody is suspected,
    so there is nothing to repair): the initiator's ELECTION timer notices; never a wait forever."""
    cluster = ring_cluster(5, fast=[1])
    rules: list[int] = []

    def drop_link_5_to_1(c: Cluster) -> None:
        rules.append(c.network.one_way([5], [1]))

    cluster.once(lambda src, dst, m: isinstance(m, Election) and (src, dst) == (5, 1), drop_link_5_to_1)
    cluster.start()
    cluster.run_for(3_000)
    cluster.network.unblock(rules[0])
    assert cluster.agreed_leader() is None
    leader, _ = cluster.run_until_agreed(within_ms=2 * ELECTION_MS)
    assert leader == 5
    assert logged_by(cluster, "election_failed")[:1] == [1]  # the initiator noticed first
    assert cluster.now_ms < 1_200 + 2 * ELECTION_MS


def test_a_node_restarted_mid_election_joins_the_outcome_without_an_election_of_its_own() -> None:
    cluster = ring_cluster(5, fast=[1])

    def restart_3(c: Cluster) -> None:
        c.crash(3)
        c.start(3)  # systemd restarts it at once; its promise is on disk

    cluster.once(lambda src, _dst, m: isinstance(m, Election) and src == 3, restart_3)
    cluster.start()
    leader, epoch = cluster.run_until_agreed()
    cluster.run_for(3 * ELECTION_MS)
    assert cluster.agreed_leader() == (leader, epoch) == (5, 5)
    assert logged_by(cluster, "election_started") == [1]


def test_a_duplicating_network_costs_no_extra_ring_messages() -> None:
    cluster = ring_cluster(5, fast=[2])
    cluster.network.faults.duplicate_probability = 1.0  # every message arrives twice
    cluster.start()
    cluster.run_until_agreed()
    cluster.run_for(3 * ELECTION_MS)
    assert cluster.agreed_leader() == (5, 6)
    # Copies of the token and of the COORDINATOR are dropped where they arrive; each copy of a pre-vote
    # and of a CONFIRM is answered again by the shared base (harmless: a pre-vote binds nobody, and a
    # second CONFIRMED echoes the same stamp).
    assert election_messages(cluster) == {**ring_cost(5, 2), "PRE_VOTE_ANSWER": 2 * 4, "CONFIRMED": 2 * 4}


def test_a_minority_elects_nobody_and_never_inflates_its_epoch() -> None:
    cluster = ring_cluster(5, fast=[1])
    cluster.start()
    leader, epoch = cluster.run_until_agreed()
    assert leader == 5
    cluster.network.partition([[1, 2], [3, 4, 5]])
    cluster.run_for(6 * ELECTION_MS)
    snapshots = cluster.world.snapshots()
    assert all(snapshots[i].role is not Role.LEADER and snapshots[i].epoch == epoch for i in (1, 2))
    assert cluster.agreed_leader(among=[3, 4, 5]) == (5, epoch)


def test_an_isolated_leader_is_replaced_and_rejoins_without_an_election() -> None:
    cluster = ring_cluster(5, fast=[1])
    cluster.start()
    _, epoch = cluster.run_until_agreed()
    rule = cluster.network.partition([[5], [1, 2, 3, 4]])
    leader, new_epoch = cluster.run_until_agreed(among=[1, 2, 3, 4], within_ms=FAILURE_MS + 2 * ELECTION_MS)
    assert leader == 4 and new_epoch > epoch
    cluster.run_for(2 * ELECTION_MS)
    assert cluster.world.snapshots()[5].epoch == epoch  # the cut-off node did not inflate its epoch
    elections = len(logged_by(cluster, "election_started"))
    cluster.network.unblock(rule)
    assert cluster.run_until_agreed(within_ms=2 * FAILURE_MS) == (4, new_epoch)
    cluster.run_for(3 * ELECTION_MS)
    assert cluster.agreed_leader() == (4, new_epoch)
    assert len(logged_by(cluster, "election_started")) == elections  # rejoined: no election
