"""The default sweep reaches the rules that only bite in rare moments, in many seeds, not in one.

A voter abstains (promises nobody, passes a ring token on without voting) for two reasons that hold
"one leader at a time" together when clocks and crashes line up badly: its start-up blackout (it may
have backed a leader before it crashed) and a lease it owes a leader it confirmed. A sweep that never
reached them would pass with them broken. This counts, per seed of the default 5-node sweep, whether
some node abstained for each reason while a candidate asked it, and requires both in many seeds.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest

from node.algorithms import ALGORITHMS
from node.algorithms.base import ElectionNode
from node.core.settings import Settings
from node.core.state import DurableState
from node.sim.runner import RunConfig, run_seed

SEEDS = 60
MIN_SEEDS = 10  # each reason must show in at least this many of the SEEDS


def counting(algorithm: type[ElectionNode], seen: set[str]) -> type[ElectionNode]:
    class Counting(algorithm):  # type: ignore[valid-type,misc]
        def _abstains(self, candidate: int, resigned_leader: int | None = None) -> bool:
            if self._in_startup_blackout():
                seen.add("start-up blackout")
            elif self._owes_lease(resigned_leader, candidate):
                seen.add("owed lease")
            return bool(super()._abstains(candidate, resigned_leader))

    return Counting


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_the_sweep_reaches_the_blackout_and_the_owed_lease_in_many_seeds(name: str) -> None:
    per_reason: Counter[str] = Counter()
    for seed in range(SEEDS):
        seen: set[str] = set()
        cls = counting(ALGORITHMS[name], seen)

        def factory(settings: Settings, state: DurableState, rng: random.Random) -> ElectionNode:
            return cls(settings, state, rng)  # noqa: B023 (used within this iteration)

        result = run_seed(RunConfig(name, 5, seed), factory)
        assert not result.violations, [v.describe() for v in result.violations]
        per_reason.update(seen)
    print(f"{name}: {dict(per_reason)} of {SEEDS} seeds")
    assert per_reason["start-up blackout"] >= MIN_SEEDS, per_reason
    assert per_reason["owed lease"] >= MIN_SEEDS, per_reason
