"""The scheduler's order and the network's faults, each on its own."""

from __future__ import annotations

import random

import pytest

from node.sim.network import LinkFaults, Network, NetworkProfile
from node.sim.scheduler import Scheduler, SchedulerFullError


def test_items_come_out_by_time_then_insertion_order() -> None:
    scheduler: Scheduler[str] = Scheduler()
    for time_ms, name in [(5, "c"), (1, "a"), (5, "d"), (1, "b"), (3, "x")]:
        scheduler.at(time_ms, name)
    popped = []
    while scheduler.next_time_ms() is not None:
        popped.append((scheduler.pop(), scheduler.now_ms))
    assert popped == [("a", 1), ("b", 1), ("x", 3), ("c", 5), ("d", 5)]


def test_a_time_in_the_past_means_now() -> None:
    scheduler: Scheduler[str] = Scheduler()
    scheduler.at(10, "first")
    scheduler.pop()
    scheduler.at(3, "late")
    assert scheduler.next_time_ms() == 10


def test_the_queue_is_bounded() -> None:
    scheduler: Scheduler[int] = Scheduler(max_pending=3)
    for i in range(3):
        scheduler.at(i, i)
    with pytest.raises(SchedulerFullError):
        scheduler.at(9, 9)


def _network(seed: int = 1) -> Network:
    return Network([1, 2, 3, 4, 5], random.Random(seed), NetworkProfile(delay_ms_min=1, delay_ms_max=50))


def test_links_are_fifo_unless_reordering() -> None:
    network = _network()
    times = [network.transit_delays_ms(1, 2, now_ms)[0] for now_ms in range(0, 200, 2)]
    assert times == sorted(times)
    network.faults = LinkFaults(reorder=True)
    times = [network.transit_delays_ms(1, 2, now_ms)[0] for now_ms in range(200, 400, 2)]
    assert times != sorted(times)


def test_delays_stay_within_the_profile_plus_the_fault_delay() -> None:
    network = _network()
    network.faults = LinkFaults(reorder=True)  # no FIFO push-back, so each delay is raw
    delays = [network.transit_delays_ms(2, 3, 1000)[0] - 1000 for _ in range(500)]
    assert min(delays) >= 1 and max(delays) <= 50 + 300
    network.faults = LinkFaults(extra_delay_ms_max=2000)
    delays = [network.transit_delays_ms(3, 4, 10_000)[0] - 10_000 for _ in range(500)]
    assert max(delays) > 1000


def test_symmetric_partition_blocks_both_directions_and_heals() -> None:
    network = _network()
    rule = network.partition([[1, 2], [3, 4, 5]])
    assert network.is_blocked(1, 3) and network.is_blocked(3, 1)
    assert not network.is_blocked(1, 2) and not network.is_blocked(4, 5)
    assert network.transit_delays_ms(1, 3, 0) == []
    network.unblock(rule)
    assert not network.is_blocked(1, 3)


def test_one_way_partition_blocks_one_direction_only() -> None:
    network = _network()
    network.one_way([5], [1, 2, 3, 4])
    assert network.is_blocked(5, 1) and not network.is_blocked(1, 5)


def test_rules_stack_a_link_opens_when_no_rule_blocks_it() -> None:
    network = _network()
    first = network.partition([[1], [2, 3, 4, 5]])
    second = network.one_way([1], [2])
    network.unblock(first)
    assert network.is_blocked(1, 2) and not network.is_blocked(2, 1)
    network.unblock(second)
    assert not network.is_blocked(1, 2)


def test_drop_and_duplicate_probabilities() -> None:
    network = _network()
    network.faults = LinkFaults(drop_probability=1.0)
    assert all(network.transit_delays_ms(1, 2, 0) == [] for _ in range(20))
    network.faults = LinkFaults(duplicate_probability=1.0)
    assert all(len(network.transit_delays_ms(1, 2, 0)) == 2 for _ in range(20))
    network.faults = LinkFaults(drop_probability=0.5)
    delivered = sum(len(network.transit_delays_ms(1, 2, 0)) for _ in range(1000))
    assert 400 < delivered < 600


def test_clog_marks_every_link_of_the_node_and_heal_clears_everything() -> None:
    network = _network()
    network.clog(3)
    network.partition([[1], [2, 3, 4, 5]])
    network.faults = LinkFaults(drop_probability=0.3)
    assert network.is_clogged(3, 1) and network.is_clogged(2, 3) and not network.is_clogged(1, 2)
    network.heal()
    assert not network.is_clogged(3, 1) and not network.is_blocked(1, 2)
    assert network.faults == LinkFaults()


def test_invalid_knobs_cannot_exist() -> None:
    with pytest.raises(ValueError):
        LinkFaults(drop_probability=1.5)
    with pytest.raises(ValueError):
        NetworkProfile(delay_ms_min=10, delay_ms_max=5)
