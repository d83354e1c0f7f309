"""Scenario partition: five hosts split 2|3 with iptables on both sides, the old leader once on the
minority side and once on the majority side; then healed.

  LEADER_NODE_ALGORITHM=ring molecule test -s partition
  LEADER_NODE_FAULT_ROUNDS=5 molecule test -s partition    # more samples of the heal times

Artifacts: artifacts/molecule/partition-<algorithm>/ (journals, timeline.txt, steps.txt, measurements.json);
in the scenario faults, which `make test` runs: artifacts/molecule/faults-<algorithm>/partition/.
"""

from __future__ import annotations

import os
import time

import pytest

pytest.register_assert_rewrite("shared.faults")
from shared.faults import FaultCluster, Node, count, describe  # noqa: E402 (after register_assert_rewrite)

# The fixtures `faults` and `fault_cluster`.
pytest_plugins = ["shared.faults"]

ROUNDS = int(os.environ.get("LEADER_NODE_FAULT_ROUNDS", "1"))


def minority_is_leaderless(faults: FaultCluster, minority: list[Node]) -> bool:
    statuses = faults.statuses(minority)
    return all(
        s is not None and s["role"] == "no-quorum" and s["leader_id"] is None for s in statuses.values()
    )


@pytest.mark.parametrize("old_leader_side", ["minority", "majority"])
def test_only_the_majority_leads_and_the_minority_rejoins_on_heal(
    faults: FaultCluster, old_leader_side: str
) -> None:
    for _ in range(ROUNDS):
        split_heal_and_check(faults, old_leader_side)


def split_heal_and_check(faults: FaultCluster, old_leader_side: str) -> None:
    timers = faults.timers
    before = faults.settle()
    leader = faults.by_id[before.leader_id]
    followers = sorted((n for n in faults.nodes if n is not leader), key=lambda n: n.id, reverse=True)
    # The strongest candidates of Bully (highest ids) go to the minority: on heal they must not take over.
    minority = [leader, followers[0]] if old_leader_side == "minority" else followers[:2]
    majority = [n for n in faults.nodes if n not in minority]

    t_cut = faults.partition(minority, majority)
    if old_leader_side == "minority":
        side, _ = faults.wait(
            lambda: (a := faults.agreement(majority)) is not None and a.epoch > before.epoch and a,
            timers.leader_deadline_s,
            f"a leader with an epoch above {before.epoch} agreed by the majority {[n.id for n in majority]}",
        )
        faults.measure("majority_leader_after_cut_polled", time.time() - t_cut)
    else:
        side = faults.agreement(majority)
        assert side is not None and (side.leader_id, side.epoch) == (before.leader_id, before.epoch), side
    faults.step(f"majority: leader {side.leader_id}, epoch {side.epoch}")
    faults.wait(
        lambda: minority_is_leaderless(faults, minority),
        timers.leader_deadline_s,
        f"every minority node {[n.id for n in minority]} reports no-quorum and no leader",
    )
    faults.measure("minority_no_quorum_after_cut_polled", time.time() - t_cut)

    def only_majority_leads() -> bool:
        agreed = faults.agreement(majority)
        same = agreed is not None and (agreed.leader_id, agreed.epoch) == (side.leader_id, side.epoch)
        return same and minority_is_leaderless(faults, minority)

    faults.hold(only_majority_leads, faults.quiet_window_s, "only the majority has a leader")

    cut = faults.events(since=t_cut)
    minority_ids = [n.id for n in minority]
    assert count(cut, "became_leader", minority_ids) == 0, describe(cut)
    if old_leader_side == "minority":
        # The cut-off leader gives up leadership by itself (quorum lost) within about failure_timeout.
        gave_up = next(
            (e for e in cut if e.node_id == leader.id and e.event in ("stepped_down", "quorum_lost")), None
        )
        assert gave_up is not None, describe(cut)
        faults.measure("old_leader_gave_up_after_cut_journal", gave_up.time_ms / 1000 - t_cut)
        # Its last majority contact was before the cut: no leading beyond failure_timeout (+ a heartbeat
        # of slack for the lease check and journald on a busy machine).
        assert gave_up.time_ms / 1000 - t_cut <= timers.failure_s + timers.heartbeat_s, describe(cut)
        elected = next(e for e in cut if e.event == "became_leader" and e.node_id == side.leader_id)
        faults.measure("majority_elected_after_cut_journal", elected.time_ms / 1000 - t_cut)
        faults.measure("leader_overlap_journal", (gave_up.time_ms - elected.time_ms) / 1000)
    else:
        # The majority keeps its leader and epoch without an election. The minority may try (its leader
        # looked lost before the rest of the majority did) but can never lead: checked above.
        majority_ids = [n.id for n in majority]
        assert count(cut, "became_leader") == 0, describe(cut)
        assert count(cut, "election_started", majority_ids) == 0, describe(cut)
    on_minority = count(cut, "election_started", minority_ids)
    on_majority = count(cut, "election_started") - on_minority
    faults.step(
        f"election_started during the partition: {on_minority} on the minority, {on_majority} on the majority"
    )

    t_heal = faults.heal()
    healed, _ = faults.wait(
        faults.agreement, timers.leader_deadline_s, "one leader agreed by all after the heal"
    )
    faults.measure("agreed_after_heal_polled", time.time() - t_heal)
    assert (healed.leader_id, healed.epoch) == (side.leader_id, side.epoch), healed
    # No new leader and no other epoch anywhere while we watch. A node may drop its leader for a moment
    # and try an election that its peers turn down: counted from the journal and bounded below.
    faults.hold(
        lambda: faults.stable(side.leader_id, side.epoch),
        faults.quiet_window_s,
        f"leader {side.leader_id} and epoch {side.epoch} unchanged after the heal",
    )
    faults.wait(
        lambda: (
            (a := faults.agreement()) is not None and (a.leader_id, a.epoch) == (side.leader_id, side.epoch)
        ),
        timers.leader_deadline_s,
        f"every node following {side.leader_id} under epoch {side.epoch} at the end",
    )
    after = faults.events(since=t_heal)
    # The minority accepts the majority's leader and epoch: no new leader, no storm of elections.
    assert count(after, "became_leader") == 0, describe(after)
    elections = count(after, "election_started")
    faults.measurements.setdefault("elections_after_heal", []).append(elections)
    faults.step(f"election_started after the heal: {elections}")
    assert elections <= len(minority), describe(after)
    for node in minority:
        assert any(
            e.node_id == node.id
            and e.event == "leader_accepted"
            and (e.leader_id, e.epoch) == (side.leader_id, side.epoch)
            for e in after
        ), describe(after)
    known_ms = max(
        next(
            e.time_ms
            for e in after
            if e.node_id == node.id and e.event == "leader_accepted" and e.leader_id == side.leader_id
        )
        for node in minority
    )
    faults.measure("agreed_after_heal_journal", known_ms / 1000 - t_heal)


def test_history_judged_by_checkers(fault_cluster: FaultCluster) -> None:
    fault_cluster.judge()
