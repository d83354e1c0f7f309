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
  back does the same.
"""

from __future__ import annotations

import re

import pytest

pytest.register_assert_rewrite("shared.faults")
from shared.faults import SERVICE, FaultCluster  # noqa: E402 (after register_assert_rewrite)
from test_rolling_restart import (  # noqa: E402 (the /leader poller and the judge, shared)
    PROJECT,
    restart_every_member_keeping_one_leader,
    run_playbook,
)

pytest_plugins = ["shared.faults"]

SITE = PROJECT / "deploy" / "site.yml"
UNIT_FILE = f"/etc/systemd/system/{SERVICE}.service"
RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)
ANSI = re.compile(r"\x1b\[[0-9;]*m")
SECRET_FILE = "/etc/leader-node/cluster.secret"


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
