"""History checkers on hand-written histories: one valid and one invalid per rule."""

from __future__ import annotations

from node.history.checkers import check_epochs_monotonic, check_history, check_one_leader_per_epoch
from node.history.model import HistoryEvent as E

VALID = [
    E(0, 1, "started", epoch=0),
    E(0, 2, "started", epoch=0),
    E(0, 3, "started", epoch=0),
    E(2_100, 3, "election_started", epoch=0),
    E(2_150, 3, "became_leader", epoch=1, leader_id=3),
    E(2_160, 1, "leader_accepted", epoch=1, leader_id=3),
    E(2_161, 2, "leader_accepted", epoch=1, leader_id=3),
    E(9_000, 3, "quorum_lost", epoch=1),
    E(9_000, 3, "stepped_down", epoch=1),
    E(9_500, 2, "became_leader", epoch=2, leader_id=2),
    E(9_600, 1, "leader_accepted", epoch=2, leader_id=2),
    E(12_000, 3, "started", epoch=1),  # restarted: its disk says 1, it has not heard of 2 yet
    E(12_040, 3, "leader_accepted", epoch=2, leader_id=2),
    E(12_050, 3, "message_rejected", epoch=2, peer_id=1),
]


def test_a_valid_history_passes_every_checker() -> None:
    assert check_history(VALID) == []


def test_two_leaders_under_one_epoch() -> None:
    bad = [*VALID, E(10_000, 1, "became_leader", epoch=2, leader_id=1)]
    [violation] = check_one_leader_per_epoch(bad)
    assert violation.rule == "one-leader-per-epoch"
    assert "nodes 2 and 1 both became leader under epoch 2" in violation.explanation
    assert [e.node_id for e in violation.events] == [2, 1]
    assert "t=9500ms node 2 became_leader epoch=2" in violation.describe()


def test_a_leader_line_without_epoch_is_reported() -> None:
    [violation] = check_one_leader_per_epoch([E(5, 1, "became_leader")])
    assert "without an EPOCH" in violation.explanation


def test_the_same_leader_logging_twice_is_not_two_leaders() -> None:
    assert (
        check_one_leader_per_epoch([E(5, 1, "became_leader", epoch=4), E(9, 1, "became_leader", epoch=4)])
        == []
    )


def test_epoch_going_back_on_a_running_node() -> None:
    bad = [*VALID, E(13_000, 1, "leader_accepted", epoch=1, leader_id=3)]
    [violation] = check_epochs_monotonic(bad)
    assert violation.rule == "epochs-monotonic"
    assert "node 1 went back from epoch 2 to 1" in violation.explanation


def test_epoch_going_back_across_a_restart() -> None:
    bad = [*VALID, E(14_000, 2, "started", epoch=1)]  # node 2 had reached epoch 2 before
    [violation] = check_epochs_monotonic(bad)
    assert "across a restart" in violation.explanation


def test_every_event_carries_the_nodes_own_epoch() -> None:
    # message_rejected logs the rejecting node's epoch, not the stale one it refused
    history = [E(1, 1, "leader_accepted", epoch=5, leader_id=2), E(2, 1, "message_rejected", epoch=3)]
    [violation] = check_epochs_monotonic(history)
    assert "node 1 went back from epoch 5 to 3" in violation.explanation


def test_a_node_that_lost_its_disk_starts_at_0_and_says_so() -> None:
    wiped = [
        *VALID,
        E(14_000, 2, "started", epoch=0),
        E(14_000, 2, "catch_up_started", epoch=0),
        E(14_010, 2, "catch_up_finished", epoch=2),
    ]
    assert check_epochs_monotonic(wiped) == []


def test_a_start_at_0_without_catch_up_is_going_back() -> None:
    silent = [*VALID, E(14_000, 2, "started", epoch=0), E(14_010, 2, "leader_accepted", epoch=2, leader_id=2)]
    [violation] = check_epochs_monotonic(silent)
    assert "node 2 went back from epoch 2 to 0 across a restart" in violation.explanation
    [at_the_end] = check_epochs_monotonic([*VALID, E(14_000, 2, "started", epoch=0)])
    assert "across a restart" in at_the_end.explanation


def test_a_hook_run_reports_the_epoch_it_ran_with() -> None:
    # The `follower` run for epoch 1 ends after the node accepted epoch 2: the run's epoch, not the node's.
    late = [*VALID, E(9_650, 1, "hook_finished", epoch=1), E(9_700, 1, "message_rejected", epoch=2)]
    assert check_epochs_monotonic(late) == []
    # ... and the node's own events are still held to the rule.
    bad = [*late, E(9_800, 1, "message_rejected", epoch=1)]
    assert [v.rule for v in check_epochs_monotonic(bad)] == ["epochs-monotonic"]
