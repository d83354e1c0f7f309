"""deploy/site.yml run again on the converged cluster, as an operator does (scenario `default`).

Runs after test_rotate_secret.py (same cluster, tests run in file order), which left the cluster on a
secret the scenario inventory does not know: every run here passes the secret the hosts hold, as an
operator who rotated must put the new secret in the inventory (or vault) before the next deploy.

- `--check --diff` changes nothing and fails nothing on a converged cluster (a check on fresh hosts runs
  in the scenario's `check` step, before the converge);
- `--tags leader_node_configure` alone works: the preflight that derives the peers and the secret runs
  with every tag of the role;
- a configuration change (here the unit's RestartSec=) restarts the members one at a time, the leader
  last with a hand-off, judged like deploy/rolling-restart.yml (test_rolling_restart.py); and the change
  back does the same;
- an upgrade to code that speaks another peer protocol version (this tree built with another
  PROTOCOL_VERSION) restarts every member together instead: members of different versions refuse each
  other's handshakes, so a rolling restart would leave the first restarted members without a majority
  and the play would fail waiting for them; and the upgrade back does the same.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytest.register_assert_rewrite("shared.faults")
from shared.faults import SERVICE, FaultCluster  # noqa: E402 (after register_assert_rewrite)
from test_rolling_restart import (  # noqa: E402 (the /leader poller and the judge, shared)
    PROJECT,
    LeaderPoller,
    restart_every_member_keeping_one_leader,
    run_playbook,
    unit_history,
)

from node.core.session import PROTOCOL_VERSION  # noqa: E402

pytest_plugins = ["shared.faults"]

SITE = PROJECT / "deploy" / "site.yml"
UNIT_FILE = f"/etc/systemd/system/{SERVICE}.service"
RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)
ANSI = re.compile(r"\x1b\[[0-9;]*m")
SECRET_FILE = "/etc/leader-node/cluster.secret"
TOGETHER_TASK = "Restart every changed member together (the new code speaks another peer protocol version)"


def recap(output: str) -> dict[str, tuple[int, int, int]]:
    """PLAY RECAP: host -> (changed, unreachable, failed)."""
    return {m[1]: (int(m[3]), int(m[4]), int(m[5])) for m in RECAP.finditer(ANSI.sub("", output))}


@pytest.fixture
def inventory(request: pytest.FixtureRequest) -> str:
    value = request.config.option.ansible_inventory
    assert value, "run with --ansible-inventory (molecule/shared/verify.yml passes the scenario's)"
    return str(value)


@pytest.fixture
def secret(faults: FaultCluster) -> list[str]:
    """`-e leader_node_secret=...`: the secret every host holds now (the rotation's)."""
    held = {faults.sh(node, f"cat {SECRET_FILE}").stdout.strip() for node in faults.nodes}
    assert len(held) == 1, "the hosts hold different secrets"
    return ["-e", f"leader_node_secret={held.pop()}"]


def test_check_diff_on_a_converged_cluster_changes_nothing(
    faults: FaultCluster, inventory: str, secret: list[str]
) -> None:
    result = run_playbook(SITE, inventory, "--check", "--diff", *secret)
    (faults.out_dir / "site-check.log").write_text(result.stdout + result.stderr, encoding="utf-8")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    hosts = recap(result.stdout)
    assert len(hosts) == len(faults.nodes), result.stdout[-2000:]
    assert all(counts == (0, 0, 0) for counts in hosts.values()), hosts


def test_one_tag_alone_runs_its_preflight(faults: FaultCluster, inventory: str, secret: list[str]) -> None:
    result = run_playbook(SITE, inventory, "--tags", "leader_node_configure", *secret)
    (faults.out_dir / "site-tag-configure.log").write_text(result.stdout + result.stderr, encoding="utf-8")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert all(counts == (0, 0, 0) for counts in recap(result.stdout).values()), result.stdout[-2000:]


def test_a_config_change_restarts_members_one_at_a_time_the_leader_last(
    faults: FaultCluster, inventory: str, secret: list[str]
) -> None:
    def restart_sec(node_index: int) -> str:
        return faults.sh(faults.nodes[node_index], f"grep -E '^RestartSec=' {UNIT_FILE}").stdout.strip()

    original = restart_sec(0)
    restart_every_member_keeping_one_leader(
        faults, "site-config-change", SITE, inventory, "-e", "leader_node_restart_sec=2", *secret
    )
    assert all(restart_sec(i) == "RestartSec=2s" for i in range(len(faults.nodes)))
    restart_every_member_keeping_one_leader(faults, "site-config-back", SITE, inventory, *secret)
    assert all(restart_sec(i) == original for i in range(len(faults.nodes)))


def wheelhouse_speaking(protocol: int, out: Path) -> Path:
    """This tree built as a release that speaks peer protocol `protocol` (only PROTOCOL_VERSION differs):
    its wheelhouse directory (and the .tar beside it) for `-e leader_node_wheelhouse_dir=`."""
    src = out / "src"
    shutil.copytree(
        PROJECT,
        src,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", ".cache", "artifacts", "__pycache__", "*.egg-info", ".*_cache", ".hypothesis"
        ),
    )
    session = src / "node" / "core" / "session.py"
    text = session.read_text(encoding="utf-8")
    patched = re.sub(r"^PROTOCOL_VERSION = \d+", f"PROTOCOL_VERSION = {protocol}", text, count=1, flags=re.M)
    assert patched != text, "PROTOCOL_VERSION not found in node/core/session.py"
    session.write_text(patched, encoding="utf-8")
    wheelhouse = out / "wheelhouse"
    subprocess.run(
        [str(src / "scripts" / "build-wheelhouse.sh"), str(wheelhouse)],
        env={**os.environ, "VENV": str(PROJECT / ".venv")},
        check=True,
        timeout=600,
    )
    return wheelhouse


