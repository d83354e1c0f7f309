"""The role-change hook (node/runtime/hooks.py): the coalescing rule as a table, then real processes
running a real hook script."""

from __future__ import annotations

import itertools
import signal
from collections.abc import Callable

import pytest

from node.core.actions import EventName
from node.runtime.hooks import LEADER, STOPPED, RoleUpdate, next_run
from node.runtime.journal import MESSAGE_IDS

from .cluster import Cluster, process_alive, wait_until

# -- which run comes next (pure) ------------------------------------------------------------------------


def updates(*roles: str) -> list[RoleUpdate]:
    return [RoleUpdate(role, epoch, None) for epoch, role in enumerate(roles, start=1)]


@pytest.mark.parametrize(
    ("delivered", "pending", "runs_now", "stays"),
    [
        (None, [], None, []),
        (None, ["candidate"], "candidate", []),
        # Faster than the hook: the latest wins.
        ("follower", ["candidate", "follower", "candidate"], "candidate", []),
        ("follower", ["candidate", LEADER], LEADER, []),
        # Back where the hook already is: nothing to run.
        ("follower", ["candidate", "follower"], None, []),
        # Lost leadership and won it again: the stop first, then the new leader run.
        (LEADER, ["follower", "candidate", LEADER], "candidate", [LEADER]),
        (LEADER, ["no-quorum", LEADER], "no-quorum", [LEADER]),
        (LEADER, ["follower"], "follower", []),
        (LEADER, ["candidate", STOPPED], STOPPED, []),
        ("follower", [LEADER, "follower", STOPPED], STOPPED, []),
    ],
)
def test_next_run(delivered: str | None, pending: list[str], runs_now: str | None, stays: list[str]) -> None:
    run, rest = next_run(delivered, updates(*pending))
    assert (run.role if run else None) == runs_now
    assert [u.role for u in rest] == stays
    if run is not None:  # the update itself, with its epoch, not a copy of another
        assert run in updates(*pending)


def test_every_leader_run_is_followed_by_a_non_leader_run() -> None:
    """Whatever the interleaving of changes and runs: between two `leader` runs there is another."""
    roles = [LEADER, "follower", "candidate", "no-quorum", STOPPED]
    delivered: list[str] = []
    pending: list[RoleUpdate] = []
    state = 7
    for step in range(2000):
        state = (state * 1103515245 + 12345) % 2**31  # a fixed pseudo-random walk, no clock involved
        if state % 3:  # a role change arrives
            role = roles[state % 4]  # never `stopped` mid-run
            last = pending[-1].role if pending else (delivered[-1] if delivered else None)
            if role != last:
                pending.append(RoleUpdate(role, step, None))
        else:  # the hook finishes a run and takes the next
            run, pending = next_run(delivered[-1] if delivered else None, pending)
            if run is not None:
                delivered.append(run.role)
    assert delivered.count(LEADER) > 10
    assert all(not (a == LEADER and b == LEADER) for a, b in itertools.pairwise(delivered))


# -- real processes ---------------------------------------------------------------------------------------

HOOK = """#!/bin/sh
# One line per run: its arguments and environment, then a line on stderr.
echo "$1|$2|$3|$LEADER_NODE_NODE_ID|$LEADER_NODE_ROLE|$LEADER_NODE_PREVIOUS_ROLE|$LEADER_NODE_EPOCH|\
$LEADER_NODE_LEADER_ID" >> "$(dirname "$0")/runs-$LEADER_NODE_NODE_ID"
echo "hook saw $1" >&2
"""


def hooked_cluster(make_cluster: Callable[..., Cluster], script: str, timeout: str = "1s") -> Cluster:
    """Three nodes whose node.toml names `script` (written into the cluster's directory) as the hook."""
    cluster = make_cluster(1, 2, 3)
    hook = cluster.directory / "role-change"
    hook.write_text(script)
    hook.chmod(0o755)
    for node in cluster.nodes.values():
        text = node.config_path.read_text()
        node.config_path.write_text(text + f'\n[hooks]\non_role_change = "{hook}"\ntimeout = "{timeout}"\n')
    return cluster


def runs(cluster: Cluster, node_id: int) -> list[list[str]]:
    path = cluster.directory / f"runs-{node_id}"
    return [line.split("|") for line in path.read_text().splitlines()] if path.exists() else []


