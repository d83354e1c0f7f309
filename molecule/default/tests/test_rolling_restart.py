"""deploy/rolling-restart.yml on the converged cluster, watched from the controller (scenario `default`).

The playbook runs as an operator runs it (`ansible-playbook deploy/rolling-restart.yml -i <inventory>`,
here the scenario's own inventory) while a thread asks every node for `/leader` every 50 ms. It must:

- restart every member once, one at a time, the followers first and the leader last (journals:
  each node's `stopping`, then `listening` and its acceptance of a leader before the next one stops);
- change the leader at most once (the old leader's hand-off when it stops);
- have exactly one node answer 200 on `/leader` at every poll of the whole run, except during the
  hand-off: the leader resigns before a successor may lead, so a poll can fall into that round trip
  (measured and bounded below, never two leaders; see the comment at the assertion).

Every poll with no leader or more than one is printed with its time and each node's answer, and the
gap or overlap in ms goes to measurements.json (artifacts/molecule/default-<algorithm>/).
Run where the containers' addresses are reachable from the controller (Docker on this machine).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.register_assert_rewrite("shared.faults")
from shared.faults import SERVICE, FaultCluster, Node, describe  # noqa: E402 (after register_assert_rewrite)

# The fixtures `faults` and `fault_cluster`.
pytest_plugins = ["shared.faults"]

POLL_S = 0.05
REQUEST_TIMEOUT_S = 1.0
PROJECT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
PLAYBOOK = PROJECT / "deploy" / "rolling-restart.yml"


@dataclass(frozen=True)
class Poll:
    at: float  # wall-clock time the poll started
    took: float  # seconds until every node had answered (or failed)
    codes: dict[int, int]  # node id -> HTTP status of /leader, 0 when it did not answer

    @property
    def leaders(self) -> list[int]:
        return sorted(node_id for node_id, code in self.codes.items() if code == 200)

    def describe(self) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(self.at)) + f".{int(self.at * 1000) % 1000:03d}"
        return f"{stamp} " + " ".join(f"{node_id}:{code}" for node_id, code in sorted(self.codes.items()))


def leader_code(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT_S) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return 0


class LeaderPoller:
    """Polls GET /leader on every node every POLL_S seconds in a thread, all nodes at once per poll."""

    def __init__(self, urls: dict[int, str]) -> None:
        self.urls = urls
        self.polls: list[Poll] = []
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=len(urls))
        self._thread = threading.Thread(target=self._run, name="leader-poller", daemon=True)

    def poll_once(self) -> Poll:
        started = time.time()
        ids = sorted(self.urls)
        codes = dict(zip(ids, self._pool.map(leader_code, (self.urls[i] for i in ids)), strict=True))
        return Poll(started, time.time() - started, codes)

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.polls.append(self.poll_once())
            next_at += POLL_S
            self._stop.wait(max(0.0, next_at - time.monotonic()))
            next_at = max(next_at, time.monotonic() - POLL_S)  # after a slow poll: no burst to catch up

    def __enter__(self) -> LeaderPoller:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._pool.shutdown()


@dataclass(frozen=True)
class Anomaly:
    """A run of consecutive polls without exactly one leader: `leaders` is () for a gap."""

    polls: list[Poll]
    bound_s: float  # from the last good poll before it to the first good poll after it (or the end)

    @property
    def kind(self) -> str:
        return "no leader" if not self.polls[0].leaders else "several leaders"


def anomalies(polls: list[Poll]) -> list[Anomaly]:
    """Runs of polls where not exactly one node answered 200, each with an upper bound on its length."""
    out: list[Anomaly] = []
    run: list[Poll] = []
    last_good_at: float | None = None

    def close(end_at: float) -> None:
        begin_at = last_good_at if last_good_at is not None else run[0].at
        out.append(Anomaly(list(run), end_at - begin_at))
        run.clear()

    for poll in polls:
        if len(poll.leaders) == 1:
            if run:
                close(poll.at)
            last_good_at = poll.at
            continue
        if run and bool(run[-1].leaders) != bool(poll.leaders):  # a gap turning into an overlap
            close(poll.at)
        run.append(poll)
    if run:
        close(run[-1].at + run[-1].took)
    return out


def leader_sequence(polls: list[Poll]) -> list[int]:
    """The leaders seen over the run, in order, each change once (polls without one leader skipped)."""
    sequence: list[int] = []
    for poll in polls:
        if len(poll.leaders) == 1 and (not sequence or sequence[-1] != poll.leaders[0]):
            sequence.append(poll.leaders[0])
    return sequence


UNIT_STOPPING = "de5b426a63be47a7b6ac3eaac82e2f6f"  # systemd's MESSAGE_ID of "Stopping <unit>..."
UNIT_STARTED = "39f53479d3a045ac8e11786248231fbf"  # and of "Started <unit>." (READY=1 for Type=notify)


@dataclass(frozen=True)
class UnitHistory:
    stopped: list[int]  # wall-clock ms of each "Stopping leader-node.service"
    started: list[int]  # and of each "Started leader-node.service"


def unit_history(faults: FaultCluster, since: float) -> dict[int, UnitHistory]:
    """Per node: when systemd began stopping and finished starting leader-node since `since`."""

    def read(node: Node) -> UnitHistory:
        out = faults.sh(node, f"journalctl -u {SERVICE} -o json --no-pager --since @{since:.3f}").stdout
        entries = [json.loads(line) for line in out.splitlines() if line.strip()]
        mine = [e for e in entries if e.get("_PID") == "1" and e.get("UNIT") == f"{SERVICE}.service"]

        def times(message_id: str) -> list[int]:
            return [int(e["__REALTIME_TIMESTAMP"]) // 1000 for e in mine if e.get("MESSAGE_ID") == message_id]

        return UnitHistory(stopped=times(UNIT_STOPPING), started=times(UNIT_STARTED))

    return dict(zip((n.id for n in faults.nodes), faults.each(faults.nodes, read), strict=True))


def ansible_playbook() -> str:
    beside = Path(sys.executable).parent / "ansible-playbook"
    return str(beside) if beside.exists() else shutil.which("ansible-playbook") or "ansible-playbook"


def run_playbook(playbook: Path, inventory: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ansible_playbook(), str(playbook), "-i", inventory, *extra],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )


def test_rolling_restart_keeps_exactly_one_leader(
    faults: FaultCluster, request: pytest.FixtureRequest
) -> None:
    inventory = request.config.option.ansible_inventory
    assert inventory, "run with --ansible-inventory (molecule/shared/verify.yml passes the scenario's)"
    restart_every_member_keeping_one_leader(faults, "rolling-restart", PLAYBOOK, inventory)


def restart_every_member_keeping_one_leader(
    faults: FaultCluster, name: str, playbook: Path, inventory: str, *extra: str
) -> None:
    """Run `playbook`, which must restart every member once, one at a time, the leader last, while a
    thread polls /leader every 50 ms; judge the restarts (systemd's journal) and the polls."""
    before, _ = faults.wait(
        faults.agreement, faults.timers.leader_deadline_s, "one leader agreed by all nodes"
    )
    old_leader = before.leader_id
    urls = {node.id: f"http://{node.address}:{faults.http_port}/leader" for node in faults.nodes}

    poller = LeaderPoller(urls)
    first = poller.poll_once()
    if 0 in first.codes.values():
        pytest.fail(
            f"/leader is not reachable from the controller at every node's address: {first.describe()}"
        )
    assert first.leaders == [old_leader], first.describe()

    shown = [arg.split("=", 1)[0] + "=***" if "secret=" in arg else arg for arg in extra]  # not in artifacts
    command = " ".join([str(playbook.relative_to(PROJECT)), "-i", inventory, *shown])
    started = faults.step(f"ansible-playbook {command} (leader: {old_leader})")
    with poller:
        result = run_playbook(playbook, inventory, *extra)
    ended = faults.step(f"{name} done: exit {result.returncode}, {len(poller.polls)} polls of /leader")
    (faults.out_dir / f"{name}.log").write_text(result.stdout + result.stderr, encoding="utf-8")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]

    polls = poller.polls
    duration_s = ended - started
    intervals = sorted(b.at - a.at for a, b in itertools.pairwise(polls))
    median_interval_s = intervals[len(intervals) // 2] if intervals else float("inf")
    key = name.replace("-", "_")
    faults.measure(f"{key}_s", duration_s)
    faults.measure(f"{key}_leader_poll_interval_median_s", median_interval_s)
    faults.measure(f"{key}_leader_poll_interval_max_s", intervals[-1] if intervals else float("inf"))
    for poll in polls:
        if poll.took > 2 * POLL_S:  # a slow poll: the interval around it is observed less finely
            faults.step(f"slow poll, {poll.took * 1000:.0f} ms: {poll.describe()}")

    # A poll in which nobody answered 200 and some node did not answer at all says nothing about the
    # leader (the silent node may be it, too slow to answer within REQUEST_TIMEOUT_S on a loaded
    # machine). Such polls are set aside, counted, and bounded; two 200s are judged whatever else.
    def inconclusive(poll: Poll) -> bool:
        return not poll.leaders and 0 in poll.codes.values()

    unknown = [p for p in polls if inconclusive(p)]
    faults.measure("leader_polls_inconclusive", len(unknown))
    for poll in unknown:
        faults.step(f"inconclusive poll (no 200, a node silent): {poll.describe()}")
    assert len(unknown) <= max(2, len(polls) // 50), f"{len(unknown)} of {len(polls)} polls inconclusive"
    bad = anomalies([p for p in polls if not inconclusive(p)])
    for anomaly in bad:
        faults.measure(f"{anomaly.kind.replace(' ', '_')}_bound_s", anomaly.bound_s)
        faults.step(
            f"{anomaly.kind} at {len(anomaly.polls)} poll(s), at most {anomaly.bound_s * 1000:.0f} ms: "
            + " | ".join(poll.describe() for poll in anomaly.polls)
        )
    faults.write_records()

    events = faults.events(since=started, until=time.time())
    units = unit_history(faults, started)

    # Every member restarted exactly once, one at a time, the leader last. The unit's stop and start
    # come from systemd's own journal entries: a stopping daemon's last lines can reach journald after
    # the process is gone, without the unit's fields (seen for the leader's `stopping` line).
    assert all(len(h.stopped) == 1 and len(h.started) == 1 for h in units.values()), units
    order = sorted(units, key=lambda nid: units[nid].stopped[0])
    faults.step(f"restart order (systemd): {order}")
    assert order[-1] == old_leader, (order, old_leader)
    for previous, following in itertools.pairwise(order):
        assert units[previous].started[0] > units[previous].stopped[0], units
        back = [
            e.time_ms
            for e in events
            if e.node_id == previous
            and e.event in ("leader_accepted", "became_leader")
            and e.time_ms >= units[previous].started[0]
        ]
        assert back, f"node {previous} never followed a leader again after its restart:\n{describe(events)}"
        assert back[0] < units[following].stopped[0], (
            f"node {following} stopped before node {previous} was back and following:\n{describe(events)}"
        )

    # At most one leader change: the hand-off from the old leader to its successor.
    sequence = leader_sequence(polls)
    assert sequence[0] == old_leader, sequence
    assert len(sequence) <= 2, f"leaders over the run, in order: {sequence}"

    # Healthy enough polling to mean something, then the rule itself: exactly one leader at every
    # poll, with one measured exception, the hand-off. The leader resigns on SIGTERM and only then may
    # a successor be elected (never two leaders), so for about one election round trip nobody leads:
    # 93 ms in the journals on the `make cluster` containers, caught by 1 of ~1200 polls (<= 240 ms
    # between the polls around it). Allowed: one run of polls with no leader, after the old leader's
    # unit began stopping, shorter than a heartbeat interval (a hand-off that needed failure detection
    # would take failure_timeout). Never allowed: two leaders, or no leader at any other time.
    assert median_interval_s <= 3 * POLL_S, f"polls every {median_interval_s * 1000:.0f} ms (median)"
    handoff_at = units[old_leader].stopped[0] / 1000
    handoff = [
        a
        for a in bad
        if not a.polls[0].leaders and a.polls[0].at >= handoff_at and a.bound_s < faults.timers.heartbeat_s
    ]
    if handoff:
        faults.measure("handoff_gap_bound_s", handoff[0].bound_s)
        faults.step(f"hand-off gap: {len(handoff[0].polls)} poll(s) without a leader (allowed, see above)")
    unexpected = [a for a in bad if a not in handoff[:1]]
    assert not unexpected, (
        f"{len(unexpected)} interval(s) without exactly one leader answering /leader 200 during the "
        f"{duration_s:.1f} s run ({len(polls)} polls; hand-off at {handoff_at:.3f}): "
        + "; ".join(
            f"{a.kind} for {len(a.polls)} poll(s) (<= {a.bound_s * 1000:.0f} ms): {a.polls[0].describe()}"
            for a in unexpected
        )
    )
    faults.judge()  # and the journals break no safety rule (leader-node check-history)
