"""The durable state file: load once at start-up, save atomically on every `Persist` action.

A save is durable when `save()` returns: temp file, fsync, rename over the old file, fsync the directory
(without the last step a crash can forget the rename). A missing file means a fresh node; a file that
exists but cannot be trusted stops the node: resetting the epoch to 0 could let this node promise an
epoch twice, i.e. two leaders in one epoch.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from node.core.state import DurableState, StateCorruptError, dump_state, load_state

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
        """Write, fsync and remove the temp file: what every save() does, without touching the state."""
        fd = os.open(self._temp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, b"probe\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.unlink(self._temp_path)
        fsync_dir(self.state_dir)

    def load(self) -> DurableState:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return DurableState()
        except OSError as exc:
            raise StateFileError(f"cannot read state file {self.path}: {exc.strerror or exc}") from exc
        try:
            return load_state(data)
        except StateCorruptError as exc:
            raise StateFileError(
                f"state file {self.path} is corrupt: {exc}. It holds the highest epoch this node has "
                "promised, so leader-node will not start from a guess. To recover: find the highest epoch "
                "in the cluster (`leaderctl status`), then run "
                "`leader-node write-state --config PATH --epoch N` with N above it (the bad file is kept "
                "as state.json.corrupt), and start the node again"
            ) from exc

    def save(self, state: DurableState) -> None:
        """Write `state` durably. OSError propagates: a node that cannot persist must not go on."""
        write_durably(self.path, dump_state(state))

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
        self.save(DurableState(epoch=epoch))
        return old, backup


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
