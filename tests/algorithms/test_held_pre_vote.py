"""A crashed leader's successor wins its first pre-vote although it heard of the crash first, for both
algorithms, in virtual time on the simulator's World (harness.Cluster, 1 ms links, default timers).

After a SIGKILL each survivor learns of the crash from its own refused reconnect (a PeerUnreachable hint),
a few ms apart. The first to know runs at once; the others still follow the dead leader when its pre-vote
arrives. They hold it (voting.py, `_holds_back`) and grant it when their own hint comes, instead of
refusing it as followers of a live leader, which cost the candidate a failed attempt, a back-off of
backoff_base_ms x U(0.5, 1.5) and a second pre-vote round (docs/benchmarks.md, "Where a hand-off's time
goes").
"""

from __future__ import annotations

from collections import Counter

import pytest

from node.algorithms import ALGORITHMS
from node.core.actions import Send
from node.core.events import PeerUnreachable, TimerId
from node.core.messages import Election, Propose

from .harness import Cluster, pre_vote, promise
from .states import follower

FIRST = 4  # the first survivor to hear of the crash: Bully's successor (the highest live id)
WITHIN_MS = 30  # virtual ms from the kill to a leader every survivor follows
PEERS = 4  # one broadcast is logged once per peer, the dead leader included


def crashed_with_staggered_hints(algorithm: str, later_ms: tuple[int, int, int]) -> tuple[Cluster, int]:
    """A settled cluster whose leader is killed; FIRST hears of it 1 ms later, the other survivors
    `later_ms` after FIRST (their refused reconnects come later). Returns the cluster and the kill time."""
    cluster = Cluster(algorithm)
    cluster.start()
    leader, _ = cluster.run_until_agreed()
    cluster.run_for(2_000)
    assert leader == 5, "the scenario needs FIRST to be the highest survivor"
    cluster.world.crash(leader, reset_connections=False)  # the hints come from the test, below
    killed_ms = cluster.now_ms
    others = [node_id for node_id in (1, 2, 3) if node_id != FIRST]
    for node_id, delay_ms in [(FIRST, 1), *((i, 1 + d) for i, d in zip(others, later_ms, strict=True))]:
        cluster.world.tell(node_id, "hint", lambda now_ms: PeerUnreachable(now_ms, leader), delay_ms)
    return cluster, killed_ms


@pytest.mark.parametrize("later_ms", [(2, 3, 4), (1, 4, 9), (3, 3, 12)])
@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_the_first_candidate_after_a_crash_wins_its_one_pre_vote(
    algorithm: str, later_ms: tuple[int, int, int]
) -> None:
    cluster, killed_ms = crashed_with_staggered_hints(algorithm, later_ms)
    survivors = [1, 2, 3, 4]
    new_leader, _ = cluster.run_until_agreed(among=survivors, within_ms=WITHIN_MS)
    after = [s for s in cluster.sent_log if s.at_ms >= killed_ms]
    pre_votes = Counter(
        s.src for s in after if isinstance(s.message, Propose) and s.message.pre_vote and s.message.epoch > 0
    )
    failed = cluster.events("election_failed", since_ms=killed_ms)
    journal = cluster.dump()
    assert pre_votes[FIRST] == PEERS, journal
    assert all(count == PEERS for count in pre_votes.values()), (pre_votes, journal)  # nobody ran twice
    refused_first = [e for e in failed if e.node_id == FIRST and "pre-vote" in e.message]
    assert refused_first == [], journal  # its pre-vote was not refused by followers of the dead leader
    if algorithm == "bully":
        assert list(pre_votes) == [FIRST], journal  # one pre-vote round, the successor's
        assert failed == [], journal  # no back-off retry
        assert new_leader == FIRST
    else:
        # FIRST's pre-vote won on its first round: its token went round. (Every survivor also runs on its
        # own hint, Ring having no OK to defer to, and the highest ballot wins: Ring's own, untouched. A
        # later initiator's pre-vote may be refused for the ballots promised meanwhile, and a token that
        # reaches a node not yet hinted dies there, so with wider spreads another round may win.)
        assert any(isinstance(s.message, Election) and s.message.initiator == FIRST for s in after), journal


def test_a_follower_holds_one_pre_vote_per_member_whatever_they_send() -> None:
    """Members may send pre-votes as fast as they like and a non-member's are rejected at the door: a
    follower holds the newest of each candidate and answers each candidate once, by its deadline."""
    node = follower(2, leader_id=4)
    for k in range(200):
        for sender in (1, 3, 5, 9):
            node.receive(pre_vote(sender, 4 + k), 1000 + k // 50)
    actions = node.fire(TimerId.PRE_VOTE_DEFER, 1000 + 199 // 50 + node.settings.backoff_base_ms)
    answers = [(a.peer_id, a.message) for a in actions if isinstance(a, Send)]
    assert answers == [(c, promise(2, 203, pre_vote=True, granted=False, known_epoch=3)) for c in (1, 3, 5)]
    assert TimerId.PRE_VOTE_DEFER not in node.armed
