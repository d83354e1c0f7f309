"""Election algorithms: pure state machines on top of node.core."""

from __future__ import annotations

from node.algorithms.base import ElectionNode
from node.algorithms.bully import Bully
from node.algorithms.ring import Ring
from node.core.protocol import Algorithm, RandomSource
from node.core.settings import Settings
from node.core.state import DurableState

ALGORITHMS: dict[str, type[ElectionNode]] = {"bully": Bully, "ring": Ring}


def make_algorithm(name: str, settings: Settings, state: DurableState, rng: RandomSource) -> Algorithm:
    """The algorithm named in the config, starting from the durable state loaded from disk."""
    try:
        cls = ALGORITHMS[name]
    except KeyError:
        raise ValueError(f"unknown algorithm {name!r}; expected one of {sorted(ALGORITHMS)}") from None
    return cls(settings, state, rng)
