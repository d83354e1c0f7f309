"""Named fault schedules. During the safety phase the nemesis starts a random fault every so often
(at most `max_concurrent` at once) and undoes it after a random duration; `heal_all` ends every fault.

Faults: symmetric partitions into random halves (every split size, so 2|3 and 3|4 too), a bridge
node between two halves, a majorities ring (everyone sees a different majority), the leader isolated,
one-way partitions (a leader that cannot hear, a leader that cannot speak, random sets), swizzle-clog
(clog nodes one by one, unclog them in random order), crash/restart (random node, the leader, a fast
systemd-style restart), a follower that comes back with an unannounced promise above the leader's epoch,
a crash that loses the node's disk (it comes back without state),
graceful stop of the leader (SIGTERM: it resigns), pause (SIGSTOP/SIGCONT of a random node or the
leader), and bursts of drops, duplicates, reordering and long delays; and the operator's and the hosts' own
actions: a failing health check or maintenance (the node may not run for leader), `leaderctl switchover`
of the leader, and (in gated runs, odd seeds) a before_lead gate that fails or outlasts its timeout.
Not modelled: clock skew (each node's timers run at the true rate).

Opt-in only (named in --nemeses, never in DEFAULT_NEMESES, so the default sweeps keep their meaning): a
Byzantine-ish member that holds the secret and injects forged messages from itself (`byzantine-member`,
and `byzantine-member-honest-votes`, which never forges a vote; node/sim/byzantine.py).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass

from node.core.actions import Role
from node.core.settings import Settings
from node.core.state import DurableState
from node.sim.byzantine import Epochs, Forger
from node.sim.world import World

Stop = Callable[[], None]

# Fault timing at the default timers (election_timeout 5 s); `Timers.scale` stretches or shrinks it so
# that faster timers see the same fault pattern relative to their timeouts.
FAULT_GAP_MS = (200, 4_000)  # between two fault starts
FAULT_DURATION_MS = (300, 12_000)
CLOG_STEP_MS = (100, 1_500)  # swizzle-clog: time between clogging (and unclogging) two nodes
FORGERY_GAP_MS = (5, 400)  # byzantine member: time between two injections
FORGERY_BROADCAST_PROBABILITY = 0.3  # an injection goes to every honest node, else to one
DEFAULT_ELECTION_TIMEOUT_MS = 5_000


@dataclass(frozen=True, slots=True)
class Timers:
    heartbeat_interval_ms: int
    failure_timeout_ms: int
    election_timeout_ms: int

    def scaled(self, bounds_ms: tuple[int, int]) -> tuple[int, int]:
        """A fault-timing range at the default timers, scaled to these timers."""
        scale = self.election_timeout_ms / DEFAULT_ELECTION_TIMEOUT_MS
        return max(1, round(bounds_ms[0] * scale)), max(1, round(bounds_ms[1] * scale))

    @classmethod
    def of(cls, settings: Settings) -> Timers:
        return cls(settings.heartbeat_interval_ms, settings.failure_timeout_ms, settings.election_timeout_ms)


class Nemesis:
    def __init__(self, world: World, rng: random.Random, names: tuple[str, ...], timers: Timers) -> None:
        unknown = set(names) - set(NEMESES)
        if unknown:
            raise ValueError(f"unknown nemeses {sorted(unknown)}; known: {sorted(NEMESES)}")
        self.world = world
        self.rng = rng
        self.names = tuple(sorted(set(names)))
        self.timers = timers
        self.max_concurrent = rng.choice((1, 2, 3))
        self._active: dict[int, tuple[str, Stop]] = {}
        self._next_fault_id = 1
        self._until_ms = 0
        self._era = 0  # bumped by heal_all: every step scheduled before it becomes a no-op
        self.started: dict[str, int] = {}
        self.liar: int | None = None  # the byzantine member, drawn when such a fault first starts
        self.forgeries = 0

    # --- schedule --------------------------------------------------------------------------------

    def later(self, at_ms: int, label: str, run: Stop) -> None:
        """Schedule a step of a fault; it is skipped if `heal_all` runs first."""
        era = self._era

        def guarded() -> None:
            if era == self._era:
                if label:
                    self.world.log(f"nemesis {label}")
                run()

        self.world.call_at(at_ms, "", guarded)

    def run_faults_until(self, until_ms: int) -> None:
        self._until_ms = until_ms
        self.later(
            self.world.now_ms + self.rng.randint(*self.timers.scaled(FAULT_GAP_MS)), "tick", self._tick
        )

    def _tick(self) -> None:
        now_ms = self.world.now_ms
        if now_ms >= self._until_ms:
            return
        busy = {name for name, _ in self._active.values()}
        choices = [name for name in self.names if name not in busy]
        if choices and len(self._active) < self.max_concurrent:
            name = self.rng.choice(choices)
            stop = NEMESES[name](self)
            if stop is not None:
                self._register(name, stop)
        self.later(now_ms + self.rng.randint(*self.timers.scaled(FAULT_GAP_MS)), "tick", self._tick)

    def _register(self, name: str, stop: Stop) -> None:
        fault_id = self._next_fault_id
        self._next_fault_id += 1
        self._active[fault_id] = (name, stop)
        self.started[name] = self.started.get(name, 0) + 1
        duration_ms = self._duration_ms(name)
        stop_at_ms = self.world.now_ms + duration_ms
        self.later(stop_at_ms, f"stop {name}#{fault_id}", functools.partial(self._end, fault_id))

    def _duration_ms(self, name: str) -> int:
        """Uniform over the scaled range; but a fault that silences a node ends, half of the time,
        close to the failure timeout, where "suspected yet" and "still leading" race."""
        timers = self.timers
        if name in NEAR_TIMEOUT and self.rng.random() < 0.5:
            low = max(1, timers.failure_timeout_ms - 2 * timers.heartbeat_interval_ms)
            return self.rng.randint(low, timers.failure_timeout_ms + timers.heartbeat_interval_ms)
        return self.rng.randint(*timers.scaled(FAULT_DURATION_MS))

    def _end(self, fault_id: int) -> None:
        entry = self._active.pop(fault_id, None)
        if entry is not None:
            entry[1]()

    def heal_all(self) -> None:
        """Stop every fault, heal the network, resume paused nodes, restart crashed ones."""
        for fault_id in sorted(self._active):
            self._end(fault_id)
        self._until_ms = 0
        self._era += 1
        world = self.world
        world.network.heal()
        world.release_held()
        for node_id, node in world.nodes.items():
            if node.paused:
                world.resume(node_id)
            if node.stopping:
                world.crash(node_id, graceful=True)  # finish the exit now, then start it again
        for node_id, node in world.nodes.items():
            if not node.alive:
                world.start(node_id)
        world.log("nemesis healed everything")

    # --- helpers for the faults ------------------------------------------------------------------

    def choose_liar(self) -> int:
        """The run's one byzantine member: drawn once per seed, the same for every such fault."""
        if self.liar is None:
            self.liar = self.rng.choice(sorted(self.world.nodes))
        return self.liar

    def running_ids(self) -> list[int]:
        return [node_id for node_id, node in self.world.nodes.items() if node.running]

    def leader_or_random(self) -> int | None:
        """A node that believes it leads (the highest epoch if several), else any running node."""
        running = self.running_ids()
        leaders = [n for n in running if self.world.nodes[n].role is Role.LEADER]
        if leaders:
            return max(leaders, key=lambda n: (self.world.nodes[n].epoch, n))
        return self.rng.choice(running) if running else None


