"""The simulated network: per-link delays, drops, duplicates, reordering, partitions and clogs.

Every random choice comes from the run's one `random.Random`. A link is an ordered pair (src, dst).
Links are FIFO like a TCP connection unless a reorder fault is on. Partitions model `iptables -j DROP`:
a message on a blocked link vanishes without any hint to the sender. A clogged node's traffic is held,
not lost, and released (late) when it is unclogged, as in FoundationDB's simulator.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

Link = tuple[int, int]

MAX_HELD_MESSAGES = 10_000  # clogged traffic beyond this is dropped, oldest first
DELAY_MS_MAX_LIMIT = 60_000  # no fault may delay a message longer than this
REORDER_JITTER_MS = 300  # while reordering, each message gets up to this much extra, unordered delay


@dataclass(slots=True)
class LinkFaults:
    """Network-wide fault knobs, switched by the nemesis."""

    drop_probability: float = 0.0
    duplicate_probability: float = 0.0
    reorder: bool = False  # False: every link delivers in send order
    extra_delay_ms_max: int = 0  # each message gets an extra uniform delay in [0, this]

    def __post_init__(self) -> None:
        if not (0.0 <= self.drop_probability <= 1.0 and 0.0 <= self.duplicate_probability <= 1.0):
            raise ValueError("probabilities must lie in [0, 1]")
        if not 0 <= self.extra_delay_ms_max <= DELAY_MS_MAX_LIMIT:
            raise ValueError(f"extra_delay_ms_max must lie in [0, {DELAY_MS_MAX_LIMIT}]")


@dataclass(frozen=True, slots=True)
class NetworkProfile:
    """The healthy network: each link draws its own delay range inside these bounds. `same_on_every_link`
    (tests): no per-link range; every message on every link draws its delay from the whole bounds."""

    delay_ms_min: int = 1
    delay_ms_max: int = 30
    same_on_every_link: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.delay_ms_min <= self.delay_ms_max <= DELAY_MS_MAX_LIMIT:
            raise ValueError("need 0 <= delay_ms_min <= delay_ms_max <= the limit")


class Network:
    def __init__(self, node_ids: Iterable[int], rng: random.Random, profile: NetworkProfile) -> None:
        self._rng = rng
        self.node_ids = tuple(sorted(node_ids))
        self._link_delay_ms: dict[Link, tuple[int, int]] = {}
        for src in self.node_ids:
            for dst in self.node_ids:
                if src != dst and profile.same_on_every_link:
                    self._link_delay_ms[(src, dst)] = (profile.delay_ms_min, profile.delay_ms_max)
                elif src != dst:
                    low = rng.randint(profile.delay_ms_min, profile.delay_ms_max)
                    self._link_delay_ms[(src, dst)] = (low, rng.randint(low, profile.delay_ms_max))
        self._last_delivery_ms: dict[Link, int] = {}
        self._block_rules: dict[int, frozenset[Link]] = {}
        self._blocked_count: dict[Link, int] = {}
        self._next_rule_id = 1
        self._clogged: set[int] = set()
        self.faults = LinkFaults()
        self.dropped_messages = 0

    # --- partitions ------------------------------------------------------------------------------

    def block(self, links: Iterable[Link]) -> int:
        """Drop every message on `links` until `unblock(rule_id)`. Rules stack: a link is open only
        when no rule blocks it."""
        rule = frozenset(links)
        rule_id = self._next_rule_id
        self._next_rule_id += 1
        self._block_rules[rule_id] = rule
        for link in rule:
            self._blocked_count[link] = self._blocked_count.get(link, 0) + 1
        return rule_id

    def unblock(self, rule_id: int) -> None:
        for link in self._block_rules.pop(rule_id):
            self._blocked_count[link] -= 1
            if self._blocked_count[link] == 0:
                del self._blocked_count[link]

    def partition(self, sides: Iterable[Iterable[int]]) -> int:
        """Symmetric partition: no traffic between different sides, both directions."""
        groups = [frozenset(side) for side in sides]
        return self.block(
            (src, dst)
            for i, a in enumerate(groups)
            for j, b in enumerate(groups)
            if i != j
            for src in sorted(a)
            for dst in sorted(b)
        )

    def one_way(self, sources: Iterable[int], destinations: Iterable[int]) -> int:
        """Block only sources -> destinations; the other direction still flows."""
        dsts = sorted(set(destinations))
        return self.block((s, d) for s in sorted(set(sources)) for d in dsts if s != d)

    def is_blocked(self, src: int, dst: int) -> bool:
        return (src, dst) in self._blocked_count

    # --- clogs -----------------------------------------------------------------------------------

    def clog(self, node_id: int) -> None:
        self._clogged.add(node_id)

    def unclog(self, node_id: int) -> None:
        self._clogged.discard(node_id)

    def is_clogged(self, src: int, dst: int) -> bool:
        return src in self._clogged or dst in self._clogged

    # --- transit ---------------------------------------------------------------------------------

    def transit_delays_ms(self, src: int, dst: int, now_ms: int) -> list[int]:
        """Delivery times for one message sent now: [] when dropped, two when duplicated."""
        faults = self.faults
        rng = self._rng
        if (src, dst) in self._blocked_count or (
            faults.drop_probability and rng.random() < faults.drop_probability
        ):
            self.dropped_messages += 1
            return []
        if faults.duplicate_probability and rng.random() < faults.duplicate_probability:
            return [self._delivery_ms(src, dst, now_ms), self._delivery_ms(src, dst, now_ms)]
        return [self._delivery_ms(src, dst, now_ms)]

    def release_delay_ms(self, src: int, dst: int, now_ms: int) -> int:
        """Delivery time for a message released from a clog."""
        return self._delivery_ms(src, dst, now_ms)

    def _delivery_ms(self, src: int, dst: int, now_ms: int) -> int:
        low, high = self._link_delay_ms[(src, dst)]
        at_ms = now_ms + self._uniform_ms(low, high)
        if self.faults.extra_delay_ms_max:
            at_ms += self._uniform_ms(0, self.faults.extra_delay_ms_max)
        if self.faults.reorder:
            at_ms += self._uniform_ms(0, REORDER_JITTER_MS)
        else:
            at_ms = max(at_ms, self._last_delivery_ms.get((src, dst), 0))
            self._last_delivery_ms[(src, dst)] = at_ms
        return at_ms

    def _uniform_ms(self, low: int, high: int) -> int:
        """An integer in [low, high]; randint() is several times slower and this runs per message."""
        return low + int(self._rng.random() * (high - low + 1))

    def last_delivery_ms(self, src: int, dst: int) -> int:
        """When the last in-order message on this link arrives (0 if none was sent)."""
        return self._last_delivery_ms.get((src, dst), 0)

    def heal(self) -> None:
        """Remove every partition, clog and fault knob (the liveness phase starts from here)."""
        for rule_id in list(self._block_rules):
            self.unblock(rule_id)
        self._clogged.clear()
        self.faults = LinkFaults()
