"""The one duration parser (node.core.durations): node.toml, the simulator, scripts, benchmarks, Molecule."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from node.core.durations import (
    DEFAULT_ELECTION_TIMEOUT_MS,
    DEFAULT_FAILURE_TIMEOUT_MS,
    DEFAULT_HEARTBEAT_INTERVAL_MS,
    duration_s,
    parse_duration_ms,
)
from node.core.settings import Settings

ROLE_DEFAULTS = Path(__file__).resolve().parents[2] / "deploy/roles/leader_node/defaults/main.yml"


@pytest.mark.parametrize(
    ("text", "expected_ms"), [("250ms", 250), ("3s", 3000), ("1.5s", 1500), (" 10 ms ", 10), ("0.25s", 250)]
)
def test_durations_with_a_unit(text: str, expected_ms: int) -> None:
    assert parse_duration_ms(text) == expected_ms
    assert duration_s(text) == expected_ms / 1000


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("5", "cannot read duration"),  # no unit: seconds or milliseconds?
        ("1min", "cannot read duration"),
        ("-1s", "cannot read duration"),
        ("0.5ms", "not a whole number of milliseconds"),
        ("0s", "must be above zero"),
    ],
)
def test_bad_durations_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_duration_ms(text)


def test_settings_default_to_the_documented_timers() -> None:
    settings = Settings(node_id=1, member_ids=(1, 2, 3))
    assert (
        (settings.heartbeat_interval_ms, settings.failure_timeout_ms, settings.election_timeout_ms)
        == (
            DEFAULT_HEARTBEAT_INTERVAL_MS,
            DEFAULT_FAILURE_TIMEOUT_MS,
            DEFAULT_ELECTION_TIMEOUT_MS,
        )
        == (1000, 3000, 5000)
    )


def test_the_role_deploys_the_same_default_timers() -> None:
    """deploy/roles/leader_node/defaults/main.yml cannot import Python: it must say the same values."""
    defaults = yaml.safe_load(ROLE_DEFAULTS.read_text())
    deployed = [
        parse_duration_ms(str(defaults[f"leader_node_{name}"]))
        for name in ("heartbeat_interval", "failure_timeout", "election_timeout")
    ]
    defaults_ms = [DEFAULT_HEARTBEAT_INTERVAL_MS, DEFAULT_FAILURE_TIMEOUT_MS, DEFAULT_ELECTION_TIMEOUT_MS]
    assert deployed == defaults_ms
