"""Bully on several in-memory nodes: a perfect network (no loss, FIFO links), virtual time, no sleeps.

Each scenario is a short script against harness.Cluster (the simulator's World); every step of every
node is checked against the simulator's invariants: persist-before-send, monotonic epochs, one leader
per epoch. Default timers: heartbeat 1 s, failure 3 s, election 5 s (listen 2 s). Latencies are drawn
per message from a seeded generator.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from node.core.actions import Role
from node.core.messages import MsgType
from node.core.state import DurableState

from .harness import MEMBERS_5, Cluster

ALGORITHM = "bully"
ELECTION_MS = 5000
FAILURE_MS = 3000
HEARTBEAT_MS = 1000
LISTEN_MS = 2 * HEARTBEAT_MS
SEEDS = range(30)


def has_leader(cluster: Cluster) -> bool:
    return cluster.agreed_leader() is not None


def started_cluster(seed: int, stagger_ms: int = 400, delay_ms_max: int = 20, **kw: object) -> Cluster:
    """Five nodes started within `stagger_ms` of each other, converged on a leader."""
    cluster = Cluster(ALGORITHM, seed=seed, delay_ms_min=1, delay_ms_max=delay_ms_max, **kw)  # type: ignore[arg-type]
    for node_id in MEMBERS_5:
        cluster.start(node_id, at_ms=cluster.now_ms + cluster.rng.randint(0, stagger_ms))
    assert cluster.run_until(has_leader, 30_000), cluster.dump()
    cluster.run_for(cluster.rng.randint(0, 2 * HEARTBEAT_MS))  # a random heartbeat phase
    return cluster


def replaced(old_leader: int) -> Callable[[Cluster], bool]:
    """Every node but `old_leader` follows one other leader under one epoch."""
    others = [i for i in MEMBERS_5 if i != old_leader]

    def done(cluster: Cluster) -> bool:
        agreed = cluster.agreed_leader(among=others)
        return agreed is not None and agreed[0] != old_leader

    return done


def assert_single_leader_and_epoch(cluster: Cluster) -> tuple[int, int]:
    agreed = cluster.agreed_leader()
    assert agreed is not None, cluster.dump()
    assert {cluster.durable(i).epoch for i in cluster.live()} == {agreed[1]}
    return agreed


# ------------------------------------------------------------------------------------------- convergence


@pytest.mark.parametrize("seed", SEEDS)
def test_concurrent_start_converges_on_one_leader_and_epoch_within_two_election_timeouts(seed: int) -> None:
    cluster = Cluster(ALGORITHM, seed=seed, delay_ms_min=1, delay_ms_max=30)
    cluster.start()  # all at once: every listen window ends together, every node starts an election
    assert cluster.run_until(has_leader, LISTEN_MS + 2 * ELECTION_MS), cluster.dump()
    first_election_ms = cluster.events("election_started")[0].time_ms
    assert cluster.now_ms - first_election_ms <= 2 * ELECTION_MS
    leader, epoch = assert_single_leader_and_epoch(cluster)
    assert leader == 5  # Bully: the highest id wins when everyone is up
    assert len(cluster.events("election_started")) >= 3, "the point is several concurrent elections"
    cluster.run_for(3 * ELECTION_MS)
    assert cluster.agreed_leader() == (leader, epoch), "stable once elected"


@pytest.mark.parametrize("seed", SEEDS)
def test_every_survivor_starts_an_election_at_once_and_they_converge(seed: int) -> None:
    cluster = started_cluster(seed)
    leader, epoch = assert_single_leader_and_epoch(cluster)
    cluster.crash(leader)  # SIGKILL: every survivor sees the connection close together
    crashed_at = cluster.now_ms
    assert cluster.run_until(has_leader, crashed_at + 2 * ELECTION_MS), cluster.dump()
    new_leader, new_epoch = assert_single_leader_and_epoch(cluster)
    assert new_leader == max(cluster.live()) and new_epoch > epoch
    assert {e.node_id for e in cluster.events("election_started", since_ms=crashed_at)} == {1, 2, 3, 4}


# --------------------------------------------------------------------------------------------- failover


@pytest.mark.parametrize("seed", SEEDS)
def test_crash_of_the_leader_is_replaced_in_round_trips_not_timeouts(seed: int) -> None:
    cluster = started_cluster(seed, delay_ms_max=5)
    leader, epoch = assert_single_leader_and_epoch(cluster)
    cluster.crash(leader, notify=True)
    crashed_at = cluster.now_ms
    assert cluster.run_until(has_leader, crashed_at + 2 * ELECTION_MS), cluster.dump()
    # Connection closed -> PeerUnreachable -> nobody waits for failure_timeout or election_timeout.
    assert cluster.now_ms - crashed_at < HEARTBEAT_MS, cluster.dump()
    assert cluster.agreed_leader() == (4, epoch + 1)


@pytest.mark.parametrize("seed", SEEDS)
def test_silent_crash_of_the_leader_is_replaced_after_failure_timeout(seed: int) -> None:
    cluster = started_cluster(seed)
    leader, _ = assert_single_leader_and_epoch(cluster)
    cluster.crash(leader, notify=False)  # the host vanished: no connection close, only silence
    crashed_at = cluster.now_ms
    assert cluster.run_until(has_leader, crashed_at + FAILURE_MS + 2 * ELECTION_MS), cluster.dump()
    assert cluster.now_ms - crashed_at <= FAILURE_MS + HEARTBEAT_MS, cluster.dump()
    assert assert_single_leader_and_epoch(cluster)[0] == 4


@pytest.mark.parametrize("seed", SEEDS)
def test_graceful_shutdown_of_the_leader_hands_off_without_any_timeout(seed: int) -> None:
    cluster = started_cluster(seed, delay_ms_max=5)
    leader, epoch = assert_single_leader_and_epoch(cluster)
    cluster.shutdown(leader)
    stopped_at = cluster.now_ms
    assert [e.event for e in cluster.events("resigned")] == ["resigned"]
    assert cluster.run_until(has_leader, stopped_at + 2 * ELECTION_MS), cluster.dump()
    assert cluster.now_ms - stopped_at < 100, cluster.dump()  # a few round trips of <= 5 ms
    assert cluster.agreed_leader() == (4, epoch + 1)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_paused_leader_is_replaced_and_steps_down_when_it_resumes(seed: int) -> None:
    cluster = started_cluster(seed)
    old_leader, old_epoch = assert_single_leader_and_epoch(cluster)
    others = [i for i in MEMBERS_5 if i != old_leader]
    cluster.pause(old_leader)  # SIGSTOP: connections stay open, nothing is read or sent
    paused_at = cluster.now_ms
    assert cluster.run_until(replaced(old_leader), paused_at + FAILURE_MS + 2 * ELECTION_MS), cluster.dump()
    new_leader, new_epoch = cluster.agreed_leader(among=others) or (0, 0)
    assert new_epoch > old_epoch
    cluster.resume(old_leader, messages_first=seed % 2 == 0)
    assert cluster.run_until(has_leader, cluster.now_ms + 2 * HEARTBEAT_MS), cluster.dump()
    assert cluster.agreed_leader() == (new_leader, new_epoch)
    assert cluster.role(old_leader) is Role.FOLLOWER


def test_a_resumed_leader_never_acts_under_its_old_epoch() -> None:
    stale: list[str] = []
    for seed in range(25):
        for messages_first in (False, True):
            cluster = started_cluster(seed)
            old_leader, old_epoch = assert_single_leader_and_epoch(cluster)
            cluster.pause(old_leader)
            assert cluster.run_until(replaced(old_leader), cluster.now_ms + FAILURE_MS + 2 * ELECTION_MS)
            claims_before = len(cluster.leader_claims)
            resumed_at = cluster.now_ms
            cluster.resume(old_leader, messages_first=messages_first)  # as soon as replaced, like SIGCONT
            cluster.run_for(2 * HEARTBEAT_MS)
            stale += [
                f"seed {seed}: t={t - resumed_at} ms after resume, node {n} sent {m}"
                for t, n, m in cluster.leader_claims[claims_before:]
                if n == old_leader and m.epoch == old_epoch
            ]
            stale += [
                f"seed {seed}: {e.describe()}"
                for e in cluster.events("became_leader", since_ms=resumed_at, node_id=old_leader)
            ]
    assert not stale, "\n".join(stale[:10])


def test_a_leader_cut_off_from_the_majority_steps_down_within_failure_timeout() -> None:
    cluster = started_cluster(seed=1)
    leader, epoch = assert_single_leader_and_epoch(cluster)
    for follower in (1, 2, 3):  # 3 of 5 gone without a trace: the leader and node 4 are a minority
        cluster.crash(follower, notify=False)
    cut_at = cluster.now_ms
    # The lease (echoed heartbeat stamps) may end it a little before the detector reports no-quorum.
    cluster.run_until(lambda c: c.role(leader) is Role.NO_QUORUM, cut_at + 2 * FAILURE_MS)
    assert cluster.role(leader) is Role.NO_QUORUM
    assert cluster.now_ms - cut_at <= FAILURE_MS
    assert [e.event for e in cluster.events("quorum_lost", node_id=leader)] == ["quorum_lost"]
    cluster.run_for(10 * ELECTION_MS)
    assert cluster.leaders() == [], "a minority never elects"
    assert cluster.epochs()[4] == epoch and cluster.epochs()[leader] == epoch, "nor inflates its epoch"


# ------------------------------------------------------------------------------------- start-up, rejoin


def test_no_quorum_start_up_elects_nobody_and_persists_nothing() -> None:
    cluster = Cluster(ALGORITHM, seed=3, delay_ms_min=1, delay_ms_max=10)
    cluster.start(1, 2)
    cluster.run_for(10 * ELECTION_MS)
    assert cluster.leaders() == []
    assert [cluster.role(i) for i in (1, 2)] == [Role.NO_QUORUM, Role.NO_QUORUM]
    assert cluster.epochs() == dict.fromkeys(MEMBERS_5, 0)
    assert cluster.events("election_started") == []
    # Fresh nodes that cannot hear enough members keep probing (epoch 0); they never propose an epoch.
    assert set(cluster.proposed_epochs) == {0}
    assert cluster.events("catch_up_finished") == []
    cluster.start(3)  # a majority, but three nodes without state cannot tell a new cluster from lost disks
    cluster.run_for(10 * ELECTION_MS)
    assert cluster.leaders() == []
    assert cluster.events("catch_up_finished") == []
    cluster.start(4)  # now each hears N - quorum + 1 = 3 others: enough to rule out a forgotten promise
    assert cluster.run_until(has_leader, cluster.now_ms + FAILURE_MS + LISTEN_MS + 2 * ELECTION_MS), (
        cluster.dump()
    )
    assert cluster.agreed_leader() == (4, 1)
    assert sorted(e.node_id for e in cluster.events("catch_up_finished")) == [1, 2, 3, 4]


@pytest.mark.parametrize("seed", range(20))
def test_a_restarted_follower_rejoins_without_an_election(seed: int) -> None:
    cluster = started_cluster(seed)
    leader, epoch = assert_single_leader_and_epoch(cluster)
    follower = cluster.rng.choice([i for i in MEMBERS_5 if i != leader])
    cluster.crash(follower)
    cluster.run_for(cluster.rng.randint(0, 3 * ELECTION_MS))
    restarted_at = cluster.now_ms
    cluster.start(follower)
    assert cluster.run_until(has_leader, restarted_at + LISTEN_MS), cluster.dump()
    cluster.run_for(3 * ELECTION_MS)
    assert cluster.agreed_leader() == (leader, epoch)
    assert cluster.events("election_started", since_ms=restarted_at) == []


@pytest.mark.parametrize("seed", range(20))
def test_a_restarted_higher_id_follows_the_current_leader_without_preempt(seed: int) -> None:
    cluster = started_cluster(seed)
    cluster.crash(5)
    assert cluster.run_until(has_leader, cluster.now_ms + 2 * ELECTION_MS)
    leader, epoch = assert_single_leader_and_epoch(cluster)
    assert leader == 4
    cluster.run_for(3 * HEARTBEAT_MS)
    restarted_at = cluster.now_ms
    cluster.start(5)
    cluster.run_for(3 * ELECTION_MS)
    assert cluster.agreed_leader() == (4, epoch), cluster.dump()
    assert cluster.events("election_started", since_ms=restarted_at) == []


@pytest.mark.parametrize("seed", range(20))
def test_a_restarted_higher_id_takes_over_with_preempt(seed: int) -> None:
    cluster = started_cluster(seed, preempt=True)
    cluster.crash(5)
    assert cluster.run_until(has_leader, cluster.now_ms + 2 * ELECTION_MS)
    leader, epoch = assert_single_leader_and_epoch(cluster)
    assert leader == 4
    cluster.run_for(3 * HEARTBEAT_MS)
    restarted_at = cluster.now_ms
    cluster.start(5)
    assert cluster.run_until(
        lambda c: c.agreed_leader() is not None and c.agreed_leader() != (4, epoch),
        restarted_at + LISTEN_MS + 2 * ELECTION_MS,
    ), cluster.dump()
    new_leader, new_epoch = assert_single_leader_and_epoch(cluster)
    assert (new_leader, new_epoch > epoch) == (5, True)
    assert [e.event for e in cluster.events("stepped_down", since_ms=restarted_at, node_id=4)] == [
        "stepped_down"
    ]


def test_a_lagging_highest_id_is_not_locked_out_by_epochs_it_never_saw() -> None:
    # Node 4 won a pre-vote, persisted epoch 4 and got promises from 1..3, then died before leading;
    # node 5 was away at epoch 3. Bully defers everyone to 5, whose first pre-vote (4) they refuse.
    cluster = Cluster(
        ALGORITHM,
        seed=7,
        delay_ms_min=1,
        delay_ms_max=5,
        durable={i: DurableState(4, 4) for i in (1, 2, 3, 4)} | {5: DurableState(3, 5)},
    )
    cluster.start(1, 2, 3, 5)
    assert cluster.run_until(has_leader, LISTEN_MS + 2 * ELECTION_MS), cluster.dump()
    assert cluster.agreed_leader() == (5, 5)


# ---------------------------------------------------------------------------------- messages per election

# Classic Bully on a perfect network with n nodes, after the highest (the leader) died: the highest live
# initiator sends n-2 COORDINATORs; the lowest starts the ELECTION/OK cascade, O(n^2). Here every
# election also pays two quorum rounds (pre-vote + binding proposal: 2 x (n-1) PROPOSE, the dead member
# included in the broadcasts, answered by n-2 PRE_VOTE_ANSWER and n-2 PROMISE) and announces with n-1
# COORDINATORs.


def single_initiator_election(n: int, initiator: int) -> Counter[MsgType]:
    """Members 1..n, n dead (it was the leader). Only `initiator` runs an election on its own: its listen
    window (2 x heartbeat) ends long before the others'. Messages from its election_started to agreement,
    heartbeats excluded."""
    members = tuple(range(1, n + 1))
    fast = {"heartbeat_interval_ms": 100, "failure_timeout_ms": FAILURE_MS}
    cluster = Cluster(ALGORITHM, members, seed=0, per_node={initiator: fast})  # latency exactly 1 ms
    cluster.start(*members[:-1])
    cluster.run_until(lambda c: bool(c.events("election_started")), 10 * ELECTION_MS)
    assert [e.node_id for e in cluster.events("election_started")] == [initiator]
    election_at = cluster.events("election_started")[0].time_ms
    assert cluster.run_until(has_leader, cluster.now_ms + 2 * ELECTION_MS), cluster.dump()
    assert cluster.agreed_leader() == (n - 1, 1)
    assert {e.node_id for e in cluster.events("election_started")} == set(range(initiator, n))
    sent = cluster.sent_since(election_at)
    del sent[MsgType.HEARTBEAT]
    return sent


def quorum_rounds(n: int) -> Counter[MsgType]:
    # pre-vote and binding proposal (to every peer, answered by the n - 2 live ones), the confirmation
    # round (CONFIRM to every peer, CONFIRMED from the live voters), then the COORDINATOR broadcast
    return Counter(
        {
            MsgType.PROPOSE: 2 * (n - 1),
            MsgType.PRE_VOTE_ANSWER: n - 2,
            MsgType.PROMISE: n - 2,
            MsgType.CONFIRM: n - 1,
            MsgType.CONFIRMED: n - 2,
            MsgType.COORDINATOR: n - 1,
        }
    )


@pytest.mark.parametrize("n", [5, 7, 9])
def test_messages_per_election_best_initiator_is_linear(n: int) -> None:
    sent = single_initiator_election(n, initiator=n - 1)
    # one ELECTION to the dead leader, then the three quorum rounds: 7n - 9 in all, O(n)
    assert sent == quorum_rounds(n) + Counter({MsgType.ELECTION: 1})
    assert sum(sent.values()) == 7 * n - 9


@pytest.mark.parametrize("n", [5, 7, 9])
def test_messages_per_election_worst_initiator_is_quadratic(n: int) -> None:
    sent = single_initiator_election(n, initiator=1)
    live = n - 1
    # node k (1..n-1) sends ELECTION to every id above it; node k answers OK to each lower live node
    elections = sum(n - k for k in range(1, live + 1))
    oks = sum(k - 1 for k in range(2, live + 1))
    assert sent == quorum_rounds(n) + Counter({MsgType.ELECTION: elections, MsgType.OK: oks})
    assert (elections, oks) == (n * (n - 1) // 2, (n - 1) * (n - 2) // 2)  # the classic O(n^2) cascade
