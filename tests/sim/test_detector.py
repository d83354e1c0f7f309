"""Heartbeats and the failure detector alone: every live node suspects a dead, frozen or cut-off peer
within failure_timeout + heartbeat_interval of virtual time, and hears it again once it is back."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from node.history.model import HistoryEvent
from node.sim.runner import RunConfig, algorithm_factory, build_world
from node.sim.world import AlgorithmFactory, World

from .fakes import HeartbeatOnly

FAULT_MS = 10_000
BACK_MS = 25_000
TARGET = 3


def _crash(world: World) -> Callable[[], None]:
    world.crash(TARGET)
    return lambda: world.start(TARGET)


def _pause(world: World) -> Callable[[], None]:
    world.pause(TARGET)
    return lambda: world.resume(TARGET)


def _isolate(world: World) -> Callable[[], None]:
    rule = world.network.partition([[TARGET], [n for n in world.nodes if n != TARGET]])
    return lambda: world.network.unblock(rule)


FAULTS = {"crash": _crash, "pause": _pause, "isolate": _isolate}
ALGORITHMS: dict[str, AlgorithmFactory] = {
    "heartbeat-only": HeartbeatOnly,
    "bully": algorithm_factory("bully"),
}


def _about_target(world: World, event: str) -> list[HistoryEvent]:
    return [e for e in world.trace.history if e.event == event and e.peer_id == TARGET]


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_peers_suspect_within_the_bound_and_recover(algorithm: str, fault: str) -> None:
    config = RunConfig(algorithm, 5, seed=1)
    world, _, _ = build_world(config, ALGORITHMS[algorithm])
    settings = config.settings()[0]
    for node_id in world.nodes:
        world.start(node_id)
    world.run_until(FAULT_MS)
    undo = FAULTS[fault](world)
    world.run_until(BACK_MS)
    others = sorted(n for n in world.nodes if n != TARGET)
    bound_ms = FAULT_MS + settings.failure_timeout_ms + settings.heartbeat_interval_ms
    first_suspicion: dict[int, int] = {}
    for event in _about_target(world, "peer_suspected"):
        if event.time_ms > FAULT_MS:
            first_suspicion.setdefault(event.node_id, event.time_ms)
    assert sorted(first_suspicion) == others
    assert max(first_suspicion.values()) <= bound_ms, first_suspicion
    undo()
    world.run_until(BACK_MS + 2 * settings.heartbeat_interval_ms)
    recovered = {e.node_id for e in _about_target(world, "peer_recovered") if e.time_ms >= BACK_MS}
    assert recovered == set(others)