def test_the_hook_runs_on_every_role_change_and_once_with_stopped(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = hooked_cluster(make_cluster, HOOK)
    cluster.start()
    cluster.wait_serving()
    leader, epoch = cluster.wait_leader()
    others = [n for n in cluster.nodes if n != leader]

    def last_run_was(node_id: int, role: str, epoch: int, leader: int | None) -> bool:
        seen = runs(cluster, node_id)
        return bool(seen) and seen[-1][:3] == [role, str(epoch), "" if leader is None else str(leader)]

    for node_id in cluster.nodes:
        role = LEADER if node_id == leader else "follower"
        wait_until(
            lambda n=node_id, r=role: last_run_was(n, r, epoch, leader), 10, f"node {node_id}'s {role} run"
        )
    # Arguments and environment agree; PREVIOUS_ROLE is the role of the hook's run before.
    for node_id in cluster.nodes:
        seen = runs(cluster, node_id)
        for before, run in zip([None, *seen], seen, strict=False):
            role, run_epoch, run_leader, env_id, env_role, env_previous, env_epoch, env_leader = run
            assert (env_id, env_role, env_epoch, env_leader) == (str(node_id), role, run_epoch, run_leader)
            assert env_previous == (before[0] if before else "")
            assert before is None or before[0] != role  # only changes of role

    # A stop: the leader hands off, then runs the hook once more with `stopped` and no leader.
    assert cluster.terminate(leader) == 0
    stopped = runs(cluster, leader)[-1]
    assert stopped[:3] == [STOPPED, stopped[1], ""] and int(stopped[1]) >= epoch
    new_leader, new_epoch = cluster.wait_leader(others)
    wait_until(
        lambda: last_run_was(new_leader, LEADER, new_epoch, new_leader), 10, "the new leader's hook run"
    )

    finished = cluster.events(new_leader, "hook_finished")
    assert finished and all(e["EXIT_STATUS"] == "0" and e["PRIORITY"] == "6" for e in finished)
    assert finished[-1]["ROLE"] == LEADER and finished[-1]["STDERR"] == "hook saw leader"
    assert finished[-1]["MESSAGE_ID"] == MESSAGE_IDS[EventName.HOOK_FINISHED]
    assert int(finished[-1]["DURATION_MS"]) < 1000


HANGING_HOOK = """#!/bin/sh
# Leaves a child in its process group, then hangs: both must die at the timeout.
sleep 60 &
echo "$1 $$ $!" >> "$(dirname "$0")/pids-$LEADER_NODE_NODE_ID"
echo "hanging in $1" >&2
sleep 60
"""


def test_a_hanging_hook_is_killed_with_its_group_and_never_delays_the_election(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = hooked_cluster(make_cluster, HANGING_HOOK, timeout="1s")
    cluster.start()
    cluster.wait_serving()
    leader, _ = cluster.wait_leader()
    # Elected while every node's first run (at start) was still hanging.
    elected = cluster.events(leader, "became_leader")[0]["ts"]
    first_finished = wait_until(lambda: cluster.events(leader, "hook_finished"), 10, "a hook run to end")[0]
    assert elected < first_finished["ts"], (elected, first_finished)
    assert first_finished["EXIT_STATUS"] == str(-signal.SIGKILL)
    assert first_finished["PRIORITY"] == "4"
    assert "killed after the 1000 ms timeout" in first_finished["MESSAGE"]
    assert 1000 <= int(first_finished["DURATION_MS"]) < 3000
    assert first_finished["STDERR"].startswith("hanging in ")

    pid_lines = (cluster.directory / f"pids-{leader}").read_text().splitlines()
    first_hook, first_child = (int(p) for p in pid_lines[0].split()[1:])
    wait_until(
        lambda: not process_alive(first_hook) and not process_alive(first_child),
        5,
        "the hook and its child to die",
    )

    # Stopping waits for the run in progress (at most one timeout), then runs `stopped` (one more).
    assert cluster.terminate(leader, timeout_s=10) == 0
    last = cluster.events(leader, "hook_finished")[-1]
    assert (last["ROLE"], last["EXIT_STATUS"]) == ("stopped", str(-signal.SIGKILL))
    lines = (cluster.directory / f"pids-{leader}").read_text().splitlines()
    pids = [int(pid) for line in lines for pid in line.split()[1:]]
    assert lines[-1].startswith("stopped ") and [pid for pid in pids if process_alive(pid)] == []
