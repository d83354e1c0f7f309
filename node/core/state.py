"""The durable part of a node: what must survive a crash for the safety rules to hold.

`epoch` is the highest epoch this node has promised or accepted (it never decreases); `voted_for` is the
candidate it promised `epoch` to (None when it accepted `epoch` from a leader without promising it).
`recovering` marks a node that started without its state (a new node, or a wiped disk) and has not yet
learned an epoch above every promise it may have forgotten (node/algorithms/catchup.py); it survives a
restart so that a crash mid-recovery cannot turn an epoch learned from a leader into a licence to vote.
The file form carries a checksum so that corruption is detected, never silently reset.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

STATE_FORMAT_VERSION = 1


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


def _digest(body: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def dump_state(state: DurableState) -> bytes:
    body: dict[str, object] = {
        "version": STATE_FORMAT_VERSION,
        "epoch": state.epoch,
        "voted_for": state.voted_for,
    }
    if state.recovering:  # written only while true: the files of settled nodes keep their old form
        body["recovering"] = True
    body["sha256"] = _digest(body)
    return (json.dumps(body, sort_keys=True) + "\n").encode()


def load_state(data: bytes) -> DurableState:
    """Parse a state file's bytes. Raises StateCorruptError with the reason."""
    try:
        body = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, int limits
        raise StateCorruptError(f"not valid JSON (truncated or overwritten?): {exc}") from exc
    if not isinstance(body, dict):
        raise StateCorruptError("not a JSON object")
    checksum = body.pop("sha256", None)
    if checksum != _digest(body):
        raise StateCorruptError("checksum mismatch (the file was modified or partially written)")
    if type(body.get("version")) is not int or body["version"] != STATE_FORMAT_VERSION:
        raise StateCorruptError(f"unsupported state format version {body.get('version')!r}")
    try:
        return DurableState(
            epoch=body["epoch"], voted_for=body["voted_for"], recovering=body.get("recovering", False)
        )
    except (KeyError, ValueError) as exc:
        raise StateCorruptError(f"invalid content: {exc}") from exc
