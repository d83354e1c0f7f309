"""Durations as operators write them ("250ms", "3s", "1.5s") and the default timers.

One parser for node.toml, the simulator, the benchmarks, the scripts and the Molecule helpers. The
default timers are the ones `Settings` uses when node.toml leaves a timer out (docs/configuration.md).
"""

from __future__ import annotations

import re

DEFAULT_HEARTBEAT_INTERVAL_MS = 1000
DEFAULT_FAILURE_TIMEOUT_MS = 3000
DEFAULT_ELECTION_TIMEOUT_MS = 5000

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s)\s*$")


def parse_duration_ms(text: str) -> int:
    """ "250ms" -> 250, "3s" -> 3000, "1.5s" -> 1500: positive whole milliseconds, with a unit.
    Raises ValueError with a sentence an operator can act on."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f'cannot read duration {text!r}; write it as "250ms" or "3s"')
    number, unit = match.groups()
    scaled = float(number) * (1000 if unit == "s" else 1)
    duration_ms = round(scaled)
    if abs(scaled - duration_ms) > 1e-6:
        raise ValueError(f"{text!r} is not a whole number of milliseconds")
    if duration_ms <= 0:
        raise ValueError(f"{text!r} must be above zero")
    return duration_ms


def duration_s(text: str) -> float:
    """The same durations in seconds, for tools that wait in seconds: "250ms" -> 0.25."""
    return parse_duration_ms(text) / 1000
