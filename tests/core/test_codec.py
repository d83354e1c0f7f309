"""Frame codec tables: exact wire format, partial reads, many frames per read, every error class."""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest

from node.core.codec import MAX_FRAME_BYTES, FrameDecoder, decode_payload, encode_frame
from node.core.errors import RemoteProtocolError
from node.core.messages import MAX_IDS_IN_MESSAGE, Election, Message

from .samples import (
    EXAMPLE_MESSAGES,
    OTHER_SECRET,
    SECRET,
    WIRE_EXAMPLES,
    canonical,
    frame,
    sign,
    signed_frame,
)

# ---------------------------------------------------------------------------------------------------------
# Format and happy paths


@pytest.mark.parametrize(("message", "wire"), WIRE_EXAMPLES, ids=lambda x: type(x).__name__)
def test_encode_frame_is_length_prefix_plus_canonical_signed_json(
    message: Message, wire: dict[str, Any]
) -> None:
    encoded = encode_frame(message, SECRET)
    assert encoded == signed_frame(wire)
    (length,) = struct.unpack(">I", encoded[:4])
    assert length == len(encoded) - 4
    body = json.loads(encoded[4:].decode("utf-8"))
    assert set(body) == {*wire, "auth"}
    assert len(body["auth"]) == 64 and int(body["auth"], 16) >= 0


@pytest.mark.parametrize("message", EXAMPLE_MESSAGES, ids=lambda m: type(m).__name__)
def test_decode_payload_round_trip(message: Message) -> None:
    encoded = encode_frame(message, SECRET)
    assert decode_payload(encoded[4:], SECRET) == message
    assert FrameDecoder(SECRET).feed(encoded) == [message]


def test_many_frames_in_one_read() -> None:
    decoder = FrameDecoder(SECRET)
    stream = b"".join(encode_frame(m, SECRET) for m in EXAMPLE_MESSAGES)
    assert decoder.feed(stream) == EXAMPLE_MESSAGES
    assert decoder.buffered_bytes == 0


def test_byte_by_byte_yields_each_message_exactly_when_its_last_byte_arrives() -> None:
    decoder = FrameDecoder(SECRET)
    for message in EXAMPLE_MESSAGES:
        encoded = encode_frame(message, SECRET)
        for i, byte in enumerate(encoded):
            out = decoder.feed(bytes([byte]))
            assert out == ([message] if i == len(encoded) - 1 else []), (message, i)
        assert decoder.buffered_bytes == 0


@pytest.mark.parametrize("message", EXAMPLE_MESSAGES[:4], ids=lambda m: type(m).__name__)
def test_frame_split_across_two_reads_at_every_offset(message: Message) -> None:
    encoded = encode_frame(message, SECRET)
    trailer = encode_frame(EXAMPLE_MESSAGES[-1], SECRET)
    for cut in range(1, len(encoded)):
        decoder = FrameDecoder(SECRET)
        assert decoder.feed(encoded[:cut]) == []
        assert decoder.buffered_bytes == cut
        # the second read finishes this frame and carries half of the next one
        assert decoder.feed(encoded[cut:] + trailer[:5]) == [message]
        assert decoder.feed(trailer[5:]) == [EXAMPLE_MESSAGES[-1]]


def test_receive_and_next_message_interface() -> None:
    decoder = FrameDecoder(SECRET)
    assert decoder.next_message() is None
    assert decoder.feed(b"") == []
    decoder.receive(encode_frame(EXAMPLE_MESSAGES[0], SECRET) + encode_frame(EXAMPLE_MESSAGES[1], SECRET))
    assert decoder.next_message() == EXAMPLE_MESSAGES[0]
    assert decoder.next_message() == EXAMPLE_MESSAGES[1]
    assert decoder.next_message() is None


# ---------------------------------------------------------------------------------------------------------
# Size limit


