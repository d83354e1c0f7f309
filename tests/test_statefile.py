"""The durable state file: atomic round trips, and every corruption is a clear error, never a reset."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.core.state import (
    SLOT_BYTES,
    STATE_FILE_BYTES,
    DurableState,
    LoadedState,
    dump_image,
    dump_slot,
)
from node.runtime.statefile import LOCK_FILE_NAME, STATE_FILE_NAME, StateFile, StateFileError


def test_missing_file_is_a_fresh_node(tmp_path: Path) -> None:
    assert StateFile(tmp_path).load() == DurableState()


@pytest.mark.parametrize("state", [DurableState(), DurableState(7, 3), DurableState(2**40, None)])
def test_round_trip(tmp_path: Path, state: DurableState) -> None:
    StateFile(tmp_path).save(state)
    assert StateFile(tmp_path).load() == state


def test_save_replaces_and_leaves_no_temp_file(tmp_path: Path) -> None:
    state_file = StateFile(tmp_path)
    state_file.save(DurableState(1, 1))
    state_file.save(DurableState(2, 5))
    assert sorted(p.name for p in tmp_path.iterdir()) == [STATE_FILE_NAME]
    assert state_file.load() == DurableState(2, 5)


def test_stale_temp_file_from_a_crash_is_ignored_and_removed_at_start(tmp_path: Path) -> None:
    state_file = StateFile(tmp_path)
    state_file.save(DurableState(4, 2))
    (tmp_path / (STATE_FILE_NAME + ".tmp")).write_bytes(b'{"half": ')  # a crash mid-write (a whole one)
    assert state_file.load() == DurableState(4, 2)
    state_file.save(DurableState(5, 2))  # in place: the temp file is not involved
    os.close(StateFile(tmp_path).lock())  # what a start does first: its probe write takes the temp name
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_FILE_NAME, STATE_FILE_NAME]
    assert StateFile(tmp_path).load() == DurableState(5, 2)


def _good_bytes() -> bytes:
    return dump_image(DurableState(9, 4), 9)


CORRUPTIONS = {
    "empty": b"",
    "truncated": _good_bytes()[:100],
    "garbage": b"\x00\xff\x13 not a state file",
    "bad checksum": _good_bytes().replace(b'"epoch": 9', b'"epoch": 1'),
    "wrong version": _good_bytes().replace(b'"version": 2', b'"version": 99'),
    "json but not an object": b"[1, 2, 3]\n",
    "both slots zeroed": bytes(STATE_FILE_BYTES),
    "too long": _good_bytes() + b"\n",
    "version 1, bad checksum": b'{"epoch": 1, "sha256": "00", "version": 1, "voted_for": null}\n',
}


@pytest.mark.parametrize("data", list(CORRUPTIONS.values()), ids=list(CORRUPTIONS))
def test_corruption_is_a_clear_error_never_a_reset(tmp_path: Path, data: bytes) -> None:
    (tmp_path / STATE_FILE_NAME).write_bytes(data)
    with pytest.raises(StateFileError) as caught:
        StateFile(tmp_path).load()
    message = str(caught.value)
    assert str(tmp_path / STATE_FILE_NAME) in message
    assert "write-state" in message  # says how to recover
    assert (tmp_path / STATE_FILE_NAME).read_bytes() == data  # untouched


def test_wrong_version_says_so(tmp_path: Path) -> None:
    # A checksum computed over the wrong version: the version check itself must fire, not the checksum.
    body = {"version": 99, "epoch": 3, "voted_for": None}
    body["sha256"] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    (tmp_path / STATE_FILE_NAME).write_text(json.dumps(body))
    with pytest.raises(StateFileError, match="version"):
        StateFile(tmp_path).load()


def test_recover_keeps_the_corrupt_file_and_never_lowers_the_epoch(tmp_path: Path) -> None:
    state_file = StateFile(tmp_path)
    (tmp_path / STATE_FILE_NAME).write_bytes(b"garbage")
    kept = state_file.recover(12)
    assert kept is not None and kept.read_bytes() == b"garbage"
    assert state_file.load() == DurableState(12, None)
    with pytest.raises(StateFileError, match="never go back"):
        state_file.recover(12)
    assert state_file.load() == DurableState(12, None)


def test_node_refuses_to_start_on_a_corrupt_state_file(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("s" * 32)
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / STATE_FILE_NAME).write_bytes(b'{"epoch": 3')
    config = tmp_path / "node.toml"
    config.write_text(
        'node_id = 1\nsecret_file = "secret"\nstate_dir = "state"\nhttp_listen = "127.0.0.1:3"\n'
        '[peers]\n1 = "127.0.0.1:1"\n2 = "127.0.0.1:2"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "node", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"LEADER_NODE_LOG": "stderr", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1
    assert "EVENT=startup_failed" in result.stderr
    assert str(state_dir / STATE_FILE_NAME) in result.stderr
    assert (state_dir / STATE_FILE_NAME).read_bytes() == b'{"epoch": 3'  # never reset


def test_lock_is_exclusive_and_released_with_its_fd(tmp_path: Path) -> None:
    first = StateFile(tmp_path).lock()
    with pytest.raises(StateFileError, match="in use by another leader-node process"):
        StateFile(tmp_path).lock()  # a second open file description: what a second process would hold
    os.close(first)  # what the kernel does when the holder dies
    os.close(StateFile(tmp_path).lock())


def test_lock_proves_the_directory_takes_a_write_and_leaves_no_trace(tmp_path: Path) -> None:
    os.close(StateFile(tmp_path).lock())
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_FILE_NAME]
    missing = tmp_path / "gone"
    with pytest.raises(StateFileError, match="cannot open the lock in state_dir"):
        StateFile(missing).lock()


def _node_toml(tmp_path: Path, state_dir: Path, port: int) -> Path:
    (tmp_path / "secret").write_text("s" * 32)
    config = tmp_path / f"node-{port}.toml"
    config.write_text(
        f'node_id = 1\nsecret_file = "secret"\nstate_dir = "{state_dir}"\nhttp_listen = "127.0.0.1:{port}"\n'
        '[peers]\n1 = "127.0.0.1:1"\n2 = "127.0.0.1:2"\n'
    )
    return config


def test_a_second_node_on_the_same_state_dir_refuses_to_start(tmp_path: Path) -> None:
    """The lock is taken before anything binds: the second process fails on it, not on a port."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    holder = StateFile(state_dir).lock()  # stands in for the running node: the lock is what it holds
    try:
        result = subprocess.run(
            [sys.executable, "-m", "node", "run", "--config", str(_node_toml(tmp_path, state_dir, 3))],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={"LEADER_NODE_LOG": "stderr", "PATH": "/usr/bin:/bin"},
        )
    finally:
        os.close(holder)
    assert result.returncode == 1
    assert "EVENT=startup_failed" in result.stderr
    assert "in use by another leader-node process" in result.stderr


