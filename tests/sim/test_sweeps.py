"""Seed sweeps of the real algorithms, every invariant checked after every step.

test-fast: 100 seeds each at 5 and 7 nodes with the default timers (1 s / 3 s / 5 s), and 50 seeds at 5
nodes with fast timers (100 ms / 500 ms / 1 s, the benchmark's second setting). `make test` (slow):
1,000 seeds each at 5 and 7 nodes (2,000 per algorithm) plus 250 each with fast timers. Ring joins
automatically once node/algorithms/ring.py exists.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

from node.sim.cli import reproduce_command
from node.sim.runner import RunConfig, RunResult, sweep

JOBS = max(1, min(2, os.cpu_count() or 1))
TIMERS = {"default": (1_000, 3_000, 5_000), "fast": (100, 500, 1_000)}
FAST_CASES = [(5, "default", 100), (7, "default", 100), (5, "fast", 50)]
SLOW_CASES = [(5, "default", 1_000), (7, "default", 1_000), (5, "fast", 250), (7, "fast", 250)]


def _algorithms() -> list[object]:
    out: list[object] = []
    for name in ("bully", "ring"):
        present = importlib.util.find_spec(f"node.algorithms.{name}") is not None
        out.append(pytest.param(name, marks=pytest.mark.skipif(not present, reason=f"no {name}.py yet")))
    return out


def _failures(results: list[RunResult]) -> str:
    lines = []
    for result in results:
        for violation in result.violations:
            lines.append(f"seed {result.config.seed}: {violation.describe()}")
        if result.violations:
            lines.append(f"  reproduce with: {reproduce_command(result.config)}")
    return "\n".join(lines)


def _sweep(algorithm: str, nodes: int, timers: str, seeds: int) -> None:
    heartbeat_ms, failure_ms, election_ms = TIMERS[timers]
    configs = [
        RunConfig(
            algorithm,
            nodes,
            seed,
            heartbeat_interval_ms=heartbeat_ms,
            failure_timeout_ms=failure_ms,
            election_timeout_ms=election_ms,
        )
        for seed in range(seeds)
    ]
    results = sweep(configs, jobs=JOBS)
    assert not any(r.violations for r in results), _failures(results)
    assert sum(r.leader_changes for r in results) >= seeds  # the runs did elect leaders


@pytest.mark.parametrize(("nodes", "timers", "seeds"), FAST_CASES)
@pytest.mark.parametrize("algorithm", _algorithms())
def test_fast_sweep(algorithm: str, nodes: int, timers: str, seeds: int) -> None:
    _sweep(algorithm, nodes, timers, seeds)


@pytest.mark.slow
@pytest.mark.timeout(1_800)
@pytest.mark.parametrize(("nodes", "timers", "seeds"), SLOW_CASES)
@pytest.mark.parametrize("algorithm", _algorithms())
def test_slow_sweep(algorithm: str, nodes: int, timers: str, seeds: int) -> None:
    _sweep(algorithm, nodes, timers, seeds)
