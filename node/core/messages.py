"""Typed protocol messages and their wire form (one place for to_wire/from_wire).

Every message carries its sender (`from` on the wire) and the sender's epoch. Messages are frozen and
validated on construction, so an invalid message cannot exist in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, fields
from enum import StrEnum
from typing import Any, ClassVar

from node.core.errors import RemoteProtocolError

MAX_IDS_IN_MESSAGE = 1024  # a ring token can never list more members than this
MAX_INTEGER = 2**63 - 1  # ids and epochs: what any sane peer (and a signed 64-bit field) can hold


class MsgType(StrEnum):
    HEARTBEAT = "HEARTBEAT"
    ELECTION = "ELECTION"
    OK = "OK"
    COORDINATOR = "COORDINATOR"
    PROPOSE = "PROPOSE"
    PROMISE = "PROMISE"
    PRE_VOTE_ANSWER = "PRE_VOTE_ANSWER"
    CONFIRM_REFUSED = "CONFIRM_REFUSED"
    TOKEN_REFUSED = "TOKEN_REFUSED"
    RESIGN = "RESIGN"
    CONFIRM = "CONFIRM"
    CONFIRMED = "CONFIRMED"


def _is_int(value: object) -> bool:
    return type(value) is int


def _check_node_id(name: str, value: object) -> None:
    if not _is_int(value) or not 0 <= value <= MAX_INTEGER:  # type: ignore[operator]
        raise ValueError(f"{name} must be an integer in [0, 2^63), got {value!r}")


def _check_optional_node_id(name: str, value: object) -> None:
    if value is not None:
        _check_node_id(name, value)


def _check_bool(name: str, value: object) -> None:
    if type(value) is not bool:
        raise ValueError(f"{name} must be a boolean, got {value!r}")


def _check_ids(name: str, value: object) -> None:
    if not isinstance(value, tuple) or len(value) > MAX_IDS_IN_MESSAGE:
        raise ValueError(f"{name} must be a tuple of at most {MAX_IDS_IN_MESSAGE} node ids")
    for item in value:
        _check_node_id(name, item)


# Fields added after the first release: left off the wire while they hold their default, so that a peer
# of the previous release (which rejects unknown fields) still reads every frame that does not use them.
_OMITTED_AT_DEFAULT = frozenset({"abstained", "eligible", "successor", "staying"})

# attribute name -> (wire name, validator)
_Validator = Callable[[str, object], None]
_FIELD_SPECS: dict[str, tuple[str, _Validator]] = {
    "sender": ("from", _check_node_id),
    "epoch": ("epoch", _check_node_id),
    "leader_id": ("leader", _check_optional_node_id),
    "initiator": ("initiator", _check_node_id),
    "ids": ("ids", _check_ids),
    "abstained": ("abstained", _check_ids),
    "pre_vote": ("pre_vote", _check_bool),
    "granted": ("granted", _check_bool),
    "known_epoch": ("known_epoch", _check_node_id),
    "sent_ms": ("sent_ms", _check_optional_node_id),
    "echo_ms": ("echo_ms", _check_optional_node_id),
    "resigned_leader": ("resigned_leader", _check_optional_node_id),
    "eligible": ("eligible", _check_bool),
    "successor": ("successor", _check_optional_node_id),
    "staying": ("staying", _check_bool),
}


def _checks_of(message: object) -> tuple[tuple[str, _Validator], ...]:
    """(field, validator) for every field of the message's class, in field order."""
    return tuple((f.name, _FIELD_SPECS[f.name][1]) for f in fields(message))  # type: ignore[arg-type]


# message class -> its `_checks_of`: built at its first construction (`fields()` is slow, and a message is
# built per send)
_CHECKS: dict[type, tuple[tuple[str, _Validator], ...]] = {}


class _Wire:
    """Mixin: validation on construction plus the wire mapping shared by every message type."""

    TYPE: ClassVar[MsgType]

    def __post_init__(self) -> None:
        checks = _CHECKS.get(type(self))
        if checks is None:
            checks = _CHECKS[type(self)] = _checks_of(self)
        for name, check in checks:
            check(name, getattr(self, name))

    @property
    def type(self) -> MsgType:
        return self.TYPE

    def to_wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.TYPE.value}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.name in _OMITTED_AT_DEFAULT and value == f.default:
                continue
            body[_FIELD_SPECS[f.name][0]] = list(value) if isinstance(value, tuple) else value
        return body


