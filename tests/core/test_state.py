"""Durable state file format: the two-slot file and the version-1 file it replaces. Round trips, the
choice between the two records, every kind of damage to one record (the other one wins, `recovering`
set) or to both (StateCorruptError), and a torn write never yields a state that was not written."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.core.state import (
    LEGACY_FORMAT_VERSION,
    SLOT_BYTES,
    STATE_FILE_BYTES,
    STATE_FORMAT_VERSION,
    DurableState,
    LoadedState,
    StateCorruptError,
    dump_image,
    dump_slot,
    load_slots,
)

STATES = [
    DurableState(),
    DurableState(epoch=1, voted_for=None),
    DurableState(epoch=7, voted_for=3),
    DurableState(epoch=7, voted_for=0),
    DurableState(epoch=2**63, voted_for=2**32),
    DurableState(epoch=4, voted_for=None, recovering=True),
]


# The format, restated: one line of sorted-key JSON whose sha256 covers the rest of the object.
def _line(body: dict[str, Any], checksum: str | None = None) -> bytes:
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return json.dumps({**body, "sha256": checksum or digest}, sort_keys=True).encode()


def _legacy(body: dict[str, Any], checksum: str | None = None) -> bytes:
    """A version-1 file: the record and a newline."""
    return _line(body, checksum) + b"\n"


def _slot(line: bytes) -> bytes:
    return (line + b"\n").ljust(SLOT_BYTES, b" ")


def _v1(**changes: Any) -> dict[str, Any]:
    return {"version": LEGACY_FORMAT_VERSION, "epoch": 5, "voted_for": 2, **changes}


def _v2(**changes: Any) -> dict[str, Any]:
    return {"version": STATE_FORMAT_VERSION, "seq": 3, "epoch": 5, "voted_for": 2, **changes}


# -- the two-slot file --------------------------------------------------------------------------------


@pytest.mark.parametrize("seq", [0, 1, 2**40])
@pytest.mark.parametrize("state", STATES, ids=repr)
def test_round_trip(state: DurableState, seq: int) -> None:
    slot = dump_slot(state, seq)
    assert len(slot) == SLOT_BYTES and slot.count(b"\n") == 1 and slot.endswith(b" ")
    image = dump_image(state, seq)
    assert len(image) == STATE_FILE_BYTES and image == slot + slot
    assert load_slots(image) == LoadedState(state, seq)


@pytest.mark.parametrize("state", STATES, ids=repr)
def test_dump_matches_the_documented_format(state: DurableState) -> None:
    body = {"version": 2, "seq": 9, "epoch": state.epoch, "voted_for": state.voted_for}
    if state.recovering:  # written only while true: settled nodes' records keep their short form
        body["recovering"] = True
    assert dump_slot(state, 9) == _slot(_line(body))


def test_each_slot_is_a_line_that_jq_and_grep_read() -> None:
    image = dump_image(DurableState(12, 3), 4)
    records = [json.loads(line) for line in image.decode().split("\n") if line.strip()]
    assert [(r["seq"], r["epoch"], r["voted_for"]) for r in records] == [(4, 12, 3), (4, 12, 3)]


@pytest.mark.parametrize("seq", [-1, True, 1.0, None])
def test_dump_slot_refuses_a_bad_seq(seq: Any) -> None:
    with pytest.raises(ValueError, match="seq"):
        dump_slot(DurableState(1), seq)


def test_a_record_that_does_not_fit_a_slot_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        dump_slot(DurableState(10**4000), 0)


def _two(first: tuple[DurableState, int], second: tuple[DurableState, int]) -> bytes:
    return dump_slot(*first) + dump_slot(*second)


@pytest.mark.parametrize(
    ("slots", "chosen"),
    [
        (((DurableState(4, 1), 4), (DurableState(5, 2), 5)), (DurableState(5, 2), 5)),
        (((DurableState(6, 3), 6), (DurableState(5, 2), 5)), (DurableState(6, 3), 6)),
        (((DurableState(5, 2), 0), (DurableState(5, 2), 1)), (DurableState(5, 2), 1)),  # saved twice
        (((DurableState(5, 2), 2), (DurableState(5, 2), 9)), (DurableState(5, 2), 9)),  # a gap: the higher
    ],
    ids=["newer in slot 1", "newer in slot 0", "the same state saved again", "seqs far apart"],
)
def test_both_valid_the_higher_seq_wins(
    slots: tuple[tuple[DurableState, int], tuple[DurableState, int]], chosen: tuple[DurableState, int]
) -> None:
    assert load_slots(_two(*slots)) == LoadedState(*chosen)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (_two((DurableState(5, 2), 3), (DurableState(5, 3), 3)), "both slots hold seq 3 with different"),
        (_two((DurableState(5, 2), 3), (DurableState(5, 2, True), 3)), "both slots hold seq 3"),
        (_two((DurableState(5, 2), 5), (DurableState(6, 2), 6)), "seq 5, which belongs in slot 1"),
        (_two((DurableState(6, 2), 4), (DurableState(5, 2), 5)), "epochs never go back"),
    ],
    ids=["equal seq, other vote", "equal seq, other flag", "seq in the wrong slot", "newer epoch lower"],
)
def test_two_valid_records_that_no_save_could_leave_are_corrupt(data: bytes, reason: str) -> None:
    with pytest.raises(StateCorruptError, match=reason):
        load_slots(data)


def _damage(slot: bytes, how: str) -> bytes:
    """`how` to a slot of SLOT_BYTES bytes; returns the damaged slot (maybe shorter)."""
    if how == "zeroed":
        return bytes(SLOT_BYTES)
    if how == "cut in the record":
        return slot[:40]
    if how == "cut in the padding":
        return slot[: SLOT_BYTES - 100]
    if how == "gone":
        return b""
    if how == "garbage":
        return b"\xff" * SLOT_BYTES
    if how == "newline lost":
        return slot.replace(b"\n", b" ")
    if how == "junk in the padding":
        return slot[:-2] + b"x "
    raise AssertionError(how)


SLOT_DAMAGE = ["zeroed", "cut in the record", "cut in the padding", "gone", "garbage", "newline lost"]
SLOT_DAMAGE += ["junk in the padding"]


@pytest.mark.parametrize("how", SLOT_DAMAGE)
def test_a_damaged_newer_slot_leaves_the_older_record_recovering(how: str) -> None:
    older, newer = dump_slot(DurableState(8, 1), 8), dump_slot(DurableState(9, 4), 9)
    loaded = load_slots(older + _damage(newer, how))
    assert loaded.state == DurableState(8, 1, recovering=True)
    assert (loaded.seq, loaded.bad_slot, loaded.legacy) == (8, 1, False)
    assert loaded.note


@pytest.mark.parametrize("how", ["zeroed", "garbage", "newline lost", "junk in the padding"])
def test_a_damaged_older_slot_leaves_the_newer_record_recovering(how: str) -> None:
    """Slot 0 cannot be cut short without losing slot 1 too: the damage that keeps the file's size."""
    older, newer = dump_slot(DurableState(8, 1), 8), dump_slot(DurableState(9, 4), 9)
    loaded = load_slots(_damage(older, how) + newer)
    assert loaded == LoadedState(DurableState(9, 4, recovering=True), 9, bad_slot=0, note=loaded.note)
    assert loaded.note


