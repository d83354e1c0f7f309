"""The one interface between an election algorithm and its two drivers (runtime and simulator)."""

from __future__ import annotations

from typing import Protocol

from node.core.actions import Action, Role
from node.core.events import Event
from node.core.view import NodeView


class RandomSource(Protocol):
    """Injected randomness (a seeded `random.Random` in the simulator, a system one in production)."""

    def random(self) -> float: ...


class Algorithm(Protocol):
    name: str

    def step(self, event: Event) -> list[Action]:
        """Feed one event; get back the actions to execute, in order."""
        ...

    def view(self, now_ms: int) -> NodeView: ...

    def role_view(self, now_ms: int) -> tuple[Role, int | None, int]:
        """(role, leader_id, epoch) exactly as `view(now_ms)` reports them, without building the rest
        (the simulator reads them after every step that changed something)."""
        ...

    def switchover_refusal(self, target: int | None) -> str | None:
        """Why a switchover to `target` cannot happen now (None: it can). Reads; changes nothing."""
        ...
