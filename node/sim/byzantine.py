"""Forged messages for the `byzantine-member` nemeses (issue 13): a member that holds the cluster secret.

The member (the *liar*, one per run) keeps running its honest algorithm; while the fault is on, the
nemesis also injects well-signed but arbitrary messages "from" it into the honest nodes: every message
type, epochs around the current ones, far above them but within the door of `base.py`
(`EPOCH_JUMP_MAX`), and far beyond it; ids of members, non-members and the receiver itself; stamps in
the past and the future; pre-vote and granted flags; ring tokens with odd id lists; COORDINATORs naming
anyone; RESIGNs. The randomness is the run's seeded `random.Random`, shaped like the hypothesis
strategies of `tests/algorithms/test_hostile_input.py` (the simulator does not depend on hypothesis).

Two variants:
- forging (`byzantine-member`): anything, including the liar's "I back you": PROMISE granted, CONFIRMED,
  lease echoes (`echo_ms`). A crash-fault protocol counts each voter once; a liar can vote twice.
- honest votes (`byzantine-member-honest-votes`): everything except those. The liar disturbs, claims,
  resigns, proposes, relays odd tokens and COORDINATORs, but never backs anyone it does not back. (Ring
  fails this one: a forged COORDINATOR relay naming another winner of an epoch that already has a leader
  elects a second honest leader of that epoch; tests/sim/test_byzantine.py.)

Epochs let through the door stay below `WALK_CEILING` (absolute): a liar that walks epochs past 2^32,
in steps each within the door, leaves nodes apart for good (a node more than EPOCH_JUMP_MAX above the
others, or a node that lost its disk in a cluster above 2^32, rejects everything as implausible); that
is a documented limit (docs/security.md), not what this sweep measures.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from node.algorithms.base import EPOCH_JUMP_MAX, EPOCH_MAX
from node.core.messages import (
    MAX_INTEGER,
    Confirm,
    Confirmed,
    ConfirmRefused,
    Coordinator,
    Election,
    Heartbeat,
    Message,
    MsgType,
    Ok,
    PreVoteAnswer,
    Promise,
    Propose,
    Resign,
    TokenRefused,
)

WALK_CEILING = EPOCH_JUMP_MAX - 2**20  # "far above, within the door": never above this, absolute
BEYOND_DOOR_MIN = 2 * EPOCH_JUMP_MAX  # "far above the door": rejected by every node below WALK_CEILING
VOTE_TYPES = frozenset({MsgType.CONFIRMED})  # never sent by an honest-votes liar (and no grant, no echo)


@dataclass(frozen=True, slots=True)
class Epochs:
    """The epochs on the nodes' disks when a forgery is built (the generator aims around them)."""

    receiver: int
    liar: int
    low: int
    high: int


