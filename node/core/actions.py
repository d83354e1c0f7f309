"""Everything a node asks its driver to do, as data, in order.

Drivers execute actions in list order; a `Persist` must be durable before the driver executes the next
action (persist before send).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

from node.core.events import TimerId
from node.core.messages import Message
from node.core.state import DurableState


class Role(StrEnum):
    LEADER = "leader"
    FOLLOWER = "follower"
    CANDIDATE = "candidate"
    NO_QUORUM = "no-quorum"


class LogLevel(IntEnum):  # syslog priorities, as journald wants them
    ERROR = 3
    WARNING = 4
    NOTICE = 5
    INFO = 6
    DEBUG = 7


@dataclass(frozen=True, slots=True)
class Send:
    peer_id: int
    message: Message


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Send to every peer except this node."""

    message: Message


@dataclass(frozen=True, slots=True)
class SetTimer:
    """(Re)arm `timer` to fire at absolute time `at_ms`; an armed timer of the same id is replaced."""

    timer: TimerId
    at_ms: int


@dataclass(frozen=True, slots=True)
class CancelTimer:
    timer: TimerId


@dataclass(frozen=True, slots=True)
class Persist:
    state: DurableState


@dataclass(frozen=True, slots=True)
class RoleChanged:
    role: Role
    leader_id: int | None
    epoch: int


@dataclass(frozen=True, slots=True)
class Log:
    """One journal entry. `event` is the EVENT field; the others map to PEER_ID, EPOCH, LEADER_ID."""

    event: str
    message: str
    level: LogLevel = LogLevel.INFO
    peer_id: int | None = None
    epoch: int | None = None
    leader_id: int | None = None


Action = Send | Broadcast | SetTimer | CancelTimer | Persist | RoleChanged | Log
