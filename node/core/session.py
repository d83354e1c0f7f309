"""Peer sessions: the connection handshake and the sequenced, MACed frames after it (docs/security.md).

Pure and sans-IO: the transport feeds bytes in, writes the bytes these objects hand out, and supplies the
random nonces (this module may not import `os`). Every frame, handshake or not, is the 4-byte big-endian
length prefix of `node/core/codec.py` and at most `MAX_FRAME_BYTES` of payload.

    connector C                                        acceptor A
    HELLO   {type, v, cluster, from: C, to: A, nonce: nonce_c, keys: [key ids, preferred first]}  ->
         <-  WELCOME {type, v, nonce: nonce_a, key: chosen key id, auth: HMAC(K, "acceptor")}
    FINISH  {type, auth: HMAC(K, "connector")}  ->
    session frames: seq (8 bytes) | HMAC-SHA256(K, seq | body) (32 bytes) | body (a message's JSON)  ->

K = HMAC-SHA256(secret of the chosen key id, canonical JSON of
["leader-node session v1", cluster, C, A, nonce_c hex, nonce_a hex, key id]). Handshake payloads are
JSON objects; session payloads are binary. `seq` starts at 0 and grows by exactly one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from node.core.codec import MAX_FRAME_BYTES, decode_body
from node.core.errors import RemoteProtocolError
from node.core.messages import Message

PROTOCOL_VERSION = 3  # 2: PROMISE split by meaning (PRE_VOTE_ANSWER, ...); 3: eligibility, switchover, gate
NONCE_BYTES = 16
KEY_ID_HEX_CHARS = 16
MAX_OFFERED_KEYS = 4
MAX_CLUSTER_NAME_CHARS = 64
MAC_BYTES = 32
_LENGTH = struct.Struct(">I")
_SEQ = struct.Struct(">Q")
SESSION_HEADER_BYTES = _SEQ.size + MAC_BYTES
_KEY_ID_LABEL = b"leader-node key id"
_SESSION_LABEL = "leader-node session v1"
_HEX = frozenset("0123456789abcdef")


class SessionError(RemoteProtocolError):
    """A peer's handshake or session frame was refused. `reason` is a short fixed label (metrics)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


# The labels of SessionError.reason; the transport adds its own (timeouts, caps) beside them.
REASONS = (
    "malformed",  # not a frame of the expected kind (JSON, fields, types)
    "version",  # a handshake of another protocol version: a member of another release
    "oversize",  # a length prefix above the limit
    "cluster",  # another cluster_name
    "wrong_node",  # HELLO addressed to another node id
    "not_member",  # HELLO from an id that is not a configured member (or this node itself)
    "no_common_key",  # no offered key id is known here
    "bad_auth",  # a handshake proof or a frame MAC does not verify
    "bad_seq",  # a session frame out of sequence (replayed, reordered, dropped)
    "sender",  # a message whose `from` is not the session's peer
    "unexpected",  # bytes where none may come (the acceptor writing after WELCOME)
)


def key_id(secret: bytes) -> str:
    """The public name of a secret: the first 16 hex digits of sha256(label + secret)."""
    return hashlib.sha256(_KEY_ID_LABEL + secret).hexdigest()[:KEY_ID_HEX_CHARS]


@dataclass(frozen=True, slots=True)
class Keyring:
    """The secrets this node knows, preferred (current) first; at most MAX_OFFERED_KEYS."""

    secrets: tuple[bytes, ...] = field(repr=False)
    ids: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        if not 1 <= len(self.secrets) <= MAX_OFFERED_KEYS:
            raise ValueError(f"a keyring holds 1 to {MAX_OFFERED_KEYS} secrets, got {len(self.secrets)}")
        ids = tuple(key_id(secret) for secret in self.secrets)
        if len(set(ids)) != len(ids):
            raise ValueError("the same secret is in the keyring twice")
        object.__setattr__(self, "ids", ids)

    def secret_for(self, kid: str) -> bytes | None:
        for known, secret in zip(self.ids, self.secrets, strict=True):
            if hmac.compare_digest(known, kid):
                return secret
        return None


