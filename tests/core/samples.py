"""Shared fixtures for the core tests: one example per message type, an independent signer, strategies.

The signer re-implements the wire rule from the docs (hex HMAC-SHA256 over the JSON body without `auth`,
sorted keys, no whitespace, UTF-8) instead of calling the codec, so the tests pin the format.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from typing import Any

from hypothesis import strategies as st

from node.core.messages import (
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
)

SECRET = b"cluster-secret-0123456789"
OTHER_SECRET = b"another-secret-9876543210"

# (message, its exact wire body without auth): one row per message type, the wire names spelled out.
WIRE_EXAMPLES: list[tuple[Message, dict[str, Any]]] = [
    (
        Heartbeat(sender=1, epoch=2, leader_id=1, sent_ms=1500),
        {"type": "HEARTBEAT", "from": 1, "epoch": 2, "leader": 1, "sent_ms": 1500, "echo_ms": None},
    ),
    (
        Heartbeat(sender=2, epoch=2, leader_id=1, echo_ms=1500),
        {"type": "HEARTBEAT", "from": 2, "epoch": 2, "leader": 1, "sent_ms": None, "echo_ms": 1500},
    ),
    (
        Heartbeat(sender=4, epoch=0, leader_id=None),
        {"type": "HEARTBEAT", "from": 4, "epoch": 0, "leader": None, "sent_ms": None, "echo_ms": None},
    ),
    (
        Election(sender=2, epoch=7, initiator=2),
        {"type": "ELECTION", "from": 2, "epoch": 7, "initiator": 2, "ids": []},
    ),
    (
        Election(sender=3, epoch=7, initiator=1, ids=(1, 2, 3)),
        {"type": "ELECTION", "from": 3, "epoch": 7, "initiator": 1, "ids": [1, 2, 3]},
    ),
    (
        Election(sender=4, epoch=7, initiator=1, ids=(1, 2), abstained=(3, 4)),
        {"type": "ELECTION", "from": 4, "epoch": 7, "initiator": 1, "ids": [1, 2], "abstained": [3, 4]},
    ),
    (Ok(sender=5, epoch=9), {"type": "OK", "from": 5, "epoch": 9}),
    (
        Coordinator(sender=1, epoch=4, leader_id=5, initiator=1),
        {"type": "COORDINATOR", "from": 1, "epoch": 4, "leader": 5, "initiator": 1},
    ),
    (
        Propose(sender=2, epoch=11, pre_vote=True),
        {
            "type": "PROPOSE",
            "from": 2,
            "epoch": 11,
            "pre_vote": True,
            "resigned_leader": None,
            "sent_ms": None,
        },
    ),
    (
        Propose(sender=4, epoch=12, pre_vote=False, resigned_leader=5, sent_ms=900),
        {"type": "PROPOSE", "from": 4, "epoch": 12, "pre_vote": False, "resigned_leader": 5, "sent_ms": 900},
    ),
    (
        Promise(sender=3, epoch=11, granted=True, known_epoch=10),
        {"type": "PROMISE", "from": 3, "epoch": 11, "granted": True, "known_epoch": 10, "echo_ms": None},
    ),
    (
        Promise(sender=3, epoch=12, granted=True, known_epoch=12, echo_ms=900),
        {"type": "PROMISE", "from": 3, "epoch": 12, "granted": True, "known_epoch": 12, "echo_ms": 900},
    ),
    (
        PreVoteAnswer(sender=2, epoch=11, granted=False, known_epoch=14),
        {
            "type": "PRE_VOTE_ANSWER",
            "from": 2,
            "epoch": 11,
            "granted": False,
            "known_epoch": 14,
            "echo_ms": None,
        },
    ),
    (
        PreVoteAnswer(sender=2, epoch=0, granted=False, known_epoch=14, echo_ms=77),
        {
            "type": "PRE_VOTE_ANSWER",
            "from": 2,
            "epoch": 0,
            "granted": False,
            "known_epoch": 14,
            "echo_ms": 77,
        },
    ),
    (
        ConfirmRefused(sender=4, epoch=13, known_epoch=15),
        {"type": "CONFIRM_REFUSED", "from": 4, "epoch": 13, "known_epoch": 15},
    ),
    (
        TokenRefused(sender=1, epoch=13, known_epoch=16),
        {"type": "TOKEN_REFUSED", "from": 1, "epoch": 13, "known_epoch": 16},
    ),
    (Resign(sender=6, epoch=12), {"type": "RESIGN", "from": 6, "epoch": 12}),
    (
        Confirm(sender=5, epoch=13, initiator=2, sent_ms=4200),
        {"type": "CONFIRM", "from": 5, "epoch": 13, "initiator": 2, "sent_ms": 4200},
    ),
    (
        Confirmed(sender=3, epoch=13, echo_ms=4200),
        {"type": "CONFIRMED", "from": 3, "epoch": 13, "echo_ms": 4200},
    ),
]
EXAMPLE_MESSAGES = [message for message, _ in WIRE_EXAMPLES]


def canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign(body: dict[str, Any], secret: bytes = SECRET) -> dict[str, Any]:
    """`body` plus the `auth` field a correct peer would send."""
    unsigned = {key: value for key, value in body.items() if key != "auth"}
    return {**unsigned, "auth": hmac.new(secret, canonical(unsigned), hashlib.sha256).hexdigest()}


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def signed_frame(body: dict[str, Any], secret: bytes = SECRET) -> bytes:
    return frame(canonical(sign(body, secret)))


# Hypothesis: any valid message. Ids and epochs span the whole valid range, up to 2**63 - 1.
node_ids = st.integers(min_value=0, max_value=2**63 - 1)
_bools = st.booleans()
_id_tuples = st.lists(node_ids, max_size=32).map(tuple)

_MESSAGE_STRATEGIES: dict[MsgType, st.SearchStrategy[Message]] = {
    MsgType.HEARTBEAT: st.builds(Heartbeat, sender=node_ids, epoch=node_ids, leader_id=st.none() | node_ids),
    MsgType.ELECTION: st.builds(
        Election, sender=node_ids, epoch=node_ids, initiator=node_ids, ids=_id_tuples, abstained=_id_tuples
    ),
    MsgType.OK: st.builds(Ok, sender=node_ids, epoch=node_ids),
    MsgType.COORDINATOR: st.builds(
        Coordinator, sender=node_ids, epoch=node_ids, leader_id=node_ids, initiator=node_ids
    ),
    MsgType.PROPOSE: st.builds(Propose, sender=node_ids, epoch=node_ids, pre_vote=_bools),
    MsgType.PROMISE: st.builds(
        Promise,
        sender=node_ids,
        epoch=node_ids,
        granted=_bools,
        known_epoch=node_ids,
        echo_ms=st.none() | node_ids,
    ),
    MsgType.PRE_VOTE_ANSWER: st.builds(
        PreVoteAnswer,
        sender=node_ids,
        epoch=node_ids,
        granted=_bools,
        known_epoch=node_ids,
        echo_ms=st.none() | node_ids,
    ),
    MsgType.RESIGN: st.builds(Resign, sender=node_ids, epoch=node_ids),
    MsgType.CONFIRM: st.builds(
        Confirm, sender=node_ids, epoch=node_ids, initiator=node_ids, sent_ms=node_ids
    ),
    MsgType.CONFIRMED: st.builds(Confirmed, sender=node_ids, epoch=node_ids, echo_ms=node_ids),
    MsgType.CONFIRM_REFUSED: st.builds(ConfirmRefused, sender=node_ids, epoch=node_ids, known_epoch=node_ids),
    MsgType.TOKEN_REFUSED: st.builds(TokenRefused, sender=node_ids, epoch=node_ids, known_epoch=node_ids),
}
assert set(_MESSAGE_STRATEGIES) == set(MsgType), "add a strategy for the new message type"
messages = st.one_of(*_MESSAGE_STRATEGIES.values())
