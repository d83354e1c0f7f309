"""Leases: how long a leader may act, and how long a voter stays out of elections for it.

Three pieces, each a small dataclass with pure methods (no events, no I/O; the caller passes `now_ms`),
all measured in failure_timeout (T). The reasoning is in docs/algorithms.md, "Leases":

- `LeaderLease`, the leader's side: each follower that echoed one of its stamps s backs it until
  min(s, now) + T; the leader leads while itself plus the unexpired backers make a majority.
- `OwedLease`, the voter's side: a node that echoed a leader's stamp (heartbeat, CONFIRM, stamped
  handoff PROPOSE) votes for nobody else until T after it received that stamp, unless the leader is its
  current one, the candidate, a leader that resigned, or gone (its connection refused).
- `StartupBlackout`: a restarted node has forgotten whom it backed, so for T after its start it votes
  for nobody; accepting a leader ends it early, and turns the rest of it into a lease owed that leader.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


def support_until_ms(echo_ms: int, now_ms: int, timeout_ms: int) -> int:
    """How long a peer that echoed our stamp `echo_ms` backs us. A stamp from our future (a peer's bug)
    counts as now: it never extends a lease."""
    return min(echo_ms, now_ms) + timeout_ms


def unexpired(leases: dict[int, int], now_ms: int) -> dict[int, int]:
    """The backers (peer -> end of its support) whose support has not run out at `now_ms`."""
    return {peer_id: until_ms for peer_id, until_ms in leases.items() if until_ms > now_ms}


@dataclass(slots=True)
class LeaderLease:
    timeout_ms: int  # failure_timeout
    until_ms: dict[int, int] = field(default_factory=dict)  # follower -> end of its acknowledged support

    def begin(self, leases: dict[int, int]) -> None:
        """Take office backed by `leases` (the confirmations, or the grants of a stamped proposal)."""
        self.until_ms = dict(leases)

    def echoed(self, peer_id: int, echo_ms: int, now_ms: int) -> None:
        """`peer_id` echoed our stamp `echo_ms`: its support lasts until then + T (never shortened)."""
        until_ms = support_until_ms(echo_ms, now_ms, self.timeout_ms)
        self.until_ms[peer_id] = max(self.until_ms.get(peer_id, 0), until_ms)

    def supporters(self, now_ms: int) -> int:
        """The leader itself plus the followers whose acknowledged support has not run out."""
        return 1 + len(unexpired(self.until_ms, now_ms))

    def deadline_ms(self, now_ms: int, quorum_size: int) -> int | None:
        """When support falls below a majority if no echo arrives: the (quorum-1)-th longest lease."""
        needed = quorum_size - 1
        leases = sorted(unexpired(self.until_ms, now_ms).values(), reverse=True)
        return leases[needed - 1] if needed and len(leases) >= needed else None


@dataclass(slots=True)
class OwedLease:
    timeout_ms: int  # failure_timeout
    leader_id: int | None = None  # the leader whose stamp we echoed last
    until_ms: int = 0  # until when it may count on our support

    def owe(self, leader_id: int, now_ms: int) -> None:
        """We just echoed `leader_id`'s stamp: it counts on us until T from now at most."""
        self.owe_until(leader_id, now_ms + self.timeout_ms)

    def owe_until(self, leader_id: int, until_ms: int) -> None:
        self.leader_id = leader_id
        self.until_ms = until_ms

    def release(self, leader_id: int) -> None:
        """`leader_id` resigned the epoch we follow it under: it left office before it said so, and
        counts on nobody's support any more."""
        if self.leader_id == leader_id:
            self.leader_id = None
            self.until_ms = 0

    def binds(
        self,
        now_ms: int,
        *,
        following: int | None,
        exempt: tuple[int | None, ...] = (),
        is_gone: Callable[[int], bool] = lambda _: False,
    ) -> bool:
        """Whether the lease still keeps us from voting at `now_ms`. Not when it is over, not for the
        leader we follow now (it may move to a higher epoch: it stops claiming the old one), not for the
        `exempt` ones (the candidate itself, a leader that resigned), nor for a leader that `is_gone`
        (its connection is refused: its process claims nothing any more)."""
        owed_to = self.leader_id
        if owed_to is None or now_ms >= self.until_ms or owed_to == following:
            return False
        if owed_to in exempt:
            return False
        return not is_gone(owed_to)


@dataclass(slots=True)
class StartupBlackout:
    timeout_ms: int  # failure_timeout
    started_ms: int | None = None  # None: no blackout (never started, ended early, or lifted)

    def start(self, now_ms: int) -> None:
        self.started_ms = now_ms

    def active(self, now_ms: int) -> bool:
        return self.started_ms is not None and now_ms < self.started_ms + self.timeout_ms

    def ends_ms(self) -> int | None:
        """When the blackout ends (or ended), unless it was lifted."""
        return None if self.started_ms is None else self.started_ms + self.timeout_ms

    def lift(self) -> None:
        """End it now: a leader was accepted, or catch-up learned that no leader ever existed."""
        self.started_ms = None

    def end_on_accepting(self, leader_id: int, now_ms: int, owed: OwedLease) -> None:
        """This node accepts `leader_id`: the blackout ends, and if it was still running, `leader_id`
        (maybe the leader backed before the restart) is owed our support for the rest of it."""
        ends_ms = self.ends_ms()
        if ends_ms is not None and now_ms < ends_ms:
            owed.owe_until(leader_id, ends_ms)
        self.lift()


def votes_again_in_ms(now_ms: int, owed: OwedLease, blackout: StartupBlackout) -> int:
    """How long from now until neither the owed lease nor the start-up blackout keeps this node from
    voting (negative or zero: they are over). Exemptions are not applied: an upper bound."""
    waits_ms = [owed.until_ms - now_ms]
    ends_ms = blackout.ends_ms()
    if ends_ms is not None:
        waits_ms.append(ends_ms - now_ms)
    return max(waits_ms)
