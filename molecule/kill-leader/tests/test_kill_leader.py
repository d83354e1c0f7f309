"""Scenario kill-leader: stop the leader, start it again, then crash the next leader with SIGKILL; then the
operators' tools on the controller (HAProxy with the documented backend, Prometheus with the shipped
alert rules) in front of the five containers through five more crashes and a member stopped for a while.

  LEADER_NODE_ALGORITHM=ring molecule test -s kill-leader
  LEADER_NODE_FAULT_ROUNDS=10 molecule test -s kill-leader    # more samples of the failover times

Artifacts: artifacts/molecule/kill-leader-<algorithm>/ (journals, timeline.txt, steps.txt, measurements.json,
operator-tools/: haproxy.cfg and its log, prometheus.yml and its log, alerts.txt); in the scenario faults,
which `make test` runs: artifacts/molecule/faults-<algorithm>/kill-leader/.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

pytest.register_assert_rewrite("shared.faults", "tests.runtime.operators")
# The verify step runs pytest from the project directory: tests.runtime is the loopback tests' package.
from shared.faults import FaultCluster, count, describe, majority_known_ms  # noqa: E402 (after register_assert_rewrite)

from tests.runtime.operators import (  # noqa: E402
    SCRAPE_JOB,
    AlertWatcher,
    HAProxy,
    Prometheus,
    Server,
    kill_through,
    require_tool,
    wait_routed_to,
)

# The fixtures `faults` and `fault_cluster`.
pytest_plugins = ["shared.faults"]

ROUNDS = int(os.environ.get("LEADER_NODE_FAULT_ROUNDS", "1"))
SWITCH_ROUNDS = 5  # SIGKILLs through HAProxy: the median of 5 goes to docs/benchmarks.md
# Alerts that a crashed leader, restarted by systemd, or one member stopped must never make fire.
NEVER_FIRING = (
    "LeaderNodeNoLeader",
    "LeaderNodeMultipleLeaders",
    "LeaderNodeNoQuorum",
    "LeaderNodeEpochGrowingFast",
    "LeaderNodePeerAuthenticationFailing",
)


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


def test_haproxy_and_prometheus_follow_the_leader(faults: FaultCluster, tmp_path: Path) -> None:
    """HAProxy and Prometheus run on the controller in front of the five containers. Through five
    SIGKILLs of the leader every request HAProxy passes on is answered by the node leading then, and
    Prometheus sees each leader lead, the leader flapping alert fire and no alert of NEVER_FIRING fire.
    Then a follower is stopped until the node-down alerts fire, and started until they resolve."""
    haproxy_binary = require_tool("haproxy", "haproxy")
    prometheus_binary = require_tool("prometheus", "prometheus")
    out_dir = faults.out_dir / "operator-tools"
    out_dir.mkdir(parents=True, exist_ok=True)
    first = faults.settle()
    servers = [Server(node.id, node.address, faults.http_port) for node in faults.nodes]
    node_of = {f"{node.address}:{faults.http_port}": node.id for node in faults.nodes}
    proxy = HAProxy(haproxy_binary, out_dir, servers)
    prometheus = Prometheus(prometheus_binary, tmp_path, sorted(node_of))
    (out_dir / "prometheus.yml").write_text(prometheus.config.read_text())
    watcher = AlertWatcher(prometheus)
    try:
        faults.wait(prometheus.ready, 60, "Prometheus ready", interval_s=0.2)
        faults.wait(
            lambda: (
                len(prometheus.query(f'up{{job="{SCRAPE_JOB}"}} == 1')) == len(faults.nodes)
                and prometheus.query("sum(leader_node_is_leader)") == [({}, 1.0)]
            ),
            30,
            "Prometheus scraping all five members and seeing one leader",
            interval_s=0.2,
        )
        watcher.start()
        started_s = faults.step(f"Prometheus on {prometheus.url}, HAProxy on 127.0.0.1:{proxy.port}")
        leaders = [first.leader_id]
        for n in range(1, SWITCH_ROUNDS + 1):
            leaders.append(crash_the_leader_through(proxy, faults, n))
        last = faults.settle()  # the last victim restarted by systemd and following

        # Prometheus saw each of those leaders lead (one-second samples of a term of many seconds).
        led = prometheus.query_range("leader_node_is_leader == 1", started_s - 5, time.time())
        assert {node_of[labels["instance"]] for labels, _ in led} == set(leaders), (led, leaders)
        faults.wait(
            lambda: "firing" in watcher.states("LeaderNodeLeaderFlapping"),
            30,
            f"LeaderNodeLeaderFlapping firing after {SWITCH_ROUNDS} leader changes",
            interval_s=0.5,
        )

        down = next(node for node in reversed(faults.nodes) if node.id != last.leader_id)
        instance = f"{down.address}:{faults.http_port}"
        faults.stop(down)
        wait_firing(faults, watcher, "LeaderNodeDown", instance=instance)
        wait_firing(faults, watcher, "LeaderNodeMemberUnreachable", peer=str(down.id))
        faults.start(down)
        faults.wait(
            lambda: (
                not watcher.active("LeaderNodeDown") and not watcher.active("LeaderNodeMemberUnreachable")
            ),
            30,
            f"the node-down alerts resolved after {down} started again",
            interval_s=0.5,
        )
        faults.step("LeaderNodeDown and LeaderNodeMemberUnreachable resolved")
        faults.settle()
    finally:
        watcher.stop()
        (out_dir / "alerts.txt").write_text("\n".join(watcher.report()) + "\n")
        proxy.close()
        prometheus.close()
    assert watcher.error is None, f"polling Prometheus's alerts failed: {watcher.error!r}"
    fired = {name: sorted(watcher.states(name)) for name in NEVER_FIRING}
    assert all("firing" not in states for states in fired.values()), fired
    faults.step(f"alert states seen: {fired}")


def crash_the_leader_through(proxy: HAProxy, faults: FaultCluster, n: int) -> int:
    """SIGKILL the settled leader while requests go through HAProxy; the new leader's id."""
    before = faults.settle()
    victim = faults.by_id[before.leader_id]
    others = [node for node in faults.nodes if node is not victim]
    wait_routed_to(proxy, victim.id, timeout_s=30)
    switch = kill_through(
        proxy, victim.id, lambda: faults.kill(victim, "SIGKILL"), timeout_s=faults.failover_bound_s
    )
    faults.measure("haproxy_switch_after_sigkill", switch.switch_s)
    faults.step(f"HAProxy round {n}: {switch.describe()}")
    new, _ = faults.wait(
        lambda: faults.majority_leader(others, above_epoch=before.epoch, not_leader=victim.id),
        faults.failover_bound_s,
        f"a majority following a new leader after SIGKILL of {victim}",
    )
    assert new.leader_id == switch.new_leader, (new, switch)
    return new.leader_id


def wait_firing(faults: FaultCluster, watcher: AlertWatcher, name: str, **labels: str) -> None:
    """Until Prometheus reports alert `name` with `labels` firing: its `for` (1 min) and a margin."""
    faults.wait(
        lambda: "firing" in watcher.active(name, **labels), 90, f"{name} {labels} firing", interval_s=1
    )
    faults.step(f"{name} {labels} firing")


def test_history_judged_by_checkers(fault_cluster: FaultCluster) -> None:
    fault_cluster.judge()