def test_the_note_says_why_the_slot_failed() -> None:
    newer = bytearray(dump_slot(DurableState(9, 4), 9))
    newer[20] ^= 0x01
    loaded = load_slots(dump_slot(DurableState(8, 1), 8) + bytes(newer))
    assert loaded.note is not None and ("checksum" in loaded.note or "JSON" in loaded.note)


def test_flipping_any_byte_of_one_slot_never_yields_another_state() -> None:
    older, newer = dump_slot(DurableState(8, 1), 8), dump_slot(DurableState(9, 4), 9)
    for index in range(SLOT_BYTES):
        for slot in (0, 1):
            damaged = [bytearray(older), bytearray(newer)]
            damaged[slot][index] ^= 0x01
            loaded = load_slots(bytes(damaged[0] + damaged[1]))
            if loaded.bad_slot is None:  # only a flip JSON ignores (whitespace to whitespace) can pass
                assert loaded == LoadedState(DurableState(9, 4), 9), (slot, index)
            else:
                assert loaded.bad_slot == slot, (slot, index)
                survivor = DurableState(9, 4) if slot == 0 else DurableState(8, 1)
                assert loaded.state == replace(survivor, recovering=True), (slot, index)


def test_both_slots_damaged_is_corrupt_and_says_why_for_each() -> None:
    data = bytes(SLOT_BYTES) + dump_slot(DurableState(9, 4), 9)[:-1] + b"x"
    with pytest.raises(StateCorruptError, match=r"no valid record: slot 0: .*; slot 1: .*padded"):
        load_slots(data)


