"""Election algorithms: pure state machines on top of node.core."""

from __future__ import annotations

from node.core.protocol import Algorithm, RandomSource
from node.core.settings import Settings
from node.core.state import DurableState

ALGORITHMS = ("bully", "ring")


def make_algorithm(name: str, settings: Settings, state: DurableState, rng: RandomSource) -> Algorithm:
    """The algorithm named in the config, starting from the durable state loaded from disk."""
    if name == "bully":
        from node.algorithms.bully import Bully

        return Bully(settings, state, rng)
    if name == "ring":
        from node.algorithms.ring import Ring

        return Ring(settings, state, rng)
    raise ValueError(f"unknown algorithm {name!r}; expected one of {ALGORITHMS}")
