"""SIGHUP (systemctl reload) on real processes: the secrets rotate without a restart or a leader change
(docs/operations.md, "Rotating the cluster secret"); a bad file or a restart-only change is reported."""

from __future__ import annotations

import signal
from collections.abc import Callable

from node.core.session import key_id

from .cluster import SECRET, Cluster, wait_until

NEW_SECRET = b"the-next-loopback-secret-0123456789"


def reload(cluster: Cluster, node_id: int, event: str = "config_reloaded") -> dict[str, str]:
    before = len(cluster.events(node_id, event))
    cluster.signal(node_id, signal.SIGHUP)
    found = wait_until(
        lambda: len(events := cluster.events(node_id, event)) > before and events, 10, f"{event} on {node_id}"
    )
    return found[-1]


def set_secrets(cluster: Cluster, node_id: int, current: str, previous: str | None) -> None:
    """Point node `node_id`'s secret_file (and previous_secret_file) at files of the cluster directory."""
    path = cluster.nodes[node_id].config_path
    lines = [
        line
        for line in path.read_text().splitlines()
        if not line.startswith(("secret_file", "previous_secret"))
    ]
    keys = [f'secret_file = "{current}"'] + ([f'previous_secret_file = "{previous}"'] if previous else [])
    path.write_text("\n".join(keys + lines) + "\n")


def all_peers_alive(cluster: Cluster, node_ids: list[int]) -> bool:
    statuses = cluster.statuses(node_ids)
    return all(
        s is not None and all(p["state"] == "alive" for p in s["peers"].values()) for s in statuses.values()
    )


def test_two_step_rotation_by_reload_keeps_the_leader_and_every_link(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(1, 2, 3)
    (cluster.directory / "secret-new").write_bytes(NEW_SECRET + b"\n")
    (cluster.directory / "secret-new").chmod(0o600)
    cluster.start()
    leader_id, epoch = cluster.wait_leader()
    followers = [n for n in cluster.nodes if n != leader_id]
    old_id, new_id = key_id(SECRET), key_id(NEW_SECRET)

    # Step 1 on the leader and one follower: NEW current, OLD previous.
    for node_id in (leader_id, followers[0]):
        set_secrets(cluster, node_id, "secret-new", "secret")
        assert reload(cluster, node_id)["KEY_IDS"] == f"{new_id},{old_id}"
    # New handshakes in both directions between a changed node and an unchanged one: restart the
    # unchanged follower (it knows only OLD); it must rejoin the same leader.
    cluster.restart(followers[1])
    wait_until(lambda: all_peers_alive(cluster, list(cluster.nodes)), 15, "every link up in the mixed step")
    assert cluster.wait_leader() == (leader_id, epoch)
    set_secrets(cluster, followers[1], "secret-new", "secret")
    reload(cluster, followers[1])

    # Step 2: drop OLD everywhere; then a restarted follower knows only NEW and still connects.
    for node_id in cluster.nodes:
        set_secrets(cluster, node_id, "secret-new", None)
        assert reload(cluster, node_id)["KEY_IDS"] == new_id
    cluster.restart(followers[0])
    wait_until(lambda: all_peers_alive(cluster, list(cluster.nodes)), 15, "every link up on NEW only")
    assert cluster.wait_leader() == (leader_id, epoch)  # no leader change through the whole rotation
    for node_id in cluster.nodes:
        assert not cluster.events(node_id, "reload_rejected")
        assert (
            cluster.metrics(node_id).get('leader_node_peer_rejections_total{reason="no_common_key"}', 0) == 0
        )


def test_a_reload_without_a_common_key_cuts_only_new_connections(
    make_cluster: Callable[..., Cluster],
) -> None:
    """Skipping step 1 (one node on NEW only) is refused at the handshake, and logged, not crashed."""
    cluster = make_cluster(1, 2, 3)
    (cluster.directory / "secret-new").write_bytes(NEW_SECRET + b"\n")
    cluster.start()
    leader_id, _ = cluster.wait_leader()
    follower = min(n for n in cluster.nodes if n != leader_id)
    set_secrets(cluster, follower, "secret-new", None)
    cluster.restart(follower)
    wait_until(
        lambda: (
            cluster.metrics(leader_id).get('leader_node_peer_rejections_total{reason="no_common_key"}', 0) > 0
        ),
        15,
        "the leader to refuse the follower's handshake",
    )
    assert cluster.nodes[follower].running and cluster.nodes[leader_id].running


def test_bad_reload_is_rejected_and_restart_only_keys_are_named(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(1, 2, 3)
    cluster.start()
    leader_id, epoch = cluster.wait_leader()
    node = cluster.nodes[leader_id]
    good = node.config_path.read_text()

    node.config_path.write_text(good.replace('secret_file = "secret"', 'secret_file = "missing"'))
    rejected = reload(cluster, leader_id, "reload_rejected")
    assert "secret_file" in rejected["REASON"] and rejected["PRIORITY"] == "4"

    node.config_path.write_text(good.replace('heartbeat_interval = "100ms"', 'heartbeat_interval = "150ms"'))
    needs = reload(cluster, leader_id, "reload_needs_restart")
    assert needs["KEYS"] == "heartbeat_interval"

    node.config_path.write_text(good)
    reloaded = reload(cluster, leader_id)
    assert "CHANGED" not in reloaded  # nothing reloadable changed
    assert node.running
    assert cluster.wait_leader() == (leader_id, epoch)


def test_a_reload_applies_a_health_check_at_once_and_names_a_new_gate_for_the_restart(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(1, 2, 3)
    for name, status in (("failing", 1), ("gate", 0)):
        (cluster.directory / name).write_text(f"#!/bin/sh\nexit {status}\n")
        (cluster.directory / name).chmod(0o755)
    cluster.start()
    leader_id, _ = cluster.wait_leader()
    node = cluster.nodes[leader_id]
    good = node.config_path.read_text()

    node.config_path.write_text(good + '\n[hooks]\nhealth_check = "failing"\nhealth_interval = "100ms"\n')
    reloaded = reload(cluster, leader_id)
    assert reloaded["CHANGED"] == "hooks"
    wait_until(
        lambda: (
            (s := cluster.status(leader_id)) is not None
            and s["ineligible_reason"] == "health check failed: exit status 1"
        ),
        10,
        "the reloaded health check to fail",
    )
    new_leader, _ = cluster.wait_leader()
    assert new_leader != leader_id  # it handed off

    node.config_path.write_text(good + '\n[hooks]\nbefore_lead = "gate"\n')
    needs = reload(cluster, leader_id, "reload_needs_restart")
    assert needs["KEYS"] == "hooks.before_lead"
    wait_until(
        lambda: (s := cluster.status(leader_id)) is not None and s["eligible"] is True,
        10,
        "the removed health check to stop counting",
    )
    assert not cluster.events(leader_id, "hook_finished", since=needs["ts"])  # no gate: none runs yet
