"""Durable state file format: round trip, and every kind of damage is a StateCorruptError."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from node.core.state import STATE_FORMAT_VERSION, DurableState, StateCorruptError, dump_state, load_state

STATES = [
    DurableState(),
    DurableState(epoch=1, voted_for=None),
    DurableState(epoch=7, voted_for=3),
    DurableState(epoch=7, voted_for=0),
    DurableState(epoch=2**63, voted_for=2**32),
]


def _file(body: dict[str, Any], checksum: str | None = None) -> bytes:
    """A state file with `body` and a correct checksum unless one is given (the format, restated)."""
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return (json.dumps({**body, "sha256": checksum or digest}, sort_keys=True) + "\n").encode()


def _valid_body(**changes: Any) -> dict[str, Any]:
    return {"version": STATE_FORMAT_VERSION, "epoch": 5, "voted_for": 2, **changes}


@pytest.mark.parametrize("state", STATES, ids=repr)
def test_round_trip(state: DurableState) -> None:
    data = dump_state(state)
    assert data.endswith(b"\n")
    assert load_state(data) == state


@pytest.mark.parametrize("state", STATES, ids=repr)
def test_dump_matches_the_documented_format(state: DurableState) -> None:
    expected = _file({"version": STATE_FORMAT_VERSION, "epoch": state.epoch, "voted_for": state.voted_for})
    assert dump_state(state) == expected


def test_default_state_is_epoch_zero_no_vote() -> None:
    assert DurableState() == DurableState(epoch=0, voted_for=None)


@pytest.mark.parametrize("state", STATES[1:3], ids=repr)
def test_every_truncation_is_corrupt(state: DurableState) -> None:
    data = dump_state(state)
    content = data.rstrip(b"\n")
    for cut in range(len(content)):
        with pytest.raises(StateCorruptError):
            load_state(data[:cut])
    assert load_state(content) == state  # only the trailing newline may go missing


GARBAGE = [
    b"",
    b"\n",
    b"\x00" * 64,
    b"\xff\xfe{}",
    b"not json at all",
    b"null",
    b"[]",
    b"42",
    b'"epoch"',
    b"{}",
    b'{"epoch": 5}',
    b"[" * 50,
]


@pytest.mark.parametrize("data", GARBAGE, ids=repr)
def test_garbage_is_corrupt(data: bytes) -> None:
    with pytest.raises(StateCorruptError):
        load_state(data)


def test_flipping_any_byte_of_the_content_is_detected() -> None:
    data = dump_state(DurableState(epoch=42, voted_for=7))
    for index in range(len(data) - 1):  # the last byte is the newline: whitespace, not content
        damaged = bytearray(data)
        damaged[index] ^= 0x01
        try:
            state = load_state(bytes(damaged))
        except StateCorruptError:
            continue
        # a flip that JSON ignores (whitespace to whitespace) may load, but never as another state
        assert state == DurableState(epoch=42, voted_for=7), index


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(_file(_valid_body(), checksum="0" * 64), id="zero-checksum"),
        pytest.param(_file(_valid_body(), checksum="not-hex"), id="bad-checksum-text"),
        pytest.param(_file(_valid_body()).replace(b'"epoch": 5', b'"epoch": 6'), id="epoch-edited"),
        pytest.param(_file(_valid_body()).replace(b'"voted_for": 2', b'"voted_for": 3'), id="vote-edited"),
        pytest.param(json.dumps(_valid_body()).encode(), id="checksum-missing"),
        pytest.param(
            json.dumps({**_valid_body(), "sha256": None}).encode(),
            id="checksum-null",
        ),
        pytest.param(
            _file(_valid_body())[:-2] + b', "extra": 1}\n',
            id="field-added-after-checksum",
        ),
    ],
)
def test_bad_checksum_is_corrupt(data: bytes) -> None:
    with pytest.raises(StateCorruptError, match="checksum"):
        load_state(data)


@pytest.mark.parametrize(
    "version",
    [
        0,
        2,
        "1",
        None,
        1.0,
        True,
    ],
    ids=repr,
)
def test_wrong_version_is_corrupt(version: Any) -> None:
    with pytest.raises(StateCorruptError, match="version"):
        load_state(_file(_valid_body(version=version)))


def test_missing_version_is_corrupt() -> None:
    body = _valid_body()
    del body["version"]
    with pytest.raises(StateCorruptError, match="version"):
        load_state(_file(body))


@pytest.mark.parametrize(
    "changes",
    [
        {"epoch": -1},
        {"epoch": "5"},
        {"epoch": 5.0},
        {"epoch": True},
        {"epoch": None},
        {"epoch": [5]},
        {"voted_for": -1},
        {"voted_for": "2"},
        {"voted_for": 2.0},
        {"voted_for": False},
        {"voted_for": {}},
    ],
    ids=repr,
)
def test_invalid_content_with_a_valid_checksum_is_corrupt(changes: dict[str, Any]) -> None:
    with pytest.raises(StateCorruptError):
        load_state(_file(_valid_body(**changes)))


@pytest.mark.parametrize("missing", ["epoch", "voted_for"])
def test_missing_field_with_a_valid_checksum_is_corrupt(missing: str) -> None:
    body = _valid_body()
    del body[missing]
    with pytest.raises(StateCorruptError):
        load_state(_file(body))


@pytest.mark.parametrize(
    "data",
    [b'{"epoch": ' + b"1" * 5000 + b"}", b"[" * 100_000],
    ids=["5000-digit-int", "deep-nesting"],
)
def test_absurd_json_is_corrupt(data: bytes) -> None:
    with pytest.raises(StateCorruptError):
        load_state(data)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"epoch": -1},
        {"epoch": True},
        {"epoch": 1.0},
        {"epoch": "1"},
        {"epoch": None},
        {"voted_for": -1},
        {"voted_for": True},
        {"voted_for": "1"},
        {"voted_for": 1.0},
    ],
    ids=repr,
)
def test_durable_state_validates(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        DurableState(**kwargs)


def test_recovering_is_written_only_while_true_and_read_back() -> None:
    settled = dump_state(DurableState(4, None))
    assert b"recovering" not in settled  # files of settled nodes keep their old form
    assert load_state(settled) == DurableState(4, None)
    recovering = DurableState(4, None, recovering=True)
    assert load_state(dump_state(recovering)) == recovering
