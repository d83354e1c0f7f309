"""Wire frames: 4-byte big-endian length + UTF-8 JSON object; the message bodies of session frames.

On the wire since the connection handshake (node/core/session.py, docs/security.md), a message travels
as `encode_body`: its canonical JSON, authenticated by the session's per-frame MAC. `encode_frame`,
`decode_payload` and `FrameDecoder` are the earlier, self-standing format (an `auth` field per message,
no session); the daemon no longer speaks it, tests and tools use it to sign messages on their own.

In that format the `auth` field is the hex HMAC-SHA256, keyed by the cluster secret, of the canonical
body: the frame's JSON object without `auth`, serialised with sorted keys and no whitespace. The decoder
is sans-IO: feed it whatever bytes a read returned (partial frames, several frames) and pull messages
out.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from typing import Any

from node.core.errors import RemoteProtocolError
from node.core.messages import Message, from_wire

MAX_FRAME_BYTES = 64 * 1024  # payload limit; a larger length prefix is rejected before buffering it
_LENGTH = struct.Struct(">I")


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _mac(secret: bytes, body: dict[str, Any]) -> str:
    return hmac.new(secret, _canonical(body), hashlib.sha256).hexdigest()


def encode_frame(message: Message, secret: bytes) -> bytes:
    body = message.to_wire()
    body["auth"] = _mac(secret, body)
    payload = _canonical(body)
    if len(payload) > MAX_FRAME_BYTES:
        raise ValueError(f"frame of {len(payload)} bytes exceeds {MAX_FRAME_BYTES}")
    return _LENGTH.pack(len(payload)) + payload


def encode_body(message: Message) -> bytes:
    """A message's canonical JSON without `auth`: the body of a session frame (node/core/session.py)."""
    return _canonical(message.to_wire())


def _json_object(payload: bytes) -> dict[str, Any]:
    try:
        # ValueError covers JSONDecodeError, UnicodeDecodeError and Python's int-digits limit.
        body = json.loads(payload.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise RemoteProtocolError(f"frame is not valid UTF-8 JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise RemoteProtocolError("frame is not a JSON object")
    return body


def decode_body(body: bytes) -> Message:
    """A session frame's body -> message (authenticated by the session, so no `auth` field)."""
    return from_wire(_json_object(body))


def decode_payload(payload: bytes, secret: bytes) -> Message:
    """One frame's payload -> message. Raises RemoteProtocolError for anything a peer got wrong."""
    body = _json_object(payload)
    auth = body.pop("auth", None)
    if not isinstance(auth, str) or not auth.isascii():
        raise RemoteProtocolError("frame has no valid auth field")
    try:
        expected = _mac(secret, body)
    except (UnicodeEncodeError, RecursionError) as exc:  # lone surrogates, absurd nesting
        raise RemoteProtocolError(f"frame cannot be authenticated: {exc}") from exc
    if not hmac.compare_digest(auth, expected):
        raise RemoteProtocolError("frame has a bad HMAC (wrong cluster secret or tampered)")
    return from_wire(body)


class FrameDecoder:
    """Accumulates bytes from one connection and yields whole messages.

    After a RemoteProtocolError the stream position is lost: the caller must close the connection.
    """

    def __init__(self, secret: bytes, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._secret = secret
        self._max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()
        self._failed = False

    @property
    def buffered_bytes(self) -> int:
        return len(self._buffer)

    def receive(self, data: bytes) -> None:
        self._buffer += data

    def next_message(self) -> Message | None:
        """The next complete message, or None until more bytes arrive."""
        if self._failed:
            raise RemoteProtocolError("decoder already failed on this connection")
        if len(self._buffer) < _LENGTH.size:
            return None
        (length,) = _LENGTH.unpack_from(self._buffer)
        if length > self._max_frame_bytes:
            self._failed = True
            raise RemoteProtocolError(f"frame of {length} bytes exceeds the {self._max_frame_bytes} limit")
        end = _LENGTH.size + length
        if len(self._buffer) < end:
            return None
        payload = bytes(self._buffer[_LENGTH.size : end])
        del self._buffer[:end]
        try:
            return decode_payload(payload, self._secret)
        except RemoteProtocolError:
            self._failed = True
            raise

    def feed(self, data: bytes) -> list[Message]:
        """receive() + every complete message. Raises on the first bad frame."""
        self.receive(data)
        out: list[Message] = []
        while (message := self.next_message()) is not None:
            out.append(message)
        return out
