"""The durable state file: atomic round trips, and every corruption is a clear error, never a reset."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from node.core.state import DurableState, dump_state
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


def test_stale_temp_file_from_a_crash_is_ignored_and_overwritten(tmp_path: Path) -> None:
    state_file = StateFile(tmp_path)
    state_file.save(DurableState(4, 2))
    (tmp_path / (STATE_FILE_NAME + ".tmp")).write_bytes(b'{"half": ')  # a crash mid-write
    assert state_file.load() == DurableState(4, 2)
    state_file.save(DurableState(5, 2))
    assert sorted(p.name for p in tmp_path.iterdir()) == [STATE_FILE_NAME]


def _good_bytes() -> bytes:
    return dump_state(DurableState(9, 4))


CORRUPTIONS = {
    "empty": b"",
    "truncated": _good_bytes()[: len(_good_bytes()) // 2],
    "garbage": b"\x00\xff\x13 not a state file",
    "bad checksum": _good_bytes().replace(b'"epoch": 9', b'"epoch": 1'),
    "wrong version": dump_state(DurableState(9, 4)).replace(b'"version": 1', b'"version": 99'),
    "json but not an object": b"[1, 2, 3]\n",
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
