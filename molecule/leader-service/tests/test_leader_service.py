"""Scenario leader-service: leader_node_leader_unit runs leader-demo.service (a worker that serves HTTP on
port 8080 and writes to the fenced store: files/leader-demo-worker.py) on the leader only, through the
role's shipped hook and polkit rule. The fencing check (test_fencing.py) runs before these tests.

  LEADER_NODE_ALGORITHM=ring molecule test -s leader-service
  LEADER_NODE_FAULT_ROUNDS=5 molecule test -s leader-service    # more samples of the times

A watcher polls every host's port 8080 and /leader every 100 ms for the whole run: at no poll may the
unit answer on two hosts whose /leader both answer 200.
Artifacts: artifacts/molecule/leader-service-<algorithm>/.
"""

from __future__ import annotations

import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

pytest.register_assert_rewrite("shared.faults")
from shared.faults import FaultCluster  # noqa: E402 (after register_assert_rewrite)

pytest_plugins = ["shared.faults"]

ROUNDS = int(os.environ.get("LEADER_NODE_FAULT_ROUNDS", "1"))
UNIT_PORT = 8080
POLL_S = 0.1


def answers(url: str) -> int:
    """The HTTP status, 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=0.5) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


class Watcher:
    """Every POLL_S: which hosts run the unit, and which answer 200 on /leader."""

    def __init__(self, faults: FaultCluster) -> None:
        self.faults = faults
        self.polls = 0
        self.violations: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> tuple[set[int], set[int]]:
        nodes = self.faults.nodes
        unit = self.faults.each(nodes, lambda n: answers(f"http://{n.address}:{UNIT_PORT}/") == 200)
        lead = self.faults.each(
            nodes, lambda n: answers(f"http://{n.address}:{self.faults.http_port}/leader") == 200
        )
        return {n.id for n, up in zip(nodes, unit, strict=True) if up}, {
            n.id for n, up in zip(nodes, lead, strict=True) if up
        }

    def _run(self) -> None:
        next_poll = time.monotonic()
        while not self._stop.wait(max(0.0, next_poll - time.monotonic())):
            next_poll += POLL_S  # every POLL_S from the start, however long a sample took
            running, leading = self.sample()
            self.polls += 1
            both = running & leading
            if len(both) > 1:
                self.violations.append(
                    f"{time.time():.3f}: the unit runs on {sorted(running)}, /leader 200 on {sorted(leading)}"
                )

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@pytest.fixture(scope="module")
def watcher(fault_cluster: FaultCluster) -> Iterator[Watcher]:
    with Watcher(fault_cluster) as w:
        yield w
    fault_cluster.step(f"watcher: {w.polls} polls, {len(w.violations)} with the unit on two leaders")
    assert w.violations == [], w.violations[:10]
    assert w.polls >= 50, "the watcher hardly polled: the property above means little"


def runs_only_on(faults: FaultCluster, watcher: Watcher, node_id: int) -> bool:
    running, _ = watcher.sample()
    return running == {node_id}


def test_the_unit_runs_on_the_leader_only(faults: FaultCluster, watcher: Watcher) -> None:
    leader = faults.settle()
    faults.wait(
        lambda: runs_only_on(faults, watcher, leader.leader_id),
        faults.timers.election_s,
        f"leader-demo.service on node {leader.leader_id} only",
        interval_s=POLL_S,
    )
    # The hook's run for `leader`, in the leader's journal: exit status 0 (polkit let it start the unit).
    node = faults.by_id[leader.leader_id]
    query = "journalctl -u leader-node EVENT=hook_finished ROLE=leader -o json --no-pager"
    runs = [line for line in faults.sh(node, query).stdout.splitlines() if line.strip()]
    assert runs and all('"EXIT_STATUS":"0"' in line for line in runs), runs


def test_after_a_crash_of_the_leader_the_unit_moves_to_the_new_leader(
    faults: FaultCluster, watcher: Watcher
) -> None:
    for _ in range(ROUNDS):
        crash_the_leader(faults, watcher)


def crash_the_leader(faults: FaultCluster, watcher: Watcher) -> None:
    before = faults.settle()
    victim = faults.by_id[before.leader_id]
    others = [n for n in faults.nodes if n is not victim]
    t_kill = faults.kill(victim, "SIGKILL")
    new, _ = faults.wait(
        lambda: faults.majority_leader(others, above_epoch=before.epoch, not_leader=victim.id),
        faults.failover_bound_s,
        f"a new leader after SIGKILL of {victim}",
    )
    # Within election_timeout of the kill: elected, the hook run, the unit started; and gone from the
    # victim (BindsTo=leader-node.service: a crash runs no hook there).
    faults.wait(
        lambda: runs_only_on(faults, watcher, new.leader_id),
        max(0.0, faults.timers.election_s - (time.time() - t_kill)),
        f"leader-demo.service on the new leader {new.leader_id} only, within election_timeout of the kill",
        interval_s=0.05,
    )
    faults.measure("leader_unit_after_sigkill", time.time() - t_kill)


def test_a_leader_cut_off_on_the_minority_side_stops_the_unit(faults: FaultCluster, watcher: Watcher) -> None:
    for _ in range(ROUNDS):
        cut_off_the_leader(faults, watcher)


def cut_off_the_leader(faults: FaultCluster, watcher: Watcher) -> None:
    before = faults.settle()
    leader = faults.by_id[before.leader_id]
    follower = next(n for n in faults.nodes if n is not leader)
    minority = [leader, follower]
    majority = [n for n in faults.nodes if n not in minority]
    t_cut = faults.partition(minority, majority)
    hook_timeout_s = 5  # leader_node_hooks_timeout_sec in molecule.yml

    def stopped_on_minority() -> bool:
        running, _ = watcher.sample()
        return not running & {n.id for n in minority}

    faults.wait(
        stopped_on_minority,
        faults.timers.failure_s + hook_timeout_s,
        f"leader-demo.service stopped on the minority {[n.id for n in minority]}",
        interval_s=0.05,
    )
    faults.measure("leader_unit_stopped_on_minority", time.time() - t_cut)
    new, _ = faults.wait(
        lambda: (a := faults.agreement(majority)) is not None and a.epoch > before.epoch and a,
        faults.timers.leader_deadline_s,
        "a leader on the majority side",
    )
    faults.wait(
        lambda: runs_only_on(faults, watcher, new.leader_id),
        faults.timers.election_s,
        f"leader-demo.service on the majority's leader {new.leader_id}",
        interval_s=0.05,
    )
    faults.heal()
    faults.settle()


def test_history_judged_by_checkers(fault_cluster: FaultCluster, watcher: Watcher) -> None:
    fault_cluster.judge()
