"""Scenario kill-leader: stop the leader, start it again, then crash the next leader with SIGKILL.

  LEADER_NODE_ALGORITHM=ring molecule test -s kill-leader
  LEADER_NODE_FAULT_ROUNDS=10 molecule test -s kill-leader    # more samples of the failover times

Artifacts: artifacts/molecule/kill-leader-<algorithm>/ (journals, timeline.txt, steps.txt, measurements.json).
"""

from __future__ import annotations

import os
import time

import pytest

pytest.register_assert_rewrite("shared.faults")
from shared.faults import FaultCluster, count, describe, majority_known_ms  # noqa: E402 (after register_assert_rewrite)

# The fixtures `faults` and `fault_cluster`.
pytest_plugins = ["shared.faults"]

ROUNDS = int(os.environ.get("LEADER_NODE_FAULT_ROUNDS", "1"))


def test_stopped_leader_is_replaced_and_rejoins_as_a_follower(faults: FaultCluster) -> None:
    for _ in range(ROUNDS):
        stop_leader_and_start_it_again(faults)


def test_crashed_leader_is_replaced_restarted_by_systemd_and_follows(faults: FaultCluster) -> None:
    for _ in range(ROUNDS):
        kill_leader_and_let_systemd_restart_it(faults)


def stop_leader_and_start_it_again(faults: FaultCluster) -> None:
    before = faults.settle()
    old = faults.by_id[before.leader_id]
    others = [node for node in faults.nodes if node is not old]

    t_stop = faults.stop(old)
    new, _ = faults.wait(
        lambda: faults.majority_leader(others, above_epoch=before.epoch, not_leader=old.id),
        faults.failover_bound_s,
        f"a new leader with an epoch above {before.epoch} on a majority after stopping {old}",
    )
    polled_s = time.time() - t_stop
    faults.step(f"new leader {new.leader_id}, epoch {new.epoch}, on {sorted(new.statuses)}")
    events = faults.events(since=t_stop)
    known_ms = majority_known_ms(events, new.leader_id, new.epoch, faults.quorum)
    assert known_ms is not None, describe(events)
    faults.measure("failover_after_stop_journal", known_ms / 1000 - t_stop)
    faults.measure("failover_after_stop_polled", polled_s)
    assert polled_s <= faults.failover_bound_s

    t_start = faults.start(old)
    rejoined, _ = faults.wait(faults.agreement, faults.timers.leader_deadline_s, f"{old} following again")
    assert (rejoined.leader_id, rejoined.epoch) == (new.leader_id, new.epoch), rejoined
    faults.hold(
        lambda: (
            (a := faults.agreement()) is not None and (a.leader_id, a.epoch) == (new.leader_id, new.epoch)
        ),
        faults.quiet_window_s,
        f"leader {new.leader_id} and epoch {new.epoch} unchanged after {old} rejoined",
    )
    after = faults.events(since=t_start)
    assert count(after, "election_started") == 0 and count(after, "became_leader") == 0, describe(after)
    assert any(
        e.node_id == old.id
        and e.event == "leader_accepted"
        and (e.leader_id, e.epoch) == (new.leader_id, new.epoch)
        for e in after
    ), describe(after)


def kill_leader_and_let_systemd_restart_it(faults: FaultCluster) -> None:
    before = faults.settle()
    victim = faults.by_id[before.leader_id]
    others = [node for node in faults.nodes if node is not victim]
    restarts = faults.n_restarts(victim)

    t_kill = faults.kill(victim, "SIGKILL")
    new, _ = faults.wait(
        lambda: faults.majority_leader(others, above_epoch=before.epoch, not_leader=victim.id),
        faults.failover_bound_s,
        f"a new leader with an epoch above {before.epoch} on a majority after SIGKILL of {victim}",
    )
    polled_s = time.time() - t_kill
    faults.step(f"new leader {new.leader_id}, epoch {new.epoch}, on {sorted(new.statuses)}")
    faults.measure("failover_after_sigkill_polled", polled_s)
    assert polled_s <= faults.failover_bound_s

    faults.wait(
        lambda: faults.n_restarts(victim) > restarts and faults.is_active(victim),
        faults.timers.leader_deadline_s,
        f"systemd restarted {victim} (NRestarts above {restarts})",
        interval_s=0.25,
    )
    faults.step(f"{victim}: NRestarts {faults.n_restarts(victim)} (was {restarts})")
    rejoined, _ = faults.wait(faults.agreement, faults.timers.leader_deadline_s, f"{victim} following again")
    assert (rejoined.leader_id, rejoined.epoch) == (new.leader_id, new.epoch), rejoined
    # No new leader or epoch anywhere while we watch (the election attempts are checked from the journal
    # below: there must be none).
    faults.hold(
        lambda: faults.stable(new.leader_id, new.epoch),
        faults.quiet_window_s,
        f"leader {new.leader_id} and epoch {new.epoch} unchanged after {victim} came back",
    )
    faults.wait(
        lambda: (
            (a := faults.agreement()) is not None and (a.leader_id, a.epoch) == (new.leader_id, new.epoch)
        ),
        faults.timers.leader_deadline_s,
        f"every node following {new.leader_id} under epoch {new.epoch} at the end",
    )

    events = faults.events(since=t_kill)
    known_ms = majority_known_ms(events, new.leader_id, new.epoch, faults.quorum)
    assert known_ms is not None, describe(events)
    faults.measure("failover_after_sigkill_journal", known_ms / 1000 - t_kill)
    restarted = next(e for e in events if e.node_id == victim.id and e.event == "started")
    elected = next(
        e for e in events if e.event == "became_leader" and (e.node_id, e.epoch) == (new.leader_id, new.epoch)
    )
    assert elected.time_ms < restarted.time_ms, f"elected while the victim was down:\n{describe(events)}"
    assert any(
        e.node_id == victim.id
        and e.event == "leader_accepted"
        and (e.leader_id, e.epoch) == (new.leader_id, new.epoch)
        and e.time_ms >= restarted.time_ms
        for e in events
    ), describe(events)
    assert count(events, "became_leader") == 1, describe(events)
    attempts = [e for e in events if e.event == "election_started" and e.time_ms >= restarted.time_ms]
    faults.measurements.setdefault("elections_after_crash_restart", []).append(len(attempts))
    faults.step(f"election attempts after {victim} restarted: {len(attempts)}")
    # A restarted node votes for nobody and runs for nothing during its start-up blackout
    # (failure_timeout), long enough to hear the new leader: not even an attempt.
    assert attempts == [], describe(events)


def test_history_judged_by_checkers(fault_cluster: FaultCluster) -> None:
    fault_cluster.judge()
