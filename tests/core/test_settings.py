"""Settings: quorum arithmetic and validation of what the core is given."""

from __future__ import annotations

from typing import Any

import pytest

from node.core.settings import Settings, SettingsError, quorum_size

QUORUMS = [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (6, 4), (7, 4), (8, 5), (9, 5)]


@pytest.mark.parametrize(("cluster_size", "expected"), QUORUMS)
def test_quorum_size_is_a_strict_majority(cluster_size: int, expected: int) -> None:
    assert quorum_size(cluster_size) == expected
    assert 2 * expected > cluster_size  # two quorums always intersect
    assert 2 * (expected - 1) <= cluster_size  # and it is the smallest such size


@pytest.mark.parametrize(("cluster_size", "expected"), QUORUMS)
def test_settings_quorum_uses_every_configured_member(cluster_size: int, expected: int) -> None:
    settings = Settings(node_id=1, member_ids=tuple(range(1, cluster_size + 1)))
    assert settings.cluster_size == cluster_size
    assert settings.quorum_size == expected


def test_defaults_match_the_contract() -> None:
    settings = Settings(node_id=1, member_ids=(1, 2, 3))
    assert settings.heartbeat_interval_ms == 1000
    assert settings.failure_timeout_ms == 3000
    assert settings.election_timeout_ms == 5000
    assert settings.preempt is False


def test_peer_ids_are_sorted_and_exclude_this_node() -> None:
    assert Settings(node_id=5, member_ids=(9, 5, 1, 3)).peer_ids == (1, 3, 9)
    assert Settings(node_id=1, member_ids=(1,)).peer_ids == ()


def test_derived_timers() -> None:
    settings = Settings(node_id=1, member_ids=(1, 2), heartbeat_interval_ms=250, failure_timeout_ms=600)
    assert settings.listen_ms == 500
    assert settings.backoff_base_ms == 25
    assert settings.backoff_cap_ms == settings.election_timeout_ms
    assert Settings(node_id=1, member_ids=(1,), heartbeat_interval_ms=50).backoff_base_ms == 10


_BASE: dict[str, Any] = {"node_id": 1, "member_ids": (1, 2, 3)}


@pytest.mark.parametrize(
    "changes",
    [
        {"node_id": 4},
        {"member_ids": ()},
        {"member_ids": (2, 3)},
        {"member_ids": (1, 2, 2)},
        {"member_ids": (1, 1)},
        {"heartbeat_interval_ms": 0},
        {"heartbeat_interval_ms": -1},
        {"failure_timeout_ms": 0},
        {"failure_timeout_ms": -3000},
        {"election_timeout_ms": 0},
        {"election_timeout_ms": -1},
        {"failure_timeout_ms": 2000},  # exactly 2 x heartbeat: not above it
        {"failure_timeout_ms": 1999},
        {"heartbeat_interval_ms": 1500},  # 3000 == 2 x 1500
        {"election_timeout_ms": 2999},  # an election step shorter than failure detection
        {"failure_timeout_ms": 5001},  # the same, from the other side (election 5000)
        {"node_id": 0, "member_ids": (0,)},  # ids start at 1
        {"member_ids": (0, 1, 2)},
    ],
    ids=repr,
)
def test_invalid_settings_are_rejected(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Settings(**{**_BASE, **changes})


@pytest.mark.parametrize(
    "changes",
    [
        {"failure_timeout_ms": 2001},  # just above 2 x heartbeat
        {"heartbeat_interval_ms": 10, "failure_timeout_ms": 21, "election_timeout_ms": 21},  # smallest timers
        {"heartbeat_interval_ms": 60_000, "failure_timeout_ms": 600_000, "election_timeout_ms": 600_000},
        {"node_id": 2**63 - 1, "member_ids": (2**63 - 1,)},  # the largest id a message carries
        {"election_timeout_ms": 3000},  # exactly failure_timeout: an election may take as long
        {"node_id": 1, "member_ids": (1,)},  # the smallest id
        {"preempt": True},
    ],
    ids=repr,
)
def test_valid_settings_boundaries_are_accepted(changes: dict[str, Any]) -> None:
    Settings(**{**_BASE, **changes})


@pytest.mark.parametrize(
    "changes",
    [{"node_id": -1, "member_ids": (-1, 2)}, {"node_id": True, "member_ids": (True, 2)}],
    ids=repr,
)
def test_known_gap_node_ids_must_be_valid_message_senders(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Settings(**{**_BASE, **changes})


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"heartbeat_interval_ms": 0}, "heartbeat_interval"),
        ({"failure_timeout_ms": 2000}, "failure_timeout"),
        ({"election_timeout_ms": 2999}, "election_timeout"),
        ({"member_ids": (0, 1)}, "member_ids"),
        ({"heartbeat_interval_ms": 9}, "heartbeat_interval"),
        ({"heartbeat_interval_ms": 60_001, "failure_timeout_ms": 200_000}, "heartbeat_interval"),
        ({"failure_timeout_ms": 600_001, "election_timeout_ms": 600_001}, "failure_timeout"),
        ({"election_timeout_ms": 600_001}, "election_timeout"),
        ({"node_id": 2**63, "member_ids": (2**63,)}, "member_ids"),
    ],
    ids=repr,
)
def test_a_broken_rule_names_the_config_key(changes: dict[str, Any], field: str) -> None:
    """node.toml validation (check-config) reports these with the same field and text."""
    with pytest.raises(SettingsError) as caught:
        Settings(**{**_BASE, **changes})
    assert caught.value.field == field
