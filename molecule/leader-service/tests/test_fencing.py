"""Fencing on real systemd hosts (issue 15): leader-demo.service, the unit that runs on the leader only
(molecule/leader-service/files/leader-demo-worker.py, started and stopped by the role's shipped hook),
writes to the reference fenced store on the first host every 50 ms with the epoch of the leadership
that started it as `Fencing-Token`. The leader's leader-node process is paused with SIGSTOP past
failure_timeout; its worker is another unit and writes on with the old token while a new leader is
elected and the new leader's worker starts writing. Then SIGCONT: the old leader steps down and its hook
stops its worker.

What must hold, from the workers' own logs (every write: token, sequence number, when it was sent and
when its reply came back) and from the store itself (its value read back every 20 ms through the run):
- the store's accepted writes have non-decreasing tokens: no accepted write carries a lower token than
  one the store had certainly accepted before it (its reply came back before the other was sent), and
  the store's value, read back in order, never goes back to a lower token;
- from the new worker's first accepted write on, every write of the old worker is refused (409, the store
  naming the new token), during the pause and after the SIGCONT until its hook stops it;
- every value read back from the store is a write that its worker did not see refused.

Runs inside the scenario leader-service (first, before the leader-service tests, which then start from
the cluster this leaves: all five following the new leader, the unit on that leader only), and alone as
the scenario `fencing` (molecule/fencing). LEADER_NODE_FAULT_ROUNDS=N repeats it N times. Records under
artifacts/molecule/<scenario>-<algorithm>/: fencing-<round>-writes.txt, fencing-<round>-store-samples.txt,
fencing-<round>-summary.json, <host>.leader-demo.txt, and the harness's steps.txt and measurements.json.
"""

from __future__ import annotations

import itertools
import json
import re
import shlex
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("shared.faults")
from conftest import HTTP_GET_SCRIPT, host_vars  # noqa: E402
from shared.faults import FaultCluster, Node, fault_rounds  # noqa: E402 (after register_assert_rewrite)

pytest_plugins = ["shared.faults"]

UNIT = "leader-demo"
RESOURCE = "journal"
SAMPLE_S = 0.02
REFUSED_AFTER_FIRST_NEW = 5  # old writes refused after the new worker's first accepted one, at least
_WRITE = re.compile(
    r"write node=(?P<node>\d+) epoch=(?P<token>\d+) seq=(?P<seq>\d+) sent=(?P<sent>[\d.]+) "
    r"received=(?P<received>[\d.]+) code=(?P<code>\d+) highest=(?P<highest>\d+|-)"
)


# ---------------------------------------------------------------------------- what the workers logged


@dataclass(frozen=True)
class Write:
    """One PUT of a worker, as it logged it. The store handled it between `sent` and `received`."""

    node: int
    token: int
    seq: int
    sent: float
    received: float
    code: int  # 200 accepted, 409 refused (stale token), 0 no reply
    highest: int | None  # the store's token, on a 409

    def __str__(self) -> str:
        return (
            f"node {self.node} token {self.token} seq {self.seq} sent {self.sent:.3f} "
            f"received {self.received:.3f} -> {self.code}"
            + (f" (store at {self.highest})" if self.highest is not None else "")
        )


def parse_writes(lines: Iterable[str]) -> list[Write]:
    writes = []
    for line in lines:
        match = _WRITE.search(line)
        if match:
            highest = match["highest"]
            writes.append(
                Write(
                    node=int(match["node"]),
                    token=int(match["token"]),
                    seq=int(match["seq"]),
                    sent=float(match["sent"]),
                    received=float(match["received"]),
                    code=int(match["code"]),
                    highest=None if highest == "-" else int(highest),
                )
            )
    return writes


def journal(faults: FaultCluster, node: Node, since: float) -> str:
    """The unit's journal (messages only) on `node` since the wall-clock time `since`."""
    command = f"journalctl -u {UNIT} -o cat --no-pager --since @{int(since) - 1}"
    return str(faults.sh(node, command).stdout)


def writes_of(faults: FaultCluster, node: Node, since: float) -> list[Write]:
    return [w for w in parse_writes(journal(faults, node, since).splitlines()) if w.sent >= since]