def session_key(
    secret: bytes,
    *,
    cluster: str,
    connector_id: int,
    acceptor_id: int,
    nonce_c: bytes,
    nonce_a: bytes,
    kid: str,
) -> bytes:
    context = [_SESSION_LABEL, cluster, connector_id, acceptor_id, nonce_c.hex(), nonce_a.hex(), kid]
    return hmac.new(secret, _canonical(context), hashlib.sha256).digest()


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _proof(key: bytes, role: str) -> str:
    return hmac.new(key, role.encode(), hashlib.sha256).hexdigest()


def _frame(payload: bytes) -> bytes:
    if len(payload) > MAX_FRAME_BYTES:
        raise ValueError(f"frame of {len(payload)} bytes exceeds {MAX_FRAME_BYTES}")
    return _LENGTH.pack(len(payload)) + payload


def _check_nonce(nonce: bytes) -> bytes:
    if len(nonce) != NONCE_BYTES:
        raise ValueError(f"a nonce is {NONCE_BYTES} random bytes, got {len(nonce)}")
    return nonce


class FrameReader:
    """Splits one connection's bytes into length-prefixed payloads. After an error the stream position
    is lost: the caller must close the connection."""

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()

    @property
    def buffered_bytes(self) -> int:
        """Bytes of a frame that began but is not complete (0 between frames once drained)."""
        return len(self._buffer)

    def receive(self, data: bytes) -> None:
        self._buffer += data

    def next_payload(self) -> bytes | None:
        if len(self._buffer) < _LENGTH.size:
            return None
        (length,) = _LENGTH.unpack_from(self._buffer)
        if length > self._max_frame_bytes:
            raise SessionError(
                "oversize", f"frame of {length} bytes exceeds the {self._max_frame_bytes} limit"
            )
        end = _LENGTH.size + length
        if len(self._buffer) < end:
            return None
        payload = bytes(self._buffer[_LENGTH.size : end])
        del self._buffer[:end]
        return payload