class Forger:
    def __init__(
        self, rng: random.Random, members: tuple[int, ...], liar: int, *, forge_votes: bool, failure_ms: int
    ) -> None:
        self.rng = rng
        self.members = members
        self.liar = liar
        self.forge_votes = forge_votes
        self.failure_ms = failure_ms
        top = max(members)
        self._non_members = (0, top + 1, top + 7, MAX_INTEGER)
        self._types = [t for t in MsgType if forge_votes or t not in VOTE_TYPES]

    # --- fields ----------------------------------------------------------------------------------

    def node_id(self, receiver: int) -> int:
        """Members (the liar and the receiver more often), non-members."""
        roll = self.rng.random()
        if roll < 0.25:
            return self.liar
        if roll < 0.4:
            return receiver
        if roll < 0.85:
            return self.rng.choice(self.members)
        return self.rng.choice(self._non_members)

    def sender(self, receiver: int) -> int:
        """The liar, except now and then the receiver itself or a non-member (the door rejects both)."""
        roll = self.rng.random()
        if roll < 0.92:
            return self.liar
        if roll < 0.96:
            return receiver
        return self.rng.choice(self._non_members)

    def epoch(self, epochs: Epochs) -> int:
        rng = self.rng
        roll = rng.random()
        if roll < 0.45:  # around the current ones
            base = rng.choice((epochs.receiver, epochs.liar, epochs.low, epochs.high))
            return max(0, base + rng.randint(-3, 3))
        if roll < 0.55:
            return rng.randint(0, 3)
        if roll < 0.75 and epochs.high < WALK_CEILING:  # far above, within the door
            return rng.randint(epochs.high + 1, WALK_CEILING)
        return rng.choice(  # far above the door: rejected there
            (
                rng.randint(BEYOND_DOOR_MIN, EPOCH_MAX),
                EPOCH_MAX,
                EPOCH_MAX + 1,
                rng.randint(EPOCH_MAX, MAX_INTEGER),
                MAX_INTEGER,
            )
        )

    def stamp(self, now_ms: int) -> int:
        """A clock stamp: recent past (the most plausible echo), now, future, anything, the extremes."""
        rng = self.rng
        return rng.choice(
            (
                max(0, now_ms - rng.randint(0, 3 * self.failure_ms)),
                max(0, now_ms - rng.randint(0, self.failure_ms // 3)),
                now_ms,
                now_ms + rng.randint(1, 10 * self.failure_ms),
                rng.randint(0, max(0, now_ms)),
                0,
                MAX_INTEGER,
            )
        )

    def optional_stamp(self, now_ms: int) -> int | None:
        return None if self.rng.random() < 0.25 else self.stamp(now_ms)

    def echo(self, now_ms: int) -> int | None:
        """An echo of a stamp backs whoever sent it: only a forging liar sends one."""
        return self.optional_stamp(now_ms) if self.forge_votes else None

    def id_list(self, receiver: int) -> tuple[int, ...]:
        rng = self.rng
        roll = rng.random()
        if roll < 0.2:
            return ()
        if roll < 0.35:  # every member, in ring order or shuffled
            ids = list(self.members)
            if rng.random() < 0.5:
                rng.shuffle(ids)
            return tuple(ids)
        return tuple(self.node_id(receiver) for _ in range(rng.randint(1, 2 * len(self.members) + 1)))

    # --- messages --------------------------------------------------------------------------------

    def message(self, receiver: int, epochs: Epochs, now_ms: int) -> Message:
        rng = self.rng
        kind = rng.choice(self._types)
        sender = self.sender(receiver)
        epoch = self.epoch(epochs)
        if kind is MsgType.HEARTBEAT:
            leader = rng.choice((None, sender, self.node_id(receiver)))
            eligible = rng.random() < 0.7
            return Heartbeat(sender, epoch, leader, self.optional_stamp(now_ms), self.echo(now_ms), eligible)
        if kind is MsgType.ELECTION:
            return Election(
                sender, epoch, self.node_id(receiver), self.id_list(receiver), self.id_list(receiver)
            )
        if kind is MsgType.OK:
            return Ok(sender, epoch)
        if kind is MsgType.COORDINATOR:
            return Coordinator(sender, epoch, self.node_id(receiver), self.node_id(receiver))
        if kind is MsgType.PROPOSE:
            resigned = rng.choice((None, None, self.node_id(receiver)))
            return Propose(sender, epoch, rng.random() < 0.5, resigned, self.optional_stamp(now_ms))
        if kind is MsgType.PROMISE:
            granted = self.forge_votes and rng.random() < 0.6
            return Promise(sender, epoch, granted, self.epoch(epochs), self.echo(now_ms))
        if kind is MsgType.PRE_VOTE_ANSWER:
            granted = self.forge_votes and rng.random() < 0.6
            return PreVoteAnswer(sender, epoch, granted, self.epoch(epochs), self.echo(now_ms))
        if kind is MsgType.CONFIRM_REFUSED:
            return ConfirmRefused(sender, epoch, self.epoch(epochs))
        if kind is MsgType.TOKEN_REFUSED:
            return TokenRefused(sender, epoch, self.epoch(epochs))
        if kind is MsgType.RESIGN:
            successor = rng.choice((None, None, self.node_id(receiver)))
            return Resign(sender, epoch, successor, rng.random() < 0.5)
        if kind is MsgType.CONFIRM:
            return Confirm(sender, epoch, self.node_id(receiver), self.stamp(now_ms))
        return Confirmed(sender, epoch, self.stamp(now_ms))