# ---------------------------------------------------------------------------- the checks (pure)


def order_violations(writes: Iterable[Write]) -> list[str]:
    """Accepted writes whose token is below that of a write the store certainly accepted before them
    (its reply came back before they were sent). Empty when the accepted tokens never go down."""
    accepted = [w for w in writes if w.code == 200]
    by_received = sorted(accepted, key=lambda w: w.received)
    violations = []
    highest: Write | None = None
    i = 0
    for write in sorted(accepted, key=lambda w: w.sent):
        while i < len(by_received) and by_received[i].received < write.sent:
            if highest is None or by_received[i].token > highest.token:
                highest = by_received[i]
            i += 1
        if highest is not None and write.token < highest.token:
            violations.append(f"accepted {write} after the store had accepted {highest}")
    return violations


def stale_after(writes: Iterable[Write], first_new: Write) -> list[Write]:
    """Writes with a lower token than `first_new`, sent after its reply came back: the store had
    accepted `first_new` before it handled any of them, so each must be refused."""
    return [w for w in writes if w.token < first_new.token and w.sent > first_new.received]


@dataclass(frozen=True)
class Sample:
    at: float
    token: int
    value: dict[str, Any]


def sample_violations(samples: list[Sample], writes: Iterable[Write]) -> list[str]:
    """The store's value read back in order: its token never goes down, and every value is a write that
    its worker did not see refused (accepted, or no reply)."""
    not_refused = {(w.node, w.token, w.seq) for w in writes if w.code in (200, 0)}
    violations = []
    for before, after in itertools.pairwise(samples):
        if after.token < before.token:
            violations.append(f"the store went from token {before.token} to {after.token} at {after.at:.3f}")
    for sample in samples:
        key = (int(sample.value["node"]), int(sample.value["epoch"]), int(sample.value["seq"]))
        if sample.token != key[1] or key not in not_refused:
            violations.append(f"the store holds {sample.value} under token {sample.token} at {sample.at:.3f}")
    return violations


# ---------------------------------------------------------------------------- the fenced store


class Store:
    """The fenced store on the first host; read from the controller when its address is reachable from
    here, else from inside that host."""

    def __init__(self, faults: FaultCluster) -> None:
        self.node = faults.nodes[0]
        port = int(host_vars(self.node.host)["leader_demo_store_port"])
        self.url = f"http://{self.node.address}:{port}/resources/{RESOURCE}"
        self.faults = faults
        self.direct = faults.direct_http

    def get(self) -> tuple[int, str]:
        if self.direct:
            try:
                with urllib.request.urlopen(self.url, timeout=1.0) as reply:
                    return int(reply.status), reply.read().decode()
            except urllib.error.HTTPError as error:
                return int(error.code), error.read().decode()
            except OSError as error:
                return 0, str(error)
        command = f"python3 -c {shlex.quote(HTTP_GET_SCRIPT)} {shlex.quote(self.url)}"
        out = self.faults.sh(self.node, command).stdout
        answer = json.loads(out)
        return int(answer["code"]), str(answer["body"])

    def entry(self) -> tuple[int, dict[str, Any]] | None:
        """(token, value) of the resource, None when never written or not answering."""
        code, body = self.get()
        if code != 200:
            return None
        entry = json.loads(body)
        return int(entry["token"]), dict(json.loads(entry["value"]))


