"""Seed sweeps of the real algorithms, every invariant checked after every step.

test-fast: 100 seeds each at 5 and 7 nodes. `make test` (slow): 1,000 seeds each at 5 and 7 nodes, so
2,000 seeds per algorithm. Ring joins automatically once node/algorithms/ring.py exists.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

from node.sim.runner import RunConfig, RunResult, sweep

FAST_SEEDS = 100
SLOW_SEEDS = 1_000
JOBS = max(1, min(2, os.cpu_count() or 1))


def _algorithms() -> list[object]:
    out: list[object] = []
    for name in ("bully", "ring"):
        present = importlib.util.find_spec(f"node.algorithms.{name}") is not None
        out.append(pytest.param(name, marks=pytest.mark.skipif(not present, reason=f"no {name}.py yet")))
    return out


def _failures(results: list[RunResult]) -> str:
    lines = []
    for result in results:
        config = result.config
        for violation in result.violations:
            lines.append(f"seed {config.seed}: {violation.describe()}")
        if result.violations:
            lines.append(
                f"  reproduce with: leader-node simulate --algorithm {config.algorithm}"
                f" --nodes {config.node_count} --seed {config.seed}"
            )
    return "\n".join(lines)


def _sweep(algorithm: str, nodes: int, seeds: int) -> None:
    results = sweep([RunConfig(algorithm, nodes, seed) for seed in range(seeds)], jobs=JOBS)
    assert not any(r.violations for r in results), _failures(results)
    assert sum(r.leader_changes for r in results) >= seeds  # the runs did elect leaders


@pytest.mark.parametrize("nodes", [5, 7])
@pytest.mark.parametrize("algorithm", _algorithms())
def test_fast_sweep(algorithm: str, nodes: int) -> None:
    _sweep(algorithm, nodes, FAST_SEEDS)


@pytest.mark.slow
@pytest.mark.timeout(1_800)
@pytest.mark.parametrize("nodes", [5, 7])
@pytest.mark.parametrize("algorithm", _algorithms())
def test_slow_sweep(algorithm: str, nodes: int) -> None:
    _sweep(algorithm, nodes, SLOW_SEEDS)