def test_length_prefix_above_limit_is_rejected_before_the_payload_arrives() -> None:
    decoder = FrameDecoder(SECRET)
    with pytest.raises(RemoteProtocolError):
        decoder.feed(struct.pack(">I", MAX_FRAME_BYTES + 1))
    assert decoder.buffered_bytes == 4


@pytest.mark.parametrize("length", [MAX_FRAME_BYTES + 1, 2**31, 2**32 - 1])
def test_oversize_length_prefix_raises_with_any_partial_payload(length: int) -> None:
    decoder = FrameDecoder(SECRET)
    with pytest.raises(RemoteProtocolError):
        decoder.feed(struct.pack(">I", length) + b"{" * 100)


def test_length_prefix_at_the_limit_waits_for_the_payload() -> None:
    decoder = FrameDecoder(SECRET)
    assert decoder.feed(struct.pack(">I", MAX_FRAME_BYTES) + b" " * 1000) == []
    assert decoder.buffered_bytes == 1004


def test_limit_boundary_with_a_custom_limit() -> None:
    encoded = encode_frame(EXAMPLE_MESSAGES[0], SECRET)
    payload_bytes = len(encoded) - 4
    assert FrameDecoder(SECRET, max_frame_bytes=payload_bytes).feed(encoded) == [EXAMPLE_MESSAGES[0]]
    with pytest.raises(RemoteProtocolError):
        FrameDecoder(SECRET, max_frame_bytes=payload_bytes - 1).feed(encoded[:4])


def test_encoder_refuses_a_frame_above_the_limit() -> None:
    huge_ids = tuple(10**70 + i for i in range(MAX_IDS_IN_MESSAGE))
    with pytest.raises(ValueError):
        encode_frame(Election(sender=1, epoch=1, initiator=1, ids=huge_ids), SECRET)


# ---------------------------------------------------------------------------------------------------------
# Every error class -> RemoteProtocolError (and nothing else)

_HEARTBEAT = {"type": "HEARTBEAT", "from": 1, "epoch": 2, "leader": 3}
_INT_FIELDS = {"from", "epoch", "initiator", "known_epoch", "leader", "sent_ms", "echo_ms"}
_BOOL_FIELDS = {"pre_vote", "granted"}
_BAD_INTS: list[Any] = [True, False, -1, "3", 1.5, 1.0, [1], {"n": 1}, None]
_BAD_BOOLS: list[Any] = [0, 1, "true", None, [True]]
_BAD_ID_LISTS: list[Any] = [
    "1,2",
    1,
    None,
    {"1": 2},
    [1, -1],
    [True],
    [1.0],
    ["1"],
    [[1]],
    list(range(MAX_IDS_IN_MESSAGE + 1)),
]


# wire fields that may be null, per message type (CONFIRM's stamp and CONFIRMED's echo may not)
_NULLABLE: dict[str, set[str]] = {
    "HEARTBEAT": {"leader", "sent_ms", "echo_ms"},
    "PROPOSE": {"resigned_leader", "sent_ms"},
    "PROMISE": {"echo_ms"},
    "PRE_VOTE_ANSWER": {"echo_ms"},
}


