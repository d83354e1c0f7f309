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


class EventName(StrEnum):
    """Every journal `EVENT` value: one name per thing a node reports (docs/operations.md, "Events").
    The algorithms, the runtime, metrics, the history checkers, the timeline and the simulator all use
    these; a `str`, so an EVENT parsed from a journal compares equal to its member."""

    # From the runtime.
    LISTENING = "listening"
    CONFIG_WARNING = "config_warning"
    STOPPING = "stopping"
    CONFIG_RELOADED = "config_reloaded"
    RELOAD_REJECTED = "reload_rejected"
    RELOAD_NEEDS_RESTART = "reload_needs_restart"
    CRASHED = "crashed"
    STARTUP_FAILED = "startup_failed"
    STATE_RECORD_INVALID = "state_record_invalid"
    PEER_UNREACHABLE = "peer_unreachable"
    HOOK_FINISHED = "hook_finished"
    CONTROL_REQUEST = "control_request"
    # From the algorithms (MESSAGE_REJECTED from both).
    MESSAGE_REJECTED = "message_rejected"
    STARTED = "started"
    PEER_RECOVERED = "peer_recovered"
    PEER_SUSPECTED = "peer_suspected"
    ELECTION_STARTED = "election_started"
    ELECTION_TIMEOUT = "election_timeout"
    ELECTION_DECIDED = "election_decided"
    ELECTION_ABSORBED = "election_absorbed"
    ELECTION_ABSTAINED = "election_abstained"
    RING_REPAIRED = "ring_repaired"
    ELECTION_FAILED = "election_failed"
    ELECTION_ABANDONED = "election_abandoned"
    BECAME_LEADER = "became_leader"
    LEADER_ACCEPTED = "leader_accepted"
    LEADER_LOST = "leader_lost"
    STEPPED_DOWN = "stepped_down"
    CATCH_UP_STARTED = "catch_up_started"
    CATCH_UP_FINISHED = "catch_up_finished"
    REELECTION_STARTED = "reelection_started"
    QUORUM_LOST = "quorum_lost"
    NO_QUORUM = "no_quorum"
    RESIGNED = "resigned"
    LEAD_DECLINED = "lead_declined"
    ELIGIBILITY_CHANGED = "eligibility_changed"


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

    event: EventName
    message: str
    level: LogLevel = LogLevel.INFO
    peer_id: int | None = None
    epoch: int | None = None
    leader_id: int | None = None


@dataclass(frozen=True, slots=True)
class RunGate:
    """Run the before_lead gate for the won `epoch` and report it with a GateFinished event (the node
    does not take office until then)."""

    epoch: int


Action = Send | Broadcast | SetTimer | CancelTimer | Persist | RoleChanged | Log | RunGate