# --- the faults: each starts one and returns how to undo it (None: not applicable now) -----------


def partition_halves(nemesis: Nemesis) -> Stop:
    world = nemesis.world
    ids = list(world.nodes)
    nemesis.rng.shuffle(ids)
    half = len(ids) // 2
    cut = nemesis.rng.choice([half, half, len(ids) - half, nemesis.rng.randint(1, len(ids) - 1)])
    sides = [sorted(ids[:cut]), sorted(ids[cut:])]
    world.log(f"nemesis partition {sides[0]} | {sides[1]}")
    rule_id = world.network.partition(sides)
    return lambda: world.network.unblock(rule_id)


def bridge(nemesis: Nemesis) -> Stop:
    """Two halves that cannot talk, and one node that talks to both (Jepsen's bridge): each half plus
    the bridge is a majority."""
    world = nemesis.world
    ids = list(world.nodes)
    nemesis.rng.shuffle(ids)
    middle, rest = ids[0], ids[1:]
    sides = [sorted(rest[: len(rest) // 2]), sorted(rest[len(rest) // 2 :])]
    world.log(f"nemesis bridge {sides[0]} | {middle} | {sides[1]}")
    rule_id = world.network.partition(sides)  # the bridge is on neither side, so it reaches both
    return lambda: world.network.unblock(rule_id)


def majorities_ring(nemesis: Nemesis) -> Stop:
    """Nodes on a ring, each talking only to its nearest neighbours: every node sees a majority, and
    no two nodes see the same one (Jepsen's majorities-ring)."""
    world = nemesis.world
    ring = list(world.nodes)
    nemesis.rng.shuffle(ring)
    size = len(ring)
    radius = -(-(size // 2) // 2)  # ceil(floor(N/2) / 2): self +- radius is a majority
    blocked = [
        (ring[i], ring[j])
        for i in range(size)
        for j in range(size)
        if i != j and min((i - j) % size, (j - i) % size) > radius
    ]
    world.log(f"nemesis majorities ring {ring} (radius {radius})")
    rule_id = world.network.block(blocked)
    return lambda: world.network.unblock(rule_id)


def isolate_leader(nemesis: Nemesis) -> Stop | None:
    world = nemesis.world
    target = nemesis.leader_or_random()
    if target is None:
        return None
    others = [n for n in world.nodes if n != target]
    world.log(f"nemesis isolate {target}")
    rule_id = world.network.partition([[target], others])
    return lambda: world.network.unblock(rule_id)


def one_way(nemesis: Nemesis) -> Stop | None:
    world = nemesis.world
    rng = nemesis.rng
    target = nemesis.leader_or_random()
    if target is None:
        return None
    others = [n for n in world.nodes if n != target]
    mode = rng.choice(("deaf", "mute", "random"))
    if mode == "deaf":
        sources, destinations = others, [target]
    elif mode == "mute":
        sources, destinations = [target], others
    else:
        ids = list(world.nodes)
        rng.shuffle(ids)
        cut = rng.randint(1, len(ids) - 1)
        sources, destinations = sorted(ids[:cut]), sorted(ids[cut:])
    world.log(f"nemesis one-way {sorted(sources)} -> {sorted(destinations)} blocked")
    rule_id = world.network.one_way(sources, destinations)
    return lambda: world.network.unblock(rule_id)


def swizzle_clog(nemesis: Nemesis) -> Stop:
    world = nemesis.world
    rng = nemesis.rng
    ids = list(world.nodes)
    rng.shuffle(ids)
    chosen = ids[: rng.randint(2, len(ids))]
    at_ms = world.now_ms
    for node_id in chosen:
        nemesis.later(at_ms, f"clog {node_id}", functools.partial(world.network.clog, node_id))
        at_ms += rng.randint(*nemesis.timers.scaled(CLOG_STEP_MS))

    def unclog_in_random_order() -> None:
        order = list(chosen)
        rng.shuffle(order)
        at_ms = world.now_ms
        for node_id in order:
            nemesis.later(at_ms, f"unclog {node_id}", functools.partial(_unclog, world, node_id))
            at_ms += rng.randint(*nemesis.timers.scaled(CLOG_STEP_MS))

    return unclog_in_random_order


def _unclog(world: World, node_id: int) -> None:
    world.network.unclog(node_id)
    world.release_held()


def _crash(nemesis: Nemesis, target: int | None) -> Stop | None:
    world = nemesis.world
    if target is None or not world.nodes[target].alive:
        return None
    world.crash(target)

    def restart() -> None:
        if not world.nodes[target].alive:
            world.start(target)

    return restart


def crash_random(nemesis: Nemesis) -> Stop | None:
    alive = [n for n, node in nemesis.world.nodes.items() if node.alive]
    return _crash(nemesis, nemesis.rng.choice(alive) if alive else None)


def crash_leader(nemesis: Nemesis) -> Stop | None:
    return _crash(nemesis, nemesis.leader_or_random())


def crash_restart_fast(nemesis: Nemesis) -> Stop | None:
    """A crash that systemd repairs within a few hundred ms, whatever the fault's duration."""
    world = nemesis.world
    restart = crash_random(nemesis)
    if restart is None:
        return None
    nemesis.later(
        world.now_ms + nemesis.rng.randint(*nemesis.timers.scaled((0, 300))), "fast restart", restart
    )
    return restart


def restart_higher_epoch(nemesis: Nemesis) -> Stop | None:
    """A follower dies right after persisting a promise above the leader's epoch that nobody heard of
    (its own candidacy, or its vote for one that never won: a hand-off successor stopped mid-election
    leaves exactly this), and comes back with it within a few hundred ms. The leader must keep office."""
    world = nemesis.world
    rng = nemesis.rng
    leaders = [n for n in nemesis.running_ids() if world.nodes[n].role is Role.LEADER]
    if not leaders:
        return None
    leader = max(leaders, key=lambda n: (world.nodes[n].epoch, n))
    followers = [n for n in nemesis.running_ids() if n != leader]
    if not followers:
        return None
    target = rng.choice(followers)
    candidate = rng.choice([target, target, *followers])
    # Ring's ballot of `candidate` above a random epoch at or above the leader's: round x N + rank. It is
    # also a valid Bully epoch, so one rule serves both algorithms.
    ids = sorted(world.nodes)
    known = max(world.nodes[leader].epoch, world.nodes[target].disk.epoch) + rng.randint(0, len(ids))
    epoch = (known // len(ids) + 1) * len(ids) + ids.index(candidate)
    world.crash(target)
    world.persist_unannounced(target, DurableState(epoch, candidate))

    def restart() -> None:
        if not world.nodes[target].alive:
            world.start(target)

    nemesis.later(world.now_ms + rng.randint(*nemesis.timers.scaled((0, 300))), "restart", restart)
    return restart


def crash_wipe(nemesis: Nemesis) -> Stop | None:
    """A node dies and loses its disk (a replaced host, a wiped volume), then comes back without state,
    soon or at the fault's end. Half of the time the victim is a voter of the newest promise: the node
    whose forgotten promise could elect a second leader in one epoch if it voted again at once."""
    world = nemesis.world
    rng = nemesis.rng
    running = nemesis.running_ids()
    if not running or any(_without_state(world, n) for n in world.nodes):
        # One lost disk at a time: a second one before the first node re-learned its floor is two
        # members losing their state at once, the documented limit of every quorum system
        # (docs/algorithms.md, "A node that lost its state"), not a fault this design claims to survive.
        return None
    newest = max(world.nodes[n].disk.epoch for n in running)
    voters = [n for n in running if world.nodes[n].disk.epoch == newest and world.nodes[n].disk.voted_for]
    target = rng.choice(voters) if voters and rng.random() < 0.5 else rng.choice(running)
    world.crash(target)
    world.wipe(target)

    def restart() -> None:
        if not world.nodes[target].alive:
            world.start(target)

    if rng.random() < 0.5:
        nemesis.later(world.now_ms + rng.randint(*nemesis.timers.scaled((0, 300))), "restart", restart)
    return restart


def _without_state(world: World, node_id: int) -> bool:
    """Lost its disk and has not learned its floor yet: down with an empty disk, or catching up."""
    node = world.nodes[node_id]
    if node.algorithm is None:
        return node.disk == DurableState() or node.disk.recovering
    return node.algorithm.view(world.now_ms).catching_up


def stop_leader(nemesis: Nemesis) -> Stop | None:
    """`systemctl stop` of the leader (SIGTERM: it resigns and exits), started again later."""
    world = nemesis.world
    target = nemesis.leader_or_random()
    if target is None:
        return None
    world.stop(target)

    def start_again() -> None:
        if not world.nodes[target].alive:
            world.start(target)

    return start_again


def _pause(nemesis: Nemesis, target: int | None) -> Stop | None:
    world = nemesis.world
    if target is None:
        return None
    world.pause(target)
    return lambda: world.resume(target)


def pause_random(nemesis: Nemesis) -> Stop | None:
    running = nemesis.running_ids()
    return _pause(nemesis, nemesis.rng.choice(running) if running else None)


def pause_leader(nemesis: Nemesis) -> Stop | None:
    return _pause(nemesis, nemesis.leader_or_random())


def ineligible(nemesis: Nemesis) -> Stop | None:
    """A node's health check fails, or it goes into maintenance (half of the time the leader): it may
    not run for leader (a leader hands off) until the fault ends."""
    world = nemesis.world
    running = nemesis.running_ids()
    if not running:
        return None
    target = nemesis.leader_or_random() if nemesis.rng.random() < 0.5 else nemesis.rng.choice(running)
    if target is None:
        return None
    world.set_eligible(target, "health check failed (nemesis)")
    return lambda: world.set_eligible(target, None)


def switchover(nemesis: Nemesis) -> Stop | None:
    """`leaderctl switchover` on the leader: to a random member or (half of the time) to the best one.
    Asked only when the leader would accept it, as leaderctl does; nothing to undo."""
    world = nemesis.world
    leader = nemesis.leader_or_random()
    if leader is None or world.nodes[leader].role is not Role.LEADER:
        return None
    others = [n for n in sorted(world.nodes) if n != leader]
    target = nemesis.rng.choice(others) if others and nemesis.rng.random() < 0.5 else None
    if not world.switchover(leader, target):
        return None
    return lambda: None


def _gate_fault(nemesis: Nemesis, nodes: set[int]) -> Stop | None:
    """A node's before_lead gate fails (or runs slow) until the fault ends (gated runs only)."""
    running = nemesis.running_ids()
    if not running or not nemesis.world.nodes[running[0]].settings.gated:
        return None
    # Half of the time the highest id, which both algorithms elect when it is up: its gate matters.
    target = max(running) if nemesis.rng.random() < 0.5 else nemesis.rng.choice(running)
    nodes.add(target)
    return lambda: nodes.discard(target)


def gate_fails(nemesis: Nemesis) -> Stop | None:
    return _gate_fault(nemesis, nemesis.world.gate_failing)


def gate_slow(nemesis: Nemesis) -> Stop | None:
    return _gate_fault(nemesis, nemesis.world.gate_slow)


def _burst(nemesis: Nemesis, knob: str, value: float | bool, default: float | bool) -> Stop:
    world = nemesis.world
    world.log(f"nemesis {knob}={value}")
    setattr(world.network.faults, knob, value)
    return lambda: setattr(world.network.faults, knob, default)


def drop_burst(nemesis: Nemesis) -> Stop:
    return _burst(nemesis, "drop_probability", round(nemesis.rng.uniform(0.05, 0.6), 3), 0.0)


def duplicate_burst(nemesis: Nemesis) -> Stop:
    return _burst(nemesis, "duplicate_probability", round(nemesis.rng.uniform(0.05, 0.5), 3), 0.0)


def reorder_burst(nemesis: Nemesis) -> Stop:
    return _burst(nemesis, "reorder", True, False)


def delay_burst(nemesis: Nemesis) -> Stop:
    """Delays up to twice the failure timeout: heartbeats arrive after the peer was suspected."""
    limit_ms = 2 * nemesis.timers.failure_timeout_ms
    return _burst(nemesis, "extra_delay_ms_max", nemesis.rng.randint(100, limit_ms), 0)


def _byzantine(nemesis: Nemesis, *, forge_votes: bool) -> Stop:
    """The liar keeps running its honest algorithm; until the fault stops, well-signed but arbitrary
    messages "from" it reach the honest nodes (one of them, or all: a forged broadcast). A crashed or
    paused liar sends nothing. The safety monitor is told at once, and for the rest of the run, which
    global rules a liar of this kind can break (`SafetyMonitor.distrust`)."""
    world = nemesis.world
    rng = nemesis.rng
    liar = nemesis.choose_liar()
    world.safety.distrust(liar, forges_votes=forge_votes)
    forger = Forger(
        rng,
        tuple(sorted(world.nodes)),
        liar,
        forge_votes=forge_votes,
        failure_ms=nemesis.timers.failure_timeout_ms,
    )
    world.log(f"nemesis byzantine member {liar} ({'forging votes' if forge_votes else 'honest votes'})")
    active = [True]

    def inject() -> None:
        if not active[0]:
            return
        targets = [n for n, node in world.nodes.items() if n != liar and node.alive]
        if world.nodes[liar].running and targets:
            disks = [node.disk.epoch for node in world.nodes.values()]
            low, high = min(disks), max(disks)
            liar_epoch = world.nodes[liar].disk.epoch
            if rng.random() < FORGERY_BROADCAST_PROBABILITY:
                aim = rng.choice(targets)
                message = forger.message(
                    aim, Epochs(world.nodes[aim].disk.epoch, liar_epoch, low, high), world.now_ms
                )
                for dst in targets:
                    world.inject(liar, dst, message)
            else:
                dst = rng.choice(targets)
                epochs = Epochs(world.nodes[dst].disk.epoch, liar_epoch, low, high)
                world.inject(liar, dst, forger.message(dst, epochs, world.now_ms))
            nemesis.forgeries += 1
        nemesis.later(world.now_ms + rng.randint(*nemesis.timers.scaled(FORGERY_GAP_MS)), "", inject)

    inject()

    def stop() -> None:
        active[0] = False

    return stop


def byzantine_member(nemesis: Nemesis) -> Stop:
    return _byzantine(nemesis, forge_votes=True)


def byzantine_member_honest_votes(nemesis: Nemesis) -> Stop:
    return _byzantine(nemesis, forge_votes=False)


NEAR_TIMEOUT = frozenset({"pause", "pause-leader", "isolate-leader", "one-way", "swizzle-clog"})
NEMESES: dict[str, Callable[[Nemesis], Stop | None]] = {
    "partition-halves": partition_halves,
    "bridge": bridge,
    "majorities-ring": majorities_ring,
    "isolate-leader": isolate_leader,
    "one-way": one_way,
    "swizzle-clog": swizzle_clog,
    "crash": crash_random,
    "crash-leader": crash_leader,
    "crash-restart-fast": crash_restart_fast,
    "stop-leader": stop_leader,
    "restart-higher-epoch": restart_higher_epoch,
    "crash-wipe": crash_wipe,
    "pause": pause_random,
    "pause-leader": pause_leader,
    "drop-burst": drop_burst,
    "duplicate-burst": duplicate_burst,
    "reorder-burst": reorder_burst,
    "delay-burst": delay_burst,
    "ineligible": ineligible,
    "switchover": switchover,
    "gate-fails": gate_fails,
    "gate-slow": gate_slow,
}
# The default sweeps draw from these: faults and the operator's own actions (health checks, switchover,
# before_lead gates; the gate faults only act in gated runs). `ALL_NEMESES` is the old name.
DEFAULT_NEMESES = tuple(NEMESES)
ALL_NEMESES = DEFAULT_NEMESES
OPT_IN_NEMESES: dict[str, Callable[[Nemesis], Stop | None]] = {
    "byzantine-member": byzantine_member,
    "byzantine-member-honest-votes": byzantine_member_honest_votes,
}
NEMESES.update(OPT_IN_NEMESES)