def test_a_file_larger_than_two_slots_is_corrupt() -> None:
    with pytest.raises(StateCorruptError, match="more than 8192 bytes"):
        load_slots(dump_image(DurableState(3), 3) + b"\n")


def test_a_slot_record_alone_in_a_short_file_is_cut_short() -> None:
    with pytest.raises(StateCorruptError, match="cut short"):
        load_slots(_legacy(_v2()))


@pytest.mark.parametrize(
    "changes",
    [{"seq": -1}, {"seq": "3"}, {"seq": 3.0}, {"seq": True}, {"seq": None}, {"version": 1}],
    ids=repr,
)
def test_a_slot_record_with_a_bad_seq_or_version_is_invalid(changes: dict[str, Any]) -> None:
    bad = _slot(_line(_v2(**changes)))
    with pytest.raises(StateCorruptError, match=r"seq|version"):
        load_slots(bad + bad)


def test_a_slot_record_without_a_seq_is_invalid() -> None:
    body = _v2()
    del body["seq"]
    with pytest.raises(StateCorruptError, match="seq"):
        load_slots(_slot(_line(body)) * 2)


# -- a torn write: any prefix of the new slot over the old one, or any mix of their 512-byte sectors ------


SECTOR = 512


@st.composite
def saved_states(draw: st.DrawFn) -> list[DurableState]:
    """States in the order a node could save them: epochs never go down."""
    epoch = draw(st.integers(0, 2**62))
    states = []
    for _ in range(draw(st.integers(2, 6))):
        epoch += draw(st.sampled_from([0, 0, 1, 2**31]))
        states.append(DurableState(epoch, draw(st.none() | st.integers(0, 64)), draw(st.booleans())))
    return states


CUTS = st.integers(0, 160) | st.integers(0, SLOT_BYTES)  # a record is ~130 bytes: most cuts fall in it


@given(states=saved_states(), cut=CUTS, sectors=st.lists(st.booleans(), min_size=8, max_size=8))
def test_a_torn_write_yields_the_last_completed_state_or_the_new_one(
    states: list[DurableState], cut: int, sectors: list[bool]
) -> None:
    *completed, new = states
    data = bytearray(dump_image(completed[0], 0))  # what a new file holds: the same record twice
    for seq, state in enumerate(completed[1:], start=1):
        data[(seq % 2) * SLOT_BYTES : (seq % 2 + 1) * SLOT_BYTES] = dump_slot(state, seq)
    last, new_seq = completed[-1], len(completed)
    where = slice((new_seq % 2) * SLOT_BYTES, (new_seq % 2 + 1) * SLOT_BYTES)
    old_bytes, new_bytes = bytes(data[where]), dump_slot(new, new_seq)
    prefix = new_bytes[:cut] + old_bytes[cut:]
    mixed = b"".join(
        (new_bytes if sectors[i] else old_bytes)[i * SECTOR : (i + 1) * SECTOR] for i in range(8)
    )
    for torn in (prefix, mixed):
        data[where] = torn
        loaded = load_slots(bytes(data))
        if loaded.seq == new_seq:
            assert loaded == LoadedState(new, new_seq)  # all of it reached the disk
        else:
            assert loaded.seq == new_seq - 1
            if loaded.bad_slot is None:
                assert loaded.state == last
            else:  # the torn slot: the older record, and the node catches up before it votes
                assert loaded.bad_slot == new_seq % 2
                assert loaded.state == replace(last, recovering=True)


# -- the version-1 file: still read, so that existing nodes upgrade without an operator ------------------


@pytest.mark.parametrize("state", STATES, ids=repr)
def test_a_version_1_file_loads(state: DurableState) -> None:
    body: dict[str, Any] = {"version": 1, "epoch": state.epoch, "voted_for": state.voted_for}
    if state.recovering:
        body["recovering"] = True
    assert load_slots(_legacy(body)) == LoadedState(state, 0, legacy=True)


def test_every_truncation_of_a_version_1_file_is_corrupt() -> None:
    data = _legacy(_v1())
    content = data.rstrip(b"\n")
    for cut in range(len(content)):
        with pytest.raises(StateCorruptError):
            load_slots(data[:cut])
    assert load_slots(content).state == DurableState(5, 2)  # only the trailing newline may go missing


