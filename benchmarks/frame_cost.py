"""CPU cost of a frame on the wire, before and after the connection handshake (issue 13, item 3).

    .venv/bin/python benchmarks/frame_cost.py

Before: `encode_frame` (JSON, HMAC over the JSON, JSON again), one frame shared by every link. After:
`encode_body` once per message and `SessionSender.seal` (sequence number + HMAC) per link; decoding by
the session `Acceptor`; and one full handshake (both sides, CPU only, no network).
"""

from __future__ import annotations

import timeit
from collections.abc import Callable

from node.core.codec import FrameDecoder, encode_body, encode_frame
from node.core.messages import Heartbeat
from node.core.session import Acceptor, Connector, Keyring, SessionSender

SECRET = b"cluster-secret-0123456789"
MESSAGE = Heartbeat(sender=1, epoch=12345, leader_id=1, sent_ms=123456789)
N = 50_000


def per_call_us(fn: Callable[[], object], number: int = N) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def handshake() -> tuple[Acceptor, SessionSender]:
    connector = Connector(cluster="c", node_id=1, peer_id=2, keyring=Keyring((SECRET,)), nonce=bytes(16))
    acceptor = Acceptor(
        cluster="c", node_id=2, member_ids=(1, 2), keyring=Keyring((SECRET,)), nonce=bytes(16)
    )
    acceptor.receive(connector.hello_frame)
    acceptor.next_message()
    established = connector.receive(acceptor.take_output())
    assert established is not None
    finish, sender = established
    acceptor.receive(finish)
    acceptor.next_message()
    return acceptor, sender


def main() -> None:
    body = encode_body(MESSAGE)
    old_encode = per_call_us(lambda: encode_frame(MESSAGE, SECRET))
    new_body = per_call_us(lambda: encode_body(MESSAGE))
    sender = SessionSender(b"k" * 32)
    new_seal = per_call_us(lambda: sender.seal(body))
    old_frame = encode_frame(MESSAGE, SECRET)
    old_decode = per_call_us(lambda: FrameDecoder(SECRET).feed(old_frame))
    acceptor, session = handshake()
    frames = iter([session.seal(body) for _ in range(5 * N + 1)])

    def decode() -> object:
        acceptor.receive(next(frames))
        return acceptor.next_message()

    new_decode = per_call_us(decode)
    print(f"encode, before: {old_encode:.2f} us per message (one frame for every link)")
    print(f"encode, after: {new_body:.2f} us per message + {new_seal:.2f} us per link")
    print(f"broadcast to 4 peers: before {old_encode:.2f} us, after {new_body + 4 * new_seal:.2f} us")
    print(f"decode: before {old_decode:.2f} us, after {new_decode:.2f} us per frame")
    print(f"handshake, both sides: {per_call_us(handshake, 2000):.1f} us")


if __name__ == "__main__":
    main()
