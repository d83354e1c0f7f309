"""One seeded run: a safety phase with faults, then a liveness phase without them.

Safety phase: nodes 1..N start within the first seconds (sometimes all at once), and the nemesis injects
faults for a random 6-12 x election_timeout of virtual time (30-60 s at the defaults); invariants are
checked after every step.
Liveness phase: every fault ends (`heal_all`), and in about a third of the runs a minority of nodes is
then crashed or isolated again for good. The remaining majority must agree on one leader and epoch
within `liveness_bound_ms` of the heal and keep it for `stable_ms`; the run ends once it has (or at
heal + bound + stable_ms).

Liveness bound (rule 4), from the core's timers:
    failure_timeout (a stale view of the old leader expires)
  + listen_ms (a restarted node listens before it elects)
  + 2 x election_timeout (one election that is overtaken, then one that completes)
  + backoff_cap (a node that failed just before the heal waits at most this long)
  = 3 + 2 + 10 + 5 = 20 s with the default 1 s / 3 s / 5 s timers.
Measured: the worst convergence over the first 4,000 default-timer seeds (bully and ring, 5 and 7 nodes)
was 7.6 s, and 11.3 s (bully, 7 nodes) once a restarted node stayed out of votes for a failure timeout;
with 100 ms / 500 ms / 1 s timers (bound 4 s), 1.3 s.
"""

from __future__ import annotations

import functools
import multiprocessing
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from node.algorithms import make_algorithm
from node.core.durations import (
    DEFAULT_ELECTION_TIMEOUT_MS,
    DEFAULT_FAILURE_TIMEOUT_MS,
    DEFAULT_HEARTBEAT_INTERVAL_MS,
)
from node.core.settings import Settings
from node.core.state import DurableState
from node.history.checkers import check_history
from node.sim.invariants import SAFETY, InvariantViolatedError, LivenessMonitor, SafetyMonitor, Violation
from node.sim.nemesis import DEFAULT_NEMESES, Nemesis, Timers
from node.sim.network import Network, NetworkProfile
from node.sim.scheduler import SchedulerFullError
from node.sim.trace import HistoryOverflowError, Trace
from node.sim.world import AlgorithmFactory, SimulationLimitError, World

# One seed at 51 nodes takes 14-16 s of one core (5 nodes: 0.06 s, 15 nodes: 0.5 s; one seed of 101 nodes
# 80 s, too slow to sweep): every node heartbeats every other, so a virtual second holds ~N(N-1) steps,
# and the core scans all N peers a few times in each step (docs/benchmarks.md, "Scale").
NODE_COUNT_MAX = 51
# A message storm ends the run as a failure. A healthy run takes about N(N-1) steps per virtual second
# (heartbeats) for at most ~90 s: the bound is ~100x a healthy 7-node run, and ~10x a healthy run of
# 18 nodes or more, where EVENTS_PER_LINK_MAX takes over.
MAX_EVENTS_PER_RUN = 300_000
EVENTS_PER_LINK_MAX = 1_000
SAFETY_MS_LIMIT = 3_600_000  # one virtual hour of faults per run at most
START_SPREAD_MS = 3_000  # nodes start within this window, unless they all start at 0


