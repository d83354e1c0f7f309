"""The durable state file: load once at start-up, save durably on every `Persist` action.

The file is two records in two 4 KiB slots (node/core/state.py). A save is durable when `save()`
returns: the record with the next sequence number is written over the slot of the older one (`pwrite`)
and `fdatasync`ed. The file's size never changes, so no metadata (and no journal commit of the
directory) is needed, and a write torn by a crash damages only the record being written: the other slot
still holds the last completed one. A file that is missing, in the version-1 form, or had a damaged
slot is written whole instead, once: temp file, fsync, rename, fsync of the directory.

A missing file means a fresh node; a file that exists but cannot be trusted stops the node: resetting the
epoch to 0 could let this node promise an epoch twice, i.e. two leaders in one epoch.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

from node.core.state import (
    SLOT_BYTES,
    SLOT_COUNT,
    STATE_FILE_BYTES,
    DurableState,
    LoadedState,
    StateCorruptError,
    dump_image,
    dump_slot,
    load_slots,
)

STATE_FILE_NAME = "state.json"
LOCK_FILE_NAME = "lock"
_TEMP_SUFFIX = ".tmp"


class StateFileError(Exception):
    """The state file exists but is unusable; the message names the file and how to recover."""


class StateFile:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / STATE_FILE_NAME
        self._temp_path = state_dir / (STATE_FILE_NAME + _TEMP_SUFFIX)
        self.loaded: LoadedState | None = None  # what load() found (None: no file); bad_slot to report
        self._fd: int | None = None  # state.json, open for pwrite after load() or a whole write
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file _fd has open
        self._last: tuple[DurableState, int] | None = None  # the last record read or written, its seq
        self._whole = True  # the next save writes the whole file (missing, version 1, a bad slot)

    def lock(self) -> int:
        """Take this state directory for this process, or raise StateFileError; returns the lock's fd.

        Two daemons (or a daemon and `write-state`) on one directory would each believe their own epoch:
        an exclusive flock makes that impossible, and the kernel drops it when the process dies, so a
        crash never leaves a stale lock. Also proves at start, not at the first election, that the
        directory takes a durable write: a node that cannot persist a promise must not start.
        """
        try:
            fd = os.open(self.state_dir / LOCK_FILE_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StateFileError(
                f"cannot open the lock in state_dir {self.state_dir}: {exc.strerror or exc}"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise StateFileError(
                f"state_dir {self.state_dir} is in use by another leader-node process (its lock is held); "
                "two nodes must never share a state directory"
            ) from exc
        try:
            self._probe_write()
        except OSError as exc:
            os.close(fd)
            raise StateFileError(
                f"state_dir {self.state_dir} does not take a durable write: {exc.strerror or exc}"
            ) from exc
        return fd

    def _probe_write(self) -> None:
        """Write, fsync and remove the temp file: what a whole write does, without touching the state."""
        fd = os.open(self._temp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, b"probe\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.unlink(self._temp_path)
        fsync_dir(self.state_dir)

    def load(self) -> DurableState:
        """The state to start from; keeps the file open for save(). `loaded` tells what was found: a
        damaged slot (`bad_slot`, `note`) is for the caller to report; its state has `recovering` set."""
        self.close()
        self.loaded, self._last, self._whole = None, None, True
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return DurableState()
        except OSError as exc:
            raise StateFileError(f"cannot read state file {self.path}: {exc.strerror or exc}") from exc
        try:
            data = _read_head(fd)
            info = os.fstat(fd)
            loaded = load_slots(data)
        except OSError as exc:
            os.close(fd)
            raise StateFileError(f"cannot read state file {self.path}: {exc.strerror or exc}") from exc
        except StateCorruptError as exc:
            os.close(fd)
            raise StateFileError(
                f"state file {self.path} is corrupt: {exc}. It holds the highest epoch this node has "
                "promised, so leader-node will not start from a guess. To recover: find the highest epoch "
                "in the cluster (`leaderctl status`), then run "
                "`leader-node write-state --config PATH --epoch N` with N above it (the bad file is kept "
                "as state.json.corrupt), and start the node again"
            ) from exc
        self._fd, self._identity = fd, (info.st_dev, info.st_ino)
        self.loaded, self._last = loaded, (loaded.state, loaded.seq)
        self._whole = loaded.legacy or loaded.bad_slot is not None
        return loaded.state

    def save(self, state: DurableState) -> None:
        """Write `state` durably. OSError propagates: a node that cannot persist must not go on."""
        seq = 0 if self._last is None else self._last[1] + 1
        if self._whole or self._fd is None or not self._still_ours():
            self._write_whole(state, seq)
            return
        try:
            _pwrite_all(self._fd, dump_slot(state, seq), (seq % SLOT_COUNT) * SLOT_BYTES)
            os.fdatasync(self._fd)
        except OSError:
            self._put_back()
            raise
        self._last = (state, seq)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd, self._identity = None, None

    def _still_ours(self) -> bool:
        """state.json is still the file we have open (not removed or replaced behind our back: a write
        to an unlinked file would be lost)."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return False
        return (info.st_dev, info.st_ino) == self._identity

    def _write_whole(self, state: DurableState, seq: int) -> None:
        """Both slots, the same record: temp file, fsync, rename, fsync of the directory; then reopen."""
        self.close()
        write_durably(self.path, dump_image(state, seq))
        self._last, self._whole = (state, seq), False
        fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        info = os.fstat(fd)
        self._fd, self._identity = fd, (info.st_dev, info.st_ino)

    def _put_back(self) -> None:
        """A failed in-place write: after a failed fdatasync the page cache may still show the new record
        while the disk does not, and a restarted process would trust it. Best effort: replace the file by
        the last completed record (what the disk should hold: nothing depended on the failed save), and
        write whole from now on. The caller raises the original error either way."""
        self.close()
        self._whole = True
        if self._last is None:
            return
        state, seq = self._last
        try:
            self._write_whole(state, seq)
        except OSError:
            self.close()
        self._whole = True

    def recover(self, epoch: int) -> Path | None:
        """Operator recovery (`leader-node write-state`): store `epoch`, never lowering a readable one.

        A corrupt file is kept beside the new one as `state.json.corrupt` for inspection; returns that path.
        """
        kept: Path | None = None
        try:
            current = self.load()
        except StateFileError:
            kept = self.path.with_name(STATE_FILE_NAME + ".corrupt")
            os.replace(self.path, kept)
            current = DurableState()
        if epoch <= current.epoch:
            raise StateFileError(
                f"{self.path} already holds epoch {current.epoch}; refusing to write {epoch}: "
                "epochs never go back (to recover from a poisoned epoch on every member at once: "
                '--force, docs/operations.md, "Recovering from a poisoned epoch")'
            )
        self._whole = True
        self.save(DurableState(epoch=epoch))
        return kept

    def force(self, epoch: int) -> tuple[bytes | None, Path | None]:
        """Operator recovery from a poisoned epoch (`write-state --force`): store `epoch` with no vote,
        also below the stored one. The old file, readable or not, is first copied (fsynced) beside it as
        `state.json.bak-<UTC time>`. Returns (the old file's bytes, the backup's path), or (None, None)
        when there was no file. The caller holds the lock: no daemon runs on this directory."""
        try:
            old = self.path.read_bytes()
        except FileNotFoundError:
            old = None
        except OSError as exc:
            raise StateFileError(f"cannot read state file {self.path}: {exc.strerror or exc}") from exc
        backup: Path | None = None
        if old is not None:
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            backup = self.path.with_name(f"{STATE_FILE_NAME}.bak-{stamp}")
            fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, old)
                os.fsync(fd)
            finally:
                os.close(fd)
        seq = 0
        if old is not None:
            with contextlib.suppress(StateCorruptError):  # the sequence goes on where it can be read
                seq = load_slots(old).seq + 1
        self._write_whole(DurableState(epoch=epoch), seq)
        return old, backup


def _read_head(fd: int) -> bytes:
    """The file's first STATE_FILE_BYTES + 1 bytes: enough to tell a state file from anything larger."""
    chunks: list[bytes] = []
    left = STATE_FILE_BYTES + 1
    while left > 0 and (chunk := os.read(fd, left)):
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    """pwrite until all of `data` is written (a regular file may take less than asked)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def write_durably(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a crash leaves the old file or the new one, never a mix or
    nothing: `<name>.tmp`, fsync, rename over `path`, fsync of the directory (without the last step a
    crash can forget the rename). OSError propagates."""
    temp_path = path.with_name(path.name + _TEMP_SUFFIX)
    fd = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp_path, path)
    fsync_dir(path.parent)


def remove_durably(path: Path) -> None:
    """Remove `path` (gone already is fine) and fsync its directory, so that the removal survives a crash."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