# -- recovery from a poisoned epoch (issue 13, item 2): write-state --force -------------------------------

POISONED = 2**63 - 2  # what a signed COORDINATOR with epoch 2^63 - 2 left on disk before the door bound it


def _write_state(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node", "write-state", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_force_lowers_the_epoch_drops_the_vote_and_keeps_a_backup(tmp_path: Path) -> None:
    state_file = StateFile(tmp_path)
    state_file.save(DurableState(POISONED, 3))
    old = (tmp_path / STATE_FILE_NAME).read_bytes()
    before, backup = state_file.force(1000)
    assert before == old
    assert backup is not None and backup.name.startswith(f"{STATE_FILE_NAME}.bak-")
    assert backup.read_bytes() == old
    assert state_file.load() == DurableState(1000, None)


def test_force_without_a_file_writes_one_and_keeps_nothing(tmp_path: Path) -> None:
    assert StateFile(tmp_path).force(5) == (None, None)
    assert StateFile(tmp_path).load() == DurableState(5, None)


@pytest.mark.parametrize(
    ("args", "code", "out", "err"),
    [
        (("--epoch", "1000"), 1, "", "refusing to write 1000: epochs never go back"),
        (("--epoch", "1000", "--force"), 0, f"(forced; it held epoch {POISONED}, voted for 3)", ""),
        (("--epoch", str(2**62 + 1), "--force"), 2, "", "--epoch must be 1..4611686018427387904"),
        (("--epoch", "0", "--force"), 2, "", "--epoch must be 1.."),
    ],
    ids=["refused without --force", "forced", "above EPOCH_MAX", "zero"],
)
def test_write_state_cli(tmp_path: Path, args: tuple[str, ...], code: int, out: str, err: str) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    StateFile(state_dir).save(DurableState(POISONED, 3))
    result = _write_state(_node_toml(tmp_path, state_dir, 3), *args)
    assert result.returncode == code, result.stderr
    assert out in result.stdout
    assert err in result.stderr
    if code == 0:
        assert StateFile(state_dir).load() == DurableState(1000, None)
        assert "the old file is kept as" in result.stdout
        assert len(list(state_dir.glob(f"{STATE_FILE_NAME}.bak-*"))) == 1
    else:
        assert StateFile(state_dir).load() == DurableState(POISONED, 3)  # untouched


def test_write_state_refuses_while_a_node_holds_the_state_dir(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    StateFile(state_dir).save(DurableState(POISONED, 3))
    holder = StateFile(state_dir).lock()  # what a running node holds for its whole life
    try:
        forced = _write_state(_node_toml(tmp_path, state_dir, 3), "--epoch", "1000", "--force")
        plain = _write_state(_node_toml(tmp_path, state_dir, 3), "--epoch", str(2**62))
    finally:
        os.close(holder)
    for result in (forced, plain):
        assert result.returncode == 1
        assert "in use by another leader-node process" in result.stderr
        assert "stop the node first" in result.stderr
    assert StateFile(state_dir).load() == DurableState(POISONED, 3)
    assert not list(state_dir.glob(f"{STATE_FILE_NAME}.bak-*"))


# -- two alternating records, the newer one's slot written in place -------------------------------------


def _slot_of(data: bytes, index: int) -> bytes:
    return data[index * SLOT_BYTES : (index + 1) * SLOT_BYTES]


def _fresh_load(state_dir: Path) -> tuple[DurableState, LoadedState | None]:
    """What a restarted node loads (a new StateFile, closed again)."""
    state_file = StateFile(state_dir)
    try:
        return state_file.load(), state_file.loaded
    finally:
        state_file.close()


def test_saves_alternate_slots_and_write_only_one_page_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / STATE_FILE_NAME
    state_file = StateFile(tmp_path)
    state_file.save(DurableState(1, None))  # no file yet: written whole, the same record in both slots
    assert path.read_bytes() == dump_image(DurableState(1, None), 0)
    inode = path.stat().st_ino
    pwrites: list[tuple[int, int]] = []
    real_pwrite = os.pwrite

    def spy(fd: int, data: bytes, offset: int) -> int:
        pwrites.append((offset, len(data)))
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", spy)
    states = [DurableState(2, 3), DurableState(2, 3), DurableState(3, None), DurableState(7, 1, True)]
    for seq, state in enumerate(states, start=1):
        before = path.read_bytes()
        state_file.save(state)
        after = path.read_bytes()
        written, other = seq % 2, 1 - seq % 2
        assert len(after) == STATE_FILE_BYTES
        assert _slot_of(after, written) == dump_slot(state, seq)
        assert _slot_of(after, other) == _slot_of(before, other)  # the other page: byte for byte
        assert path.stat().st_ino == inode  # never replaced
        assert _fresh_load(tmp_path) == (state, LoadedState(state, seq))
    assert pwrites == [((seq % 2) * SLOT_BYTES, SLOT_BYTES) for seq in range(1, len(states) + 1)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [STATE_FILE_NAME]


@pytest.mark.parametrize("saves", [1, 2, 3])
def test_the_sequence_goes_on_across_restarts(tmp_path: Path, saves: int) -> None:
    """A restarted node writes seq + 1 into the slot that does not hold the record it started from."""
    StateFile(tmp_path).save(DurableState(1, None))  # seq 0, in both slots
    for epoch in range(2, saves + 1):  # each save by a node started afresh
        state_file = StateFile(tmp_path)
        state_file.load()
        state_file.save(DurableState(epoch, None))
        state_file.close()
    restarted = StateFile(tmp_path)
    assert restarted.load() == DurableState(saves, None)
    assert restarted.loaded is not None
    seq = restarted.loaded.seq
    assert seq == saves - 1
    before = (tmp_path / STATE_FILE_NAME).read_bytes()
    restarted.save(DurableState(saves + 1, 2))
    after = (tmp_path / STATE_FILE_NAME).read_bytes()
    assert _slot_of(after, (seq + 1) % 2) == dump_slot(DurableState(saves + 1, 2), seq + 1)
    assert _slot_of(after, seq % 2) == _slot_of(before, seq % 2)
    assert _fresh_load(tmp_path)[0] == DurableState(saves + 1, 2)


def _two_records(state_dir: Path) -> bytes:
    """A file whose slot 1 holds seq 1 (epoch 5, the older record) and slot 0 seq 2 (epoch 6)."""
    state_file = StateFile(state_dir)
    state_file.save(DurableState(4, 1))  # seq 0, both slots
    state_file.save(DurableState(5, 2))  # seq 1, slot 1
    state_file.save(DurableState(6, 3))  # seq 2, slot 0
    state_file.close()
    return (state_dir / STATE_FILE_NAME).read_bytes()


def _flip(data: bytes, index: int) -> bytes:
    damaged = bytearray(data)
    damaged[index] ^= 0x20
    return bytes(damaged)


# Each turns the good two-record file into one whose slot `slot` is damaged.
DAMAGE = {
    "file cut in slot 1's record": (1, lambda d: d[: SLOT_BYTES + 50]),
    "file cut in slot 1's padding": (1, lambda d: d[: STATE_FILE_BYTES - 1]),
    "slot 1 zeroed": (1, lambda d: d[:SLOT_BYTES] + bytes(SLOT_BYTES)),
    "slot 0 zeroed": (0, lambda d: bytes(SLOT_BYTES) + d[SLOT_BYTES:]),
    "slot 1, first byte flipped": (1, lambda d: _flip(d, SLOT_BYTES)),
    "slot 1, a digit flipped": (1, lambda d: _flip(d, SLOT_BYTES + d[SLOT_BYTES:].index(b"5"))),
    "slot 1, a padding byte flipped": (1, lambda d: _flip(d, STATE_FILE_BYTES - 1)),
    "slot 0, a checksum byte flipped": (0, lambda d: _flip(d, d.index(b'"sha256": "') + 12)),
    "slot 0, its newline flipped": (0, lambda d: _flip(d, d.index(b"\n"))),
    "slot 1, half old and half new": (
        1,
        lambda d: d[:SLOT_BYTES] + dump_slot(DurableState(7, 1), 3)[:60] + d[SLOT_BYTES + 60 :],
    ),
    "slot 0, half new and half old": (
        0,
        lambda d: d[:70] + dump_slot(DurableState(5, 2), 1)[70:] + d[SLOT_BYTES:],
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_one_damaged_record_loads_the_other_recovering(tmp_path: Path, damage: str) -> None:
    good = _two_records(tmp_path)
    bad_slot, damaged = DAMAGE[damage][0], DAMAGE[damage][1](good)
    path = tmp_path / STATE_FILE_NAME
    path.write_bytes(damaged)
    state_file = StateFile(tmp_path)
    survivor = DurableState(6, 3) if bad_slot == 1 else DurableState(5, 2)
    assert state_file.load() == DurableState(survivor.epoch, survivor.voted_for, recovering=True)
    loaded = state_file.loaded
    assert loaded is not None and loaded.bad_slot == bad_slot and loaded.note
    assert path.read_bytes() == damaged  # loading writes nothing
    # The next save writes the whole file again: both slots, the next seq, the old damage gone.
    state_file.save(DurableState(8, None))
    assert path.read_bytes() == dump_image(DurableState(8, None), loaded.seq + 1)
    state_file.save(DurableState(9, None))  # and in place after that
    latest = DurableState(9, None)
    assert _fresh_load(tmp_path) == (latest, LoadedState(latest, loaded.seq + 2))


def test_both_records_damaged_stops_the_node_and_touches_nothing(tmp_path: Path) -> None:
    good = _two_records(tmp_path)
    damaged = _flip(_flip(good, 3), SLOT_BYTES + 3)
    (tmp_path / STATE_FILE_NAME).write_bytes(damaged)
    with pytest.raises(StateFileError) as caught:
        StateFile(tmp_path).load()
    message = str(caught.value)
    assert str(tmp_path / STATE_FILE_NAME) in message and "write-state" in message
    assert "slot 0:" in message and "slot 1:" in message
    assert (tmp_path / STATE_FILE_NAME).read_bytes() == damaged


class PowerCut(BaseException):  # not an OSError: the process is gone, nothing runs after it
    pass


@settings(max_examples=40, deadline=None)
@given(
    epochs=st.lists(st.integers(0, 3), min_size=1, max_size=5),
    cut=st.integers(0, 160) | st.integers(0, SLOT_BYTES),
)
def test_a_save_cut_by_a_power_loss_leaves_the_last_completed_state_or_the_new_one(
    epochs: list[int], cut: int
) -> None:
    """StateFile.save, cut after any prefix of its pwrite (the rest of the slot keeps its old bytes)."""
    states = [DurableState(1 + sum(epochs[: i + 1]), i % 3 or None) for i in range(len(epochs))]
    *completed, new = [DurableState(1, None), *states]
    with tempfile.TemporaryDirectory() as tmp:
        state_dir = Path(tmp)
        state_file = StateFile(state_dir)
        for state in completed:
            state_file.save(state)
        real_pwrite = os.pwrite

        def torn_pwrite(fd: int, data: bytes, offset: int) -> int:
            real_pwrite(fd, data[:cut], offset)
            raise PowerCut

        with mock.patch.object(os, "pwrite", torn_pwrite), pytest.raises(PowerCut):
            state_file.save(new)
        state_file.close()
        state, loaded = _fresh_load(state_dir)
    assert loaded is not None
    if loaded.seq == len(completed):
        assert (state, loaded.bad_slot) == (new, None)
    else:
        assert loaded.seq == len(completed) - 1
        last = completed[-1]
        assert state == (last if loaded.bad_slot is None else replace(last, recovering=True))


def test_a_version_1_file_loads_and_the_next_save_converts_it(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE_NAME
    body = {"epoch": 41, "version": 1, "voted_for": 2}
    body["sha256"] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    path.write_text(json.dumps(body, sort_keys=True) + "\n")
    state_file = StateFile(tmp_path)
    assert state_file.load() == DurableState(41, 2)
    assert state_file.loaded == LoadedState(DurableState(41, 2), 0, legacy=True)
    state_file.save(DurableState(41, 2))
    assert path.read_bytes() == dump_image(DurableState(41, 2), 1)
    state_file.save(DurableState(42, 3))
    assert path.stat().st_size == STATE_FILE_BYTES
    assert _fresh_load(tmp_path) == (DurableState(42, 3), LoadedState(DurableState(42, 3), 2))


@pytest.mark.parametrize("how", ["removed", "replaced"])
def test_a_file_removed_or_replaced_behind_its_back_is_written_whole(tmp_path: Path, how: str) -> None:
    """A pwrite to a file no longer at state.json would be lost: the save writes a new one instead."""
    state_file = StateFile(tmp_path)
    state_file.save(DurableState(3, 1))
    path = tmp_path / STATE_FILE_NAME
    if how == "removed":
        path.unlink()
    else:
        other = tmp_path / "other"
        other.write_bytes(dump_image(DurableState(1, 1), 0))
        os.replace(other, path)
    state_file.save(DurableState(4, 1))
    assert path.read_bytes() == dump_image(DurableState(4, 1), 1)
    state_file.save(DurableState(5, 1))
    assert _fresh_load(tmp_path)[0] == DurableState(5, 1)


def test_a_failed_in_place_write_puts_the_last_record_back_and_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a failed fdatasync the page cache may show a record the disk does not hold: the file is
    replaced by the last completed record, which is what a restarted node must find."""
    state_file = StateFile(tmp_path)
    state_file.save(DurableState(3, 1))
    state_file.save(DurableState(4, 2))

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", failing)
    with pytest.raises(OSError, match="Input/output error"):
        state_file.save(DurableState(5, 3))
    monkeypatch.undo()
    assert (tmp_path / STATE_FILE_NAME).read_bytes() == dump_image(DurableState(4, 2), 1)
    assert _fresh_load(tmp_path)[0] == DurableState(4, 2)