@dataclass(frozen=True, slots=True)
class RunConfig:
    algorithm: str
    node_count: int
    seed: int
    heartbeat_interval_ms: int = DEFAULT_HEARTBEAT_INTERVAL_MS
    failure_timeout_ms: int = DEFAULT_FAILURE_TIMEOUT_MS
    election_timeout_ms: int = DEFAULT_ELECTION_TIMEOUT_MS
    safety_ms_min: int | None = None  # default: 6 x election_timeout (30 s at the default timers)
    safety_ms_max: int | None = None  # default: 12 x election_timeout (60 s)
    nemeses: tuple[str, ...] = DEFAULT_NEMESES
    keep_trace: bool = False
    max_events: int | None = None  # default: event_limit(node_count)
    gated: bool | None = None  # a before_lead gate on every node; None: on odd seeds

    def __post_init__(self) -> None:
        if not 1 <= self.node_count <= NODE_COUNT_MAX:
            raise ValueError(f"node_count must lie in [1, {NODE_COUNT_MAX}], got {self.node_count}")
        if not 0 <= self.safety_window_ms[0] <= self.safety_window_ms[1] <= SAFETY_MS_LIMIT:
            raise ValueError(f"need 0 <= safety_ms_min <= safety_ms_max <= {SAFETY_MS_LIMIT}")

    @property
    def event_limit(self) -> int:
        """The most steps one run may take before it counts as a storm."""
        if self.max_events is not None:
            return self.max_events
        return max(MAX_EVENTS_PER_RUN, EVENTS_PER_LINK_MAX * self.node_count * (self.node_count - 1))

    @property
    def safety_window_ms(self) -> tuple[int, int]:
        """Bounds of the safety phase's length (faults on)."""
        low = 6 * self.election_timeout_ms if self.safety_ms_min is None else self.safety_ms_min
        high = 12 * self.election_timeout_ms if self.safety_ms_max is None else self.safety_ms_max
        return low, high

    def settings(self) -> list[Settings]:
        ids = tuple(range(1, self.node_count + 1))
        return [
            Settings(
                node_id=node_id,
                member_ids=ids,
                heartbeat_interval_ms=self.heartbeat_interval_ms,
                failure_timeout_ms=self.failure_timeout_ms,
                election_timeout_ms=self.election_timeout_ms,
                gated=self.seed % 2 == 1 if self.gated is None else self.gated,
                gate_timeout_ms=self.election_timeout_ms,
            )
            for node_id in ids
        ]


def liveness_bound_ms(settings: Settings) -> int:
    return (
        settings.failure_timeout_ms
        + settings.listen_ms
        + 2 * settings.election_timeout_ms
        + settings.backoff_cap_ms
    )


def stable_ms(settings: Settings) -> int:
    """How long the agreed leader must then last: long enough for a flapping detector to show."""
    return 2 * settings.failure_timeout_ms + settings.heartbeat_interval_ms


@dataclass(slots=True)
class RunResult:
    config: RunConfig
    trace_hash: str = ""
    violations: list[Violation] = field(default_factory=list)
    elections: int = 0
    leader_changes: int = 0
    events: int = 0
    virtual_ms: int = 0
    healed_ms: int = 0
    convergence_ms: int | None = None  # from the heal to one agreed leader
    left_out: tuple[int, ...] = ()
    faults: dict[str, int] = field(default_factory=dict)
    trace_tail: list[str] = field(default_factory=list)
    trace_lines: list[str] | None = None
    liar: int | None = None  # the byzantine member, if that nemesis ran
    forgeries: int = 0  # how many forged messages (or forged broadcasts) it injected

    @property
    def safety_failed(self) -> bool:
        return any(v.kind == SAFETY for v in self.violations)

    @property
    def ok(self) -> bool:
        return not self.violations


# History rules not judged against a byzantine member: at all once it forged votes, and for its own
# leadership always (see node/sim/invariants.py).
LIAR_BREAKS = frozenset({"one-leader-per-epoch"})


def algorithm_factory(name: str) -> AlgorithmFactory:
    def build(settings: Settings, state: DurableState, rng: random.Random) -> object:
        return make_algorithm(name, settings, state, rng)

    return build  # type: ignore[return-value]


def build_world(
    config: RunConfig, factory: AlgorithmFactory | None = None, *, fail_fast: bool = True
) -> tuple[World, Nemesis, random.Random]:
    """A cluster of stopped nodes, its nemesis, and the run's one random generator."""
    rng = random.Random(config.seed)
    settings = config.settings()
    world = World(
        settings=settings,
        factory=factory or algorithm_factory(config.algorithm),
        rng=rng,
        network=Network([s.node_id for s in settings], rng, NetworkProfile()),
        trace=Trace(keep_all_lines=config.keep_trace),
        safety=SafetyMonitor(len(settings), config.failure_timeout_ms, fail_fast=fail_fast),
        max_events=config.event_limit,
    )
    return world, Nemesis(world, rng, config.nemeses, Timers.of(settings[0])), rng


