"""Hypothesis: whatever a peer sends, the decoder and the session handshake answer with messages or
RemoteProtocolError only. `make fuzz` runs the same properties with many more examples
(LEADER_NODE_FUZZ_EXAMPLES)."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import struct
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.core.codec import FrameDecoder, decode_payload, encode_body, encode_frame
from node.core.errors import RemoteProtocolError
from node.core.messages import Message
from node.core.session import NONCE_BYTES, Acceptor, Connector, Hello, Keyring, SessionSender, parse_hello

from .samples import OTHER_SECRET, SECRET, canonical, messages, sign

OPTIONAL_WIRE_FIELDS = {"ids", "sent_ms", "echo_ms", "resigned_leader"}  # "abstained" is omitted when empty

_FUZZ = settings(
    max_examples=int(os.environ.get("LEADER_NODE_FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def _drain(decoder: FrameDecoder, limit: int = 10_000) -> list[Message]:
    """Every message until None or RemoteProtocolError (anything else propagates and fails the test)."""
    out: list[Message] = []
    try:
        for _ in range(limit):
            message = decoder.next_message()
            if message is None:
                return out
            out.append(message)
    except RemoteProtocolError:
        return out
    raise AssertionError("decoder yielded an unbounded number of messages")


# Mostly-random bytes hit the size limit at once; half the streams start with a small length prefix so
# that the payload parser sees the garbage too.
_streams = st.binary(max_size=2048) | st.builds(
    lambda length, rest: struct.pack(">I", length) + rest,
    st.integers(0, 300),
    st.binary(max_size=1024),
)


@_FUZZ
@given(_streams, st.lists(st.integers(min_value=0), max_size=8))
def test_arbitrary_bytes_in_arbitrary_reads(data: bytes, cuts: list[int]) -> None:
    decoder = FrameDecoder(SECRET)
    with contextlib.suppress(RemoteProtocolError):
        for chunk in _chunks(data, cuts):
            decoder.feed(chunk)


@_FUZZ
@given(st.binary(max_size=4096))
def test_arbitrary_payload(payload: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        decode_payload(payload, SECRET)


@_FUZZ
@given(messages, st.binary(max_size=512))
def test_valid_frame_then_arbitrary_bytes(message: Message, tail: bytes) -> None:
    decoder = FrameDecoder(SECRET)
    decoder.receive(encode_frame(message, SECRET) + tail)
    assert decoder.next_message() == message
    _drain(decoder)


@_FUZZ
@given(messages, st.data())
def test_byte_flips_never_forge_or_crash(message: Message, data: st.DataObject) -> None:
    encoded = bytearray(encode_frame(message, SECRET))
    flips = data.draw(st.lists(st.integers(0, len(encoded) - 1), min_size=1, max_size=4, unique=True))
    for index in flips:
        encoded[index] ^= data.draw(st.integers(1, 255))
    decoder = FrameDecoder(SECRET)
    decoder.receive(bytes(encoded))
    got = _drain(decoder)
    # A flipped frame is rejected or still incomplete; the HMAC guarantees it never yields a different
    # message. (A flip may still decode to the same message, e.g. a hex digit's case in the prefix.)
    assert got in ([], [message])


@_FUZZ
@given(st.lists(messages, min_size=1, max_size=6), st.lists(st.integers(min_value=0), max_size=12))
def test_random_messages_round_trip_in_random_reads(batch: list[Message], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(m, SECRET) for m in batch)
    decoder = FrameDecoder(SECRET)
    out: list[Message] = []
    for chunk in _chunks(stream, cuts):
        out.extend(decoder.feed(chunk))
    assert out == batch
    assert decoder.buffered_bytes == 0


@_FUZZ
@given(messages)
def test_random_messages_signed_with_another_secret_are_rejected(message: Message) -> None:
    try:
        FrameDecoder(SECRET).feed(encode_frame(message, OTHER_SECRET))
    except RemoteProtocolError:
        return
    raise AssertionError("frame signed with another secret was accepted")


# Structured fuzz: near-valid JSON objects (a real message's body with keys dropped, added or replaced by
# arbitrary JSON), signed correctly or not. This reaches the field checks behind the HMAC.
_json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
_keys = st.sampled_from(
    ["type", "from", "epoch", "leader", "initiator", "ids", "pre_vote", "granted", "known_epoch", "auth"]
) | st.text(max_size=6)


@st.composite
def _near_valid_payloads(draw: st.DrawFn) -> bytes:
    body: dict[str, Any] = draw(messages).to_wire()
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["drop", "set"]))
        if action == "drop" and body:
            del body[draw(st.sampled_from(sorted(body)))]
        else:
            body[draw(_keys)] = draw(_json_values)
    if draw(st.booleans()):
        body = sign(body)
    elif draw(st.booleans()):
        body["auth"] = draw(_json_values)
    return canonical(body) if draw(st.booleans()) else json.dumps(body).encode()


@_FUZZ
@given(_near_valid_payloads())
def test_near_valid_objects_raise_only_remote_protocol_error(payload: bytes) -> None:
    try:
        message = decode_payload(payload, SECRET)
    except RemoteProtocolError:
        return
    # Accepted: it must be exactly what a correct peer signed, up to optional fields it left out (a peer
    # of an older version omits fields with defaults, which then take their default).
    sent = json.loads(payload)
    assert canonical(sign({k: v for k, v in sent.items() if k != "auth"})) == canonical(sent)
    wire = message.to_wire()
    assert {k: wire[k] for k in sent if k != "auth"} == {k: v for k, v in sent.items() if k != "auth"}
    assert set(wire) - set(sent) <= OPTIONAL_WIRE_FIELDS


# ---------------------------------------------------------------------------------------------------------
# The session handshake (node/core/session.py): the acceptor and the connector parse a stranger's bytes.

_KEYRING = Keyring((SECRET,))
_MEMBERS = (1, 2, 3)


def _acceptor() -> Acceptor:
    return Acceptor(cluster="c", node_id=2, member_ids=_MEMBERS, keyring=_KEYRING, nonce=bytes(NONCE_BYTES))


def _connector(sender: int = 1) -> Connector:
    return Connector(
        cluster="c", node_id=sender, peer_id=2, keyring=_KEYRING, nonce=bytes(range(NONCE_BYTES))
    )


def _drain_acceptor(acceptor: Acceptor, limit: int = 10_000) -> list[Message]:
    out: list[Message] = []
    try:
        for _ in range(limit):
            message = acceptor.next_message()
            if message is None:
                return out
            out.append(message)
    except RemoteProtocolError:
        return out
    raise AssertionError("acceptor yielded an unbounded number of messages")


def _established() -> tuple[Acceptor, SessionSender]:
    connector, acceptor = _connector(), _acceptor()
    acceptor.receive(connector.hello_frame)
    assert acceptor.next_message() is None
    established = connector.receive(acceptor.take_output())
    assert established is not None
    finish, sender = established
    acceptor.receive(finish)
    assert acceptor.next_message() is None and acceptor.peer_id == 1
    return acceptor, sender


@_FUZZ
@given(_streams, st.lists(st.integers(min_value=0), max_size=8))
def test_acceptor_takes_arbitrary_bytes_as_a_handshake(data: bytes, cuts: list[int]) -> None:
    acceptor = _acceptor()
    with contextlib.suppress(RemoteProtocolError):
        for chunk in _chunks(data, cuts):
            acceptor.receive(chunk)
            assert _drain_acceptor(acceptor) == []  # nothing before a handshake the test did not make
    assert acceptor.peer_id is None


@_FUZZ
@given(_streams)
def test_connector_takes_arbitrary_bytes_as_a_welcome(data: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        assert _connector().receive(data) is None


_hello_keys = st.sampled_from(["type", "v", "cluster", "from", "to", "nonce", "keys"]) | st.text(max_size=6)


@st.composite
def _near_valid_hellos(draw: st.DrawFn) -> bytes:
    body: dict[str, Any] = json.loads(_connector(draw(st.integers(1, 4))).hello_frame[4:])
    for _ in range(draw(st.integers(0, 3))):
        if draw(st.booleans()) and body:
            del body[draw(st.sampled_from(sorted(body)))]
        else:
            body[draw(_hello_keys)] = draw(_json_values)
    return json.dumps(body).encode()


@_FUZZ
@given(_near_valid_hellos())
def test_hello_parser_accepts_only_well_formed_hellos(payload: bytes) -> None:
    try:
        hello = parse_hello(payload)
    except RemoteProtocolError:
        return
    assert isinstance(hello, Hello)
    assert type(hello.sender) is int and type(hello.receiver) is int and hello.sender >= 1
    assert len(hello.nonce) == NONCE_BYTES and 1 <= len(hello.key_ids) <= 4
    # A HELLO the parser accepted gets a WELCOME only when it is addressed right and offers our key.
    acceptor = _acceptor()
    acceptor.receive(struct.pack(">I", len(payload)) + payload)
    with contextlib.suppress(RemoteProtocolError):
        acceptor.next_message()
    if acceptor.take_output():
        assert hello.cluster == "c" and hello.receiver == 2 and hello.sender in (1, 3)


@_FUZZ
@given(st.lists(messages, max_size=4), _streams, st.lists(st.integers(min_value=0), max_size=8))
def test_session_frames_then_arbitrary_bytes(batch: list[Message], tail: bytes, cuts: list[int]) -> None:
    acceptor, sender = _established()
    batch = [m for m in batch if m.sender == 1]
    stream = b"".join(sender.seal(encode_body(m)) for m in batch)
    acceptor.receive(stream)
    assert _drain_acceptor(acceptor) == batch
    for chunk in _chunks(tail, cuts):
        acceptor.receive(chunk)
        _drain_acceptor(acceptor)


@_FUZZ
@given(messages, st.data())
def test_session_byte_flips_never_forge(message: Message, data: st.DataObject) -> None:
    acceptor, sender = _established()
    encoded = bytearray(sender.seal(encode_body(message)))
    flips = data.draw(st.lists(st.integers(0, len(encoded) - 1), min_size=1, max_size=4, unique=True))
    for index in flips:
        encoded[index] ^= data.draw(st.integers(1, 255))
    acceptor.receive(bytes(encoded))
    assert _drain_acceptor(acceptor) == []  # the MAC covers seq and body; the prefix only frames them
