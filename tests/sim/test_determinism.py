"""One seed, one run: the same seed twice gives the same trace hash, in this process or another."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from node.sim.runner import RunConfig, run_seed, sweep

from .fakes import HeartbeatOnly

REPO = Path(__file__).resolve().parents[2]


def test_same_seed_same_trace_and_different_seeds_differ() -> None:
    first = run_seed(RunConfig("bully", 5, seed=11))
    again = run_seed(RunConfig("bully", 5, seed=11))
    other = run_seed(RunConfig("bully", 5, seed=12))
    assert first.trace_hash == again.trace_hash
    assert first.events == again.events and first.violations == again.violations
    assert first.trace_hash != other.trace_hash


def test_the_trace_covers_the_run_not_just_its_outcome() -> None:
    config = RunConfig("heartbeat-only", 3, seed=5, keep_trace=True, safety_ms_min=5_000, safety_ms_max=5_000)
    result = run_seed(config, HeartbeatOnly)
    assert result.trace_lines is not None and len(result.trace_lines) > 100
    assert result.trace_lines[-len(result.trace_tail) :] == result.trace_tail


def test_worker_processes_give_the_same_results_as_one_process() -> None:
    configs = [RunConfig("bully", 5, seed) for seed in range(4)]
    alone = [r.trace_hash for r in sweep(configs, jobs=1)]
    pooled = [r.trace_hash for r in sweep(configs, jobs=2)]
    assert alone == pooled


def test_replay_in_a_fresh_interpreter_with_another_hash_seed() -> None:
    """Set iteration order of strings changes with PYTHONHASHSEED; a run must not depend on it."""
    hashes = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        completed = subprocess.run(
            [sys.executable, "-m", "node.sim", "--algorithm", "bully", "--nodes", "5", "--seed", "3"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        match = re.search(r"trace ([0-9a-f]{64})", completed.stdout)
        assert match, completed.stdout + completed.stderr
        hashes.add(match.group(1))
    assert hashes == {run_seed(RunConfig("bully", 5, seed=3)).trace_hash}
