"""`leader-node simulate`: seed sweeps of the deterministic simulator.

    leader-node simulate --algorithm bully|ring --nodes N --seeds K [--seed S] [--jobs J]

Runs seeds S, S+1, ..., S+K-1 (S defaults to 0, K to 1). Every failing seed is printed with its
violation and the line "reproduce with: leader-node simulate --algorithm A --nodes N --seed S"; a
single-seed run also prints its trace hash and, on failure, the end of its trace (`--trace FILE` writes
the whole trace). The last line is a summary: seeds, failures, elections, leader changes, time.

One run: nodes 1..N start within 3 s (sometimes all at once); for 30-60 s of virtual time a nemesis
injects partitions (random halves, isolated leader, one-way), swizzle-clogs, crashes and restarts,
graceful stops, pauses, and bursts of drops, duplicates, reordering and delays; every invariant is
checked after every step. Then every fault ends (a minority may stay crashed or cut off) and the
majority must agree on one leader and epoch within failure_timeout + listen + 2 x election_timeout +
backoff_cap (20 s at the default 1 s / 3 s / 5 s timers) and keep it. Long sweeps report progress on
stderr every 1,000 seeds.

`--nemeses` narrows the faults, or adds the opt-in ones that no default sweep draws: `byzantine-member`
(a member holding the secret injects forged messages from itself, votes included) and
`byzantine-member-honest-votes` (the same, but it never forges a vote), e.g.
`--nemeses byzantine-member,crash,partition-halves` (docs/security.md says what is checked then).

Exit status: 0 every seed passed; 1 at least one safety violation (it wins over liveness); 2 at least
one liveness violation and no safety violation; 64 bad usage.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import NoReturn, TextIO

from node.algorithms import ALGORITHMS
from node.sim.nemesis import DEFAULT_NEMESES, NEMESES, OPT_IN_NEMESES
from node.sim.runner import NODE_COUNT_MAX, RunConfig, RunResult, sweep

EXIT_OK = 0
EXIT_SAFETY = 1
EXIT_LIVENESS = 2
EXIT_USAGE = 64
SEEDS_MAX = 10_000_000
JOBS_MAX = 256
TRACE_TAIL_PRINTED = 60
PROGRESS_EVERY = 1_000


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _parser() -> _Parser:
    parser = _Parser(
        prog="leader-node simulate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--algorithm", required=True, choices=ALGORITHMS)
    parser.add_argument("--nodes", type=int, default=5, help=f"cluster size, 1..{NODE_COUNT_MAX}")
    parser.add_argument("--seeds", type=int, default=1, help="how many seeds (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1; 0 = all CPUs)")
    parser.add_argument("--trace", metavar="FILE", help="single seed: write the whole trace to FILE")
    defaults = RunConfig("bully", 1, 0)
    parser.add_argument(
        "--nemeses",
        default=",".join(DEFAULT_NEMESES),
        help="comma-separated faults to draw from (default: %(default)s; opt-in, named only: "
        + ",".join(OPT_IN_NEMESES)
        + ")",
    )
    parser.add_argument("--heartbeat-ms", type=int, default=defaults.heartbeat_interval_ms)
    parser.add_argument("--failure-timeout-ms", type=int, default=defaults.failure_timeout_ms)
    parser.add_argument("--election-timeout-ms", type=int, default=defaults.election_timeout_ms)
    return parser


def main(argv: list[str], out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        args = _parser().parse_args(argv)
        if not 1 <= args.nodes <= NODE_COUNT_MAX:
            raise UsageError(f"--nodes must lie in [1, {NODE_COUNT_MAX}], got {args.nodes}")
        if not 1 <= args.seeds <= SEEDS_MAX or args.seed < 0:
            raise UsageError(f"--seeds must lie in [1, {SEEDS_MAX}] and --seed must be >= 0")
        if args.trace and args.seeds != 1:
            raise UsageError("--trace needs a single seed")
        jobs = args.jobs if args.jobs > 0 else os.cpu_count() or 1
        if jobs > JOBS_MAX:
            raise UsageError(f"--jobs must be at most {JOBS_MAX}")
    except UsageError as exc:
        print(f"leader-node simulate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    nemeses = tuple(name for name in args.nemeses.split(",") if name)
    unknown = sorted(set(nemeses) - set(NEMESES))
    if unknown or not nemeses:
        print(
            f"leader-node simulate: unknown --nemeses {unknown}; known: {','.join(NEMESES)}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        configs = [
            RunConfig(
                args.algorithm,
                args.nodes,
                seed,
                heartbeat_interval_ms=args.heartbeat_ms,
                failure_timeout_ms=args.failure_timeout_ms,
                election_timeout_ms=args.election_timeout_ms,
                nemeses=nemeses,
                keep_trace=bool(args.trace),
            )
            for seed in range(args.seed, args.seed + args.seeds)
        ]
        configs[0].settings()  # validates the timers as the daemon's config check does
    except ValueError as exc:
        print(f"leader-node simulate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    started = time.monotonic()
    single = args.seeds == 1

    def on_result(result: RunResult) -> None:
        _report(result, single, out)
        done = result.config.seed - args.seed + 1
        if done % PROGRESS_EVERY == 0:
            print(f"simulate: {done}/{args.seeds} seeds, {time.monotonic() - started:.0f}s", file=sys.stderr)

    results = sweep(configs, jobs=min(jobs, len(configs)), on_result=on_result)
    wall_s = time.monotonic() - started
    if args.trace and results[0].trace_lines is not None:
        with open(args.trace, "w", encoding="utf-8") as handle:
            handle.writelines(line + "\n" for line in results[0].trace_lines)
    print(summary(results, wall_s), file=out)
    return exit_code(results)


def exit_code(results: list[RunResult]) -> int:
    if any(r.safety_failed for r in results):
        return EXIT_SAFETY
    if any(not r.ok for r in results):
        return EXIT_LIVENESS
    return EXIT_OK


def _report(result: RunResult, single: bool, out: TextIO) -> None:
    config = result.config
    if single:
        converged = "never" if result.convergence_ms is None else f"{result.convergence_ms} ms"
        print(
            f"seed {config.seed}: trace {result.trace_hash} events={result.events}"
            f" virtual={result.virtual_ms} ms healed at {result.healed_ms} ms, one leader after {converged}",
            file=out,
        )
    if result.ok:
        return
    for violation in result.violations:
        print(f"seed {config.seed}: {violation.describe()}", file=out)
    if single:
        print("trace tail:", file=out)
        for line in result.trace_tail[-TRACE_TAIL_PRINTED:]:
            print(f"  {line}", file=out)
    print(f"reproduce with: {reproduce_command(config)}", file=out)
    out.flush()  # a failure of a long sweep shows in its log at once, not when the buffer fills


def reproduce_command(config: RunConfig) -> str:
    """The command that replays exactly this run (timers only when not the defaults)."""
    command = f"leader-node simulate --algorithm {config.algorithm} --nodes {config.node_count}"
    defaults = RunConfig(config.algorithm, config.node_count, config.seed)
    for flag, value, default in (
        ("--heartbeat-ms", config.heartbeat_interval_ms, defaults.heartbeat_interval_ms),
        ("--failure-timeout-ms", config.failure_timeout_ms, defaults.failure_timeout_ms),
        ("--election-timeout-ms", config.election_timeout_ms, defaults.election_timeout_ms),
    ):
        if value != default:
            command += f" {flag} {value}"
    if set(config.nemeses) != set(DEFAULT_NEMESES):
        command += f" --nemeses {','.join(config.nemeses)}"
    return f"{command} --seed {config.seed}"


def summary(results: list[RunResult], wall_s: float) -> str:
    safety = sum(1 for r in results if r.safety_failed)
    liveness = sum(1 for r in results if not r.ok and not r.safety_failed)
    converged = [r.convergence_ms for r in results if r.convergence_ms is not None]
    worst = f"{max(converged)} ms" if converged else "n/a"
    virtual_s = sum(r.virtual_ms for r in results) / 1000
    return (
        f"simulate: seeds={len(results)} ok={len(results) - safety - liveness} safety={safety}"
        f" liveness={liveness} elections={sum(r.elections for r in results)}"
        f" leader_changes={sum(r.leader_changes for r in results)}"
        f" worst_convergence={worst} virtual={virtual_s:.0f}s wall={wall_s:.1f}s"
        + (f" forgeries={forgeries}" if (forgeries := sum(r.forgeries for r in results)) else "")
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
