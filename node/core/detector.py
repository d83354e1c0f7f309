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
    def __init__(self, peer_ids: tuple[int, ...], failure_timeout_ms: int) -> None:
        self.failure_timeout_ms = failure_timeout_ms
        self._peers = {peer_id: _Peer() for peer_id in peer_ids}

    @property
    def peer_ids(self) -> frozenset[int]:
        return frozenset(self._peers)

    def heard(self, peer_id: int, now_ms: int) -> bool:
        """Record a message from `peer_id`. True when this made a suspected peer alive."""
        peer = self._peers[peer_id]
        peer.last_heard_ms = now_ms
        peer.unreachable_hint = False
        if peer.state is PeerState.SUSPECTED:
            peer.state = PeerState.ALIVE
            return True
        return False

    def hint_unreachable(self, peer_id: int) -> bool:
        """The transport could not reach `peer_id`. True when the hint is new."""
        peer = self._peers[peer_id]
        fresh = not peer.unreachable_hint
        peer.unreachable_hint = True
        return fresh

    def expire(self, now_ms: int) -> list[int]:
        """Apply the timeout rule at `now_ms`; the peers that became suspected, in id order."""
        newly_suspected = []
        for peer_id, peer in sorted(self._peers.items()):
            if peer.state is PeerState.ALIVE and self._silent_too_long(peer, now_ms):
                peer.state = PeerState.SUSPECTED
                newly_suspected.append(peer_id)
        return newly_suspected

    def _silent_too_long(self, peer: _Peer, now_ms: int) -> bool:
        return peer.last_heard_ms is None or now_ms - peer.last_heard_ms >= self.failure_timeout_ms

    def next_deadline_ms(self) -> int | None:
        """When the next alive peer would become suspected if nothing more is heard."""
        deadlines = [
            peer.last_heard_ms + self.failure_timeout_ms
            for peer in self._peers.values()
            if peer.state is PeerState.ALIVE and peer.last_heard_ms is not None
        ]
        return min(deadlines) if deadlines else None

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
        return sum(1 for peer in self._peers.values() if peer.state is PeerState.ALIVE)
