"""`leader-node`: run | check-config | simulate | check-history | write-state | fenced-store.

Exit codes: 0 ok; 1 start-up failure (state file, port in use); 2 bad configuration or usage;
70 a critical part of the running daemon died (see node.runtime.daemon).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from node.algorithms.base import EPOCH_MAX
from node.core.actions import EventName, LogLevel
from node.core.session import PROTOCOL_VERSION
from node.core.state import StateCorruptError, load_slots
from node.runtime.config import ConfigError, load_config
from node.runtime.journal import Journal
from node.runtime.statefile import StateFile, StateFileError
from node.version import package_version

EXIT_STARTUP_FAILED = 1
EXIT_BAD_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="leader-node", description="Leader-election daemon.")
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {package_version()} (protocol {PROTOCOL_VERSION})"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="run the daemon")
    run.add_argument("--config", required=True, type=Path, help="path to node.toml")
    check = commands.add_parser("check-config", help="validate node.toml: prints ok, or the problem (exit 2)")
    check.add_argument("config", type=Path)
    commands.add_parser("simulate", help="deterministic simulator (see `leader-node simulate --help`)")
    commands.add_parser("check-history", help="judge `journalctl -o json` histories (`check-history --help`)")
    commands.add_parser(
        "fenced-store", help="a reference resource that refuses stale leaders' writes (`fenced-store --help`)"
    )
    write_state = commands.add_parser(
        "write-state",
        help="recovery: store a (higher) epoch after a corrupt state file, or with --force any epoch "
        "after a poisoned one; only while the node is stopped",
    )
    write_state.add_argument("--config", required=True, type=Path)
    write_state.add_argument("--epoch", required=True, type=int)
    write_state.add_argument(
        "--force",
        action="store_true",
        help="also below the stored epoch (a poisoned one): on every member, all stopped, the same "
        'epoch above the last legitimate one (docs/operations.md, "Recovering from a poisoned epoch")',
    )
    return parser


# Commands that own their argument parsing: argv after the command name goes to their main().
_DELEGATED = {"simulate": "node.sim.cli", "check-history": "node.history.cli", "fenced-store": "node.fencing"}


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in _DELEGATED:
        # Imported by name and only here: the daemon never loads the simulator or the checkers.
        module = importlib.import_module(_DELEGATED[args_list[0]])
        return int(module.main(args_list[1:]))
    args = _parser().parse_args(args_list)
    if args.command == "check-config":
        return _check_config(args.config)
    if args.command == "write-state":
        return _write_state(args.config, args.epoch, force=args.force)
    return _run(args.config)


def _check_config(path: Path) -> int:
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    for warning in config.warnings:  # not errors: the file is usable (exit 0, "ok")
        print(f"{path}: warning: {warning}", file=sys.stderr)
    print("ok")
    return 0


def _write_state(path: Path, epoch: int, *, force: bool) -> int:
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    if not 1 <= epoch <= EPOCH_MAX:
        # Above EPOCH_MAX every peer rejects this node's messages as implausible: a poisoned epoch.
        print(f"write-state: --epoch must be 1..{EPOCH_MAX} (2^62), got {epoch}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    state_file = StateFile(config.state_dir)
    try:
        # The daemon holds this lock for its whole life: taking it proves that no node runs on this
        # state directory, and keeps one from starting until the new file is in place.
        lock_fd = state_file.lock()
    except StateFileError as exc:
        print(f"write-state: {exc}; stop the node first (systemctl stop leader-node)", file=sys.stderr)
        return EXIT_STARTUP_FAILED
    try:
        if force:
            old, kept = state_file.force(epoch)
            before = _describe_state(old)
        else:
            before, kept = "", state_file.recover(epoch)
        _give_to_state_dir_owner(state_file.path)
    except (StateFileError, ValueError, OSError) as exc:
        print(f"write-state: {exc}", file=sys.stderr)
        return EXIT_STARTUP_FAILED
    finally:
        os.close(lock_fd)
    print(
        f"wrote epoch {epoch} to {state_file.path}"
        + (f" (forced; it held {before})" if force else "")
        + (f"; the old file is kept as {kept}" if kept else "")
    )
    return 0


def _describe_state(data: bytes | None) -> str:
    if data is None:
        return "nothing: there was no state file"
    try:
        loaded = load_slots(data)
    except StateCorruptError as exc:
        return f"an unreadable file: {exc}"
    damaged = "" if loaded.bad_slot is None else f", its other record damaged ({loaded.note})"
    return f"epoch {loaded.state.epoch}, voted for {loaded.state.voted_for}{damaged}"


def _give_to_state_dir_owner(path: Path) -> None:
    """Run as root, the new file would be root's 0600 and the service user could not read it: give it
    the state directory's owner (the service user, under systemd's StateDirectory=)."""
    if os.geteuid() != 0:
        return
    owner = path.parent.stat()
    os.chown(path, owner.st_uid, owner.st_gid)


def _run(path: Path) -> int:
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    # gevent is imported only to run: check-config and write-state work without it.
    from node.runtime.daemon import Daemon  # noqa: PLC0415
    from node.runtime.sdnotify import Notifier  # noqa: PLC0415

    journal = Journal(config.node_id)
    for warning in config.warnings:
        journal.event(EventName.CONFIG_WARNING, f"{path}: {warning}", LogLevel.WARNING)
    try:
        config.state_dir.mkdir(parents=True, exist_ok=True)
        daemon = Daemon(config, journal, Notifier())
        code = daemon.run()
    except StateFileError as exc:
        journal.event(EventName.STARTUP_FAILED, str(exc), LogLevel.ERROR)
        return EXIT_STARTUP_FAILED
    except OSError as exc:  # port in use, state_dir not writable, ...
        journal.event(EventName.STARTUP_FAILED, f"cannot start: {exc}", LogLevel.ERROR)
        return EXIT_STARTUP_FAILED
    _exit_at_once(code)


def _exit_at_once(code: int) -> NoReturn:
    """The daemon is done (its hand-off sent, every promise fsynced, its sockets closed): leave without
    tearing the interpreter down. That teardown (gevent's hub, every module, a last garbage collection)
    costs a stopping node some 80 ms of CPU, taken on a small host from the very election that its RESIGN
    just started (docs/benchmarks.md, "Where a hand-off's time goes")."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
