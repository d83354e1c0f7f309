"""Epoch catch-up: when a node that may have forgotten its promises may vote again.

A node that starts without a state file is either new or has lost its disk. A lost disk may have held a
promise of some epoch P to some candidate C; voting again as if at epoch 0 could promise P a second
time, to another candidate, and two candidates could then both win P (docs/algorithms.md, "A node that
lost its state"). So such a node votes for nobody and runs for nothing until it has learned an epoch at
least as high as any promise it could have made, its *floor*, from answers that are fresh: each echoes
the stamp of a probe (a pre-vote for epoch 0, which every node refuses, naming its own epoch) sent in
this incarnation. Two ways to a floor:

- every other member answered: C is among them, and C persisted P before it asked for it, so C's
  answer is at least P. A new cluster (every answer 0) is known to be new at once;
- the members that answered to probes sent at least `settle_ms` (failure_timeout) after the start are
  enough to meet every majority that could have elected someone with our vote (N - quorum + 1 others):
  an old candidacy that used our vote wins within failure_timeout of its stamp or never, so by then
  each of its backers holds P on disk, and one of them answers.

The floor is the highest epoch in the answers. Pure: no I/O, no clock; the caller passes `now_ms`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from node.core.messages import Message, PreVoteAnswer, Propose


def is_catch_up_traffic(message: Message) -> bool:
    """A probe or its answer: a pre-vote for epoch 0, which no candidacy ever asks for."""
    if isinstance(message, PreVoteAnswer):
        return message.epoch == 0
    return isinstance(message, Propose) and message.pre_vote and message.epoch == 0


PROBES_REMEMBERED = 64  # probe stamps kept for matching answers (one probe per heartbeat interval)


@dataclass(slots=True)
class EpochCatchUp:
    started_ms: int
    settle_ms: int  # failure_timeout: after this, answers from a blocking set suffice
    peer_ids: frozenset[int]
    quorum_size: int
    probes: dict[int, int] = field(default_factory=dict)  # stamp on the wire -> when it was sent
    answers: dict[int, tuple[int, int]] = field(default_factory=dict)  # peer -> (probe sent at, its epoch)

    @property
    def blocking_set_size(self) -> int:
        """Other members that meet every majority containing this node: N - quorum + 1."""
        return len(self.peer_ids) + 2 - self.quorum_size

    def probe(self, now_ms: int) -> int:
        """The stamp for a probe sent now: the clock, never negative on the wire."""
        stamp_ms = max(0, now_ms)
        self.probes[stamp_ms] = now_ms
        while len(self.probes) > PROBES_REMEMBERED:
            del self.probes[next(iter(self.probes))]
        return stamp_ms

    def wanted(self, now_ms: int) -> list[int]:
        """The members to probe now: those that have not answered, and after the settle time those whose
        answer predates it."""
        settled_ms = self.started_ms + self.settle_ms
        return sorted(
            peer_id
            for peer_id in self.peer_ids
            if peer_id not in self.answers or (now_ms >= settled_ms and self.answers[peer_id][0] < settled_ms)
        )

    def record(self, peer_id: int, echo_ms: int, epoch: int) -> None:
        """An answer echoing `echo_ms`. Only an echo of a stamp this incarnation sent is fresh: answers to
        probes of an earlier incarnation, or made-up stamps, count for nothing."""
        sent_ms = self.probes.get(echo_ms)
        if peer_id not in self.peer_ids or sent_ms is None:
            return
        previous = self.answers.get(peer_id)
        if previous is None or sent_ms >= previous[0]:
            self.answers[peer_id] = (sent_ms, epoch)

    def floor(self, now_ms: int) -> int | None:
        """The epoch this node may vote above, or None while it must go on probing."""
        if set(self.answers) >= self.peer_ids:
            return max((epoch for _, epoch in self.answers.values()), default=0)
        settled_ms = self.started_ms + self.settle_ms
        if now_ms < settled_ms:
            return None
        late = [peer_id for peer_id, (sent_ms, _) in self.answers.items() if sent_ms >= settled_ms]
        if len(late) < self.blocking_set_size:
            return None
        return max(epoch for _, epoch in self.answers.values())

    def learned_nothing_was_ever_elected(self, floor: int) -> bool:
        """Every other member answered with epoch 0: no leader ever existed (a leader holds its epoch on
        disk), so no lease can be counting on an echo of ours from before the start."""
        return floor == 0 and set(self.answers) >= self.peer_ids
