"""Scenario concurrent: several nodes start elections at the same moment; exactly one leader emerges,
with one epoch on every node.

  LEADER_NODE_ALGORITHM=ring molecule test -s concurrent

1. All five stopped, then three of them (1, 3, 5: not neighbours on the ring) started at one instant:
   three fresh nodes with no leader run for it together; then the last two start and follow. A late
   node may carry a higher epoch than the trio's leader (the hand-off successor persisted a candidacy as
   everyone stopped): then the leader keeps office and moves everyone above it in one round trip (its
   re-election); nobody runs an election and the same node leads throughout.
2. The leader paused with SIGSTOP: the four followers last heard the same heartbeat, so their failure
   detectors fire together and they all run at once; then the old leader resumes (SIGCONT) and must
   follow the new one instead of acting under its old epoch.

Artifacts: artifacts/molecule/concurrent-<algorithm>/ (journals, timeline.txt, steps.txt, measurements.json);
in the scenario faults, which `make test` runs: artifacts/molecule/faults-<algorithm>/concurrent/.
Repeated on the one converged cluster: LEADER_NODE_FAULT_ROUNDS=10 molecule test -s concurrent.
"""

from __future__ import annotations

import time

import pytest

pytest.register_assert_rewrite("shared.faults")
from shared.faults import (  # noqa: E402 (after register_assert_rewrite)
    FaultCluster,
    HistoryEvent,
    by_id,
    count,
    describe,
    fault_rounds,
)

# The fixtures `faults` and `fault_cluster`.
pytest_plugins = ["shared.faults"]

TRIO = (1, 3, 5)


def candidates(faults: FaultCluster, since: float, until: float | None = None) -> list[int]:
    """The nodes that started an election in the window."""
    return sorted({e.node_id for e in faults.events(since, until) if e.event == "election_started"})


def report_attempts(faults: FaultCluster, events: list[HistoryEvent], when: str) -> None:
    """Election attempts of nodes that (re)join a cluster with a live leader: harmless when the
    pre-vote is refused (nothing is persisted, no epoch moves), but worth seeing in the records."""
    attempts = [e for e in events if e.event in ("election_started", "election_failed")]
    faults.measurements.setdefault("join_election_attempts", []).append(count(attempts, "election_started"))
    faults.step(
        f"election attempts {when}: "
        + ("; ".join(f"node {e.node_id} {e.event}: {e.message}" for e in attempts) or "none")
    )


