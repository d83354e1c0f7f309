"""One simulated node: the process (an algorithm object, its timers) and its disk.

A crash drops the process and keeps the disk; a restart builds a new algorithm object from the disk's
`DurableState`. Every life of a node has its own `incarnation` number: timers, deliveries and hints
addressed to an earlier life are discarded when they come due.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from node.core.actions import Role
from node.core.events import Event, TimerId
from node.core.messages import Message
from node.core.protocol import Algorithm
from node.core.settings import Settings
from node.core.state import DurableState

MAX_STASHED_ITEMS = 10_000  # work queued for a paused node (a socket buffer); beyond it, new work is lost


@dataclass(slots=True)  # not frozen: built once per message, and frozen init is slower
class Delivery:
    dst: int
    incarnation: int
    src: int
    message: Message


@dataclass(slots=True)  # not frozen: built once per message, and frozen init is slower
class TimerDue:
    node_id: int
    incarnation: int
    timer: TimerId
    generation: int


@dataclass(slots=True)  # not frozen: built once per message, and frozen init is slower
class HintDue:
    """The transport of `node_id` saw its connection to `peer_id` refused or reset."""

    node_id: int
    incarnation: int
    peer_id: int


@dataclass(slots=True)
class LocalDue:
    """Something the node's own host tells it (its before_lead gate finished, its health changed, the
    operator asked for a switchover): `make(now_ms)` builds the event when it comes due."""

    node_id: int
    incarnation: int
    label: str
    make: Callable[[int], Event]


NodeItem = Delivery | TimerDue | HintDue | LocalDue


class SimNode:
    def __init__(self, settings: Settings) -> None:
        self.node_id = settings.node_id
        self.settings = settings
        self.peer_ids = settings.peer_ids
        self.disk = DurableState()
        self.algorithm: Algorithm | None = None
        self.incarnation = 0
        self.started_ms = 0
        self.timers: dict[TimerId, int] = {}  # armed timer -> generation
        self.paused = False
        self.stopping = False  # SIGTERM handled, the process exits shortly
        self.stash: deque[NodeItem] = deque()
        self.stash_overflow = 0
        self.heard_ms: dict[int, int] = {}  # peer -> last delivery time, in this life
        self.stale_after_ms: int | None = None  # stale-leader deadline from heard_ms; None: recompute
        self.received_prefix = f"n{self.node_id} <- "  # of its delivery lines in the trace
        self.connected: set[int] = set()  # peers with an open connection to this life
        self.role = Role.FOLLOWER
        self.leader_id: int | None = None
        self.epoch = 0
        self.published: tuple[Role, int | None, int] | None = None  # the last RoleChanged
        self.restarted = False  # no step yet since the last (re)start
        self.gates_passed: set[int] = set()  # epochs whose before_lead gate passed, in this life
        self.ineligible = False  # what the host last told it (EligibilityChanged)
        self.reelecting = False  # an incumbent's re-election runs (it keeps office without a new gate)

    @property
    def alive(self) -> bool:
        return self.algorithm is not None

    @property
    def running(self) -> bool:
        """Alive and able to act (not SIGSTOPped)."""
        return self.algorithm is not None and not self.paused

    def stash_item(self, item: NodeItem) -> None:
        if len(self.stash) >= MAX_STASHED_ITEMS:
            self.stash_overflow += 1
            return
        self.stash.append(item)

    def kill(self) -> None:
        """SIGKILL: memory, timers and queued work are gone; the disk stays."""
        self.algorithm = None
        self.stopping = False
        self.timers.clear()
        self.paused = False
        self.stash.clear()
        self.heard_ms.clear()
        self.stale_after_ms = None
        self.connected.clear()
        self.role = Role.FOLLOWER
        self.leader_id = None
        self.published = None
        self.gates_passed = set()
        self.ineligible = False
        self.reelecting = False

    def reborn(self, algorithm: Algorithm, now_ms: int) -> None:
        self.kill()
        self.incarnation += 1
        self.algorithm = algorithm
        self.started_ms = now_ms
        self.stale_after_ms = None
        self.restarted = True