def _json_object(payload: bytes, expected_type: str, keys: Collection[str]) -> dict[str, Any]:
    try:
        body = json.loads(payload.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise SessionError("malformed", f"{expected_type} is not valid UTF-8 JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise SessionError("malformed", f"{expected_type} is not a JSON object")
    if body.get("type") != expected_type:
        raise SessionError("malformed", f"expected {expected_type}, got type {str(body.get('type'))[:40]!r}")
    if set(body) != set(keys):
        raise SessionError("malformed", f"{expected_type} fields {sorted(body)[:12]} != {sorted(keys)}")
    if "v" in body and type(body["v"]) is not int:
        raise SessionError("malformed", f"{expected_type} protocol version must be an integer")
    if "v" in body and body["v"] != PROTOCOL_VERSION:
        raise SessionError(
            "version",
            f"{expected_type} of protocol version {str(body['v'])[:20]}, this node speaks "
            f"{PROTOCOL_VERSION}: a member of another release (upgrade every member together)",
        )
    return body


def _hex_field(body: dict[str, Any], name: str, chars: int) -> str:
    value = body[name]
    if not isinstance(value, str) or len(value) != chars or not set(value) <= _HEX:
        raise SessionError("malformed", f"{name} must be {chars} lowercase hex digits")
    return value


def _id_field(body: dict[str, Any], name: str) -> int:
    value = body[name]
    if type(value) is not int or value < 1:
        raise SessionError("malformed", f"{name} must be a positive integer")
    return value


_HELLO_KEYS = ("type", "v", "cluster", "from", "to", "nonce", "keys")
_WELCOME_KEYS = ("type", "v", "nonce", "key", "auth")
_FINISH_KEYS = ("type", "auth")


@dataclass(frozen=True, slots=True)
class Hello:
    cluster: str
    sender: int
    receiver: int
    nonce: bytes
    key_ids: tuple[str, ...]


def parse_hello(payload: bytes) -> Hello:
    """A HELLO payload -> Hello. Raises SessionError("malformed") for anything not well formed."""
    body = _json_object(payload, "HELLO", _HELLO_KEYS)
    cluster = body["cluster"]
    if not isinstance(cluster, str) or not 1 <= len(cluster) <= MAX_CLUSTER_NAME_CHARS:
        raise SessionError("malformed", f"cluster must be a string of 1 to {MAX_CLUSTER_NAME_CHARS} chars")
    keys = body["keys"]
    if not isinstance(keys, list) or not 1 <= len(keys) <= MAX_OFFERED_KEYS:
        raise SessionError("malformed", f"keys must be a list of 1 to {MAX_OFFERED_KEYS} key ids")
    key_ids = tuple(_hex_field({"keys": k}, "keys", KEY_ID_HEX_CHARS) for k in keys)
    return Hello(
        cluster=cluster,
        sender=_id_field(body, "from"),
        receiver=_id_field(body, "to"),
        nonce=bytes.fromhex(_hex_field(body, "nonce", 2 * NONCE_BYTES)),
        key_ids=key_ids,
    )


def encode_hello(hello: Hello) -> bytes:
    body = {
        "type": "HELLO",
        "v": PROTOCOL_VERSION,
        "cluster": hello.cluster,
        "from": hello.sender,
        "to": hello.receiver,
        "nonce": hello.nonce.hex(),
        "keys": list(hello.key_ids),
    }
    return _frame(_canonical(body))


class SessionSender:
    """The connector's half of an established session: seals message bodies in sequence."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self.next_seq = 0

    def seal(self, body: bytes) -> bytes:
        """One session frame for `body` (a message's canonical JSON, `codec.encode_body`)."""
        seq = _SEQ.pack(self.next_seq)
        mac = hmac.new(self._key, seq + body, hashlib.sha256).digest()
        self.next_seq += 1
        return _frame(seq + mac + body)


class Connector:
    """The connecting side's handshake: send `hello_frame`, feed what the acceptor writes to `receive`
    until it returns (FINISH frame, sender); write FINISH, then sealed frames. Nothing may follow."""

    def __init__(
        self,
        *,
        cluster: str,
        node_id: int,
        peer_id: int,
        keyring: Keyring,
        nonce: bytes,
        max_frame_bytes: int = MAX_FRAME_BYTES,
    ) -> None:
        self._cluster = cluster
        self._node_id = node_id
        self._peer_id = peer_id
        self._keyring = keyring
        self._nonce = _check_nonce(nonce)
        self._reader = FrameReader(max_frame_bytes)
        self._done = False
        self.hello_frame = encode_hello(Hello(cluster, node_id, peer_id, self._nonce, keyring.ids))

    def receive(self, data: bytes) -> tuple[bytes, SessionSender] | None:
        if self._done:
            if data:
                raise SessionError("unexpected", f"node {self._peer_id} wrote after the handshake")
            return None
        self._reader.receive(data)
        payload = self._reader.next_payload()
        if payload is None:
            return None
        self._done = True
        if self._reader.buffered_bytes:
            raise SessionError("unexpected", f"node {self._peer_id} wrote after its WELCOME")
        body = _json_object(payload, "WELCOME", _WELCOME_KEYS)
        nonce_a = bytes.fromhex(_hex_field(body, "nonce", 2 * NONCE_BYTES))
        kid = _hex_field(body, "key", KEY_ID_HEX_CHARS)
        auth = _hex_field(body, "auth", 2 * MAC_BYTES)
        secret = self._keyring.secret_for(kid)
        if secret is None:
            raise SessionError(
                "no_common_key", f"node {self._peer_id} chose key id {kid}, not one we offered"
            )
        key = session_key(
            secret,
            cluster=self._cluster,
            connector_id=self._node_id,
            acceptor_id=self._peer_id,
            nonce_c=self._nonce,
            nonce_a=nonce_a,
            kid=kid,
        )
        if not hmac.compare_digest(auth, _proof(key, "acceptor")):
            raise SessionError("bad_auth", f"node {self._peer_id}'s WELCOME proof does not verify")
        finish = _frame(_canonical({"type": "FINISH", "auth": _proof(key, "connector")}))
        return finish, SessionSender(key)


class Acceptor:
    """The accepting side of one inbound connection: handshake, then the peer's messages in order.

    Feed bytes with `receive`, then call `next_message` until None; after each round write what
    `take_output` returns (the WELCOME, once). `peer_id` is set once the handshake completed.
    Raises SessionError (a RemoteProtocolError) on anything wrong; the caller must then close.
    """

    def __init__(
        self,
        *,
        cluster: str,
        node_id: int,
        member_ids: Collection[int],
        keyring: Keyring,
        nonce: bytes,
        max_frame_bytes: int = MAX_FRAME_BYTES,
    ) -> None:
        self._cluster = cluster
        self._node_id = node_id
        self._member_ids = frozenset(member_ids) - {node_id}
        self._keyring = keyring
        self._nonce = _check_nonce(nonce)
        self._reader = FrameReader(max_frame_bytes)
        self._output = b""
        self._key: bytes | None = None
        self._hello: Hello | None = None
        self._next_seq = 0
        self._failed = False
        self.peer_id: int | None = None
        self.key_id: str | None = None

    @property
    def claimed_peer(self) -> int | None:
        """The member id of a well-formed HELLO, before the handshake completed."""
        return self._hello.sender if self._hello is not None else None

    @property
    def frame_in_progress(self) -> bool:
        return self._reader.buffered_bytes > 0

    def receive(self, data: bytes) -> None:
        self._reader.receive(data)

    def take_output(self) -> bytes:
        out, self._output = self._output, b""
        return out

    def next_message(self) -> Message | None:
        if self._failed:
            raise SessionError("unexpected", "session already failed on this connection")
        try:
            while (payload := self._reader.next_payload()) is not None:
                if self._hello is None:
                    self._on_hello(payload)
                elif self.peer_id is None:
                    self._on_finish(payload)
                else:
                    return self._open(payload)
            return None
        except RemoteProtocolError:
            self._failed = True
            raise

    def _on_hello(self, payload: bytes) -> None:
        hello = parse_hello(payload)
        if hello.cluster != self._cluster:
            raise SessionError("cluster", f"HELLO for cluster {hello.cluster!r}, this is {self._cluster!r}")
        if hello.receiver != self._node_id:
            raise SessionError(
                "wrong_node", f"HELLO addressed to node {hello.receiver}, this is {self._node_id}"
            )
        if hello.sender not in self._member_ids:
            raise SessionError("not_member", f"HELLO from node {hello.sender}, not a peer of this node")
        for kid in hello.key_ids:
            secret = self._keyring.secret_for(kid)
            if secret is not None:
                break
        else:
            raise SessionError("no_common_key", f"node {hello.sender} offered key ids {list(hello.key_ids)}")
        self._hello = hello
        self.key_id = kid
        self._key = session_key(
            secret,
            cluster=self._cluster,
            connector_id=hello.sender,
            acceptor_id=self._node_id,
            nonce_c=hello.nonce,
            nonce_a=self._nonce,
            kid=kid,
        )
        welcome = {
            "type": "WELCOME",
            "v": PROTOCOL_VERSION,
            "nonce": self._nonce.hex(),
            "key": kid,
            "auth": _proof(self._key, "acceptor"),
        }
        self._output += _frame(_canonical(welcome))

    def _on_finish(self, payload: bytes) -> None:
        assert self._key is not None and self._hello is not None
        body = _json_object(payload, "FINISH", _FINISH_KEYS)
        auth = _hex_field(body, "auth", 2 * MAC_BYTES)
        if not hmac.compare_digest(auth, _proof(self._key, "connector")):
            raise SessionError("bad_auth", f"node {self._hello.sender}'s FINISH proof does not verify")
        self.peer_id = self._hello.sender

    def _open(self, payload: bytes) -> Message:
        assert self._key is not None and self.peer_id is not None
        if len(payload) < SESSION_HEADER_BYTES:
            raise SessionError(
                "malformed", f"session frame of {len(payload)} bytes is shorter than its header"
            )
        seq_bytes = payload[: _SEQ.size]
        mac = payload[_SEQ.size : SESSION_HEADER_BYTES]
        body = payload[SESSION_HEADER_BYTES:]
        expected = hmac.new(self._key, seq_bytes + body, hashlib.sha256).digest()
        if not hmac.compare_digest(mac, expected):
            raise SessionError("bad_auth", f"session frame from node {self.peer_id} has a bad MAC")
        (seq,) = _SEQ.unpack(seq_bytes)
        if seq != self._next_seq:
            raise SessionError("bad_seq", f"frame {seq} from node {self.peer_id}, expected {self._next_seq}")
        self._next_seq += 1
        try:
            message = decode_body(body)
        except RemoteProtocolError as exc:
            raise SessionError("malformed", str(exc)) from exc
        if message.sender != self.peer_id:
            raise SessionError("sender", f"message from {message.sender} on node {self.peer_id}'s session")
        return message