class Sampler:
    """Reads the store's value every SAMPLE_S, one request at a time: the samples are in store order."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.samples: list[Sample] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            entry = self.store.entry()
            if entry is None:
                self.errors += 1
            else:
                self.samples.append(Sample(time.time(), *entry))

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


# ---------------------------------------------------------------------------- the test


def unit_state(faults: FaultCluster, node: Node) -> str:
    return str(faults.sh(node, f"systemctl is-active {UNIT}", check=False).stdout.strip())


def first_accepted(writes: Iterable[Write], token: int) -> Write | None:
    accepted = [w for w in writes if w.code == 200 and w.token == token]
    return min(accepted, key=lambda w: w.received) if accepted else None


@pytest.fixture(scope="module")
def demo_journals(fault_cluster: FaultCluster) -> Iterator[None]:
    """Every host's leader-demo journal of this module's tests into <host>.leader-demo.txt, pass or fail."""
    t0 = time.time()
    yield
    for node in fault_cluster.nodes:
        text = journal(fault_cluster, node, t0)
        (fault_cluster.out_dir / f"{node.name}.{UNIT}.txt").write_text(text, encoding="utf-8")


@pytest.mark.parametrize("round_no", fault_rounds())
def test_a_paused_leaders_worker_is_fenced_off_by_the_new_epoch(
    faults: FaultCluster, demo_journals: None, round_no: int
) -> None:
    faults.step(f"fencing round {round_no}")
    store = Store(faults)
    faults.wait(lambda: store.get()[0] in (200, 404), 30, f"the fenced store at {store.url}", 0.25)
    faults.step(f"fenced store at {store.url} (read {'from here' if store.direct else 'inside the host'})")
    before = faults.settle()
    old = faults.by_id[before.leader_id]
    others = [n for n in faults.nodes if n is not old]
    t_start = time.time()
    hook_timeout_s = float(host_vars(old.host).get("leader_node_hooks_timeout_sec", 10))

    with Sampler(store) as sampler:
        # The old leader's worker writes, and is accepted, with the token it read at its start.
        old_writes, _ = faults.wait(
            lambda: (w := writes_of(faults, old, t_start)) and sum(x.code == 200 for x in w) >= 3 and w,
            faults.timers.election_s,
            f"three accepted writes from the worker on the leader {old}",
            interval_s=0.2,
        )
        old_token = old_writes[-1].token
        assert old_token <= before.epoch, old_writes[-1]
        faults.step(f"the worker on {old} writes with token {old_token} (leader of epoch {before.epoch})")

        pid, restarts = faults.main_pid(old), faults.n_restarts(old)
        t_pause = faults.pause(old)  # leader-node only: its worker is another unit and writes on
        try:
            new, _ = faults.wait(
                lambda: faults.majority_leader(others, above_epoch=before.epoch, not_leader=old.id),
                faults.timers.leader_deadline_s,
                f"a new leader while {old} is paused",
            )
            faults.measure("fencing_new_leader_after_pause_polled", time.time() - t_pause)
            new_node = faults.by_id[new.leader_id]
            new_writes, _ = faults.wait(
                lambda: (w := writes_of(faults, new_node, t_pause)) and any(x.code == 200 for x in w) and w,
                faults.timers.election_s,
                f"an accepted write from the worker on the new leader {new_node}",
                interval_s=0.1,
            )
            new_token = new_writes[0].token
            assert old_token < new_token <= new.epoch, (old_token, new_token, new)
            first_new = first_accepted(new_writes, new_token)
            assert first_new is not None
            faults.step(f"first accepted write of token {new_token}: {first_new}")
            faults.measure("fencing_first_new_write_after_pause", first_new.received - t_pause)

            # The paused leader's worker writes on with the old token: refused from now on.
            late, _ = faults.wait(
                lambda: (
                    len(s := stale_after(writes_of(faults, old, t_start), first_new))
                    >= REFUSED_AFTER_FIRST_NEW
                    and s
                ),
                10 * REFUSED_AFTER_FIRST_NEW * 0.05 + 5,
                f"{REFUSED_AFTER_FIRST_NEW} writes of the old worker after the new token's first",
                interval_s=0.1,
            )
            assert all(w.code == 409 and w.highest == new_token for w in late), "\n".join(map(str, late))
            # Still the process that was paused: the watchdog did not restart it meanwhile.
            assert (faults.main_pid(old), faults.n_restarts(old)) == (pid, restarts), (
                f"{old}: leader-node was restarted during the pause (watchdog?): the SIGCONT below would "
                "not wake the paused leader"
            )
        finally:
            t_resume = faults.resume(old)

        # The old leader wakes up, steps down and follows; its hook stops its worker.
        everyone, _ = faults.wait(faults.agreement, faults.timers.leader_deadline_s, f"{old} following")
        assert (everyone.leader_id, everyone.epoch) == (new.leader_id, new.epoch), everyone
        faults.wait(
            lambda: unit_state(faults, old) in ("inactive", "failed"),
            faults.timers.failure_s + hook_timeout_s,
            f"{UNIT} stopped on {old} after the SIGCONT",
            interval_s=0.1,
        )
        t_old_stopped = time.time()
        faults.measure("fencing_old_worker_stopped_after_sigcont_polled", t_old_stopped - t_resume)
        # The new worker writes on after that: the store's last word is the new token.
        faults.wait(
            lambda: any(
                w.sent > t_old_stopped and w.code == 200 for w in writes_of(faults, new_node, t_pause)
            ),
            faults.timers.election_s,
            f"an accepted write of the worker on {new_node} after the old worker stopped",
            interval_s=0.2,
        )

    # ------------------------------------------------------------------ the verdict, from everything
    # From a little before the start: the store's first samples hold a write sent before it.
    since = t_start - 2
    writes = sorted((w for n in faults.nodes for w in writes_of(faults, n, since)), key=lambda w: w.sent)
    samples = sampler.samples
    old_all = [w for w in writes if (w.node, w.token) == (old.id, old_token)]
    old_during_pause = [w for w in stale_after(old_all, first_new) if w.sent < t_resume]
    old_after_resume = [w for w in old_all if w.sent >= t_resume]
    this_round = [w for w in writes if w.sent >= t_start]
    summary = {
        "old": {"node": old.id, "token": old_token},
        "new": {"node": new.leader_id, "token": new_token},
        "writes": len(this_round),
        "accepted": sum(w.code == 200 for w in this_round),
        "refused": sum(w.code == 409 for w in this_round),
        "no_reply": sum(w.code == 0 for w in this_round),
        "old_accepted": sum(w.code == 200 for w in old_all if w.sent >= t_start),
        "old_refused": sum(w.code == 409 for w in old_all),
        "old_refused_during_pause": sum(w.code == 409 for w in old_during_pause),
        "old_after_sigcont": len(old_after_resume),
        "old_refused_after_sigcont": sum(w.code == 409 for w in old_after_resume),
        "store_samples": len(samples),
        "store_sample_errors": sampler.errors,
    }
    record(faults, writes, samples, summary, round_no)
    for name in ("old_accepted", "old_refused_during_pause", "old_after_sigcont", "store_samples"):
        faults.measurements.setdefault(f"fencing_{name}", []).append(summary[name])

    violations = order_violations(writes)
    assert not violations, "\n".join(violations[:20])
    stale = stale_after(writes, first_new)
    assert len(stale) >= REFUSED_AFTER_FIRST_NEW and all(w.code == 409 for w in stale), "\n".join(
        str(w) for w in stale if w.code != 409
    )
    assert all(w.highest == new_token for w in stale), "\n".join(map(str, stale))
    assert all(w.code == 409 for w in old_after_resume), "\n".join(map(str, old_after_resume))
    assert {w.node for w in writes if w.sent > t_old_stopped and w.code == 200} == {new.leader_id}, summary
    bad = sample_violations(samples, writes)
    assert not bad, "\n".join(bad[:20])
    tokens = [s.token for s in samples]
    assert old_token in tokens and new_token in tokens, f"the samples saw tokens {sorted(set(tokens))}"
    final = store.entry()
    assert final is not None and final[0] == new_token and final[1]["node"] == new.leader_id, final


def record(
    faults: FaultCluster, writes: list[Write], samples: list[Sample], summary: dict[str, Any], round_no: int
) -> None:
    faults.step(f"fencing: {json.dumps(summary, sort_keys=True)}")
    faults.out_dir.mkdir(parents=True, exist_ok=True)
    prefix = faults.out_dir / f"fencing-{round_no}"
    Path(f"{prefix}-writes.txt").write_text("".join(f"{w}\n" for w in writes), encoding="utf-8")
    Path(f"{prefix}-store-samples.txt").write_text(
        "".join(f"{s.at:.3f} token {s.token} {json.dumps(s.value, sort_keys=True)}\n" for s in samples),
        encoding="utf-8",
    )
    Path(f"{prefix}-summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    faults.write_records()