@dataclass(frozen=True, slots=True)
class Heartbeat(_Wire):
    """Sent by every node every heartbeat interval. `leader_id` is the sender's current leader belief;
    `leader_id == sender` means the sender claims to lead under `epoch`.

    Leader lease: a leader stamps its heartbeats with its own clock (`sent_ms`); a follower echoes the
    last stamp it received from its leader (`echo_ms`). The leader counts a follower's support only
    until echo + failure_timeout, which ends before that follower could suspect it, so a leader resumed
    from a long pause finds its lease over before it can act under its old epoch.

    `eligible` is false while the sender may not run for leader (a failing health check, maintenance,
    the back-off after it declined or handed off): it still votes, and its peers do not wait for it."""

    TYPE: ClassVar[MsgType] = MsgType.HEARTBEAT
    sender: int
    epoch: int
    leader_id: int | None
    sent_ms: int | None = None
    echo_ms: int | None = None
    eligible: bool = True


@dataclass(frozen=True, slots=True)
class Election(_Wire):
    """Bully: sent to higher ids. Ring: the token, `ids` collected so far, `epoch` proposed by `initiator`;
    `abstained` lists the nodes that passed it on without voting (in their start-up blackout, or still
    backing a leader's lease): they promised nothing, and the token does not come back to them."""

    TYPE: ClassVar[MsgType] = MsgType.ELECTION
    sender: int
    epoch: int
    initiator: int
    ids: tuple[int, ...] = ()
    abstained: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Ok(_Wire):
    """Bully: a higher id answers an ELECTION and takes over the election."""

    TYPE: ClassVar[MsgType] = MsgType.OK
    sender: int
    epoch: int


@dataclass(frozen=True, slots=True)
class Coordinator(_Wire):
    """`leader_id` leads under `epoch`. Ring: forwarded round the ring until it is back at `initiator`."""

    TYPE: ClassVar[MsgType] = MsgType.COORDINATOR
    sender: int
    epoch: int
    leader_id: int
    initiator: int

    def __post_init__(self) -> None:
        _Wire.__post_init__(self)
        _check_node_id("leader_id", self.leader_id)  # unlike a heartbeat's, never null


@dataclass(frozen=True, slots=True)
class Propose(_Wire):
    """A candidate asks for a promise of `epoch` (answered by PROMISE). `pre_vote` asks "would you?"
    without binding anyone (answered by PRE_VOTE_ANSWER).
    `resigned_leader` names a leader whose RESIGN the candidate holds: a voter still following that leader
    need not wait for the RESIGN to reach it too (graceful handoff without a lost round). Such a handoff
    proposal also carries the candidate's clock (`sent_ms`): a grant echoes it and counts as the voter's
    CONFIRMED at once, which saves the confirmation round trip."""

    TYPE: ClassVar[MsgType] = MsgType.PROPOSE
    sender: int
    epoch: int
    pre_vote: bool
    resigned_leader: int | None = None
    sent_ms: int | None = None


@dataclass(frozen=True, slots=True)
class _VoteAnswer(_Wire):
    """The fields of an answer to a PROPOSE (PROMISE and PRE_VOTE_ANSWER: two types, one meaning each)."""

    sender: int
    epoch: int
    granted: bool
    known_epoch: int
    echo_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Promise(_VoteAnswer):
    """Answer to a binding PROPOSE for `epoch`: `granted` is the durable promise (persisted before this
    is sent), or its refusal. `known_epoch` is the highest epoch the voter has promised or accepted.
    `echo_ms`: a grant of a stamped (handoff) proposal echoes its stamp, like CONFIRMED."""

    TYPE: ClassVar[MsgType] = MsgType.PROMISE


@dataclass(frozen=True, slots=True)
class PreVoteAnswer(_VoteAnswer):
    """Answer to a pre-vote PROPOSE ("would you promise `epoch`?"): binds and persists nothing.
    `known_epoch` is the voter's highest epoch. The answer to a catch-up probe (a pre-vote for epoch 0,
    which every node refuses) echoes the probe's stamp in `echo_ms`."""

    TYPE: ClassVar[MsgType] = MsgType.PRE_VOTE_ANSWER


@dataclass(frozen=True, slots=True)
class _Refusal(_Wire):
    """The fields of a refusal that names the refuser's highest epoch (CONFIRM_REFUSED, TOKEN_REFUSED)."""

    sender: int
    epoch: int
    known_epoch: int


