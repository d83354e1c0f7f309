"""Ring clusters in memory: whole elections on the simulator's World, with its invariants checked after
every step (one leader per epoch, a majority of persisted promises behind every leader, epochs never go
back, persist before send, no stale leader), in virtual time.

The network is perfect unless a test says otherwise: every link delivers in order after exactly 1 ms.
Every message a node hands to its driver is counted by type (a broadcast counts once per peer), so the
cost of an election can be asserted: 2(n-1) for the pre-vote plus n ELECTION and n COORDINATOR hops
(n-1 when the initiator is the winner) for one initiator.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable

import pytest

from node.algorithms import make_algorithm
from node.algorithms.catchup import is_catch_up_traffic
from node.core.actions import Action, Broadcast, Role, Send
from node.core.events import Event
from node.core.messages import Election, Message, MsgType
from node.core.protocol import Algorithm
from node.core.settings import Settings
from node.core.state import DurableState
from node.core.view import NodeView
from node.sim.invariants import SafetyMonitor
from node.sim.network import Network, NetworkProfile
from node.sim.trace import Trace
from node.sim.world import World

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

SendHook = Callable[["Cluster", int, int, Message], None]  # (cluster, from, to, message)


class Counted:
    """An algorithm whose outgoing messages are counted (and shown to a test's hook) on the way out."""

    def __init__(self, inner: Algorithm, cluster: Cluster, node_id: int, peer_ids: tuple[int, ...]) -> None:
        self.inner = inner
        self.name = inner.name
        self._cluster = cluster
        self._node_id = node_id
        self._peer_ids = peer_ids

    def step(self, event: Event) -> list[Action]:
        actions = self.inner.step(event)
        for action in actions:
            if isinstance(action, Send):
                self._cluster.on_send(self._node_id, action.peer_id, action.message)
            elif isinstance(action, Broadcast):
                for peer_id in self._peer_ids:
                    self._cluster.on_send(self._node_id, peer_id, action.message)
        return actions

    def view(self, now_ms: int) -> NodeView:
        return self.inner.view(now_ms)


class Cluster:
    """n ring nodes 1..n on the simulator's World. Nodes in `fast` listen for 1.2 s instead of 2 s
    after start-up (heartbeat 600 ms), so they are the ones that start the first election. (Not
    sooner: the start-up's refused connections leave unreachable hints that the peers' first periodic
    heartbeat, at 1 s, clears; until then a hinted node would be skipped.)"""

    def __init__(self, n: int, fast: Iterable[int] = (), seed: int = 0) -> None:
        ids = tuple(range(1, n + 1))
        fast = set(fast)
        self.settings = [
            Settings(
                node_id=i,
                member_ids=ids,
                heartbeat_interval_ms=600 if i in fast else 1_000,
                failure_timeout_ms=FAILURE_MS,
                election_timeout_ms=ELECTION_MS,
            )
            for i in ids
        ]
        self.sent: Counter[MsgType] = Counter()
        self.catch_up_messages = 0
        self.hooks: list[SendHook] = []
        rng = random.Random(seed)
        self.world = World(
            settings=self.settings,
            factory=self._build,
            rng=rng,
            network=Network(ids, rng, NetworkProfile(delay_ms_min=1, delay_ms_max=1)),
            trace=Trace(),
            safety=SafetyMonitor(n, FAILURE_MS),
            max_events=500_000,
        )
        self.ids = ids

    def _build(self, settings: Settings, state: DurableState, rng: random.Random) -> Algorithm:
        return Counted(
            make_algorithm("ring", settings, state, rng), self, settings.node_id, settings.peer_ids
        )

    def on_send(self, src: int, dst: int, message: Message) -> None:
        if is_catch_up_traffic(message):
            self.catch_up_messages += 1  # start-up, not election: counted apart
        else:
            self.sent[message.type] += 1
        for hook in list(self.hooks):
            hook(self, src, dst, message)

    # -------------------------------------------------------------------------------- driving

    def start(self) -> None:
        for node_id in self.ids:
            self.world.start(node_id)

    def run_for(self, duration_ms: int) -> None:
        self.world.run_until(self.world.now_ms + duration_ms)

    def run_until_agreed(
        self, among: Iterable[int] | None = None, within_ms: int = 30_000
    ) -> tuple[int, int]:
        """Run until every node of `among` (default: every live node) follows one leader under one
        epoch; (leader, epoch). Fails after `within_ms` of virtual time."""
        deadline_ms = self.world.now_ms + within_ms
        while self.world.now_ms < deadline_ms:
            agreed = self.agreed(among)
            if agreed is not None:
                return agreed
            self.run_for(1)
        raise AssertionError(f"no agreement within {within_ms} ms: {self.world.snapshots()}")

    def agreed(self, among: Iterable[int] | None = None) -> tuple[int, int] | None:
        snapshots = self.world.snapshots()
        nodes = list(snapshots) if among is None else list(among)
        leaders = [i for i, snap in snapshots.items() if snap.role is Role.LEADER]
        if len(leaders) != 1 or leaders[0] not in nodes:
            return None
        leader, epoch = leaders[0], snapshots[leaders[0]].epoch
        if all(
            i in snapshots and (snapshots[i].leader_id, snapshots[i].epoch) == (leader, epoch) for i in nodes
        ):
            return leader, epoch
        return None

    def events(self, name: str, node_id: int | None = None) -> list[int]:
        """The nodes that logged `name`, once per entry, in order."""
        return [
            e.node_id for e in self.world.trace.history if e.event == name and node_id in (None, e.node_id)
        ]

    def election_messages(self) -> dict[str, int]:
        return {t.value: self.sent[t] for t in ELECTION_TYPES}

    def once(self, when: Callable[[int, int, Message], bool], then: Callable[[Cluster], None]) -> None:
        """Run `then` (at the current virtual time) after the first send that matches `when`."""

        def hook(cluster: Cluster, src: int, dst: int, message: Message) -> None:
            if when(src, dst, message):
                cluster.hooks.remove(hook)
                cluster.world.call_at(cluster.world.now_ms, "test fault", lambda: then(cluster))

        self.hooks.append(hook)


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
    cluster = Cluster(n, fast=[initiator])
    cluster.start()
    leader, epoch = cluster.run_until_agreed()
    cluster.run_for(3 * ELECTION_MS)  # nothing else may happen: no churn, no stray message
    assert cluster.agreed() == (leader, n + initiator - 1)
    assert (leader, epoch) == (n, n + initiator - 1)  # the highest id; the initiator's first ballot
    assert cluster.election_messages() == ring_cost(n, initiator)
    ring = cluster.sent[MsgType.ELECTION] + cluster.sent[MsgType.COORDINATOR]
    assert ring == (2 * n - 1 if initiator == n else 2 * n)
    assert cluster.events("election_started") == [initiator]
    # A new cluster: a probe and an answer per pair, and probes again only to nodes that had not started.
    assert 2 * n * (n - 1) <= cluster.catch_up_messages < 3 * n * (n - 1)


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
    cluster = Cluster(n, fast=initiators)
    cluster.start()
    leader, epoch = cluster.run_until_agreed()
    cluster.run_for(3 * ELECTION_MS)
    assert cluster.agreed() == (leader, epoch)
    assert leader == n
    assert epoch == n + max(initiators) - 1  # the highest ballot absorbed the others
    assert sorted(cluster.events("election_started")) == sorted(initiators)
    assert len(cluster.events("became_leader")) == 1
    counts = cluster.election_messages()
    assert counts["PROPOSE"] == counts["PRE_VOTE_ANSWER"] == k * (n - 1)
    assert counts["TOKEN_REFUSED"] == k - 1  # every other token dies once, at the next initiator
    assert counts["PROMISE"] == counts["CONFIRM_REFUSED"] == 0
    assert counts["ELECTION"] <= 2 * n  # absorbed tokens die before they reach the winner
    assert counts["COORDINATOR"] == (n - 1 if max(initiators) == n else n)
    assert counts["CONFIRM"] == counts["CONFIRMED"] == n - 1  # one winner confirms, once


def test_killed_leader_is_replaced_within_two_election_timeouts() -> None:
    cluster = Cluster(5, fast=[1])
    cluster.start()
    old_leader, old_epoch = cluster.run_until_agreed()
    cluster.run_for(2_000)
    cluster.world.crash(old_leader)  # SIGKILL: peers see the connections reset
    killed_ms = cluster.world.now_ms
    leader, epoch = cluster.run_until_agreed(among=[1, 2, 3, 4], within_ms=2 * ELECTION_MS)
    assert leader == 4 and epoch > old_epoch
    assert cluster.world.now_ms - killed_ms < 100  # the reset hint: no failure_timeout wait


def test_two_adjacent_failed_nodes_are_skipped_with_the_leader_gone_too() -> None:
    cluster = Cluster(7, fast=[1])
    cluster.start()
    assert cluster.run_until_agreed()[0] == 7
    cluster.run_for(2_000)
    for node_id in (3, 4, 7):  # a chain of two, and the leader
        cluster.world.crash(node_id)
    leader, _ = cluster.run_until_agreed(among=[1, 2, 5, 6], within_ms=2 * ELECTION_MS)
    assert leader == 6


def test_token_repaired_when_two_adjacent_nodes_die_as_it_reaches_them() -> None:
    cluster = Cluster(7, fast=[1])

    killed_ms: list[int] = []

    def kill_2_and_3(c: Cluster) -> None:
        killed_ms.append(c.world.now_ms)
        c.world.crash(2)
        c.world.crash(3)

    cluster.once(lambda src, _dst, m: isinstance(m, Election) and src == 1, kill_2_and_3)
    cluster.start()
    leader, _ = cluster.run_until_agreed(among=[1, 4, 5, 6, 7])
    assert leader == 7
    assert cluster.world.now_ms - killed_ms[0] < 100  # resent on the reset hints, no timeout
    assert cluster.events("ring_repaired", node_id=1) == [1, 1]  # 2 refused, then 3 refused
    assert cluster.events("election_failed") == []


def test_token_lost_with_a_silent_node_is_resent_when_that_node_is_suspected() -> None:
    cluster = Cluster(5, fast=[1])

    def isolate_3(c: Cluster) -> None:
        c.world.network.partition([[3], [1, 2, 4, 5]])  # the host vanished: no reset, only silence

    cluster.once(lambda src, dst, m: isinstance(m, Election) and (src, dst) == (2, 3), isolate_3)
    cluster.start()
    leader, _ = cluster.run_until_agreed(among=[1, 2, 4, 5])
    assert leader == 5
    assert cluster.events("ring_repaired") == [2]
    assert cluster.world.now_ms < ELECTION_MS  # before the initiator's token timeout


def test_token_lost_on_its_last_hop_restarts_after_election_timeout() -> None:
    """Every node promised, then the token is lost on its way home over a live link (nobody is suspected,
    so there is nothing to repair): the initiator's ELECTION timer notices; never a wait forever."""
    cluster = Cluster(5, fast=[1])
    rules: list[int] = []

    def drop_link_5_to_1(c: Cluster) -> None:
        rules.append(c.world.network.one_way([5], [1]))

    cluster.once(lambda src, dst, m: isinstance(m, Election) and (src, dst) == (5, 1), drop_link_5_to_1)
    cluster.start()
    cluster.run_for(3_000)
    cluster.world.network.unblock(rules[0])
    assert cluster.agreed() is None
    leader, _ = cluster.run_until_agreed(within_ms=2 * ELECTION_MS)
    assert leader == 5
    assert cluster.events("election_failed")[:1] == [1]  # the initiator noticed first
    assert cluster.world.now_ms < 1_200 + 2 * ELECTION_MS


def test_a_node_restarted_mid_election_joins_the_outcome_without_an_election_of_its_own() -> None:
    cluster = Cluster(5, fast=[1])

    def restart_3(c: Cluster) -> None:
        c.world.crash(3)
        c.world.start(3)  # systemd restarts it at once; its promise is on disk

    cluster.once(lambda src, _dst, m: isinstance(m, Election) and src == 3, restart_3)
    cluster.start()
    leader, epoch = cluster.run_until_agreed()
    cluster.run_for(3 * ELECTION_MS)
    assert cluster.agreed() == (leader, epoch) == (5, 5)
    assert cluster.events("election_started") == [1]


def test_a_duplicating_network_costs_no_extra_ring_messages() -> None:
    cluster = Cluster(5, fast=[2])
    cluster.world.network.faults.duplicate_probability = 1.0  # every message arrives twice
    cluster.start()
    cluster.run_until_agreed()
    cluster.run_for(3 * ELECTION_MS)
    assert cluster.agreed() == (5, 6)
    # Copies of the token and of the COORDINATOR are dropped where they arrive; each copy of a pre-vote
    # and of a CONFIRM is answered again by the shared base (harmless: a pre-vote binds nobody, and a
    # second CONFIRMED echoes the same stamp).
    assert cluster.election_messages() == {**ring_cost(5, 2), "PRE_VOTE_ANSWER": 2 * 4, "CONFIRMED": 2 * 4}


def test_a_minority_elects_nobody_and_never_inflates_its_epoch() -> None:
    cluster = Cluster(5, fast=[1])
    cluster.start()
    leader, epoch = cluster.run_until_agreed()
    assert leader == 5
    cluster.world.network.partition([[1, 2], [3, 4, 5]])
    cluster.run_for(6 * ELECTION_MS)
    snapshots = cluster.world.snapshots()
    assert all(snapshots[i].role is not Role.LEADER and snapshots[i].epoch == epoch for i in (1, 2))
    assert cluster.agreed(among=[3, 4, 5]) == (5, epoch)


def test_an_isolated_leader_is_replaced_and_rejoins_without_an_election() -> None:
    cluster = Cluster(5, fast=[1])
    cluster.start()
    _, epoch = cluster.run_until_agreed()
    rule = cluster.world.network.partition([[5], [1, 2, 3, 4]])
    leader, new_epoch = cluster.run_until_agreed(among=[1, 2, 3, 4], within_ms=FAILURE_MS + 2 * ELECTION_MS)
    assert leader == 4 and new_epoch > epoch
    cluster.run_for(2 * ELECTION_MS)
    assert cluster.world.snapshots()[5].epoch == epoch  # the cut-off node did not inflate its epoch
    elections = len(cluster.events("election_started"))
    cluster.world.network.unblock(rule)
    assert cluster.run_until_agreed(within_ms=2 * FAILURE_MS) == (4, new_epoch)
    cluster.run_for(3 * ELECTION_MS)
    assert cluster.agreed() == (4, new_epoch)
    assert len(cluster.events("election_started")) == elections  # rejoined: no election
