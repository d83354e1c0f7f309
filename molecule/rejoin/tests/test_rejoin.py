"""Scenario rejoin: a follower stopped and started again, another one crashed (SIGKILL) and restarted
by systemd: each re-integrates and accepts the current leader, without any election.

  LEADER_NODE_ALGORITHM=ring molecule test -s rejoin

Artifacts: artifacts/molecule/rejoin-<algorithm>/ (journals, timeline.txt, steps.txt, measurements.json);
in the scenario faults, which `make test` runs: artifacts/molecule/faults-<algorithm>/rejoin/.
Repeated on the one converged cluster: LEADER_NODE_FAULT_ROUNDS=10 molecule test -s rejoin.
"""

from __future__ import annotations

import time

import pytest

pytest.register_assert_rewrite("shared.faults")
from shared.faults import (  # noqa: E402 (after register_assert_rewrite)
    Agreement,
    FaultCluster,
    Node,
    count,
    describe,
    fault_rounds,
)

# The fixtures `faults` and `fault_cluster`.
pytest_plugins = ["shared.faults"]


def unchanged(faults: FaultCluster, before: Agreement, nodes: list[Node] | None = None) -> bool:
    agreed = faults.agreement(nodes)
    return agreed is not None and (agreed.leader_id, agreed.epoch) == (before.leader_id, before.epoch)


def check_rejoined_quietly(
    faults: FaultCluster, node: Node, before: Agreement, since: float, up: float
) -> None:
    """`node` follows the same leader under the same epoch as everyone, and nobody ran an election."""
    rejoined, _ = faults.wait(faults.agreement, faults.timers.leader_deadline_s, f"{node} following again")
    faults.measure("follower_following_after_start_polled", time.time() - up)
    assert (rejoined.leader_id, rejoined.epoch) == (before.leader_id, before.epoch), rejoined
    faults.hold(
        lambda: unchanged(faults, before),
        faults.quiet_window_s,
        f"leader and epoch unchanged with {node} back",
    )
    events = faults.events(since=since)
    assert count(events, "election_started") == 0 and count(events, "became_leader") == 0, describe(events)
    started = [e for e in events if e.node_id == node.id and e.event == "started"]
    assert started, describe(events)
    assert any(
        e.node_id == node.id
        and e.event == "leader_accepted"
        and (e.leader_id, e.epoch) == (before.leader_id, before.epoch)
        and e.time_ms >= started[-1].time_ms
        for e in events
    ), describe(events)


@pytest.mark.parametrize("round_no", fault_rounds())
def test_stopped_follower_rejoins_without_an_election(faults: FaultCluster, round_no: int) -> None:
    faults.step(f"round {round_no}")
    before = faults.settle()
    # The highest-id follower: under Bully the strongest candidate, which must still not take over.
    follower = max((n for n in faults.nodes if n.id != before.leader_id), key=lambda n: n.id)
    others = [n for n in faults.nodes if n is not follower]

    t_stop = faults.stop(follower)
    faults.hold(
        lambda: unchanged(faults, before, others),
        faults.quiet_window_s,
        f"the others unchanged while {follower} is down",
    )
    t_start = faults.start(follower)
    check_rejoined_quietly(faults, follower, before, since=t_stop, up=t_start)


@pytest.mark.parametrize("round_no", fault_rounds())
def test_crashed_follower_restarted_by_systemd_rejoins_without_an_election(
    faults: FaultCluster, round_no: int
) -> None:
    faults.step(f"round {round_no}")
    before = faults.settle()
    follower = min((n for n in faults.nodes if n.id != before.leader_id), key=lambda n: n.id)
    restarts = faults.n_restarts(follower)

    t_kill = faults.kill(follower, "SIGKILL")
    _, elapsed = faults.wait(
        lambda: faults.n_restarts(follower) > restarts and faults.is_active(follower),
        faults.timers.leader_deadline_s,
        f"systemd restarted {follower} (NRestarts above {restarts})",
        interval_s=0.25,
    )
    faults.step(
        f"{follower}: NRestarts {faults.n_restarts(follower)} (was {restarts}), active after {elapsed:.2f} s"
    )
    check_rejoined_quietly(faults, follower, before, since=t_kill, up=t_kill)


def test_history_judged_by_checkers(fault_cluster: FaultCluster) -> None:
    fault_cluster.judge()
