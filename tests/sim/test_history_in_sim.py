"""The history checkers judge simulator histories exactly as they judge journald ones."""

from __future__ import annotations

import functools

from node.history.checkers import check_history
from node.history.timeline import build_timeline
from node.sim.runner import RunConfig, build_world

from .fakes import SelfAppointed


def test_a_bully_history_is_clean_and_has_a_timeline() -> None:
    world, nemesis, _ = build_world(RunConfig("bully", 5, seed=21))
    for node_id in world.nodes:
        world.start(node_id)
    nemesis.run_faults_until(30_000)
    world.run_until(30_000)
    assert check_history(world.trace.history) == []
    terms = build_timeline(world.trace.history)
    assert terms and all(term.followers for term in terms[:1])


def test_self_appointed_leaders_show_up_in_the_history() -> None:
    world, _, _ = build_world(RunConfig("self-appointed", 5, seed=3), SelfAppointed, fail_fast=False)
    for node_id in world.nodes:
        world.call_at(node_id * 10, "start", functools.partial(world.start, node_id))
    world.run_until(5_000)
    rules = {violation.rule for violation in check_history(world.trace.history)}
    assert "one-leader-per-epoch" in rules
    assert "leader-without-quorum" in {v.rule for v in world.safety.violations}
