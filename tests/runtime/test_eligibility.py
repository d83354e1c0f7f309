"""Who may lead, on real processes (issue 15, parts 2 and 4): the before_lead gate and the health check
(node/runtime/eligibility.py), after the pure parts: the combined reason, the maintenance file, what a
reload applies."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from node.core.settings import Settings
from node.runtime.config import NodeConfig
from node.runtime.daemon import reloaded_hooks, restart_only_changes
from node.runtime.eligibility import (
    HEALTH_PENDING,
    MAINTENANCE,
    Eligibility,
    MaintenanceFlag,
    health_verdict,
    ineligible_reason,
)
from node.runtime.hooks import HookResult, HooksConfig

from .cluster import Cluster, http_get, process_alive, wait_until

# -- pure parts ----------------------------------------------------------------------------------------


def test_maintenance_wins_over_the_health_check() -> None:
    assert ineligible_reason(None, False) is None
    assert (
        ineligible_reason("health check failed: exit status 1", False) == "health check failed: exit status 1"
    )
    assert ineligible_reason("health check failed: exit status 1", True) == MAINTENANCE
    assert ineligible_reason(None, True) == MAINTENANCE


@pytest.mark.parametrize(
    ("result", "verdict"),
    [
        (HookResult(0, 5, b"", 2000), None),
        (HookResult(1, 5, b"", 2000), "health check failed: exit status 1"),
        (HookResult(127, 0, b"", 2000), "health check failed: exit status 127"),
        (HookResult(-15, 5, b"", 2000), "health check failed: killed by signal 15"),
        (HookResult(-9, 2000, b"", 2000, timed_out=True), "health check timed out after 2000 ms"),
    ],
)
def test_health_verdicts(result: HookResult, verdict: str | None) -> None:
    assert health_verdict(result) == verdict


def test_the_maintenance_flag_is_a_durable_file_and_the_core_hears_only_changes(tmp_path: Path) -> None:
    eligibility = Eligibility(tmp_path, health_check=Path("/bin/true"))
    # A node with a health check starts ineligible: the core hears that right after its Start.
    assert eligibility.news() == (True, HEALTH_PENDING)
    assert eligibility.news() == (False, HEALTH_PENDING)
    eligibility.health = None
    assert eligibility.news() == (True, None)
    assert eligibility.set_maintenance(True, "uid 0 (pid 1)") is True
    assert eligibility.set_maintenance(True, "uid 0 (pid 2)") is False  # already on: not written again
    assert eligibility.news() == (True, MAINTENANCE)
    eligibility.health = "health check failed: exit status 1"
    assert eligibility.news() == (False, MAINTENANCE)  # still maintenance: nothing new for the core
    flag = MaintenanceFlag(tmp_path)
    assert flag.load() and '"by": "uid 0 (pid 1)"' in flag.path.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["maintenance"]  # no temp file left behind
    # A restart reads it back; without a health check the node starts eligible unless in maintenance.
    assert Eligibility(tmp_path, health_check=None).news() == (True, MAINTENANCE)
    assert eligibility.set_maintenance(False, "uid 0 (pid 3)") is True
    assert not flag.path.exists() and not flag.load()
    assert eligibility.news() == (True, "health check failed: exit status 1")
    assert Eligibility(tmp_path, health_check=None).news() == (False, None)


def test_a_maintenance_flag_that_cannot_be_written_changes_nothing(tmp_path: Path) -> None:
    eligibility = Eligibility(tmp_path / "gone", health_check=None)
    with pytest.raises(OSError):
        eligibility.set_maintenance(True, "uid 0")
    assert eligibility.maintenance is False and eligibility.news() == (False, None)


def config_with(hooks: HooksConfig) -> NodeConfig:
    settings = Settings(1, (1, 2, 3), gated=hooks.before_lead is not None, gate_timeout_ms=hooks.timeout_ms)
    return NodeConfig(
        path=Path("node.toml"),
        settings=settings,
        algorithm="bully",
        listen=None,  # type: ignore[arg-type]
        http_listen=None,  # type: ignore[arg-type]
        peers={},
        state_dir=Path("state"),
        secret=b"x" * 16,
        hooks=hooks,
    )


@pytest.mark.parametrize(
    ("old", "new", "needs_restart", "applied_before_lead"),
    [
        # A new health check, interval or role-change hook: applied by the reload.
        (HooksConfig(), HooksConfig(health_check=Path("h"), health_interval_ms=500), [], None),
        # The gate's file may change; whether there is a gate, and its timeout, the election holds.
        (HooksConfig(before_lead=Path("a")), HooksConfig(before_lead=Path("b")), [], Path("b")),
        (HooksConfig(), HooksConfig(before_lead=Path("b")), ["hooks.before_lead"], None),
        (HooksConfig(before_lead=Path("a")), HooksConfig(), ["hooks.before_lead"], Path("a")),
        (
            HooksConfig(before_lead=Path("a")),
            HooksConfig(before_lead=Path("a"), timeout_ms=3000),
            ["hooks.timeout"],
            Path("a"),
        ),
        (HooksConfig(), HooksConfig(timeout_ms=3000), [], None),  # no gate: every hook takes it now
    ],
)
def test_what_a_reload_applies_of_the_hooks(
    old: HooksConfig, new: HooksConfig, needs_restart: list[str], applied_before_lead: Path | None
) -> None:
    before, after = config_with(old), config_with(new)
    assert restart_only_changes(before, after) == needs_restart
    applied = reloaded_hooks(before, after)
    assert applied.before_lead == applied_before_lead
    assert (applied.health_check, applied.health_interval_ms, applied.timeout_ms) == (
        new.health_check,
        new.health_interval_ms,
        new.timeout_ms,
    )


# -- real processes -------------------------------------------------------------------------------------


def hooked_cluster(
    make_cluster: Callable[..., Cluster], scripts: dict[str, str], table: str, algorithm: str = "bully"
) -> Cluster:
    """Three nodes; each script is written to the cluster directory (executable) and [hooks] `table`
    (which names them by file name) is added to every node.toml."""
    cluster = make_cluster(1, 2, 3, algorithm=algorithm)
    for name, text in scripts.items():
        (cluster.directory / name).write_text(text)
        (cluster.directory / name).chmod(0o755)
    for node in cluster.nodes.values():
        node.config_path.write_text(node.config_path.read_text() + "\n[hooks]\n" + table)
    return cluster


@contextmanager
def leader_answers(cluster: Cluster, node_id: int) -> Iterator[list[int]]:
    """Poll `GET /leader` of `node_id` every 20 ms while the block runs; yields the statuses seen."""
    seen: list[int] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            reply = http_get(cluster.nodes[node_id].url + "/leader", timeout_s=0.5)
            if reply is not None:
                seen.append(reply[0])
            stop.wait(0.02)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(timeout=5)


def status_field(cluster: Cluster, node_id: int, key: str) -> object:
    status = cluster.status(node_id)
    return None if status is None else status.get(key)


GATE = """#!/bin/sh
# before_lead: one line per run (its arguments and environment); node 3's gate fails (or hangs).
echo "$1|$#|$LEADER_NODE_NODE_ID|$LEADER_NODE_EPOCH" >> "$(dirname "$0")/gate-runs-$LEADER_NODE_NODE_ID"
[ "$LEADER_NODE_NODE_ID" != 3 ] && exit 0
[ -e "$(dirname "$0")/hang" ] && sleep 60
echo "node 3 may not lead" >&2
exit 1
"""


@pytest.mark.parametrize(
    ("algorithm", "hang", "detail"),
    [
        ("bully", False, "exit status 1"),
        ("ring", False, "exit status 1"),
        ("bully", True, "killed after the 500 ms timeout"),
    ],
)
def test_a_failing_gate_keeps_the_winner_out_of_office_and_another_node_leads(
    make_cluster: Callable[..., Cluster], algorithm: str, hang: bool, detail: str
) -> None:
    cluster = hooked_cluster(
        make_cluster, {"gate": GATE}, 'before_lead = "gate"\ntimeout = "500ms"\n', algorithm
    )
    if hang:
        (cluster.directory / "hang").write_text("")
    with leader_answers(cluster, 3) as answers:
        cluster.start(3)  # up before the others, so that it is in the first election
        cluster.wait_serving(3)
        cluster.start(1, 2)
        # Node 3, the highest id, wins the first election (Bully asks it, the ring token names it), runs
        # its gate, declines and hands the epoch on; the others elect among themselves.
        declined = wait_until(lambda: cluster.events(3, "lead_declined"), 15, "node 3 to decline")[0]
        assert f"its before_lead gate failed ({detail})" in declined["MESSAGE"]
        leader, epoch = cluster.wait_leader()
        assert leader in (1, 2)
        # Its hold-off over, node 3 may run again, but a leader is there: it stays a follower.
        wait_until(lambda: status_field(cluster, 3, "eligible") is True, 10, "node 3's hold-off to end")
        assert cluster.wait_leader() == (leader, epoch)
    assert answers and 200 not in answers, "node 3 answered 200 on /leader"
    assert not cluster.events(3, "became_leader")
    gate_runs = cluster.events(3, "hook_finished")
    assert gate_runs and all(e["HOOK"] == "before_lead" for e in gate_runs)
    assert gate_runs[0]["HOOK_PATH"] == str(cluster.directory / "gate")
    assert gate_runs[0]["EXIT_STATUS"] == ("-9" if hang else "1") and gate_runs[0]["PRIORITY"] == "4"
    if not hang:
        assert gate_runs[0]["STDERR"] == "node 3 may not lead"
    first = (cluster.directory / "gate-runs-3").read_text().splitlines()[0].split("|")
    assert first == [gate_runs[0]["EPOCH"], "1", "3", gate_runs[0]["EPOCH"]]  # HOOK EPOCH, and the env


def test_a_passing_gate_runs_before_the_winner_takes_office(make_cluster: Callable[..., Cluster]) -> None:
    cluster = hooked_cluster(make_cluster, {"gate": GATE.replace("!= 3", "!= 0")}, 'before_lead = "gate"\n')
    cluster.start(3)  # up before the others: the highest id wins the first election
    cluster.wait_serving(3)
    cluster.start(1, 2)
    leader, epoch = cluster.wait_leader()
    assert leader == 3
    gate = next(e for e in cluster.events(3, "hook_finished") if e["EPOCH"] == str(epoch))
    assert (gate["HOOK"], gate["EXIT_STATUS"], gate["PRIORITY"]) == ("before_lead", "0", "6")
    became = cluster.events(3, "became_leader")[-1]
    assert became["EPOCH"] == str(epoch) and gate["ts"] <= became["ts"]
    assert f"{epoch}|1|3|{epoch}" in (cluster.directory / "gate-runs-3").read_text().splitlines()
    assert not cluster.events(3, "lead_declined")
    # Followers never run it.
    assert (
        not (cluster.directory / "gate-runs-1").exists() and not (cluster.directory / "gate-runs-2").exists()
    )


HEALTH = """#!/bin/sh
# health_check: fails while sick-<id> exists, hangs while slow-<id> exists.
here="$(dirname "$0")"
[ -e "$here/slow-$LEADER_NODE_NODE_ID" ] && { echo $$ >> "$here/slow-pids"; sleep 60; }
[ -e "$here/sick-$LEADER_NODE_NODE_ID" ] && { echo "sick" >&2; exit 1; }
exit 0
"""
SICK = "health check failed: exit status 1"


def test_a_failing_health_check_hands_leadership_off_and_a_passing_one_restores_eligibility(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = hooked_cluster(
        make_cluster,
        {"health": HEALTH},
        'health_check = "health"\nhealth_interval = "100ms"\ntimeout = "400ms"\n',
    )
    directory = cluster.directory
    (directory / "sick-3").write_text("")  # node 3 starts with a failing check: it must never lead
    with leader_answers(cluster, 3) as answers:
        cluster.start()
        # Node 1 or 2: which one depends on whose first check passed before the first election.
        first, _ = cluster.wait_leader()
        assert first in (1, 2)
        other = 3 - first
        wait_until(lambda: status_field(cluster, 3, "ineligible_reason") == SICK, 10, "node 3 to say why")
        assert cluster.metrics(3)["leader_node_eligible"] == 0

        # The leader's check starts failing: it hands off to the only eligible node left.
        (directory / f"sick-{first}").write_text("")
        wait_until(lambda: status_field(cluster, first, "ineligible_reason") == SICK, 10, "the leader sick")
        leader, epoch = cluster.wait_leader()
        assert leader == other
        assert cluster.metrics(first)["leader_node_eligible"] == 0
        assert status_field(cluster, first, "eligible") is False
        assert cluster.events(first, "resigned")[-1]["MESSAGE"].endswith(f"(not eligible: {SICK})")
        # Its peers learn it from its heartbeats.
        wait_until(
            lambda: cluster.status(other)["peers"][str(first)]["eligible"] is False,  # type: ignore[index]
            5,
            "the new leader to see it",
        )

        # Healthy again: eligible, but a healthy leader keeps its office (preempt is off).
        os.unlink(directory / "sick-3")
        os.unlink(directory / f"sick-{first}")
        for node_id in (first, 3):
            wait_until(
                lambda n=node_id: status_field(cluster, n, "eligible") is True, 10, f"node {node_id} well"
            )
            assert status_field(cluster, node_id, "ineligible_reason") is None
            assert cluster.metrics(node_id)["leader_node_eligible"] == 1
        assert cluster.wait_leader() == (leader, epoch)

        # A check that hangs is killed at the timeout and counts as failing.
        (directory / "slow-3").write_text("")
        wait_until(
            lambda: status_field(cluster, 3, "ineligible_reason") == "health check timed out after 400 ms",
            10,
            "node 3's check to time out",
        )
        assert cluster.wait_leader() == (leader, epoch)
    assert 200 not in answers, "node 3 answered 200 on /leader"

    # Dozens of checks ran; only the changes are journalled, each with its outcome.
    runs = [(e["EXIT_STATUS"], e.get("STDERR")) for e in cluster.events(first, "hook_finished")]
    assert runs == [("0", None), ("1", "sick"), ("0", None)]
    assert all(e["HOOK"] == "health_check" for e in cluster.events(first, "hook_finished"))
    reasons = [e["MESSAGE"] for e in cluster.events(first, "eligibility_changed")]
    assert reasons == [
        f"node {first} may not run for leader: {HEALTH_PENDING}",
        f"node {first} may run for leader again",
        f"node {first} may not run for leader: {SICK}",
        f"node {first} may run for leader again",
    ]
    slow = cluster.events(3, "hook_finished")[-1]
    assert slow["EXIT_STATUS"] == "-9" and int(slow["DURATION_MS"]) >= 400
    assert "killed after the 400 ms timeout" in slow["MESSAGE"]
    # Stopping kills a check in progress with its process group at once, not after its timeout.
    assert cluster.terminate(3, timeout_s=10) == 0
    pids = [int(pid) for pid in (directory / "slow-pids").read_text().split()]
    wait_until(lambda: not any(process_alive(pid) for pid in pids), 5, "every hanging check to be gone")
