"""The durable part of a node: what must survive a crash for the safety rules to hold.

`epoch` is the highest epoch this node has promised or accepted (it never decreases); `voted_for` is the
candidate it promised `epoch` to (None when it accepted `epoch` from a leader without promising it).
`recovering` marks a node that started without its state (a new node, a wiped disk, or a state file with
one damaged record) and has not yet learned an epoch above every promise it may have forgotten
(node/algorithms/catchup.py); it survives a restart so that a crash mid-recovery cannot turn an epoch
learned from a leader into a licence to vote.

The file form (docs/operations.md, "The state file"): STATE_FILE_BYTES bytes, two slots of SLOT_BYTES,
each one line of JSON with a sequence number and a checksum, padded with spaces. A save overwrites only
the slot of the older record (seq s lives in slot s % 2), so a write torn by a power loss damages at most
the record being written; at start the valid record with the higher seq wins. The checksum detects
corruption, which is never silently reset. The single-record file of version 1 is still read (and
rewritten in the slot form at the next save). Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace

STATE_FORMAT_VERSION = 2  # a slot record of the two-slot file
LEGACY_FORMAT_VERSION = 1  # the single-record file before the slots: read, never written
SLOT_BYTES = 4096  # one page: rewriting one slot never rewrites the other's
SLOT_COUNT = 2
STATE_FILE_BYTES = SLOT_COUNT * SLOT_BYTES


class StateCorruptError(Exception):
    """The state file exists but cannot be trusted. Never reset silently: an operator must look."""


@dataclass(frozen=True, slots=True)
class DurableState:
    epoch: int = 0
    voted_for: int | None = None
    recovering: bool = False

    def __post_init__(self) -> None:
        if type(self.epoch) is not int or self.epoch < 0:
            raise ValueError(f"epoch must be a non-negative integer, got {self.epoch!r}")
        if self.voted_for is not None and (type(self.voted_for) is not int or self.voted_for < 0):
            raise ValueError(f"voted_for must be a node id or None, got {self.voted_for!r}")
        if type(self.recovering) is not bool:
            raise ValueError(f"recovering must be true or false, got {self.recovering!r}")


@dataclass(frozen=True, slots=True)
class LoadedState:
    """What a state file holds: the state to start from, the seq of its record (the next save writes
    seq + 1), and what the file's form asks of the next save."""

    state: DurableState
    seq: int
    legacy: bool = False  # a version-1 file: the next save writes the whole two-slot file
    bad_slot: int | None = None  # the slot whose record failed its checks; state.recovering is then True
    note: str | None = None  # why bad_slot failed


