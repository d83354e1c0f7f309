"""`leader-node simulate`: output, reproduction line, exit codes (0 ok, 1 safety, 2 liveness, 64 usage)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

import node.sim.runner
from node.sim.cli import EXIT_LIVENESS, EXIT_OK, EXIT_SAFETY, EXIT_USAGE, main

from .fakes import HeartbeatOnly, SelfAppointed


def run(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    code = main(argv, out)
    return code, out.getvalue()


def test_passing_sweep_prints_a_summary_and_exits_0() -> None:
    code, output = run(["--algorithm", "bully", "--nodes", "5", "--seeds", "2", "--seed", "40"])
    assert code == EXIT_OK
    summary = output.strip().splitlines()[-1]
    assert summary.startswith("simulate: seeds=2 ok=2 safety=0 liveness=0 elections=")
    assert "leader_changes=" in summary and "wall=" in summary


def test_safety_violation_exits_1_with_the_seed_to_reproduce(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node.sim.runner, "make_algorithm", lambda _n, s, d, r: SelfAppointed(s, d, r))
    code, output = run(["--algorithm", "bully", "--nodes", "5", "--seeds", "2", "--seed", "8"])
    assert code == EXIT_SAFETY
    assert "seed 8: safety violation [leader-without-quorum]" in output
    assert "reproduce with: leader-node simulate --algorithm bully --nodes 5 --seed 9" in output


def test_liveness_violation_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node.sim.runner, "make_algorithm", lambda _n, s, d, r: HeartbeatOnly(s, d, r))
    code, output = run(["--algorithm", "ring", "--nodes", "3", "--seed", "4"])
    assert code == EXIT_LIVENESS
    assert "liveness violation [no-single-leader]" in output
    assert "trace tail:" in output
    assert "reproduce with: leader-node simulate --algorithm ring --nodes 3 --seed 4" in output


def test_single_seed_prints_its_trace_hash_and_can_write_the_trace(tmp_path: Path) -> None:
    trace = tmp_path / "trace.txt"
    code, output = run(["--algorithm", "bully", "--nodes", "3", "--seed", "2", "--trace", str(trace)])
    assert code == EXIT_OK
    assert "seed 2: trace " in output
    lines = trace.read_text().splitlines()
    assert any(" log became_leader " in line for line in lines)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--algorithm", "paxos"],
        ["--algorithm", "bully", "--nodes", "0"],
        ["--algorithm", "bully", "--seeds", "0"],
        ["--algorithm", "bully", "--seed", "-1"],
        ["--algorithm", "bully", "--seeds", "2", "--trace", "x"],
        ["--algorithm", "bully", "--jobs", "1000"],
        ["--algorithm", "bully", "--nemeses", "crash,meteor"],
    ],
)
def test_bad_usage_exits_64(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == EXIT_USAGE
    assert "leader-node simulate:" in capsys.readouterr().err


def test_nodes_above_the_simulators_limit_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    too_many = node.sim.runner.NODE_COUNT_MAX + 1
    assert main(["--algorithm", "bully", "--nodes", str(too_many)]) == EXIT_USAGE
    assert f"--nodes must lie in [1, 51], got {too_many}" in capsys.readouterr().err


def test_the_node_limit_is_51_and_a_config_above_it_cannot_exist() -> None:
    assert node.sim.runner.NODE_COUNT_MAX == 51  # measured: docs/benchmarks.md, "Scale"
    assert node.sim.runner.RunConfig("ring", 51, 0).node_count == 51
    with pytest.raises(ValueError, match=r"node_count must lie in \[1, 51\], got 52"):
        node.sim.runner.RunConfig("ring", 52, 0)


def test_the_event_bound_grows_with_the_links_above_17_nodes() -> None:
    def limit(nodes: int) -> int:
        return node.sim.runner.RunConfig("bully", nodes, 0).event_limit

    assert limit(5) == limit(17) == node.sim.runner.MAX_EVENTS_PER_RUN
    assert limit(51) == 51 * 50 * node.sim.runner.EVENTS_PER_LINK_MAX
    assert node.sim.runner.RunConfig("bully", 51, 0, max_events=10).event_limit == 10


def test_reproduce_line_names_non_default_timers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node.sim.runner, "make_algorithm", lambda _n, s, d, r: SelfAppointed(s, d, r))
    argv = ["--algorithm", "bully", "--nodes", "3", "--seed", "5", "--heartbeat-ms", "100"]
    argv += ["--failure-timeout-ms", "500", "--election-timeout-ms", "1000"]
    code, output = run(argv)
    assert code == EXIT_SAFETY
    expected = "leader-node simulate --algorithm bully --nodes 3 --heartbeat-ms 100"
    assert (
        f"reproduce with: {expected} --failure-timeout-ms 500 --election-timeout-ms 1000 --seed 5" in output
    )


def test_timers_are_validated_like_the_config() -> None:
    assert (
        main(["--algorithm", "bully", "--heartbeat-ms", "1000", "--failure-timeout-ms", "2000"]) == EXIT_USAGE
    )


def test_a_sweep_restricted_to_some_faults_says_so_in_the_reproduce_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(node.sim.runner, "make_algorithm", lambda _n, s, d, r: SelfAppointed(s, d, r))
    code, output = run(["--algorithm", "bully", "--nodes", "3", "--seed", "1", "--nemeses", "bridge,crash"])
    assert code == EXIT_SAFETY
    assert "--nodes 3 --nemeses bridge,crash --seed 1" in output