def play_blocks(output: str) -> dict[str, str]:
    """Task name -> the lines the play printed for it (the last run of a task of that name)."""
    blocks: dict[str, str] = {}
    for chunk in ANSI.sub("", output).split("\nTASK [")[1:]:
        header, _, body = chunk.partition("]")
        blocks[header.split(" : ", 1)[-1]] = body
    return blocks


def test_a_protocol_change_restarts_every_member_together_not_one_at_a_time(
    faults: FaultCluster, inventory: str, secret: list[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    if faults.algorithm != "bully":
        pytest.skip("the role's protocol check does not depend on the algorithm: run once, with bully")
    other = PROTOCOL_VERSION - 1
    wheelhouse = wheelhouse_speaking(other, tmp_path_factory.mktemp("protocol"))
    for name, protocol, extra in (
        (f"site-protocol-{other}", other, ["-e", f"leader_node_wheelhouse_dir={wheelhouse}"]),
        (f"site-protocol-{PROTOCOL_VERSION}", PROTOCOL_VERSION, []),
    ):
        faults.wait(faults.agreement, faults.timers.leader_deadline_s, "one leader agreed by all nodes")
        started = faults.step(f"ansible-playbook deploy/site.yml: the code speaks protocol {protocol} now")
        urls = {node.id: f"http://{node.address}:{faults.http_port}/leader" for node in faults.nodes}
        with LeaderPoller(urls) as poller:
            result = run_playbook(SITE, inventory, *extra, *secret)
        ended = faults.step(f"{name} done: exit {result.returncode}, {len(poller.polls)} polls of /leader")
        (faults.out_dir / f"{name}.log").write_text(result.stdout + result.stderr, encoding="utf-8")
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
        faults.measure(f"{name.replace('-', '_')}_play_s", ended - started)
        # The price of restarting together: how long no node answered 200 on /leader (rolling: ~0).
        leaderless_s, since = 0.0, None
        for poll in poller.polls:
            if poll.leaders:
                since = None
            else:
                since = poll.at if since is None else since
                leaderless_s = max(leaderless_s, poll.at - since)
        faults.measure(f"{name.replace('-', '_')}_leaderless_s", leaderless_s)
        assert all(len(poll.leaders) <= 1 for poll in poller.polls), [p.describe() for p in poller.polls]

        blocks = play_blocks(result.stdout)
        together = blocks[
            "Restart every changed member together (the new code speaks another peer protocol version)"
        ]
        assert together.count("changed: [") == len(faults.nodes), together
        assert "skipping" in blocks["Restart the changed members one at a time, the leader last"]
        units = unit_history(faults, started)
        assert all(len(h.stopped) == 1 and len(h.started) == 1 for h in units.values()), units

        after, _ = faults.wait(faults.agreement, faults.timers.leader_deadline_s, "one leader agreed again")
        faults.step(f"leader {after.leader_id} under epoch {after.epoch}, protocol {protocol}")
        versions = {
            nid: status and status.get("protocol_version") for nid, status in faults.statuses().items()
        }
        assert set(versions.values()) == {protocol}, versions
