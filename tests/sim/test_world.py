"""How the simulated cluster executes actions: timers, sends, crashes, reset hints, pauses, the disk."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from node.core.actions import Action, Broadcast, CancelTimer, Persist, Send, SetTimer
from node.core.events import Event, MessageReceived, PeerUnreachable, Start, TimerFired, TimerId
from node.core.messages import Heartbeat
from node.core.settings import Settings
from node.core.state import DurableState
from node.sim.invariants import InvariantViolatedError
from node.sim.network import Network, NetworkProfile
from node.sim.runner import RunConfig, build_world
from node.sim.world import RST_DELAY_MS, World

from .fakes import Probe, Script


def _quiet(_probe: Probe, _event: Event) -> list[Action]:
    return []


def make_world(script: Script = _quiet, nodes: int = 3) -> tuple[World, dict[int, list[Probe]]]:
    """A world of probes; `lives[node]` holds one probe per (re)start of the node."""
    lives: dict[int, list[Probe]] = {}

    def factory(settings: Settings, state: DurableState, _rng: random.Random) -> Probe:
        probe = Probe(settings, state, script)
        lives.setdefault(settings.node_id, []).append(probe)
        return probe

    world, _, _ = build_world(RunConfig("probe", nodes, seed=7), factory)
    return world, lives


def on(kind: type, make: Callable[[Probe, Event], list[Action]]) -> Script:
    return lambda probe, event: make(probe, event) if isinstance(event, kind) else []


def fired(probe: Probe) -> list[tuple[int, TimerId]]:
    return [(e.now_ms, e.timer) for e in probe.events if isinstance(e, TimerFired)]


def test_timers_fire_at_exactly_their_time_and_set_timer_replaces() -> None:
    def script(probe: Probe, event: Event) -> list[Action]:
        if isinstance(event, Start):
            return [
                SetTimer(TimerId.HEARTBEAT, 100),
                SetTimer(TimerId.HEARTBEAT, 250),  # replaces the first
                SetTimer(TimerId.LISTEN, 120),
                SetTimer(TimerId.BACKOFF, 130),
                CancelTimer(TimerId.BACKOFF),
            ]
        return []

    world, lives = make_world(script)
    world.start(1)
    world.run_until(1_000)
    assert fired(lives[1][0]) == [(120, TimerId.LISTEN), (250, TimerId.HEARTBEAT)]


def test_messages_arrive_after_a_link_delay() -> None:
    message = Heartbeat(1, 0, None)
    world, lives = make_world(on(Start, lambda p, _: [Send(2, message)] if p.settings.node_id == 1 else []))
    world.start(2)
    world.start(1)
    world.run_until(1_000)
    received = [e for e in lives[2][0].events if isinstance(e, MessageReceived)]
    assert [e.message for e in received] == [message]
    assert 1 <= received[0].now_ms <= 30


def test_send_to_a_crashed_peer_gives_a_refused_hint_unless_partitioned() -> None:
    def script(probe: Probe, event: Event) -> list[Action]:
        if isinstance(event, Start):
            return [SetTimer(TimerId.HEARTBEAT, 100)]
        if isinstance(event, TimerFired):
            return [Send(2, Heartbeat(1, 0, None)), SetTimer(TimerId.HEARTBEAT, event.now_ms + 1_000)]
        return []

    world, lives = make_world(script)
    world.start(1)  # node 2 never runs
    world.run_until(1_000)
    hints = [e for e in lives[1][0].events if isinstance(e, PeerUnreachable)]
    assert [h.peer_id for h in hints] == [2]
    assert RST_DELAY_MS[0] <= hints[0].now_ms - 100 <= RST_DELAY_MS[1]
    world.network.partition([[1], [2, 3]])  # iptables DROP: the SYN vanishes, no RST comes back
    world.run_until(2_000)
    assert len([e for e in lives[1][0].events if isinstance(e, PeerUnreachable)]) == 1


def test_a_crash_resets_connections_drops_its_timers_and_in_flight_messages() -> None:
    def script(probe: Probe, event: Event) -> list[Action]:
        me = probe.settings.node_id
        if isinstance(event, Start) and me != 3:
            return [Send(3, Heartbeat(me, 0, None)), SetTimer(TimerId.HEARTBEAT, 500)]
        if isinstance(event, Start):
            return [SetTimer(TimerId.HEARTBEAT, 600)]
        if isinstance(event, TimerFired) and me == 1:
            return [Send(3, Heartbeat(me, 0, None))]  # in flight when 3 crashes
        return []

    world, lives = make_world(script)
    for node_id in (3, 1, 2):
        world.start(node_id)
    world.run_until(400)
    world.network.partition([[2], [1, 3]])  # 2's RST would be dropped
    world.run_until(500)
    world.crash(3)
    world.run_until(2_000)
    assert not fired(lives[3][0])
    assert len([e for e in lives[3][0].events if isinstance(e, MessageReceived)]) == 2
    hint_1 = [e for e in lives[1][0].events if isinstance(e, PeerUnreachable)]
    assert [h.peer_id for h in hint_1] == [3] and 500 < hint_1[0].now_ms <= 505
    assert not [e for e in lives[2][0].events if isinstance(e, PeerUnreachable)]


def test_the_disk_survives_a_crash_and_the_restart_starts_from_it() -> None:
    def script(probe: Probe, event: Event) -> list[Action]:
        if isinstance(event, Start) and probe.state.epoch == 0:
            return [Persist(DurableState(4, 2))]
        return []

    world, lives = make_world(script)
    world.start(2)
    world.crash(2)
    world.run_until(50)
    world.start(2)
    assert [probe.state for probe in lives[2]] == [DurableState(0, None), DurableState(4, 2)]
    assert world.nodes[2].incarnation == 2
    with pytest.raises(ValueError):
        world.start(2)


def _two_timers_and_a_heartbeat(probe: Probe, event: Event) -> list[Action]:
    """Node 1 arms HEARTBEAT (300) and DETECTOR (100); node 2 sends it a heartbeat at 200."""
    me = probe.settings.node_id
    if isinstance(event, Start) and me == 1:
        return [SetTimer(TimerId.HEARTBEAT, 300), SetTimer(TimerId.DETECTOR, 100)]
    if isinstance(event, Start) and me == 2:
        return [SetTimer(TimerId.HEARTBEAT, 200)]
    if isinstance(event, TimerFired) and me == 2:
        return [Send(1, Heartbeat(2, 0, None))]
    return []


def _node_1_paused_through_its_timers_and_a_message() -> tuple[World, dict[int, list[Probe]]]:
    world, lives = make_world(_two_timers_and_a_heartbeat)
    world.start(1)
    world.start(2)
    world.pause(1)
    world.run_until(5_000)
    assert lives[1][0].events == [Start(0)]
    return world, lives


def test_a_paused_node_runs_what_came_due_late_and_in_order_when_resumed() -> None:
    world, lives = _node_1_paused_through_its_timers_and_a_message()
    world.resume(1)
    late = lives[1][0].events[1:]
    assert [type(e).__name__ for e in late] == ["TimerFired", "MessageReceived", "TimerFired"]
    assert {e.now_ms for e in late} == {5_000}


def test_persist_before_send_is_enforced_in_action_order() -> None:
    good: list[Action] = [Persist(DurableState(3, 1)), Send(2, Heartbeat(1, 3, None))]
    world, _ = make_world(on(Start, lambda p, _: good if p.settings.node_id == 1 else []))
    world.start(2)
    world.start(1)
    bad: list[Action] = [Send(2, Heartbeat(1, 3, None)), Persist(DurableState(3, 1))]
    world, _ = make_world(on(Start, lambda p, _: bad if p.settings.node_id == 1 else []))
    world.start(2)
    with pytest.raises(InvariantViolatedError, match="persist-before-send"):
        world.start(1)


def test_a_stopped_leader_resigns_before_its_connections_close_and_is_replaced_at_once() -> None:
    world, _, _ = build_world(RunConfig("bully", 5, seed=2))
    for node_id in world.nodes:
        world.start(node_id)
    world.run_until(10_000)
    [leader] = [n for n, node in world.nodes.items() if node.role.value == "leader"]
    world.stop(leader)
    world.run_until(10_000 + 1_000)
    lines = world.trace.tail
    for peer in (n for n in world.nodes if n != leader):
        resign = next(i for i, line in enumerate(lines) if f"n{peer} <- Resign(sender={leader}" in line)
        closed = next(i for i, line in enumerate(lines) if f"n{peer} unreachable {leader}" in line)
        assert resign < closed
    leaders = [n for n, node in world.nodes.items() if node.alive and node.role.value == "leader"]
    assert len(leaders) == 1 and leaders[0] != leader
    new_terms = [e for e in world.trace.history if e.event == "became_leader" and e.time_ms > 10_000]
    assert new_terms and new_terms[0].time_ms - 10_000 < world.nodes[leader].settings.failure_timeout_ms


def test_heal_all_restarts_crashed_paused_and_stopping_nodes_and_cancels_pending_fault_steps() -> None:
    world, nemesis, _ = build_world(RunConfig("bully", 5, seed=4))
    for node_id in world.nodes:
        world.start(node_id)
    world.run_until(5_000)
    world.crash(1)
    world.pause(2)
    world.stop(3)  # its exit is still pending
    nemesis.later(6_000, "crash 4 (must not happen)", lambda: world.crash(4))
    nemesis.heal_all()
    world.run_until(10_000)
    assert all(node.running and not node.stopping for node in world.nodes.values())
    assert not any("must not happen" in line for line in world.trace.tail)


# --- opt-ins for the test harness (tests/algorithms/harness.py); the runner uses none of them -----------


def _heartbeat_every_100_ms(probe: Probe, event: Event) -> list[Action]:
    """Each node sends node 1 (or node 1 sends node 2) a heartbeat every 100 ms."""
    me = probe.settings.node_id
    if isinstance(event, Start | TimerFired):
        return [
            Send(2 if me == 1 else 1, Heartbeat(me, 0, None)),
            SetTimer(TimerId.HEARTBEAT, event.now_ms + 100),
        ]
    return []


def test_run_until_stops_right_after_the_item_that_makes_the_condition_true() -> None:
    world, lives = make_world(_heartbeat_every_100_ms)
    world.start(1)
    world.start(2)

    def received() -> bool:
        return any(isinstance(e, MessageReceived) for e in lives[1][0].events)

    assert world.run_until(5_000, until=received)
    assert (
        1 <= world.now_ms <= 30
        and len([e for e in lives[1][0].events if isinstance(e, MessageReceived)]) == 1
    )
    assert not world.run_until(1_000, until=lambda: False) and world.now_ms == 1_000


def test_on_send_sees_every_send_and_broadcast_with_its_destinations() -> None:
    sends: list[tuple[int, tuple[int, ...], type]] = []

    def script(probe: Probe, event: Event) -> list[Action]:
        if isinstance(event, Start) and probe.settings.node_id == 1:
            return [Send(3, Heartbeat(1, 0, None)), Broadcast(Heartbeat(1, 0, None))]
        return []

    world, _ = make_world(script)
    world.on_send = lambda src, dsts, message: sends.append((src, dsts, type(message)))
    world.start(1)  # 2 and 3 are down: the sends still count
    assert sends == [(1, (3,), Heartbeat), (1, (2, 3), Heartbeat)]


def test_a_crash_without_reset_gives_no_hint_until_a_peer_sends_to_it() -> None:
    world, lives = make_world(_heartbeat_every_100_ms)
    for node_id in (1, 2, 3):
        world.start(node_id)
    world.run_until(250)
    world.crash(1, reset_connections=False)
    world.run_until(299)
    assert not [e for p in (2, 3) for e in lives[p][0].events if isinstance(e, PeerUnreachable)]
    world.run_until(400)  # their next heartbeats to 1 (at 300) are refused
    for peer in (2, 3):
        hints = [e for e in lives[peer][0].events if isinstance(e, PeerUnreachable)]
        assert hints and hints[0].peer_id == 1 and 300 < hints[0].now_ms <= 300 + RST_DELAY_MS[1]


def test_resume_with_messages_first_runs_queued_messages_before_timers() -> None:
    world, lives = _node_1_paused_through_its_timers_and_a_message()
    world.resume(1, messages_first=True)
    late = lives[1][0].events[1:]
    assert [type(e).__name__ for e in late] == ["MessageReceived", "TimerFired", "TimerFired"]
    assert [e.timer for e in late if isinstance(e, TimerFired)] == [TimerId.DETECTOR, TimerId.HEARTBEAT]


def test_a_network_with_the_same_delays_on_every_link_draws_no_link_ranges() -> None:
    rng = random.Random(3)
    network = Network(
        [1, 2, 3], rng, NetworkProfile(delay_ms_min=1, delay_ms_max=20, same_on_every_link=True)
    )
    assert rng.random() == random.Random(3).random()  # nothing drawn at construction
    for src, dst in ((1, 2), (3, 1)):  # one message every 100 ms: FIFO never holds one back
        delays = {network.transit_delays_ms(src, dst, t_ms)[0] - t_ms for t_ms in range(0, 30_000, 100)}
        assert delays == set(range(1, 21))
