"""The connection handshake and session frames (node/core/session.py, docs/security.md), without sockets."""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from typing import Any

import pytest

from node.core.codec import MAX_FRAME_BYTES, encode_body
from node.core.messages import Heartbeat, Message, Resign
from node.core.session import (
    NONCE_BYTES,
    PROTOCOL_VERSION,
    Acceptor,
    Connector,
    Keyring,
    SessionError,
    SessionSender,
    key_id,
    session_key,
)

SECRET = b"cluster-secret-0123456789"
NEW_SECRET = b"the-next-cluster-secret-42"
OTHER_SECRET = b"another-secret-9876543210"
CLUSTER = "leader-node"
MEMBERS = (1, 2, 3)
NONCE_C = bytes(range(NONCE_BYTES))
NONCE_A = bytes(range(100, 100 + NONCE_BYTES))
HEARTBEAT = Heartbeat(sender=1, epoch=3, leader_id=1, sent_ms=1000)


def connector(
    *,
    keyring: Keyring | None = None,
    cluster: str = CLUSTER,
    node_id: int = 1,
    peer_id: int = 2,
    nonce: bytes = NONCE_C,
) -> Connector:
    return Connector(
        cluster=cluster, node_id=node_id, peer_id=peer_id, keyring=keyring or Keyring((SECRET,)), nonce=nonce
    )


def acceptor(*, keyring: Keyring | None = None, node_id: int = 2, nonce: bytes = NONCE_A) -> Acceptor:
    return Acceptor(
        cluster=CLUSTER,
        node_id=node_id,
        member_ids=MEMBERS,
        keyring=keyring or Keyring((SECRET,)),
        nonce=nonce,
    )


def handshake(c: Connector, a: Acceptor) -> tuple[bytes, SessionSender]:
    """Run both halves against each other; returns (the connector's FINISH, its sender)."""
    a.receive(c.hello_frame)
    assert a.next_message() is None
    welcome = a.take_output()
    assert welcome
    established = c.receive(welcome)
    assert established is not None
    finish, sender = established
    a.receive(finish)
    assert a.next_message() is None
    assert a.take_output() == b""
    return finish, sender


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def json_frame(body: dict[str, Any]) -> bytes:
    return frame(json.dumps(body).encode())


def expect(reason: str, a: Acceptor, data: bytes) -> None:
    a.receive(data)
    with pytest.raises(SessionError) as info:
        while a.next_message() is not None:
            pass
    assert info.value.reason == reason, str(info.value)


# ---------------------------------------------------------------------------------------------------------
# Good paths


def test_key_id_is_the_documented_hash() -> None:
    assert key_id(SECRET) == hashlib.sha256(b"leader-node key id" + SECRET).hexdigest()[:16]
    assert Keyring((SECRET, NEW_SECRET)).ids == (key_id(SECRET), key_id(NEW_SECRET))


def test_good_handshake_then_messages_in_order() -> None:
    c, a = connector(), acceptor()
    _, sender = handshake(c, a)
    assert a.peer_id == 1 and a.key_id == key_id(SECRET)
    messages: list[Message] = [HEARTBEAT, Resign(sender=1, epoch=3)]
    a.receive(b"".join(sender.seal(encode_body(m)) for m in messages))
    assert [a.next_message(), a.next_message(), a.next_message()] == [*messages, None]


def test_handshake_and_frames_survive_byte_by_byte_delivery() -> None:
    c, a = connector(), acceptor()
    for byte in c.hello_frame:
        a.receive(bytes([byte]))
        assert a.next_message() is None
    welcome = a.take_output()
    for byte in welcome[:-1]:
        assert c.receive(bytes([byte])) is None
    established = c.receive(welcome[-1:])
    assert established is not None
    finish, sender = established
    stream = finish + sender.seal(encode_body(HEARTBEAT))
    got = []
    for byte in stream:
        a.receive(bytes([byte]))
        got += [m for m in iter(a.next_message, None)]
    assert got == [HEARTBEAT]


def test_acceptor_picks_the_first_offered_key_it_knows() -> None:
    # Rotation, step 1 (docs/operations.md): a changed host {NEW, OLD} and an unchanged one {OLD}.
    changed, unchanged = Keyring((NEW_SECRET, SECRET)), Keyring((SECRET,))
    a = acceptor(keyring=unchanged)
    handshake(connector(keyring=changed), a)
    assert a.key_id == key_id(SECRET)
    a = acceptor(keyring=changed)
    handshake(connector(keyring=unchanged), a)
    assert a.key_id == key_id(SECRET)
    a = acceptor(keyring=changed)
    handshake(connector(keyring=Keyring((NEW_SECRET, SECRET))), a)
    assert a.key_id == key_id(NEW_SECRET)
    # Step 2: {NEW} against {NEW, OLD}.
    a = acceptor(keyring=Keyring((NEW_SECRET,)))
    handshake(connector(keyring=changed), a)
    assert a.key_id == key_id(NEW_SECRET)