GARBAGE = [
    b"",
    b"\n",
    b"\x00" * 64,
    b"\x00" * SLOT_BYTES,
    b"\x00" * STATE_FILE_BYTES,
    b" " * STATE_FILE_BYTES,
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


@pytest.mark.parametrize("data", GARBAGE, ids=lambda d: repr(d[:20]) + f"*{len(d)}")
def test_garbage_is_corrupt(data: bytes) -> None:
    with pytest.raises(StateCorruptError):
        load_slots(data)


def test_flipping_any_byte_of_a_version_1_file_is_detected() -> None:
    data = _legacy(_v1(epoch=42, voted_for=7))
    for index in range(len(data) - 1):  # the last byte is the newline: whitespace, not content
        damaged = bytearray(data)
        damaged[index] ^= 0x01
        try:
            loaded = load_slots(bytes(damaged))
        except StateCorruptError:
            continue
        # a flip that JSON ignores (whitespace to whitespace) may load, but never as another state
        assert loaded.state == DurableState(epoch=42, voted_for=7), index


# -- damage to a record, in either form: a version-1 file, or the same bad record in both slots ---------

LAYOUTS = ["version 1", "slots"]


def _file(layout: str, line: bytes) -> bytes:
    return line + b"\n" if layout == "version 1" else _slot(line) * 2


def _body(layout: str, **changes: Any) -> dict[str, Any]:
    return _v1(**changes) if layout == "version 1" else _v2(**changes)


BAD_CHECKSUMS = {
    "zero-checksum": lambda body: _line(body, checksum="0" * 64),
    "bad-checksum-text": lambda body: _line(body, checksum="not-hex"),
    "epoch-edited": lambda body: _line(body).replace(b'"epoch": 5', b'"epoch": 6'),
    "vote-edited": lambda body: _line(body).replace(b'"voted_for": 2', b'"voted_for": 3'),
    "checksum-missing": lambda body: json.dumps(body).encode(),
    "checksum-null": lambda body: json.dumps({**body, "sha256": None}).encode(),
    "field-added-after-checksum": lambda body: _line(body)[:-1] + b', "extra": 1}',
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("damage", list(BAD_CHECKSUMS))
def test_bad_checksum_is_corrupt(layout: str, damage: str) -> None:
    with pytest.raises(StateCorruptError, match="checksum"):
        load_slots(_file(layout, BAD_CHECKSUMS[damage](_body(layout))))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("version", [0, 3, 99, "1", "2", None, 1.0, 2.0, True], ids=repr)
def test_wrong_version_is_corrupt(layout: str, version: Any) -> None:
    with pytest.raises(StateCorruptError, match="version"):
        load_slots(_file(layout, _line(_body(layout, version=version))))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_other_layouts_version_is_corrupt(layout: str) -> None:
    other = STATE_FORMAT_VERSION if layout == "version 1" else LEGACY_FORMAT_VERSION
    with pytest.raises(StateCorruptError, match="version"):
        load_slots(_file(layout, _line(_body(layout, version=other))))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_missing_version_is_corrupt(layout: str) -> None:
    body = _body(layout)
    del body["version"]
    with pytest.raises(StateCorruptError, match="version"):
        load_slots(_file(layout, _line(body)))


@pytest.mark.parametrize("layout", LAYOUTS)
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
        {"recovering": 1},
        {"recovering": "true"},
    ],
    ids=repr,
)
def test_invalid_content_with_a_valid_checksum_is_corrupt(layout: str, changes: dict[str, Any]) -> None:
    with pytest.raises(StateCorruptError, match="invalid content"):
        load_slots(_file(layout, _line(_body(layout, **changes))))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("missing", ["epoch", "voted_for"])
def test_missing_field_with_a_valid_checksum_is_corrupt(layout: str, missing: str) -> None:
    body = _body(layout)
    del body[missing]
    with pytest.raises(StateCorruptError, match="invalid content"):
        load_slots(_file(layout, _line(body)))


@pytest.mark.parametrize(
    "data",
    [b'{"epoch": ' + b"1" * 5000 + b"}", b"[" * 100_000, b"[" * 4000],
    ids=["5000-digit-int", "deep-nesting", "deep-nesting-short"],
)
def test_absurd_json_is_corrupt(data: bytes) -> None:
    with pytest.raises(StateCorruptError):
        load_slots(data)
    with pytest.raises(StateCorruptError):
        load_slots(data[: SLOT_BYTES - 1].ljust(SLOT_BYTES - 1) + b"\n" + _slot(b"{}"))


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


def test_default_state_is_epoch_zero_no_vote() -> None:
    assert DurableState() == DurableState(epoch=0, voted_for=None)
