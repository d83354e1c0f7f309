"""Everything that can happen to a node, as data. Every event carries the driver's clock (`now_ms`)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from node.core.messages import Message


class TimerId(StrEnum):
    HEARTBEAT = "heartbeat"  # send heartbeats to every peer
    DETECTOR = "detector"  # the next failure-detector deadline
    LISTEN = "listen"  # start-up / rejoin: listen for a leader before electing
    ELECTION = "election"  # algorithm-specific election wait (Bully: OKs; Ring: the token's return)
    COORDINATOR = "coordinator"  # waiting for a COORDINATOR after deferring or promising
    PROPOSAL = "proposal"  # waiting for promises of an epoch
    BACKOFF = "backoff"  # retry an election after a failed attempt
    GATE = "gate"  # the before_lead gate has not answered within its timeout (the runtime's kill)
    HOLD_OFF = "hold-off"  # the back-off after declining or handing off leadership is over
    PRE_VOTE_DEFER = "pre-vote-defer"  # the earliest deadline of a pre-vote held while following a leader


@dataclass(frozen=True, slots=True)
class Start:
    now_ms: int


@dataclass(frozen=True, slots=True)
class MessageReceived:
    now_ms: int
    message: Message


@dataclass(frozen=True, slots=True)
class TimerFired:
    now_ms: int
    timer: TimerId


@dataclass(frozen=True, slots=True)
class PeerUnreachable:
    """The transport saw the connection to `peer_id` refused, reset or closed: a hint, not a verdict."""

    now_ms: int
    peer_id: int


@dataclass(frozen=True, slots=True)
class ShutdownRequested:
    """SIGTERM: a leader hands off before the process exits."""

    now_ms: int


@dataclass(frozen=True, slots=True)
class GateFinished:
    """The before_lead gate (RunGate) for `epoch` finished: `passed` when it exited 0 within its timeout."""

    now_ms: int
    epoch: int
    passed: bool
    detail: str = ""  # e.g. "exit status 1", "timed out after 10000 ms": for the journal


@dataclass(frozen=True, slots=True)
class EligibilityChanged:
    """The node's own health changed: `reason` says why it may not run for leader (a failing health
    check, maintenance), None when it may again."""

    now_ms: int
    reason: str | None


@dataclass(frozen=True, slots=True)
class SwitchoverRequested:
    """The operator asks the leader to hand off, to `target` or (None) to the best eligible node. The
    runtime asks `switchover_refusal` first, so a request that cannot succeed changes nothing."""

    now_ms: int
    target: int | None


Event = (
    Start
    | MessageReceived
    | TimerFired
    | PeerUnreachable
    | ShutdownRequested
    | GateFinished
    | EligibilityChanged
    | SwitchoverRequested
)
