"""deploy/rotate-secret.yml on the converged cluster, watched from the controller (scenario `default`).

Runs after test_rolling_restart.py (same cluster). The playbook rotates the cluster secret to a fresh
one, as an operator runs it (`ansible-playbook deploy/rotate-secret.yml -i <inventory>`, the new secret
given as leader_node_secret), while a thread asks every node for `/leader` every 50 ms. It must:

- reload every member twice (step 1: the new secret current and the old one accepted; step 2: the old
  one dropped), one host at a time, all of step 1 before any of step 2 (the journals' config_reloaded
  events and their KEY_IDS), and restart none;
- leave the leader alone: the same node answers 200 on `/leader` at every conclusive poll, no gap;
- end with the new secret alone on every host (file, node.toml without previous_secret_file, no
  previous file), and a member that knows only the old secret rejected: a follower restarted with the
  old secret finds no common key with anyone (the others count `no_common_key`) and stays without a
  leader, until it gets the new secret back.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import subprocess
import urllib.request

import pytest

pytest.register_assert_rewrite("shared.faults")
from shared.faults import SERVICE, FaultCluster, Node  # noqa: E402 (after register_assert_rewrite)
from test_rolling_restart import (  # noqa: E402 (the /leader poller and its judges, shared)
    POLL_S,
    PROJECT,
    LeaderPoller,
    Poll,
    anomalies,
    ansible_playbook,
    leader_sequence,
)

pytest_plugins = ["shared.faults"]

PLAYBOOK = PROJECT / "deploy" / "rotate-secret.yml"
SECRET_FILE = "/etc/leader-node/cluster.secret"
PREVIOUS_FILE = SECRET_FILE + ".previous"
CONFIG_FILE = "/etc/leader-node/node.toml"


def key_id(secret: str) -> str:
    """node/core/session.py's key_id: the public name of a secret."""
    return hashlib.sha256(b"leader-node key id" + secret.encode()).hexdigest()[:16]


def no_common_key(faults: FaultCluster, node: Node) -> float:
    """The node's count of inbound connections closed for want of a shared key."""
    url = f"http://{node.address}:{faults.http_port}/metrics"
    with urllib.request.urlopen(url, timeout=2) as reply:
        text = reply.read().decode()
    for line in text.splitlines():
        if line.startswith('leader_node_peer_rejections_total{reason="no_common_key"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def reloads(faults: FaultCluster, node: Node, since: float) -> list[tuple[int, str]]:
    """(wall-clock ms, KEY_IDS) of each config_reloaded the node logged since `since`."""
    out = faults.sh(
        node, f"journalctl -u {SERVICE} -o json --no-pager --since @{since:.3f} EVENT=config_reloaded"
    ).stdout
    entries = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [(int(e["__REALTIME_TIMESTAMP"]) // 1000, str(e.get("KEY_IDS", ""))) for e in entries]


def test_rotate_secret_without_a_leader_change(faults: FaultCluster, request: pytest.FixtureRequest) -> None:
    inventory = request.config.option.ansible_inventory
    assert inventory, "run with --ansible-inventory (molecule/shared/verify.yml passes the scenario's)"
    before, _ = faults.wait(
        faults.agreement, faults.timers.leader_deadline_s, "one leader agreed by all nodes"
    )
    leader = before.leader_id
    old = faults.sh(faults.nodes[0], f"cat {SECRET_FILE}").stdout.strip()
    assert all(faults.sh(n, f"cat {SECRET_FILE}").stdout.strip() == old for n in faults.nodes)
    new = secrets.token_urlsafe(36)
    restarts_before = {n.id: faults.n_restarts(n) for n in faults.nodes}
    pids_before = {n.id: faults.main_pid(n) for n in faults.nodes}

    urls = {node.id: f"http://{node.address}:{faults.http_port}/leader" for node in faults.nodes}
    poller = LeaderPoller(urls)
    assert poller.poll_once().leaders == [leader]
    started = faults.step(f"ansible-playbook {PLAYBOOK.relative_to(PROJECT)} (leader: {leader})")
    with poller:
        result = subprocess.run(
            [ansible_playbook(), str(PLAYBOOK), "-i", inventory, "-e", f"leader_node_secret={new}"],
            cwd=PROJECT,
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
        )
    ended = faults.step(f"rotation done: exit {result.returncode}, {len(poller.polls)} polls of /leader")
    (faults.out_dir / "rotate-secret.log").write_text(result.stdout + result.stderr, encoding="utf-8")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert new not in result.stdout + result.stderr, "the playbook printed the secret"
    assert old not in result.stdout + result.stderr, "the playbook printed the secret"
    faults.measure("rotate_secret_s", ended - started)

    # No leader change, no gap: a reload touches neither the election nor established sessions.
    def inconclusive(poll: Poll) -> bool:
        return not poll.leaders and 0 in poll.codes.values()

    polls = poller.polls
    unknown = [p for p in polls if inconclusive(p)]
    faults.measure("rotate_leader_polls_inconclusive", len(unknown))
    assert len(unknown) <= max(2, len(polls) // 50), f"{len(unknown)} of {len(polls)} polls inconclusive"
    assert leader_sequence(polls) == [leader]
    bad = anomalies([p for p in polls if not inconclusive(p)])
    assert not bad, "; ".join(f"{a.kind}: {a.polls[0].describe()}" for a in bad)
    faults.step(f"{len(polls)} polls every {POLL_S * 1000:.0f} ms: node {leader} led throughout")

    # Two reloads per host, all of step 1 before any of step 2, and no restart.
    history = {n.id: reloads(faults, n, started) for n in faults.nodes}
    step1_ids = f"{key_id(new)},{key_id(old)}"
    for node_id, entries in history.items():
        assert [ids for _, ids in entries] == [step1_ids, key_id(new)], (node_id, entries)
    assert max(e[0][0] for e in history.values()) < min(e[1][0] for e in history.values()), history
    assert {n.id: faults.n_restarts(n) for n in faults.nodes} == restarts_before
    assert {n.id: faults.main_pid(n) for n in faults.nodes} == pids_before

    # The new secret alone everywhere.
    for node in faults.nodes:
        assert faults.sh(node, f"cat {SECRET_FILE}").stdout.strip() == new
        assert "previous_secret_file" not in faults.sh(node, f"cat {CONFIG_FILE}").stdout
        assert faults.sh(node, f"test -e {PREVIOUS_FILE}", check=False).rc != 0

    # A member with only the old secret is rejected: a follower restarted with it cannot join.
    follower = next(n for n in faults.nodes if n.id != leader)
    others = [n for n in faults.nodes if n.id != follower.id]
    counts = {n.id: no_common_key(faults, n) for n in others}
    faults.step(f"node {follower.id} restarted with the old secret only")
    faults.sh(follower, f"printf '%s\\n' '{old}' > {SECRET_FILE} && systemctl restart {SERVICE}")
    faults.wait(
        lambda: any(no_common_key(faults, n) > counts[n.id] for n in others),
        faults.timers.leader_deadline_s,
        "the others to reject the old secret (no_common_key)",
    )
    status = faults.status(follower)
    assert status is not None and status["leader_id"] is None, status
    faults.step(f"node {follower.id} back on the new secret")
    faults.sh(follower, f"printf '%s\\n' '{new}' > {SECRET_FILE} && systemctl restart {SERVICE}")
    after, _ = faults.wait(faults.agreement, faults.timers.leader_deadline_s, "the follower to rejoin")
    assert after.leader_id == leader
    faults.write_records()
    faults.judge()