@pytest.mark.parametrize("round_no", fault_rounds())
def test_three_nodes_started_together_elect_one_leader(faults: FaultCluster, round_no: int) -> None:
    faults.step(f"round {round_no}")
    faults.settle()
    faults.step("stopping all five")
    faults.each(faults.nodes, lambda node: faults.sh(node, "systemctl stop leader-node"))
    assert not any(faults.each(faults.nodes, faults.is_active))
    trio = by_id(faults, TRIO)
    rest = [n for n in faults.nodes if n not in trio]

    t_go = faults.start_together(trio)
    agreed, _ = faults.wait(
        lambda: faults.agreement(trio), faults.timers.leader_deadline_s, f"one leader agreed by {list(TRIO)}"
    )
    faults.measure("leader_after_simultaneous_start_polled", time.time() - t_go)
    faults.step(f"trio: leader {agreed.leader_id}, epoch {agreed.epoch}")
    ran = candidates(faults, since=t_go)
    faults.step(f"nodes that started an election: {ran}")
    faults.measurements.setdefault("concurrent_candidates_start", []).append(len(ran))
    started = [e for e in faults.events(since=t_go) if e.event == "started"]
    spread_ms = max(e.time_ms for e in started) - min(e.time_ms for e in started)
    faults.step(f"`started` lines of the trio within {spread_ms} ms")
    assert len(started) == len(TRIO) and spread_ms < 1000, describe(started)
    assert len(ran) >= 2, (
        f"the start did not make several nodes run at once:\n{describe(faults.events(since=t_go))}"
    )

    t_rest = faults.start_together(rest)
    everyone, _ = faults.wait(
        faults.agreement, faults.timers.leader_deadline_s, "one leader agreed by all five"
    )
    assert everyone.leader_id == agreed.leader_id, everyone  # the late nodes never cost the leader office
    faults.hold(
        lambda: (
            (a := faults.agreement()) is not None
            and (a.leader_id, a.epoch) == (everyone.leader_id, everyone.epoch)
        ),
        faults.quiet_window_s,
        "one leader and one epoch on every node",
    )
    late = faults.events(since=t_rest)
    report_attempts(faults, late, "after the last two started")
    carried = {e.node_id: e.epoch or 0 for e in late if e.event == "started"}
    faults.step(f"late nodes started with epochs {carried} (the trio's leader: epoch {agreed.epoch})")
    reelections = [(e.node_id, e.epoch) for e in late if e.event == "reelection_started"]
    if max(carried.values()) > agreed.epoch:
        # A late node carried a higher epoch: the leader re-ran above it as the incumbent, once, and was
        # back in office a round trip later.
        assert everyone.epoch > max(carried.values()), everyone
        assert reelections == [(agreed.leader_id, agreed.epoch)], describe(late)
        left = next(e.time_ms for e in late if e.event == "reelection_started")
        back = next(e.time_ms for e in late if e.event == "became_leader" and e.epoch == everyone.epoch)
        faults.measure("reelection_leaderless_journal", (back - left) / 1000)
        assert back - left < 1000 * faults.timers.heartbeat_s, describe(late)  # a round trip, not a timeout
    else:
        assert everyone.epoch == agreed.epoch and not reelections, describe(late)
    # From the trio's start: while all five were being stopped, the leader's hand-off may have completed
    # (its successor led for a moment before its own stop came), which is fine.
    events = faults.events(since=t_go)
    leaders = {(e.node_id, e.epoch) for e in events if e.event == "became_leader"}
    expected = {(agreed.leader_id, agreed.epoch), (everyone.leader_id, everyone.epoch)}
    assert leaders == expected, describe(events)
    # The late nodes follow the leader (a re-election is the leader's own, not an election): nobody runs.
    assert count(late, "election_started") == 0, describe(late)


@pytest.mark.parametrize("round_no", fault_rounds())
def test_followers_of_a_paused_leader_run_together_and_one_wins(faults: FaultCluster, round_no: int) -> None:
    faults.step(f"round {round_no}")
    before = faults.settle()
    old = faults.by_id[before.leader_id]
    others = [n for n in faults.nodes if n is not old]

    t_pause = faults.pause(old)
    try:
        new, _ = faults.wait(
            lambda: a if (a := faults.agreement(others)) and a.epoch > before.epoch else None,
            faults.timers.leader_deadline_s,
            f"one leader above epoch {before.epoch} agreed by the four others",
        )
        faults.measure("leader_after_pause_polled", time.time() - t_pause)
    finally:
        t_resume = faults.resume(old)
    ran = candidates(faults, since=t_pause, until=t_resume)
    faults.step(f"nodes that started an election while {old} was paused: {ran}")
    faults.measurements.setdefault("concurrent_candidates_pause", []).append(len(ran))
    assert len(ran) >= 2, describe(faults.events(since=t_pause))

    everyone, _ = faults.wait(
        faults.agreement, faults.timers.leader_deadline_s, f"{old} following after SIGCONT"
    )
    faults.measure("resumed_leader_following_polled", time.time() - t_resume)
    assert (everyone.leader_id, everyone.epoch) == (new.leader_id, new.epoch), everyone
    faults.hold(
        lambda: (
            (a := faults.agreement()) is not None and (a.leader_id, a.epoch) == (new.leader_id, new.epoch)
        ),
        faults.quiet_window_s,
        "one leader and one epoch on every node after the resume",
    )
    events = faults.events(since=t_pause)
    assert {(e.node_id, e.epoch) for e in events if e.event == "became_leader"} == {
        (new.leader_id, new.epoch)
    }, describe(events)
    report_attempts(faults, faults.events(since=t_resume), "after the resume")


def test_history_judged_by_checkers(fault_cluster: FaultCluster) -> None:
    fault_cluster.judge()