def test_fresh_nonces_give_different_frames_for_one_body() -> None:
    body = encode_body(HEARTBEAT)
    _, one = handshake(connector(), acceptor())
    _, two = handshake(connector(), acceptor(nonce=bytes(NONCE_BYTES)))
    assert one.seal(body) != two.seal(body)


# ---------------------------------------------------------------------------------------------------------
# Refused handshakes


def test_wrong_key_fails_the_acceptors_proof_at_the_connector() -> None:
    # An acceptor that names our key id but holds another secret (a forged WELCOME): its proof fails.
    c = connector()
    welcome = json.loads(_welcome_for(c)[4:])
    kid = key_id(SECRET)
    wrong = session_key(
        OTHER_SECRET,
        cluster=CLUSTER,
        connector_id=1,
        acceptor_id=2,
        nonce_c=NONCE_C,
        nonce_a=NONCE_A,
        kid=kid,
    )
    welcome["auth"] = hmac.new(wrong, b"acceptor", hashlib.sha256).hexdigest()
    with pytest.raises(SessionError) as info:
        c.receive(json_frame(welcome))
    assert info.value.reason == "bad_auth"


def _welcome_for(c: Connector, keyring: Keyring | None = None) -> bytes:
    a = acceptor(keyring=keyring)
    a.receive(c.hello_frame)
    assert a.next_message() is None
    return a.take_output()


def test_wrong_key_fails_the_connectors_finish_at_the_acceptor() -> None:
    c, a = connector(), acceptor()
    a.receive(c.hello_frame)
    a.next_message()
    a.take_output()
    expect("bad_auth", a, json_frame({"type": "FINISH", "auth": "ab" * 32}))


def test_unknown_key_ids_are_refused() -> None:
    expect("no_common_key", acceptor(), connector(keyring=Keyring((OTHER_SECRET,))).hello_frame)


def test_welcome_choosing_a_key_not_offered_is_refused() -> None:
    c = connector()
    welcome = json.loads(_welcome_for(c)[4:])
    welcome["key"] = key_id(OTHER_SECRET)
    with pytest.raises(SessionError) as info:
        c.receive(json_frame(welcome))
    assert info.value.reason == "no_common_key"


def test_wrong_cluster_is_refused() -> None:
    expect("cluster", acceptor(), connector(cluster="another-cluster").hello_frame)


def test_hello_to_another_node_is_refused() -> None:
    expect("wrong_node", acceptor(node_id=2), connector(peer_id=3).hello_frame)


@pytest.mark.parametrize("sender", [2, 9])
def test_hello_from_itself_or_a_non_member_is_refused(sender: int) -> None:
    expect("not_member", acceptor(node_id=2), connector(node_id=sender, peer_id=2).hello_frame)


def test_replayed_welcome_is_refused() -> None:
    old = connector()
    old_welcome = _welcome_for(old)
    assert old.receive(old_welcome) is not None
    fresh = connector(nonce=bytes(NONCE_BYTES))  # a new connection: a new nonce_c
    with pytest.raises(SessionError) as info:
        fresh.receive(old_welcome)
    assert info.value.reason == "bad_auth"


def test_replayed_session_on_a_new_connection_is_refused() -> None:
    c, a = connector(), acceptor()
    finish, sender = handshake(c, a)
    recorded = c.hello_frame + finish + sender.seal(encode_body(HEARTBEAT))
    replay_target = acceptor(nonce=bytes(NONCE_BYTES))  # the acceptor draws a fresh nonce_a
    expect("bad_auth", replay_target, recorded)


def test_frames_before_the_handshake_are_refused() -> None:
    _, sender = handshake(connector(), acceptor())
    sealed = sender.seal(encode_body(HEARTBEAT))
    expect("malformed", acceptor(), sealed)
    # After HELLO but before FINISH.
    a = acceptor()
    a.receive(connector().hello_frame)
    a.next_message()
    expect("malformed", a, sealed)


def test_writing_after_welcome_is_refused_at_the_connector() -> None:
    c = connector()
    welcome = _welcome_for(c)
    with pytest.raises(SessionError) as info:
        c.receive(welcome + b"x")
    assert info.value.reason == "unexpected"
    c = connector()
    assert c.receive(_welcome_for(c)) is not None
    with pytest.raises(SessionError):
        c.receive(b"more")


