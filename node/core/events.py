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


Event = Start | MessageReceived | TimerFired | PeerUnreachable | ShutdownRequested
