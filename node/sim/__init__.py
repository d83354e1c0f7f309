"""Deterministic simulator (VOPR style): virtual clock, simulated network, nemeses, invariants.

One seed drives every random choice, so a run replays exactly. The simulator drives the same pure
algorithms as the runtime, through `step(event) -> list[Action]`. Nothing in `node.core` or
`node.algorithms` may import this package.
"""