@pytest.mark.parametrize(
    "change",
    [
        {"v": True},
        {"v": "2"},
        {"from": True},
        {"from": 0},
        {"to": "2"},
        {"nonce": "00" * 8},
        {"nonce": "ZZ" * 16},
        {"keys": []},
        {"keys": ["0" * 16] * 5},
        {"keys": ["0" * 15]},
        {"cluster": ""},
        {"cluster": "x" * 65},
        {"extra": 1},
        {"type": "WELCOME"},
    ],
    ids=repr,
)
def test_malformed_hello_is_refused(change: dict[str, Any]) -> None:
    body = json.loads(connector().hello_frame[4:])
    body.update(change)
    expect("malformed", acceptor(), json_frame(body))


@pytest.mark.parametrize("version", [PROTOCOL_VERSION - 1, PROTOCOL_VERSION + 1, 0])
def test_a_hello_of_another_protocol_version_is_refused_as_such(version: int) -> None:
    """A member of another release: its own reason (and counter), so the operator sees why."""
    body = json.loads(connector().hello_frame[4:])
    body["v"] = version
    a = acceptor()
    a.receive(json_frame(body))
    with pytest.raises(SessionError) as info:
        while a.next_message() is not None:
            pass
    assert info.value.reason == "version"
    assert f"protocol version {version}, this node speaks {PROTOCOL_VERSION}" in str(info.value)


@pytest.mark.parametrize("payload", [b"", b"\xff", b"[]", b"{}", b'"HELLO"', b"[" * 60_000])
def test_garbage_instead_of_hello_is_refused(payload: bytes) -> None:
    expect("malformed", acceptor(), frame(payload[:MAX_FRAME_BYTES]))


def test_oversize_frames_are_refused_before_buffering() -> None:
    expect("oversize", acceptor(), struct.pack(">I", MAX_FRAME_BYTES + 1))
    c = connector()
    with pytest.raises(SessionError) as info:
        c.receive(struct.pack(">I", 2**31))
    assert info.value.reason == "oversize"
    c2, a = connector(), acceptor()
    handshake(c2, a)
    expect("oversize", a, struct.pack(">I", MAX_FRAME_BYTES + 1))


def test_a_failed_acceptor_stays_failed() -> None:
    a = acceptor()
    expect("malformed", a, frame(b"nonsense"))
    with pytest.raises(SessionError):
        a.next_message()


# ---------------------------------------------------------------------------------------------------------
# Refused session frames


def test_sequence_gap_is_refused() -> None:
    _, a = connector(), acceptor()
    _, sender = handshake(connector(), a)
    sender.seal(encode_body(HEARTBEAT))  # frame 0 is lost
    expect("bad_seq", a, sender.seal(encode_body(HEARTBEAT)))


def test_replayed_frame_on_the_same_connection_is_refused() -> None:
    a = acceptor()
    _, sender = handshake(connector(), a)
    sealed = sender.seal(encode_body(HEARTBEAT))
    a.receive(sealed)
    assert a.next_message() == HEARTBEAT
    expect("bad_seq", a, sealed)


def test_reordered_frames_are_refused() -> None:
    a = acceptor()
    _, sender = handshake(connector(), a)
    first, second = sender.seal(encode_body(HEARTBEAT)), sender.seal(encode_body(HEARTBEAT))
    expect("bad_seq", a, second + first)


def test_message_from_another_sender_is_refused() -> None:
    a = acceptor()
    _, sender = handshake(connector(), a)
    expect("sender", a, sender.seal(encode_body(Heartbeat(sender=3, epoch=3, leader_id=3))))


def test_tampered_frames_are_refused() -> None:
    a = acceptor()
    _, sender = handshake(connector(), a)
    sealed = bytearray(sender.seal(encode_body(HEARTBEAT)))
    sealed[-3] ^= 1  # the body
    expect("bad_auth", a, bytes(sealed))
    a = acceptor()
    _, sender = handshake(connector(), a)
    sealed = bytearray(sender.seal(encode_body(HEARTBEAT)))
    sealed[4 + 7] ^= 1  # the sequence number: seq 1 under frame 0's MAC
    expect("bad_auth", a, bytes(sealed))


def test_short_or_invalid_session_frames_are_refused() -> None:
    a = acceptor()
    handshake(connector(), a)
    expect("malformed", a, frame(b"\x00" * 39))
    a = acceptor()
    _, sender = handshake(connector(), a)
    expect("malformed", a, sender.seal(b'{"type":"NOPE"}'))


def test_nonces_and_keyrings_are_checked() -> None:
    with pytest.raises(ValueError, match="nonce"):
        connector(nonce=b"short")
    with pytest.raises(ValueError, match="twice"):
        Keyring((SECRET, SECRET))
    with pytest.raises(ValueError):
        Keyring(())
