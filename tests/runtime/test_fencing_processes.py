"""Fencing on real processes: a worker that runs only on the leader (started and stopped by the
role-change hook) writes to the reference fenced store with its epoch. The leader is paused with
SIGSTOP past failure_timeout, so its worker keeps writing while a new leader is elected and its own
worker starts: from the new worker's first accepted write on, every write of the old one is refused.
Then SIGCONT: the old leader steps down and its hook stops its worker."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from node.client import find_leader

from .cluster import Cluster, free_port, http_get, process_alive, wait_until

WORKER = """import sys, time, urllib.error, urllib.request
store, epoch, node, log = sys.argv[1:5]
seq = 0
while True:
    seq += 1
    body = f"node {node} epoch {epoch} write {seq}".encode()
    request = urllib.request.Request(
        store + "/resources/journal", data=body, method="PUT", headers={"Fencing-Token": epoch}
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as reply:
            code = reply.status
    except urllib.error.HTTPError as error:
        code = error.code
    except OSError:
        code = 0
    with open(log, "a") as out:
        out.write(f"{time.time():.6f} {code}\\n")
    time.sleep(0.02)
"""

HOOK = """#!/bin/sh
# The worker runs on the leader only: started on `leader`, stopped on every other role.
dir=$(dirname "$0")
pidfile="$dir/worker-$LEADER_NODE_NODE_ID.pid"
if [ -f "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null; rm -f "$pidfile"; fi
if [ "$1" = leader ]; then
    setsid {python} "$dir/worker.py" {store} "$2" "$LEADER_NODE_NODE_ID" "$dir/writes-$2" \\
        </dev/null >/dev/null 2>&1 &
    echo $! > "$pidfile"
fi
"""


@pytest.fixture
def fenced_store(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "node",
            "fenced-store",
            "--listen",
            f"127.0.0.1:{port}",
            "--state",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_get(url + "/resources/journal") is not None, 10, "the fenced store")
        yield url
    finally:
        process.kill()
        process.wait(timeout=10)


def writes(cluster: Cluster, epoch: int) -> list[tuple[float, int]]:
    path = cluster.directory / f"writes-{epoch}"
    lines = path.read_text().splitlines() if path.exists() else []
    return [(float(at), int(code)) for at, code in (line.split() for line in lines if len(line.split()) == 2)]


def test_a_paused_leaders_worker_is_fenced_off_by_the_new_epoch(
    make_cluster: Callable[..., Cluster], fenced_store: str
) -> None:
    cluster = make_cluster(1, 2, 3)
    (cluster.directory / "worker.py").write_text(WORKER)
    hook = cluster.directory / "role-change"
    hook.write_text(HOOK.replace("{python}", sys.executable).replace("{store}", fenced_store))
    hook.chmod(0o755)
    for node in cluster.nodes.values():
        node.config_path.write_text(
            node.config_path.read_text() + f'\n[hooks]\non_role_change = "{hook}"\ntimeout = "2s"\n'
        )
    worker_pids: list[int] = []
    try:
        cluster.start()
        cluster.wait_serving()
        old, old_epoch = cluster.wait_leader()
        wait_until(lambda: sum(code == 200 for _, code in writes(cluster, old_epoch)) >= 3, 10, "old writes")
        worker_pids.append(int((cluster.directory / f"worker-{old}.pid").read_text()))

        cluster.pause(old)  # its worker runs on: nothing tells it that its leader is frozen
        others = [n for n in cluster.nodes if n != old]
        new, new_epoch = wait_until(
            lambda: (agreed := cluster.agreed_leader(others)) is not None and agreed[0] != old and agreed,
            15,
            f"a leader other than the paused node {old}",
        )
        assert new_epoch > old_epoch
        first_new = wait_until(
            lambda: next((at for at, code in writes(cluster, new_epoch) if code == 200), None),
            10,
            "the new leader's worker to write",
        )
        worker_pids.append(int((cluster.directory / f"worker-{new}.pid").read_text()))
        wait_until(
            lambda: (
                [code for at, code in writes(cluster, old_epoch) if at > first_new + 0.1][:5] == [409] * 5
            ),
            10,
            "five refused writes from the old leader's worker",
        )
        # From the first write of the new epoch on, the store accepted nothing from the old one.
        late_old = [(at, code) for at, code in writes(cluster, old_epoch) if at > first_new]
        assert late_old and all(code == 409 for _, code in late_old), late_old[:10]

        urls = [cluster.nodes[n].url for n in others]
        leader = find_leader(urls)
        assert (leader.node_id, leader.epoch) == (new, new_epoch)

        cluster.resume(old)  # it steps down; its hook stops its worker
        wait_until(
            lambda: not (cluster.directory / f"worker-{old}.pid").exists(), 15, "the old worker stopped"
        )
        wait_until(lambda: not process_alive(worker_pids[0]), 5, "the old worker's process to end")
        reply = http_get(fenced_store + "/resources/journal")
        assert reply is not None and reply[0] == 200
        assert f'"token": {new_epoch}' in reply[1].decode()
    finally:
        for pid in worker_pids:  # the workers are the hook's children, not the cluster's
            subprocess.run(["kill", "-9", str(pid)], check=False, capture_output=True)
