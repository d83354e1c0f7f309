"""Messages: an invalid message cannot be constructed; to_wire/from_wire use the documented names."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import given

from node.core.errors import RemoteProtocolError
from node.core.messages import (
    MAX_IDS_IN_MESSAGE,
    MESSAGE_CLASSES,
    Confirm,
    Confirmed,
    ConfirmRefused,
    Coordinator,
    Election,
    Heartbeat,
    Message,
    MsgType,
    Ok,
    PreVoteAnswer,
    Promise,
    Propose,
    Resign,
    TokenRefused,
    from_wire,
)

from .samples import EXAMPLE_MESSAGES, WIRE_EXAMPLES, messages


def test_every_message_type_has_a_class_and_a_wire_example() -> None:
    assert set(MESSAGE_CLASSES) == set(MsgType)
    assert {message.type for message in EXAMPLE_MESSAGES} == set(MsgType)
    for msg_type, cls in MESSAGE_CLASSES.items():
        assert cls.TYPE is msg_type


@pytest.mark.parametrize(("message", "wire"), WIRE_EXAMPLES, ids=lambda x: type(x).__name__)
def test_to_wire_uses_the_documented_field_names(message: Message, wire: dict[str, Any]) -> None:
    assert message.to_wire() == wire
    assert json.loads(json.dumps(message.to_wire())) == wire  # plain JSON types only


@pytest.mark.parametrize(("message", "wire"), WIRE_EXAMPLES, ids=lambda x: type(x).__name__)
def test_from_wire_inverts_to_wire(message: Message, wire: dict[str, Any]) -> None:
    decoded = from_wire(wire)
    assert decoded == message
    assert type(decoded) is type(message)


def test_election_ids_default_to_empty_when_absent_on_the_wire() -> None:
    decoded = from_wire({"type": "ELECTION", "from": 1, "epoch": 2, "initiator": 1})
    assert decoded == Election(sender=1, epoch=2, initiator=1, ids=())


def test_an_empty_abstained_list_stays_off_the_wire_for_peers_of_the_previous_release() -> None:
    wire = Election(sender=3, epoch=7, initiator=1, ids=(1, 2, 3)).to_wire()
    assert "abstained" not in wire
    assert "abstained" in Election(sender=3, epoch=7, initiator=1, abstained=(2,)).to_wire()


@given(messages)
def test_random_messages_round_trip_through_json(message: Message) -> None:
    wire = json.loads(json.dumps(message.to_wire()))
    assert from_wire(wire) == message


def test_messages_are_frozen() -> None:
    message = Heartbeat(sender=1, epoch=1, leader_id=None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.epoch = 2  # type: ignore[misc]


_VALID_KWARGS: dict[type[Message], dict[str, Any]] = {
    Heartbeat: {"sender": 1, "epoch": 1, "leader_id": 1},
    Election: {"sender": 1, "epoch": 1, "initiator": 1, "ids": (1,)},
    Ok: {"sender": 1, "epoch": 1},
    Coordinator: {"sender": 1, "epoch": 1, "leader_id": 1, "initiator": 1},
    Propose: {"sender": 1, "epoch": 1, "pre_vote": False},
    Promise: {"sender": 1, "epoch": 1, "granted": False, "known_epoch": 1},
    PreVoteAnswer: {"sender": 1, "epoch": 1, "granted": False, "known_epoch": 1},
    Resign: {"sender": 1, "epoch": 1},
    Confirm: {"sender": 1, "epoch": 1, "initiator": 1, "sent_ms": 1},
    Confirmed: {"sender": 1, "epoch": 1, "echo_ms": 1},
    ConfirmRefused: {"sender": 1, "epoch": 1, "known_epoch": 1},
    TokenRefused: {"sender": 1, "epoch": 1, "known_epoch": 1},
}

_BAD_NODE_IDS: list[Any] = [-1, True, False, 1.0, "1", None, [1], (1,)]
_BAD_BOOLS: list[Any] = [0, 1, "true", None, 1.0]
_BAD_ID_TUPLES: list[Any] = [
    [1, 2],  # a list, not a tuple
    "12",
    None,
    (1, -1),
    (1, True),
    (1, "2"),
    (1.0,),
    (None,),
    tuple(range(MAX_IDS_IN_MESSAGE + 1)),
]


def _invalid_constructions() -> list[Any]:
    rows = []
    for cls, valid in _VALID_KWARGS.items():
        for field_name in valid:
            if field_name in {"sender", "epoch", "initiator", "known_epoch", "sent_ms", "echo_ms"}:
                # a CONFIRM's stamp and a CONFIRMED's echo are never null (a heartbeat's may be)
                bad_values = _BAD_NODE_IDS
            elif field_name == "leader_id":
                # Heartbeat allows None (no leader known); Coordinator must name its leader.
                bad_values = [v for v in _BAD_NODE_IDS if v is not None or cls is Coordinator]
            elif field_name in {"pre_vote", "granted"}:
                bad_values = _BAD_BOOLS
            else:
                bad_values = _BAD_ID_TUPLES
            for bad in bad_values:
                row_id = f"{cls.__name__}-{field_name}={bad!r}"[:60]
                rows.append(pytest.param(cls, {**valid, field_name: bad}, id=row_id))
    return rows


@pytest.mark.parametrize("cls", list(_VALID_KWARGS))
def test_valid_kwargs_table_is_valid(cls: type[Message]) -> None:
    assert set(_VALID_KWARGS) == set(MESSAGE_CLASSES.values())
    assert cls(**_VALID_KWARGS[cls]).to_wire()["type"] == cls.TYPE.value


@pytest.mark.parametrize(("cls", "kwargs"), _invalid_constructions())
def test_invalid_message_cannot_be_constructed(cls: type[Message], kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        cls(**kwargs)


def test_largest_id_list_is_accepted() -> None:
    ids = tuple(range(MAX_IDS_IN_MESSAGE))
    assert Election(sender=1, epoch=1, initiator=1, ids=ids).ids == ids


@pytest.mark.parametrize(
    "body",
    [
        {"from": 1, "epoch": 1},
        {"type": None, "from": 1, "epoch": 1},
        {"type": 1, "from": 1, "epoch": 1},
        {"type": ["OK"], "from": 1, "epoch": 1},
        {"type": "ok", "from": 1, "epoch": 1},
        {"type": "NOPE", "from": 1, "epoch": 1},
        {"type": "OK", "epoch": 1},
        {"type": "OK", "from": 1},
        {"type": "OK", "from": 1, "epoch": 1, "leader": 1},
        {"type": "OK", "from": 1, "epoch": -1},
        {"type": "HEARTBEAT", "from": 1, "epoch": 1},
        {"type": "ELECTION", "from": 1, "epoch": 1, "initiator": 1, "ids": [[1]]},
        {"type": "ELECTION", "from": 1, "epoch": 1, "initiator": 1, "ids": {"1": 1}},
    ],
    ids=repr,
)
def test_from_wire_rejects_with_remote_protocol_error(body: dict[str, Any]) -> None:
    with pytest.raises(RemoteProtocolError):
        from_wire(body)