@dataclass(frozen=True, slots=True)
class ConfirmRefused(_Refusal):
    """A voter no longer stands by its promise of `epoch` (the CONFIRM's answer when it does is
    CONFIRMED): it promised `known_epoch` since, or backs another winner of `epoch`."""

    TYPE: ClassVar[MsgType] = MsgType.CONFIRM_REFUSED


@dataclass(frozen=True, slots=True)
class TokenRefused(_Refusal):
    """Ring: a node may not promise `epoch` to the initiator's token (it holds `known_epoch`, or follows
    a live leader): sent to the initiator, whose round dies there."""

    TYPE: ClassVar[MsgType] = MsgType.TOKEN_REFUSED


@dataclass(frozen=True, slots=True)
class Resign(_Wire):
    """The sender gives up `epoch` so that its peers elect a successor at once: a leader that stops or
    hands off (switchover, a failed health check), or a winner whose before_lead gate failed (it never
    took office). `successor` names the node that should run (a switchover with a target); without one,
    the highest live eligible id does. `staying`: the sender keeps running (it is not unreachable),
    but it does not run for leader for a while."""

    TYPE: ClassVar[MsgType] = MsgType.RESIGN
    sender: int
    epoch: int
    successor: int | None = None
    staying: bool = False


@dataclass(frozen=True, slots=True)
class Confirm(_Wire):
    """The winner of `epoch` (promised to `initiator`: itself in Bully, the ring election's initiator in
    Ring) asks the voters whether they still stand by that promise before it takes office. `sent_ms` is
    the winner's clock: a voter's CONFIRMED echoes it and starts the new leader's lease, exactly like a
    heartbeat echo. It is not a claim to lead: nobody follows the sender because of it."""

    TYPE: ClassVar[MsgType] = MsgType.CONFIRM
    sender: int
    epoch: int
    initiator: int
    sent_ms: int

    def __post_init__(self) -> None:
        _Wire.__post_init__(self)
        _check_node_id("sent_ms", self.sent_ms)  # unlike a heartbeat's, never null


@dataclass(frozen=True, slots=True)
class Confirmed(_Wire):
    """A voter still holds its promise of `epoch`: it backs the sender of the CONFIRM whose stamp it
    echoes (`echo_ms`) and promises nobody else until echo + failure_timeout has passed."""

    TYPE: ClassVar[MsgType] = MsgType.CONFIRMED
    sender: int
    epoch: int
    echo_ms: int

    def __post_init__(self) -> None:
        _Wire.__post_init__(self)
        _check_node_id("echo_ms", self.echo_ms)


Message = (
    Heartbeat
    | Election
    | Ok
    | Coordinator
    | Propose
    | Promise
    | PreVoteAnswer
    | Resign
    | Confirm
    | Confirmed
    | ConfirmRefused
    | TokenRefused
)

# An answer naming the highest epoch its sender holds (its `epoch` is the one it answers about).
Answer = Promise | PreVoteAnswer | ConfirmRefused | TokenRefused

MESSAGE_CLASSES: Mapping[MsgType, type[Message]] = {
    cls.TYPE: cls
    for cls in (
        Heartbeat,
        Election,
        Ok,
        Coordinator,
        Propose,
        Promise,
        PreVoteAnswer,
        Resign,
        Confirm,
        Confirmed,
        ConfirmRefused,
        TokenRefused,
    )
}


def from_wire(body: Mapping[str, Any]) -> Message:
    """Build a message from a decoded JSON object (without `auth`). Raises RemoteProtocolError."""
    try:
        msg_type = MsgType(body["type"])
    except (KeyError, ValueError, TypeError) as exc:
        raise RemoteProtocolError(f"unknown or missing message type: {body.get('type')!r}") from exc
    cls = MESSAGE_CLASSES[msg_type]
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        wire_name = _FIELD_SPECS[f.name][0]
        if wire_name not in body:
            if f.default is not MISSING:
                continue
            raise RemoteProtocolError(f"{msg_type} frame misses field {wire_name!r}")
        value = body[wire_name]
        kwargs[f.name] = tuple(value) if isinstance(value, list) else value
    unknown = set(body) - {"type"} - {_FIELD_SPECS[f.name][0] for f in fields(cls)}
    if unknown:
        raise RemoteProtocolError(f"{msg_type} frame has unknown fields {sorted(unknown)}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise RemoteProtocolError(f"invalid {msg_type} frame: {exc}") from exc
