"""Failure detector, as pure code.

Rule: a peer is `suspected` when nothing was heard from it for `failure_timeout_ms`, and `alive` again as
soon as anything is heard. Until first heard, a peer is suspected. A refused/reset connection sets an
`unreachable` hint that algorithms may use to act sooner; it never changes the timeout rule itself, and
it clears when the peer is heard from again.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class PeerState(StrEnum):
    ALIVE = "alive"
    SUSPECTED = "suspected"


@dataclass(slots=True)
class _Peer:
    state: PeerState = PeerState.SUSPECTED
    last_heard_ms: int | None = None
    unreachable_hint: bool = False


class FailureDetector:
    # Read at every event (expiry, quorum checks, the detector timer), so kept at hand rather than
    # recomputed: the peers in id order (`expire` reports in that order), their ids as a set, how many
    # are alive, and the next deadline (recomputed only after a peer was heard or suspected).
    def __init__(self, peer_ids: tuple[int, ...], failure_timeout_ms: int) -> None:
        self.failure_timeout_ms = failure_timeout_ms
        self._peers = {peer_id: _Peer() for peer_id in sorted(peer_ids)}
        self._peer_ids = frozenset(self._peers)
        self._alive_count = 0  # peers whose state is ALIVE
        self._deadline_ms: int | None = None  # next_deadline_ms(), unless _deadline_stale
        self._deadline_stale = False

    @property
    def peer_ids(self) -> frozenset[int]:
        return self._peer_ids

    def heard(self, peer_id: int, now_ms: int) -> bool:
        """Record a message from `peer_id`. True when this made a suspected peer alive."""
        peer = self._peers[peer_id]
        before_ms = peer.last_heard_ms
        peer.last_heard_ms = now_ms
        peer.unreachable_hint = False
        if peer.state is PeerState.SUSPECTED:
            peer.state = PeerState.ALIVE
            self._alive_count += 1
            if not self._deadline_stale:  # one more alive peer: the deadline can only come sooner
                until_ms = now_ms + self.failure_timeout_ms
                if self._deadline_ms is None or until_ms < self._deadline_ms:
                    self._deadline_ms = until_ms
            return True
        deadline_ms = self._deadline_ms
        if deadline_ms is None or before_ms is None or before_ms + self.failure_timeout_ms <= deadline_ms:
            self._deadline_stale = True  # it may have been the earliest: its deadline moved later
        return False

    def hint_unreachable(self, peer_id: int) -> bool:
        """The transport could not reach `peer_id`. True when the hint is new."""
        peer = self._peers[peer_id]
        fresh = not peer.unreachable_hint
        peer.unreachable_hint = True
        return fresh

    def expire(self, now_ms: int) -> list[int]:
        """Apply the timeout rule at `now_ms`; the peers that became suspected, in id order."""
        newly_suspected: list[int] = []
        if not self._alive_count:
            return newly_suspected
        if not self._deadline_stale and self._deadline_ms is not None and now_ms < self._deadline_ms:
            return newly_suspected  # no alive peer's silence has reached the timeout yet
        timeout_ms = self.failure_timeout_ms
        for peer_id, peer in self._peers.items():  # in id order (see __init__)
            if peer.state is PeerState.ALIVE and (
                peer.last_heard_ms is None or now_ms - peer.last_heard_ms >= timeout_ms
            ):
                peer.state = PeerState.SUSPECTED
                self._alive_count -= 1
                self._deadline_stale = True
                newly_suspected.append(peer_id)
        return newly_suspected

    def next_deadline_ms(self) -> int | None:
        """When the next alive peer would become suspected if nothing more is heard."""
        if not self._deadline_stale:
            return self._deadline_ms
        earliest_ms: int | None = None  # the earliest last_heard_ms of an alive peer
        for peer in self._peers.values():
            heard_ms = peer.last_heard_ms
            if (
                peer.state is PeerState.ALIVE
                and heard_ms is not None
                and (earliest_ms is None or heard_ms < earliest_ms)
            ):
                earliest_ms = heard_ms
        self._deadline_ms = None if earliest_ms is None else earliest_ms + self.failure_timeout_ms
        self._deadline_stale = False
        return self._deadline_ms

    def state(self, peer_id: int) -> PeerState:
        return self._peers[peer_id].state

    def is_alive(self, peer_id: int) -> bool:
        return self._peers[peer_id].state is PeerState.ALIVE

    def is_available(self, peer_id: int) -> bool:
        """Alive and not hinted unreachable: worth waiting for."""
        peer = self._peers[peer_id]
        return peer.state is PeerState.ALIVE and not peer.unreachable_hint

    def is_hinted(self, peer_id: int) -> bool:
        return self._peers[peer_id].unreachable_hint

    def last_heard_ms(self, peer_id: int) -> int | None:
        return self._peers[peer_id].last_heard_ms

    def alive_count(self) -> int:
        return self._alive_count
