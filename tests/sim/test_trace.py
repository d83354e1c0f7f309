"""The trace hashes exactly the lines it would have hashed one by one, however they are batched, and names
each message exactly as its dataclass `repr` does."""

from __future__ import annotations

import hashlib

import pytest

from node.core.messages import (
    Confirm,
    Confirmed,
    ConfirmRefused,
    Coordinator,
    Election,
    Heartbeat,
    Message,
    Ok,
    PreVoteAnswer,
    Promise,
    Propose,
    Resign,
    TokenRefused,
)
from node.sim.trace import FLUSH_LINES, Trace, message_text

MESSAGES: list[Message] = [
    Heartbeat(1, 2, None),
    Heartbeat(1, 2, 1, sent_ms=1500, echo_ms=None, eligible=False),
    Election(2, 3, 1, ids=(1, 2), abstained=(3,)),
    Ok(4, 5),
    Coordinator(5, 6, 5, 1),
    Propose(3, 7, pre_vote=True),
    Propose(3, 7, pre_vote=False, resigned_leader=5, sent_ms=10),
    Promise(2, 7, True, 7, echo_ms=12),
    PreVoteAnswer(2, 7, False, 6),
    Resign(5, 6, successor=3, staying=True),
    Confirm(4, 8, 4, sent_ms=99),
    Confirmed(2, 8, 99),
    ConfirmRefused(2, 8, 9),
    TokenRefused(2, 8, 9),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_message_text_is_the_dataclass_repr(message: Message) -> None:
    assert message_text(message) == repr(message)


def test_batched_hash_tail_and_lines_are_those_of_one_line_at_a_time() -> None:
    trace = Trace(keep_all_lines=True, tail_lines=5)
    expected: list[str] = []
    heartbeat = Heartbeat(1, 2, 1, sent_ms=7)
    for i in range(FLUSH_LINES * 2 + 17):  # two full batches and a partial one
        if i % 3:
            trace.line(i, f"line {i}")
            expected.append(f"{i:>9} line {i}")
        else:
            trace.delivery(i, f"n{i % 5} <- ", heartbeat)  # one object, many deliveries
            expected.append(f"{i:>9} n{i % 5} <- {heartbeat!r}")
        if i == 100:
            assert list(trace.tail) == expected[-5:]  # reading mid-run sees every line so far
    assert trace.line_count == len(expected)
    assert trace.all_lines == expected
    assert list(trace.tail) == expected[-5:]
    assert trace.hexdigest() == hashlib.sha256("".join(f"{e}\n" for e in expected).encode()).hexdigest()