def _digest(body: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def dump_slot(state: DurableState, seq: int) -> bytes:
    """The record of `state` with sequence number `seq`: exactly SLOT_BYTES, one line of JSON, a newline,
    spaces. It belongs in slot seq % SLOT_COUNT."""
    if type(seq) is not int or seq < 0:
        raise ValueError(f"seq must be a non-negative integer, got {seq!r}")
    body: dict[str, object] = {
        "version": STATE_FORMAT_VERSION,
        "seq": seq,
        "epoch": state.epoch,
        "voted_for": state.voted_for,
    }
    if state.recovering:  # written only while true, as in version 1
        body["recovering"] = True
    body["sha256"] = _digest(body)
    line = json.dumps(body, sort_keys=True).encode() + b"\n"
    if len(line) > SLOT_BYTES:
        raise ValueError(f"a state record of {len(line)} bytes does not fit a slot of {SLOT_BYTES}")
    return line.ljust(SLOT_BYTES, b" ")


def dump_image(state: DurableState, seq: int) -> bytes:
    """A whole state file: the same record in both slots (what a new or replaced file holds)."""
    return dump_slot(state, seq) * SLOT_COUNT


def _parse_record(text: bytes) -> tuple[int, dict[str, object], DurableState]:
    """One record (JSON object, checksum, fields) -> (its version, its body, its state)."""
    try:
        body = json.loads(text.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, int limits
        raise StateCorruptError(f"not valid JSON (truncated or overwritten?): {exc}") from exc
    if not isinstance(body, dict):
        raise StateCorruptError("not a JSON object")
    checksum = body.pop("sha256", None)
    if checksum != _digest(body):
        raise StateCorruptError("checksum mismatch (the record was modified or partially written)")
    version = body.get("version")
    if type(version) is not int or version not in (LEGACY_FORMAT_VERSION, STATE_FORMAT_VERSION):
        raise StateCorruptError(f"unsupported state format version {version!r}")
    try:
        state = DurableState(
            epoch=body["epoch"], voted_for=body["voted_for"], recovering=body.get("recovering", False)
        )
    except (KeyError, ValueError) as exc:
        raise StateCorruptError(f"invalid content: {exc}") from exc
    return version, body, state


def _parse_slot(slot: bytes) -> tuple[DurableState, int]:
    """One slot -> (its state, its seq). A slot is exactly one line of JSON, a newline and spaces."""
    if len(slot) != SLOT_BYTES:
        raise StateCorruptError(f"cut short: {len(slot)} of {SLOT_BYTES} bytes")
    line, newline, padding = slot.partition(b"\n")
    if not newline or padding.strip(b" "):
        raise StateCorruptError("not one line of JSON padded with spaces (a torn or overwritten record?)")
    version, body, state = _parse_record(line)
    if version != STATE_FORMAT_VERSION:
        raise StateCorruptError(f"a version-{version} record in a slot ({STATE_FORMAT_VERSION} expected)")
    seq = body.get("seq")
    if type(seq) is not int or seq < 0:
        raise StateCorruptError(f"invalid content: seq must be a non-negative integer, got {seq!r}")
    return state, seq


def load_slots(data: bytes) -> LoadedState:
    """Parse a state file's bytes: the two-slot file, or a version-1 single record. Raises
    StateCorruptError with the reason when no record can be trusted.

    Both slots valid: the higher seq (equal seqs only with equal states: the file as first written).
    One slot valid: its state with `recovering` set, and the other slot and why in `bad_slot`, `note`:
    the bad slot is normally the write a crash interrupted (nothing that depended on it was sent, so the
    older record is right), but a newest record that rotted afterwards looks the same, and then this node
    may have promised more than the older record says; the catch-up makes both safe."""
    if len(data) < SLOT_BYTES:
        version, _, state = _parse_record(data)
        if version != LEGACY_FORMAT_VERSION:
            raise StateCorruptError(
                f"a version-{version} record in a file of {len(data)} bytes: the file is cut short "
                f"({STATE_FILE_BYTES} bytes expected)"
            )
        return LoadedState(state, seq=0, legacy=True)
    if len(data) > STATE_FILE_BYTES:
        raise StateCorruptError(f"more than {STATE_FILE_BYTES} bytes: not a state file")
    parsed: list[tuple[DurableState, int] | None] = []
    reasons: list[str] = []
    for index in range(SLOT_COUNT):
        try:
            parsed.append(_parse_slot(data[index * SLOT_BYTES : (index + 1) * SLOT_BYTES]))
            reasons.append("")
        except StateCorruptError as exc:
            parsed.append(None)
            reasons.append(str(exc))
    first, second = parsed
    if first is not None and second is not None:
        return _newer(first, second)
    for good, bad_slot in ((first, 1), (second, 0)):
        if good is not None:
            state, seq = good
            note = reasons[bad_slot]
            return LoadedState(replace(state, recovering=True), seq, bad_slot=bad_slot, note=note)
    raise StateCorruptError(f"no valid record: slot 0: {reasons[0]}; slot 1: {reasons[1]}")


def _newer(first: tuple[DurableState, int], second: tuple[DurableState, int]) -> LoadedState:
    """Both slots valid: the record with the higher seq, after the checks that the saves that made the
    file could have made it (a file that breaks them was not written by leader-node: an operator looks)."""
    (state0, seq0), (state1, seq1) = first, second
    if seq0 == seq1:
        if state0 != state1:
            raise StateCorruptError(f"both slots hold seq {seq0} with different states")
        return LoadedState(state0, seq0)
    for slot, seq in ((0, seq0), (1, seq1)):
        if seq % SLOT_COUNT != slot:
            raise StateCorruptError(
                f"slot {slot} holds seq {seq}, which belongs in slot {seq % SLOT_COUNT} "
                f"(the other slot holds seq {seq1 if slot == 0 else seq0})"
            )
    (old, _), (new, new_seq) = sorted((first, second), key=lambda record: record[1])
    if new.epoch < old.epoch:
        raise StateCorruptError(
            f"the newer record (seq {new_seq}) holds epoch {new.epoch}, below the older record's "
            f"{old.epoch}: epochs never go back"
        )
    return LoadedState(new, new_seq)