def _payload_rows() -> list[Any]:
    """(id, payload bytes): each one wrong in exactly one way."""
    rows: list[Any] = []

    def add(row_id: str, payload: bytes, *marks: Any) -> None:
        rows.append(pytest.param(payload, id=row_id, marks=marks))

    # not UTF-8
    add("utf8-lone-ff", b"\xff")
    add("utf8-in-string", b'{"type":"OK","from":1,"epoch":1,"auth":"\xff\xfe"}')
    add("utf8-overlong", b'{"type":"\xc0\xaf"}')
    add("utf8-encoded-surrogate", b'{"type":"\xed\xa0\x80"}')
    add("utf8-truncated-sequence", b'{"type":"\xe2\x82"}')
    # not JSON
    for row_id, text in [
        ("json-empty", b""),
        ("json-open-brace", b"{"),
        ("json-single-quotes", b"{'type': 'OK'}"),
        ("json-trailing-comma", b'{"type":"OK",}'),
        ("json-two-objects", b"{}{}"),
        ("json-nul", b"\x00"),
        ("json-bare-word", b"HEARTBEAT"),
        ("json-too-deep", b"[" * 100_000),
    ]:
        add(row_id, text)
    # JSON, but not an object
    for row_id, text in [
        ("not-object-list", b"[]"),
        ("not-object-null", b"null"),
        ("not-object-number", b"42"),
        ("not-object-string", b'"HEARTBEAT"'),
        ("not-object-true", b"true"),
        ("not-object-signed-list", canonical([sign(_HEARTBEAT)])),  # type: ignore[arg-type]
    ]:
        add(row_id, text)

    # correctly signed, but the content is wrong: the error cannot come from the HMAC check
    def add_signed(row_id: str, body: dict[str, Any], *marks: Any) -> None:
        add(row_id, canonical(sign(body)), *marks)

    add_signed("type-missing", {k: v for k, v in _HEARTBEAT.items() if k != "type"})
    for bad_type in ["VOTE", "heartbeat", "", None, 1, ["HEARTBEAT"], {"HEARTBEAT": 1}]:
        add_signed(f"type-{bad_type!r}", {**_HEARTBEAT, "type": bad_type})
    for message, wire in WIRE_EXAMPLES:
        name = f"{type(message).__name__}-{'-'.join(str(v) for v in wire.values())}"
        add_signed(f"unknown-field-{name}", {**wire, "extra": 1})
        for key in wire:
            if key not in {"type", "ids", "abstained", "sent_ms", "echo_ms", "resigned_leader"}:  # defaults
                add_signed(f"missing-{key}-{name}", {k: v for k, v in wire.items() if k != key})
            if key in _INT_FIELDS:
                for bad in _BAD_INTS:
                    if bad is None and key in _NULLABLE.get(wire["type"], set()):
                        continue  # e.g. a heartbeat's leader may be null: no leader known
                    add_signed(f"bad-{key}={bad!r}-{name}", {**wire, key: bad})
            elif key in _BOOL_FIELDS:
                for bad in _BAD_BOOLS:
                    add_signed(f"bad-{key}={bad!r}-{name}", {**wire, key: bad})
            elif key in ("ids", "abstained"):
                for bad in _BAD_ID_LISTS:
                    add_signed(f"bad-{key}={bad!r}-{name}"[:80], {**wire, key: bad})
    add("epoch-NaN", canonical(sign({**_HEARTBEAT, "epoch": float("nan")})))
    add("epoch-Infinity", canonical(sign({**_HEARTBEAT, "epoch": float("inf")})))

    # authentication
    good = sign(_HEARTBEAT)
    add("auth-missing", canonical(_HEARTBEAT))
    for bad_auth in [None, 0, 123, True, ["x"], {"x": 1}]:
        add(f"auth-{bad_auth!r}", canonical({**_HEARTBEAT, "auth": bad_auth}))
    add("auth-empty", canonical({**_HEARTBEAT, "auth": ""}))
    add("auth-truncated", canonical({**_HEARTBEAT, "auth": good["auth"][:-1]}))
    add("auth-one-hex-digit-changed", canonical({**_HEARTBEAT, "auth": _flip_hex(good["auth"])}))
    add("auth-other-secret", canonical(sign(_HEARTBEAT, OTHER_SECRET)))
    add("auth-empty-secret", canonical(sign(_HEARTBEAT, b"")))
    add("tampered-epoch", canonical({**good, "epoch": 3}))
    add("tampered-from", canonical({**good, "from": 2}))
    add("tampered-type", canonical({**good, "type": "OK"}))
    add("tampered-leader", canonical({**good, "leader": None}))
    add("tampered-dropped-field", canonical({k: v for k, v in good.items() if k != "leader"}))
    add("tampered-added-field", canonical({**good, "extra": 1}))
    return rows