def run_seed(config: RunConfig, factory: AlgorithmFactory | None = None) -> RunResult:
    """Run one seed to the end (or to its first safety violation). Never raises for a bad algorithm:
    a violated invariant, an exceeded bound or an exception in the algorithm is a violation."""
    world, nemesis, rng = build_world(config, factory)
    settings = config.settings()
    trace = world.trace
    result = RunResult(config)
    safety_end_ms = rng.randint(*config.safety_window_ms)
    try:
        _safety_phase(world, nemesis, rng, safety_end_ms)
        _liveness_phase(world, nemesis, rng, settings[0], result)
    except InvariantViolatedError as exc:
        result.violations.append(exc.violation)
    except (SimulationLimitError, SchedulerFullError, HistoryOverflowError) as exc:
        result.violations.append(Violation(SAFETY, "bounded-resources", world.now_ms, None, str(exc)))
    except Exception as exc:  # the algorithm crashed: a bug, reported with its seed like any other
        detail = f"{type(exc).__name__}: {exc}"
        result.violations.append(Violation(SAFETY, "algorithm-exception", world.now_ms, None, detail))
    if not result.safety_failed:
        for problem in check_history(trace.history):
            if problem.rule in LIAR_BREAKS and (
                world.safety.liar_forges_votes or world.safety.liar in {e.node_id for e in problem.events}
            ):
                continue
            result.violations.append(
                Violation(SAFETY, f"history:{problem.rule}", world.now_ms, None, problem.describe())
            )
    result.trace_hash = trace.hexdigest()
    result.elections = world.elections
    result.leader_changes = world.leader_changes
    result.events = world.events
    result.virtual_ms = world.now_ms
    result.faults = dict(nemesis.started)
    result.liar = nemesis.liar
    result.forgeries = nemesis.forgeries
    if result.violations:  # a passing run keeps no transcript: 100,000 results must fit in memory
        result.trace_tail = list(trace.tail)
    result.trace_lines = trace.all_lines
    return result


def _safety_phase(world: World, nemesis: Nemesis, rng: random.Random, end_ms: int) -> None:
    together = rng.random() < 1 / 3
    for node_id in world.nodes:
        start_ms = 0 if together else rng.randint(0, START_SPREAD_MS)
        world.call_at(start_ms, "", functools.partial(world.start, node_id))
    nemesis.run_faults_until(end_ms)
    world.run_until(end_ms)


def _liveness_phase(
    world: World, nemesis: Nemesis, rng: random.Random, settings: Settings, result: RunResult
) -> None:
    nemesis.heal_all()
    ids = sorted(world.nodes)
    left_out: list[int] = []
    # A node without its state votes only once it hears N - quorum + 1 others (or all of them): with
    # one catching up, leaving out more than quorum - 2 nodes would rightly keep the rest leaderless.
    quorum = settings.quorum_size
    catching_up = any(
        node.algorithm is not None and node.algorithm.view(world.now_ms).catching_up
        for node in world.nodes.values()
    )
    most_left_out = quorum - 2 if catching_up else (len(ids) - 1) // 2
    if rng.random() < 1 / 3 and len(ids) >= 3 and most_left_out >= 1:
        left_out = sorted(rng.sample(ids, rng.randint(1, most_left_out)))
        for node_id in left_out:
            if rng.random() < 0.5:
                world.crash(node_id)
            else:
                world.network.partition([[node_id], [n for n in ids if n != node_id]])
        world.log(f"liveness phase without {left_out}")
    healed_ms = world.now_ms
    bound_ms = liveness_bound_ms(settings)
    monitor = LivenessMonitor(healed_ms, bound_ms, frozenset(set(ids) - set(left_out)))
    world.on_step = lambda: monitor.observe(world.now_ms, world.snapshots())
    monitor.observe(world.now_ms, world.snapshots())
    # Run until the agreement has lasted `stable_ms` (or the bound has certainly been missed).
    end_ms = healed_ms + bound_ms + stable_ms(settings)
    while world.now_ms < end_ms:
        world.run_until(min(end_ms, world.now_ms + settings.heartbeat_interval_ms))
        if monitor.converged_ms is not None and world.now_ms - monitor.converged_ms >= stable_ms(settings):
            break
    world.on_step = None
    result.healed_ms = healed_ms
    result.left_out = tuple(left_out)
    if monitor.converged_ms is not None:
        result.convergence_ms = monitor.converged_ms - healed_ms
    result.violations.extend(monitor.finish(world.now_ms, world.snapshots()))


def sweep(
    configs: list[RunConfig], jobs: int = 1, on_result: Callable[[RunResult], None] | None = None
) -> list[RunResult]:
    """Run many seeds, in `jobs` worker processes; results come back in config order."""
    results: list[RunResult] = []
    if jobs <= 1:
        for config in configs:
            results.append(run_seed(config))
            if on_result is not None:
                on_result(results[-1])
        return results
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        for result in pool.imap(run_seed, configs, chunksize=4):
            results.append(result)
            if on_result is not None:
                on_result(result)
    return results