def _flip_hex(digest: str) -> str:
    return ("1" if digest[0] == "0" else "0") + digest[1:]


PAYLOAD_ERRORS = _payload_rows()


@pytest.mark.parametrize("payload", PAYLOAD_ERRORS)
def test_decode_payload_raises_remote_protocol_error(payload: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_payload(payload, SECRET)


@pytest.mark.parametrize("payload", PAYLOAD_ERRORS)
def test_frame_decoder_raises_then_refuses_further_use(payload: bytes) -> None:
    decoder = FrameDecoder(SECRET)
    valid = encode_frame(EXAMPLE_MESSAGES[0], SECRET)
    assert decoder.feed(valid) == [EXAMPLE_MESSAGES[0]]  # a good frame first: the error is per frame
    with pytest.raises(RemoteProtocolError):
        decoder.feed(frame(payload) + valid)
    with pytest.raises(RemoteProtocolError):
        decoder.feed(valid)
    with pytest.raises(RemoteProtocolError):
        decoder.next_message()


def test_oversize_error_also_poisons_the_decoder() -> None:
    decoder = FrameDecoder(SECRET)
    with pytest.raises(RemoteProtocolError):
        decoder.feed(struct.pack(">I", MAX_FRAME_BYTES + 1))
    with pytest.raises(RemoteProtocolError):
        decoder.feed(encode_frame(EXAMPLE_MESSAGES[0], SECRET))


def test_a_frame_from_another_cluster_is_rejected_even_when_well_formed() -> None:
    other = encode_frame(EXAMPLE_MESSAGES[0], OTHER_SECRET)
    with pytest.raises(RemoteProtocolError):
        FrameDecoder(SECRET).feed(other)
    assert FrameDecoder(OTHER_SECRET).feed(other) == [EXAMPLE_MESSAGES[0]]


def test_zero_length_frame_is_an_error() -> None:
    with pytest.raises(RemoteProtocolError):
        FrameDecoder(SECRET).feed(struct.pack(">I", 0))


# ---------------------------------------------------------------------------------------------------------
# Inputs that once escaped as other exceptions (before authentication!): a driver that catches only
# RemoteProtocolError would have turned them into a crashed connection handler.


@pytest.mark.parametrize(
    "payload",
    [
        # hmac.compare_digest(str, str) raises TypeError when either string is not ASCII
        pytest.param(
            '{"type":"OK","from":1,"epoch":1,"auth":"\u00e9"}'.encode(), id="auth-non-ascii-TypeError"
        ),
        # json.loads accepts the escaped lone surrogate; _canonical(ensure_ascii=False).encode("utf-8")
        # then raises UnicodeEncodeError while computing the HMAC
        pytest.param(b'{"type":"\\ud800","auth":"x"}', id="surrogate-value-UnicodeEncodeError"),
        pytest.param(b'{"\\udfff":1,"auth":"x"}', id="surrogate-key-UnicodeEncodeError"),
        # int() refuses more than 4300 digits with a plain ValueError, not JSONDecodeError
        pytest.param(b'{"epoch":' + b"9" * 5000 + b',"auth":"x"}', id="5000-digit-int-ValueError"),
    ],
)
def test_decoder_odd_inputs_raise_remote_protocol_error(payload: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_payload(payload, SECRET)


def test_nesting_that_parses_but_does_not_reserialise() -> None:
    # json.loads and json.dumps have slightly different recursion costs: at some depth the payload
    # parses but _mac's json.dumps raises RecursionError, outside the try in decode_payload.
    for depth in range(1, 1500):
        payload = b'{"a":' + b"[" * depth + b"]" * depth + b',"auth":"x"}'
        with pytest.raises(RemoteProtocolError):
            decode_payload(payload, SECRET)
