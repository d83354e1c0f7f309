#!/usr/bin/env python3
"""make soak: a nemesis against the five `make cluster` containers for a chosen time (issue 13).

    scripts/soak.py [--minutes 30] [--algorithm bully|ring] [--seed N] [--out DIR]
    make soak SOAK_MINUTES=5 ALGORITHM=ring SOAK_SEED=42

Runs as root on the machine that runs `make cluster`. If the five containers leader-node-1..5 are not
up, or run the other algorithm (or --fresh / SOAK_FRESH=1), it (re)creates them with `make cluster`
(LEADER_NODE_ALGORITHM=...) run in a clean export of HEAD: the committed code, not the working tree.
The report names the commit and any node/*.py the containers run that differs from HEAD.
Then, with a seeded RNG (the seed is printed; pass it back with --seed / SOAK_SEED to replay the same
choices), it injects faults at random, at most --max-faults (2) at once, each one undone:

  kill-leader            `systemctl kill -s SIGKILL leader-node` on the leader (systemd restarts it)
  stop-start-node/leader `systemctl stop leader-node`, a pause, `systemctl start leader-node`
  pause-node/leader      SIGSTOP of the unit's MainPID, SIGCONT after 0.5-1.5 x failure_timeout, at most
                         WatchdogSec / 2 - 1.5 s (the daemon pings the watchdog every WatchdogSec / 2: a
                         longer pause may be a watchdog restart instead)
  partition-1|4, -2|3, -isolate-leader
                         iptables DROP rules in each container (chain LEADER-NODE-SOAK, jumped to
                         from INPUT) against the other side's addresses; healed by flushing the chain
  replay                 a real peer session recorded off the wire (below) sent again, from the host,
                         to every member's peer port, every 200 ms for a few seconds
  replay-paused-leader   the same with the current leader's own recorded session while the leader is
                         SIGSTOPped (1.1-1.5 x failure_timeout, same cap): the attack of issue 13 item 3
                         (it must not delay the failover)
  forge                  a burst of hostile connections to one member's peer port: garbage, an
                         oversize length prefix, a HELLO with a forged FINISH MAC, a wrong cluster,
                         a non-member, a wrong receiver, an unknown key id, a bare session frame
  slow-clients           40 connections to the peer port and 40 to the HTTP port of one member,
                         from four extra host addresses (172.30.77.240-243 on the network's
                         bridge), each sending one byte per second and reopened when closed

A majority of healthy, connected nodes is kept by construction (a fault that would leave none is not
started), no node gets a fault while it has one, and no node is (re)started more than 3 times a minute
(the unit's StartLimitBurst is 5 per 60 s).

The recording: before the faults start, a sniffer (this script's `sniff` command, a raw AF_PACKET
socket) runs in one follower's network namespace (`nsenter -t <container pid> -n`) while that follower
is restarted (`systemctl restart`), so every other member opens a new session to it and it opens one to
every other member: the pcap holds ten whole sessions from the TCP SYN on (HELLO, FINISH, heartbeats).
Replaying one proves that bytes a real member sent on the wire are refused on a new connection without
the secret (the receiver's fresh nonce breaks the FINISH proof: bad_auth; another receiver refuses the
HELLO: wrong_node) and that they do not keep anyone on a leader.

Meanwhile it polls GET /leader on all five every 100 ms from the host (one round = five concurrent
requests) and scrapes /metrics every 5 s. At the end it heals everything, waits for one leader agreed
by all five, collects `journalctl -u leader-node -o json` of each container, runs `leader-node
check-history` on them, and writes artifacts/soak-<algorithm>-<UTC time>/report.{md,json} plus the
polls, the steps, the journals, the capture and the timeline. Exit 0 when clean; 1 on any violation
(check-history, two nodes answering 200 in one round with one epoch, a proven stale 200 (a lower
epoch's 200 to a request sent after the higher epoch's leader logged became_leader), a daemon crash or
watchdog restart, no leader within the bound after the last fault change, no agreement at the end);
2 when the soak itself failed. Whatever happens, the containers get their units started, processes
resumed and the soak's iptables chain removed, and the extra bridge addresses are deleted.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from node.core.durations import (
    DEFAULT_ELECTION_TIMEOUT_MS,
    DEFAULT_FAILURE_TIMEOUT_MS,
    DEFAULT_HEARTBEAT_INTERVAL_MS,
    duration_s,
)

REPO = Path(__file__).resolve().parents[1]
NAMES = [f"leader-node-{i}" for i in range(1, 6)]
NETWORK = "leader-node-net"
PEER_PORT, HTTP_PORT = 7700, 7701
SLOW_SOURCES = [f"172.30.77.{240 + i}" for i in range(4)]  # extra host addresses on the bridge
SOAK_CHAIN = "LEADER-NODE-SOAK"
POLL_INTERVAL_S = 0.1
POLL_TIMEOUT_S = 1.0
METRICS_INTERVAL_S = 5.0
STARTS_PER_MINUTE = 3
EXIT_OK, EXIT_VIOLATION, EXIT_SOAK_FAILED = 0, 1, 2


def log(text: str) -> None:
    now = time.time()
    print(f"[{time.strftime('%H:%M:%S', time.gmtime(now))}.{int(now * 1000) % 1000:03d}Z] {text}", flush=True)


def utc(at: float) -> str:
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(at))}.{int(at * 1000) % 1000:03d}Z"


# --------------------------------------------------------------------------------------------- sniffer


def sniff(out: Path, seconds: float, port: int) -> int:
    """Write every TCP segment to or from `port` seen on eth0 of this network namespace to a pcap file
    (Ethernet link type). Run under `nsenter -t <pid> -n`; stops after `seconds` or on SIGTERM."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
    sock.bind(("eth0", 0))
    deadline = time.monotonic() + seconds
    kept = 0
    with out.open("wb") as pcap:
        pcap.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        pcap.flush()
        while not stop.is_set() and time.monotonic() < deadline:
            ready, _, _ = select.select([sock], [], [], 0.2)
            if not ready:
                continue
            frame = sock.recv(262144)
            tcp = _tcp_of(frame)
            if tcp is None or port not in (tcp[1], tcp[3]):
                continue
            now = time.time()
            pcap.write(struct.pack("<IIII", int(now), int(now % 1 * 1e6), len(frame), len(frame)) + frame)
            kept += 1
    print(f"sniff: {kept} segments to or from port {port} in {out}", file=sys.stderr)
    return 0


def _tcp_of(frame: bytes) -> tuple[str, int, str, int, int, int, bytes] | None:
    """(src, sport, dst, dport, seq, flags, payload) of an Ethernet/IPv4/TCP frame, else None."""
    if len(frame) < 14 + 20 or frame[12:14] != b"\x08\x00":
        return None
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    total = struct.unpack("!H", ip[2:4])[0]
    if ip[9] != 6 or len(ip) < ihl + 20:
        return None
    src, dst = socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20])
    tcp = ip[ihl : total if total else None]
    sport, dport, seq = struct.unpack("!HHI", tcp[:8])
    doff = (tcp[12] >> 4) * 4
    return src, sport, dst, dport, seq, tcp[13], bytes(tcp[doff:])


def read_sessions(pcap_path: Path, port: int) -> list[bytes]:
    """The client-to-server byte streams of the TCP connections to `port` whose SYN is in the capture,
    each cut after its last complete length-prefixed frame."""
    data = pcap_path.read_bytes()
    offset = 24
    isn: dict[tuple[str, int, str, int], int] = {}
    segments: dict[tuple[str, int, str, int], dict[int, bytes]] = defaultdict(dict)
    while offset + 16 <= len(data):
        incl = struct.unpack("<IIII", data[offset : offset + 16])[2]
        frame = data[offset + 16 : offset + 16 + incl]
        offset += 16 + incl
        tcp = _tcp_of(frame)
        if tcp is None or tcp[3] != port:
            continue
        src, sport, dst, dport, seq, flags, payload = tcp
        key = (src, sport, dst, dport)
        if flags & 0x02:  # SYN
            isn[key] = seq
            segments[key].clear()
        elif key in isn and payload:
            segments[key][(seq - isn[key] - 1) % 2**32] = payload
    streams = []
    for key, parts in segments.items():
        if key not in isn:
            continue
        stream = bytearray()
        for at in sorted(parts):
            if at > len(stream):
                break  # a gap: keep what is contiguous
            stream += parts[at][len(stream) - at :]
        end = 0
        while end + 4 <= len(stream):
            (length,) = struct.unpack(">I", stream[end : end + 4])
            if end + 4 + length > len(stream):
                break
            end += 4 + length
        if end:
            streams.append(bytes(stream[:end]))
    return streams


# --------------------------------------------------------------------------------------------- hosts


def docker(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


class DockerHost:
    """What molecule/shared/faults.py needs of a testinfra host: run() through `docker exec` and the
    Ansible variables of the inventory (id, name, address, algorithm, HTTP port)."""

    def __init__(self, name: str, variables: dict[str, Any]) -> None:
        self.name = name
        self.ansible = SimpleNamespace(get_variables=lambda: dict(variables))

    def run(self, command: str) -> SimpleNamespace:
        try:
            done = subprocess.run(
                ["docker", "exec", self.name, "sh", "-c", command],
                capture_output=True,
                text=True,
                check=False,
                timeout=60,
            )
            return SimpleNamespace(rc=done.returncode, stdout=done.stdout, stderr=done.stderr)
        except subprocess.TimeoutExpired as exc:
            return SimpleNamespace(rc=124, stdout="", stderr=f"timeout: {exc}")


def http_get(address: str, port: int, path: str, timeout_s: float) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(address, port, timeout=timeout_s)
    try:
        conn.request("GET", path)
        reply = conn.getresponse()
        return reply.status, reply.read()
    finally:
        conn.close()


def cluster_config() -> dict[str, Any] | None:
    """node.toml of leader-node-1 if all five containers run and answer /status, else None."""
    for name in NAMES:
        state = docker("inspect", "-f", "{{.State.Running}}", name, check=False)
        if state.returncode != 0 or state.stdout.strip() != "true":
            return None
    text = docker("exec", NAMES[0], "cat", "/etc/leader-node/node.toml", check=False)
    if text.returncode != 0:
        return None
    return tomllib.loads(text.stdout)


def running_algorithm(config: dict[str, Any]) -> str | None:
    algorithms = set()
    for node_id, peer in config["peers"].items():
        try:
            code, body = http_get(peer.split(":")[0], HTTP_PORT, "/status", 2.0)
        except OSError:
            return None
        if code != 200:
            return None
        algorithms.add(json.loads(body)["algorithm"])
        del node_id
    return algorithms.pop() if len(algorithms) == 1 else None


def ensure_cluster(algorithm: str, fresh: bool) -> dict[str, Any]:
    config = cluster_config()
    running = running_algorithm(config) if config else None
    if config is not None and running == algorithm and not fresh:
        log(f"cluster up, algorithm {algorithm}: reusing it")
        return config
    # The committed code, not the working tree (others may be editing it): make cluster runs in a clean
    # export of HEAD, with this checkout's venv (its stamp must match HEAD's requirements).
    src = Path(tempfile.mkdtemp(prefix="leader-node-soak-src."))
    try:
        head = archive_head()  # resolved first: HEAD may move while this runs
        archive = subprocess.run(["git", "archive", head], cwd=REPO, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True)
        recipe = b"".join((src / f).read_bytes() for f in PIP_INPUTS)
        stamp = REPO / ".venv" / f".stamp-{hashlib.sha256(recipe).hexdigest()[:12]}"
        if not stamp.exists():
            raise RuntimeError(
                f"{stamp} missing: run `make venv` (HEAD's requirements differ from the venv's)"
            )
        # make cluster runs `make venv`; with the export's files newer than the stamp, make would reinstall
        # the venv, `pip install -e` of the export included, and leave this checkout's venv pointing at a
        # deleted directory. Same content as the stamp's: make them older than it.
        older = stamp.stat().st_mtime - 60
        for name in PIP_INPUTS:
            os.utime(src / name, (older, older))
        env = dict(os.environ, LEADER_NODE_ALGORITHM=algorithm, VENV=str(REPO / ".venv"))
        make = ["make", "-s", "--no-print-directory", "-C", str(src)]
        if config is not None:
            why = "--fresh" if running == algorithm else f"it runs {running or 'an unknown algorithm'}"
            log(f"cluster up, but {why}: make cluster-down first")
            subprocess.run([*make, "cluster-down"], check=True, env=env)
        log(f"make cluster (LEADER_NODE_ALGORITHM={algorithm}) from a clean export of HEAD {head} in {src}")
        subprocess.run([*make, "cluster"], check=True, env=env)
        MARKER.parent.mkdir(parents=True, exist_ok=True)
        full = subprocess.run(
            ["git", "rev-parse", head], cwd=REPO, capture_output=True, text=True, check=True
        )
        MARKER.write_text(json.dumps({"commit": full.stdout.strip(), "containers": container_ids()}) + "\n")
    finally:
        shutil.rmtree(src, ignore_errors=True)
    config = cluster_config()
    if config is None or running_algorithm(config) != algorithm:
        raise RuntimeError("make cluster finished but the cluster is not up with the wanted algorithm")
    return config


PIP_INPUTS = ("requirements-dev.txt", "requirements-deploy.txt", "pyproject.toml")  # the Makefile's STAMP


def archive_head() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short=10", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


MARKER = REPO / ".cache" / "soak-cluster.json"  # which commit the soak deployed to which containers


def container_ids() -> list[str]:
    return [docker("inspect", "-f", "{{.Id}}", name, check=False).stdout.strip() for name in NAMES]


def deployed_code() -> dict[str, Any]:
    """Which code the containers run: the installed package's node/*.py against the commit the soak
    deployed (when these very containers came from a soak's `make cluster`), else against HEAD (a
    `make cluster` of the working tree may have deployed uncommitted work)."""
    commit = None
    with contextlib.suppress(OSError, ValueError, KeyError):
        marker = json.loads(MARKER.read_text())
        if marker["containers"] == container_ids():
            commit = marker["commit"]
    head = (
        commit
        or subprocess.run(
            ["git", "rev-parse", "HEAD"], check=False, cwd=REPO, capture_output=True, text=True
        ).stdout
    )
    listing = docker(
        "exec", NAMES[0], "sh", "-c",
        "cd /opt/leader-node/lib/python3*/site-packages && find node -name '*.py' | sort | xargs sha256sum",
        check=False,
    ).stdout  # fmt: skip
    deployed = {path: digest for digest, path in (line.split() for line in listing.splitlines())}
    tracked = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", head.strip(), "node"],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
    ).stdout.split()
    differ = []
    for path in sorted(set(deployed) | {p for p in tracked if p.endswith(".py")}):
        at_head = subprocess.run(
            ["git", "show", f"{head.strip()}:{path}"], check=False, cwd=REPO, capture_output=True
        ).stdout
        if path not in deployed:
            differ.append(f"{path} (not deployed)")
        elif path not in tracked:
            differ.append(f"{path} (not in HEAD)")
        elif hashlib.sha256(at_head).hexdigest() != deployed[path]:
            differ.append(path)
    return {
        "head": head.strip(),
        "deployed_by_soak": commit is not None,
        "deployed_files": len(deployed),
        "differ_from_head": differ,
    }


# --------------------------------------------------------------------------------------------- polls


@dataclass
class Round:
    at: float  # wall time the round was sent
    # node -> (HTTP code or 0, leader_id, epoch, wall time the answer arrived here)
    answers: dict[int, tuple[int, int | None, int | None, float]]
    skipped: list[int] = field(default_factory=list)  # not asked: still waiting for 4 earlier answers

    def leaders(self) -> list[tuple[int, int | None]]:
        return [(n, a[2]) for n, a in self.answers.items() if a[0] == 200]


class Poller:
    """GET /leader on every node every POLL_INTERVAL_S, five requests at once per round."""

    def __init__(self, nodes: dict[int, str], out: Path) -> None:
        self.nodes = nodes
        self.rounds: list[Round] = []
        self._out = out.open("w", encoding="utf-8")
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=5 * 5, thread_name_prefix="poll")
        self._outstanding: Counter[int] = Counter()
        self._thread = threading.Thread(target=self._run, name="poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _ask(self, node_id: int) -> tuple[int, int | None, int | None, float]:
        try:
            code, body = http_get(self.nodes[node_id], HTTP_PORT, "/leader", POLL_TIMEOUT_S)
            doc = json.loads(body)
            return code, doc.get("leader_id"), doc.get("epoch"), round(time.time(), 3)
        except (OSError, ValueError, http.client.HTTPException):
            return 0, None, None, round(time.time(), 3)
        finally:
            with self._lock:
                self._outstanding[node_id] -= 1

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            at = time.time()
            futures, skipped = {}, []
            for node_id in self.nodes:
                with self._lock:
                    if self._outstanding[node_id] >= 4:  # a paused node: do not pile up connections
                        skipped.append(node_id)
                        continue
                    self._outstanding[node_id] += 1
                futures[node_id] = self._pool.submit(self._ask, node_id)
            threading.Thread(target=self._finish, args=(at, futures, skipped), daemon=True).start()
            next_at += POLL_INTERVAL_S
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _finish(self, at: float, futures: dict[int, Any], skipped: list[int]) -> None:
        answers = {}
        for node_id, future in futures.items():
            try:
                answers[node_id] = future.result(timeout=POLL_TIMEOUT_S + 2)
            except Exception:
                answers[node_id] = (0, None, None, round(time.time(), 3))
        with self._lock:
            self.rounds.append(Round(at, answers, skipped))
            self._out.write(json.dumps({"at": round(at, 3), "answers": answers, "skipped": skipped}) + "\n")

    def current_leader(self, max_age_s: float = 1.0) -> int | None:
        with self._lock:
            recent = [r for r in self.rounds[-20:] if r.at > time.time() - max_age_s]
        for rnd in reversed(recent):
            leaders = rnd.leaders()
            if len(leaders) == 1:
                return leaders[0][0]
        return None

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=True)
        time.sleep(0.2)
        with self._lock:
            self._out.close()
            self.rounds.sort(key=lambda r: r.at)


# --------------------------------------------------------------------------------------------- metrics


_REJECTION = re.compile(r'^leader_node_peer_rejections_total\{reason="([a-z_]+)"\} ([0-9.e+]+)$')
_HEARTBEATS = re.compile(r'^leader_node_messages_sent_total\{type="HEARTBEAT"\} ([0-9.e+]+)$')


class MetricsScraper:
    """leader_node_peer_rejections_total of every node, summed over the node's processes: counters
    reset on a restart, so each (node, process generation) keeps its last value. The hardened unit
    exports no process_start_time_seconds (ProcSubset=pid hides /proc/stat from prometheus_client), so a
    new process is recognised by its heartbeat counter going down, or marked by the soak when it stops
    or kills the node (after a last scrape)."""

    def __init__(self, nodes: dict[int, str]) -> None:
        self.nodes = nodes
        self.last: dict[tuple[int, int], dict[str, float]] = {}
        self.baseline: dict[tuple[int, int], dict[str, float]] = {}
        self.generation: Counter[int] = Counter()
        self.heartbeats: dict[int, float] = {}
        self.scrapes = 0
        self.failed = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics", daemon=True)

    def start(self) -> None:
        """Take the baseline first: a reused cluster's counters hold what happened before the soak."""
        for node_id in self.nodes:
            self.scrape(node_id)
        with self._lock:
            self.baseline = {key: dict(values) for key, values in self.last.items()}
        self._thread.start()

    def scrape(self, node_id: int) -> None:
        try:
            code, body = http_get(self.nodes[node_id], HTTP_PORT, "/metrics", 2.0)
        except (OSError, http.client.HTTPException):
            with self._lock:
                self.failed += 1
            return
        if code != 200:
            return
        heartbeats, values = None, {}
        for line in body.decode().splitlines():
            if match := _REJECTION.match(line):
                values[match.group(1)] = float(match.group(2))
            elif match := _HEARTBEATS.match(line):
                heartbeats = float(match.group(1))
        if heartbeats is not None:
            with self._lock:
                if heartbeats < self.heartbeats.get(node_id, 0.0):
                    self.generation[node_id] += 1
                self.heartbeats[node_id] = heartbeats
                self.last[(node_id, self.generation[node_id])] = values
                self.scrapes += 1

    def new_process(self, node_id: int) -> None:
        """The soak is about to stop or kill the node: scrape it once more, then count afresh."""
        self.scrape(node_id)
        with self._lock:
            self.generation[node_id] += 1
            self.heartbeats[node_id] = 0.0

    def _run(self) -> None:
        while not self._stop.wait(METRICS_INTERVAL_S):
            for node_id in self.nodes:
                self.scrape(node_id)

    def totals(self) -> tuple[dict[str, int], dict[int, dict[str, int]]]:
        total: Counter[str] = Counter()
        per_node: dict[int, Counter[str]] = defaultdict(Counter)
        with self._lock:
            for key, values in self.last.items():
                before = self.baseline.get(key, {})
                for reason, value in values.items():
                    total[reason] += int(value - before.get(reason, 0.0))
                    per_node[key[0]][reason] += int(value - before.get(reason, 0.0))
        return dict(total), {n: dict(c) for n, c in sorted(per_node.items())}

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=10)


# --------------------------------------------------------------------------------------------- hostile input


def _frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def _hello(cluster: str, sender: int, receiver: int, keys: list[str]) -> bytes:
    body = {
        "type": "HELLO",
        "v": 1,
        "cluster": cluster,
        "from": sender,
        "to": receiver,
        "nonce": os.urandom(16).hex(),
        "keys": keys,
    }
    return _frame(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())


def exchange(address: str, payload: bytes, source: str | None = None, read_s: float = 2.0) -> bytes:
    """Connect, send `payload`, read until the node closes (or `read_s`); returns what it sent."""
    got = bytearray()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if source:
            sock.bind((source, 0))
        sock.settimeout(2.0)
        sock.connect((address, PEER_PORT))
        with contextlib.suppress(OSError):
            sock.sendall(payload)
        deadline = time.monotonic() + read_s
        while time.monotonic() < deadline:
            sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            except OSError:
                break
            if not data:
                break
            got += data
    return bytes(got)


def forged_payloads(
    rng: random.Random, cluster: str, keys: list[str], target: int, members: list[int]
) -> list[tuple[str, Callable[[str], bytes]]]:
    """(kind, send(address) -> bytes) for each forged connection kind; see the module docstring."""
    others = [m for m in members if m != target]

    def simple(payload: bytes) -> Callable[[str], bytes]:
        return lambda address: exchange(address, payload)

    def bad_finish(address: str) -> bytes:
        # A well-formed HELLO from a member: the node answers WELCOME; the FINISH proof is forged.
        with socket.create_connection((address, PEER_PORT), timeout=2.0) as sock:
            sock.sendall(_hello(cluster, rng.choice(others), target, keys))
            welcome = sock.recv(65536)
            finish = {"type": "FINISH", "auth": os.urandom(32).hex()}
            with contextlib.suppress(OSError):
                sock.sendall(_frame(json.dumps(finish, separators=(",", ":")).encode()))
            sock.settimeout(2.0)
            with contextlib.suppress(OSError):
                while sock.recv(65536):
                    pass
            return welcome

    garbage = os.urandom(rng.randint(1, 300))
    return [
        ("garbage-bytes", simple(garbage)),
        ("garbage-frame", simple(_frame(os.urandom(rng.randint(1, 300))))),
        ("oversize-prefix", simple(struct.pack(">I", rng.choice([65537, 2**31, 2**32 - 1])) + b"x" * 64)),
        ("bad-finish-mac", bad_finish),
        ("wrong-cluster", simple(_hello("not-" + cluster, rng.choice(others), target, keys))),
        ("not-member", simple(_hello(cluster, 99, target, keys))),
        ("wrong-node", simple(_hello(cluster, rng.choice(others), rng.choice(others), keys))),
        ("unknown-key", simple(_hello(cluster, rng.choice(others), target, [os.urandom(8).hex()]))),
        ("session-frame-first", simple(_frame(struct.pack(">Q", 0) + os.urandom(32) + b'{"type":"x"}'))),
    ]


class SlowClients:
    """`count` connections from `sources` to address:port, one byte per second each, reopened at most
    once a second after the node closed them."""

    def __init__(self, address: str, port: int, count: int, sources: list[str]) -> None:
        self.opened = 0
        self.closed_by_node = 0
        self._address, self._port = address, port
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(sources[i % len(sources)],), daemon=True)
            for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def _run(self, source: str) -> None:
        while not self._stop.is_set():
            opened_at = time.monotonic()
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                    sock.bind((source, 0))
                    sock.settimeout(1.0)
                    sock.connect((self._address, self._port))
                    with self._lock:
                        self.opened += 1
                    byte = b"G" if self._port == HTTP_PORT else b"\x00"
                    while not self._stop.is_set():
                        sock.sendall(byte)
                        ready, _, _ = select.select([sock], [], [], 1.0)
                        if ready and not sock.recv(4096):
                            with self._lock:
                                self.closed_by_node += 1
                            break
            except OSError:
                with self._lock:
                    self.closed_by_node += 1
            self._stop.wait(max(0.0, 1 - (time.monotonic() - opened_at)))

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)


# --------------------------------------------------------------------------------------------- nemesis


@dataclass
class Fault:
    kind: str
    nodes: list[int]  # the nodes it takes down or cuts off (the majority rule counts them)
    start: float
    end: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    partition: tuple[list[int], list[int]] | None = None
    error: str | None = None
    changes: list[float] = field(default_factory=list)  # when it took a node down or brought it back


class Nemesis:
    def __init__(self, fc: Any, faults_mod: Any, args: argparse.Namespace, rng: random.Random) -> None:
        self.fc = fc
        self.fm = faults_mod
        self.rng = rng
        self.args = args
        self.timers = fc.timers
        self.members = [n.id for n in fc.nodes]
        self.address = {n.id: n.address for n in fc.nodes}
        self.poller: Poller | None = None
        self.metrics: MetricsScraper | None = None
        self.faults: list[Fault] = []
        self.active: list[Fault] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.starts: dict[int, list[float]] = defaultdict(list)
        self.threads: list[threading.Thread] = []
        self.recordings: dict[int, list[bytes]] = defaultdict(list)  # sender -> recorded sessions
        self.cluster_name = "leader-node"
        self.key_ids: list[str] = []
        self.forged: Counter[str] = Counter()
        self.replayed = 0
        self.replay_answers: Counter[str] = Counter()
        self.slow_stats: Counter[str] = Counter()
        self.max_pause_s = 3.5  # set from the unit's WatchdogSec: below its ping interval (half of it)

    # ------------------------------------------------------------------ bookkeeping

    def quorum(self) -> int:
        return len(self.members) // 2 + 1

    def down_nodes(self, faults: Iterable[Fault]) -> set[int]:
        return {n for f in faults if f.partition is None for n in f.nodes}

    def keeps_majority(self, candidate: Fault) -> bool:
        faults = [*self.active, candidate]
        down = self.down_nodes(faults)
        healthy = set(self.members) - down
        for f in faults:
            if f.partition is not None:
                side_a, side_b = f.partition
                big = side_a if len(side_a) > len(side_b) else side_b
                healthy &= set(big)
        return len(healthy) >= self.quorum()

    def busy(self) -> set[int]:
        return {n for f in self.active for n in f.nodes}

    def may_start(self, node_id: int) -> bool:
        now = time.monotonic()
        recent = [t for t in self.starts[node_id] if now - t < 60]
        self.starts[node_id] = recent
        return len(recent) < STARTS_PER_MINUTE

    def note_start(self, node_id: int) -> None:
        self.starts[node_id].append(time.monotonic())

    def node(self, node_id: int) -> Any:
        return self.fc.by_id[node_id]

    # ------------------------------------------------------------------ capture

    def capture(self, out_dir: Path) -> None:
        leader = self.poller.current_leader() if self.poller else None
        follower = self.rng.choice([m for m in self.members if m != leader])
        name = self.node(follower).name
        pid = docker("inspect", "-f", "{{.State.Pid}}", name).stdout.strip()
        pcap = out_dir / "capture.pcap"
        seconds = 4 * self.timers.heartbeat_s + 4
        self.fc.step(
            f"capture: sniffer in the network namespace of node {follower} ({name}, pid {pid}), "
            f"{seconds:.0f} s; systemctl restart leader-node on node {follower}"
        )
        sniffer = subprocess.Popen(
            ["nsenter", "-t", pid, "-n", sys.executable, str(Path(__file__).resolve()), "sniff",
             "--out", str(pcap), "--seconds", str(seconds), "--port", str(PEER_PORT)],
        )  # fmt: skip
        try:
            time.sleep(1.0)
            self.note_start(follower)
            self.fc.sh(self.node(follower), "systemctl restart leader-node")
            sniffer.wait(timeout=seconds + 30)
        finally:
            if sniffer.poll() is None:
                sniffer.terminate()
                sniffer.wait(timeout=10)
        sys.path.insert(0, str(REPO))
        from node.core.session import SessionError, parse_hello  # noqa: PLC0415

        for stream in read_sessions(pcap, PEER_PORT):
            (length,) = struct.unpack(">I", stream[:4])
            try:
                hello = parse_hello(stream[4 : 4 + length])
            except SessionError:
                continue
            self.recordings[hello.sender].append(stream)
            self.cluster_name = hello.cluster
            self.key_ids = list(hello.key_ids)
        summary = {sender: [len(s) for s in streams] for sender, streams in sorted(self.recordings.items())}
        self.fc.step(f"capture: recorded sessions by sender (bytes each): {summary}")
        if not self.recordings:
            raise RuntimeError(f"the capture {pcap} holds no whole peer session")

    # ------------------------------------------------------------------ the fault kinds

    def plan(self) -> Fault | None:
        """Pick a fault that may start now, or None."""
        kinds = {
            "kill-leader": 2.0,
            "stop-start-node": 1.0,
            "stop-start-leader": 1.5,
            "pause-node": 1.0,
            "pause-leader": 1.5,
            "partition": 2.5,
            "replay": 1.0,
            "replay-paused-leader": 1.0,
            "forge": 1.5,
            "slow-clients": 1.0,
        }
        kind = self.rng.choices(list(kinds), weights=list(kinds.values()))[0]
        leader = self.poller.current_leader() if self.poller else None
        busy = self.busy()
        free = [m for m in self.members if m not in busy]
        now = time.time()
        if kind in ("kill-leader", "stop-start-leader", "pause-leader", "replay-paused-leader"):
            if leader is None or leader in busy:
                return None
            if kind in ("kill-leader", "stop-start-leader") and not self.may_start(leader):
                return None
            fault = Fault(kind, [leader], now)
        elif kind in ("stop-start-node", "pause-node"):
            choices = [m for m in free if kind == "pause-node" or self.may_start(m)]
            if not choices:
                return None
            fault = Fault(kind, [self.rng.choice(choices)], now)
        elif kind == "partition":
            if any(f.partition for f in self.active):
                return None
            variant = self.rng.choice(["1|4", "2|3", "isolate-leader"])
            down = sorted(self.down_nodes(self.active))
            if variant == "isolate-leader":
                if leader is None:
                    return None
                small = [leader]
            elif variant == "1|4":
                small = [self.rng.choice(self.members)]
            else:
                rest = [m for m in self.members if m not in down]
                small = (down + self.rng.sample(rest, 2))[:2]
            big = [m for m in self.members if m not in small]
            fault = Fault(f"partition-{variant}", small, now, partition=(sorted(small), big))
        else:  # replay, forge, slow-clients: they take nobody down
            target = self.rng.choice(self.members)
            fault = Fault(kind, [], now, detail={"target": target})
        if not self.keeps_majority(fault):
            return None
        return fault

    def run_fault(self, fault: Fault) -> None:
        try:
            getattr(self, "do_" + fault.kind.split("-")[0].replace("-", "_"))(fault)
        except BaseException as exc:
            fault.error = f"{type(exc).__name__}: {exc}"
            self.fc.step(f"fault {fault.kind} failed: {fault.error}")
            traceback.print_exc()
        finally:
            fault.end = time.time()
            with self.lock:
                self.active.remove(fault)

    def hold(self, seconds: float) -> None:
        """Sleep, but not past the end of the soak by much (faults still get undone)."""
        self.stop.wait(seconds) if seconds > 0 else None

    def wait_active(self, node: Any, deadline_s: float) -> bool:
        until = time.monotonic() + deadline_s
        while time.monotonic() < until:
            with contextlib.suppress(BaseException):
                if self.fc.is_active(node):
                    return True
            time.sleep(0.2)
        return False

    def do_kill(self, fault: Fault) -> None:
        node = self.node(fault.nodes[0])
        if self.metrics:
            self.metrics.new_process(node.id)
        self.note_start(node.id)
        fault.changes.append(self.fc.kill(node))
        time.sleep(0.5)
        fault.detail["back_active"] = self.wait_active(node, 15)
        fault.changes.append(time.time())
        if not fault.detail["back_active"]:
            self.fc.step(f"node {node.id} not active 15 s after SIGKILL: systemctl start")
            self.fc.sh(node, "systemctl reset-failed leader-node; systemctl start leader-node", check=False)
        time.sleep(self.timers.failure_s)  # its start-up blackout: still impaired

    def do_stop(self, fault: Fault) -> None:
        node = self.node(fault.nodes[0])
        if self.metrics:
            self.metrics.new_process(node.id)
        fault.changes.append(self.fc.stop(node))
        down_s = self.rng.uniform(0.5, 2.5) * self.timers.failure_s
        fault.detail["down_s"] = round(down_s, 2)
        self.hold(down_s)
        self.note_start(node.id)
        fault.changes.append(self.fc.start(node))
        time.sleep(self.timers.failure_s)

    def do_pause(self, fault: Fault) -> None:
        node = self.node(fault.nodes[0])
        paused_s = min(self.rng.uniform(0.5, 1.5) * self.timers.failure_s, self.max_pause_s)
        fault.detail["paused_s"] = round(paused_s, 2)
        fault.changes.append(self.fc.pause(node))
        try:
            self.hold(paused_s)
        finally:
            fault.changes.append(self.fc.resume(node))
        time.sleep(1.0)

    def do_partition(self, fault: Fault) -> None:
        assert fault.partition is not None
        side_a, side_b = fault.partition
        cut_s = self.rng.uniform(1.0, 3.0) * self.timers.failure_s
        fault.detail["cut_s"] = round(cut_s, 2)
        fault.changes.append(
            self.fc.partition([self.node(n) for n in side_a], [self.node(n) for n in side_b])
        )
        try:
            self.hold(cut_s)
        finally:
            fault.changes.append(self.fc.heal())
        time.sleep(2.0)

    def _replay_to(self, recorded: bytes, receivers: list[int], seconds: float, fault: Fault) -> None:
        until = time.monotonic() + seconds
        sent = 0
        answers: Counter[str] = Counter()

        def one(receiver: int) -> str:
            try:
                got = exchange(self.address[receiver], recorded, read_s=1.0)
            except OSError as exc:
                return f"connect failed ({type(exc).__name__})"
            if b'"WELCOME"' in got:
                return "WELCOME, then closed"
            return "closed without a reply" if not got else "other reply"

        with ThreadPoolExecutor(max_workers=len(receivers)) as pool:
            while time.monotonic() < until:
                started = time.monotonic()
                for answer in pool.map(one, receivers):
                    answers[answer] += 1
                    sent += 1
                time.sleep(max(0.0, 0.2 - (time.monotonic() - started)))
        fault.detail["connections"] = sent
        fault.detail["answers"] = dict(answers)
        with self.lock:
            self.replayed += sent
            self.replay_answers.update(answers)

    def do_replay(self, fault: Fault) -> None:
        paused = fault.kind == "replay-paused-leader"
        sender = fault.nodes[0] if paused else self.rng.choice(sorted(self.recordings))
        if sender not in self.recordings:
            sender = self.rng.choice(sorted(self.recordings))
        recorded = self.rng.choice(self.recordings[sender])
        receivers = [m for m in self.members if m != sender]
        fault.detail.update(sender=sender, recorded_bytes=len(recorded), receivers=receivers)
        if paused:
            node = self.node(fault.nodes[0])
            # Longer than failure_timeout (the followers must elect while the replay runs), shorter than
            # the watchdog's ping interval (a longer pause is a watchdog restart, not a pause).
            paused_s = min(self.rng.uniform(1.1, 1.5) * self.timers.failure_s, self.max_pause_s)
            fault.detail["paused_s"] = round(paused_s, 2)
            fault.changes.append(self.fc.pause(node))
            self.fc.step(f"replay: node {sender}'s recorded session to nodes {receivers} while it is paused")
            try:
                self._replay_to(recorded, receivers, paused_s, fault)
            finally:
                fault.changes.append(self.fc.resume(node))
            time.sleep(1.0)
        else:
            seconds = self.rng.uniform(3, 8)
            self.fc.step(
                f"replay: node {sender}'s recorded session ({len(recorded)} bytes) to nodes {receivers} "
                f"every 200 ms for {seconds:.1f} s"
            )
            self._replay_to(recorded, receivers, seconds, fault)

    def do_forge(self, fault: Fault) -> None:
        target = fault.detail["target"]
        count = self.rng.randint(10, 30)
        kinds: Counter[str] = Counter()
        self.fc.step(f"forge: {count} hostile connections to node {target}'s peer port")
        for _ in range(count):
            options = forged_payloads(self.rng, self.cluster_name, self.key_ids, target, self.members)
            kind, send = self.rng.choice(options)
            try:
                send(self.address[target])
                kinds[kind] += 1
            except OSError as exc:
                kinds[f"{kind} (connect failed: {type(exc).__name__})"] += 1
        fault.detail["sent"] = dict(kinds)
        with self.lock:
            self.forged.update(kinds)

    def do_slow(self, fault: Fault) -> None:
        target = fault.detail["target"]
        seconds = self.rng.uniform(10, 30)
        fault.detail["seconds"] = round(seconds, 1)
        self.fc.step(
            f"slow-clients: 40 to node {target}'s peer port and 40 to its HTTP port from "
            f"{SLOW_SOURCES[0]}-{SLOW_SOURCES[-1].rsplit('.', 1)[1]}, one byte per second, {seconds:.0f} s"
        )
        clients = [
            SlowClients(self.address[target], PEER_PORT, 40, SLOW_SOURCES),
            SlowClients(self.address[target], HTTP_PORT, 40, SLOW_SOURCES),
        ]
        try:
            self.hold(seconds)
        finally:
            for c in clients:
                c.close()
        fault.detail.update(
            peer_opened=clients[0].opened,
            peer_closed_by_node=clients[0].closed_by_node,
            http_opened=clients[1].opened,
            http_closed_by_node=clients[1].closed_by_node,
        )
        with self.lock:
            self.slow_stats.update(
                peer_opened=clients[0].opened,
                peer_closed_by_node=clients[0].closed_by_node,
                http_opened=clients[1].opened,
                http_closed_by_node=clients[1].closed_by_node,
            )

    # ------------------------------------------------------------------ the loop

    def run(self, deadline: float) -> None:
        next_at = time.monotonic() + self.rng.uniform(1, 3)
        last_progress = time.monotonic()
        while time.monotonic() < deadline and not self.stop.is_set():
            if time.monotonic() - last_progress > 60:
                last_progress = time.monotonic()
                kinds = Counter(f.kind for f in self.faults)
                log(f"progress: {len(self.faults)} faults so far {dict(kinds)}; "
                    f"{(deadline - time.monotonic()) / 60:.1f} min left")  # fmt: skip
            if time.monotonic() < next_at:
                time.sleep(0.1)
                continue
            with self.lock:
                room = len(self.active) < self.args.max_faults
            fault = self.plan() if room else None
            if fault is None:
                time.sleep(0.3)
                continue
            with self.lock:
                self.active.append(fault)
                self.faults.append(fault)
            thread = threading.Thread(target=self.run_fault, args=(fault,), name=fault.kind, daemon=True)
            self.threads.append(thread)
            thread.start()
            next_at = time.monotonic() + self.rng.uniform(1, 6)

    def finish(self, timeout_s: float = 60) -> None:
        self.stop.set()
        until = time.monotonic() + timeout_s
        for thread in self.threads:
            thread.join(timeout=max(0.1, until - time.monotonic()))


# --------------------------------------------------------------------------------------------- analysis


@dataclass
class Gap:
    start: float
    end: float
    causes: list[str]
    since_last_change_s: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


def leaderless_gaps(rounds: list[Round], faults: list[Fault]) -> list[Gap]:
    """Spans of consecutive rounds in which no node answered 200, each with the faults that were
    active when it began (or the last one that started before it) and the time from the last fault
    change (a start or an end) inside the span to its end."""
    gaps = []
    begun: float | None = None
    for rnd in rounds:
        if not rnd.leaders() and rnd.skipped:
            continue  # a node that was not asked may have led: this round tells nothing
        if rnd.leaders():
            if begun is not None:
                gaps.append(_gap(begun, rnd.at, faults))
                begun = None
        elif begun is None:
            begun = rnd.at
    if begun is not None and rounds:
        gaps.append(_gap(begun, rounds[-1].at + POLL_INTERVAL_S, faults))
    return gaps


def gaps_by_kind(gaps: list[Gap], faults: list[Fault]) -> dict[str, dict[str, float]]:
    """Leaderless spans grouped by the last fault that started before each (an approximation when two
    faults overlap): how many, median and longest, against how many faults of that kind there were."""
    grouped: dict[str, list[float]] = defaultdict(list)
    for gap in gaps:
        before = [f for f in faults if f.start <= gap.start + 0.05]
        grouped[before[-1].kind if before else "none"].append(gap.seconds)
    injected = Counter(f.kind for f in faults)
    return {
        kind: {
            "faults": injected.get(kind, 0),
            "spans": len(spans),
            "median_s": round(statistics.median(spans), 2),
            "max_s": round(max(spans), 2),
        }
        for kind, spans in sorted(grouped.items())
    }


def _gap(start: float, end: float, faults: list[Fault]) -> Gap:
    active = [f for f in faults if f.start <= start and (f.end is None or f.end >= start - 0.5)]
    if not active:
        before = [f for f in faults if f.start <= start]
        active = before[-1:] if before else []
    causes = [f"{f.kind} {f.nodes or f.detail.get('target', '')} at {utc(f.start)}" for f in active]
    changes = [t for f in faults for t in (f.start, *f.changes) if start <= t <= end]
    since = end - max([start, *changes])
    return Gap(start, end, causes, since)


def analyse_journals(files: list[Path], since: float, until: float) -> dict[str, Any]:
    from node.history.checkers import check_history  # noqa: PLC0415
    from node.history.model import parse_journal_json  # noqa: PLC0415
    from node.history.timeline import build_timeline  # noqa: PLC0415

    events = []
    problems: list[str] = []
    pattern = re.compile(
        r"status=70|Watchdog timeout|code=dumped|Start request repeated too quickly|Traceback|"
        r"status=1/FAILURE|start-limit-hit"
    )
    for path in files:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        events += parse_journal_json(lines, path.name)
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            at = int(entry.get("__REALTIME_TIMESTAMP", 0)) / 1e6
            message = str(entry.get("MESSAGE", ""))
            if since <= at <= until and pattern.search(message):
                problems.append(f"{utc(at)} {path.stem}: {message[:300]}")
    violations = check_history(events)
    terms = {f"{t.epoch}/{t.leader_id}": t.start_ms / 1000 for t in build_timeline(events)}
    window = [e for e in events if since * 1000 <= e.time_ms <= until * 1000]
    kinds = Counter(e.event for e in window)
    became = sorted((e for e in window if e.event == "became_leader"), key=lambda e: e.time_ms)
    return {
        "events": len(events),
        "events_in_soak": len(window),
        "violations": [v.describe() for v in violations],
        "became_leader_in_soak": len(became),
        "epochs_in_soak": sorted({e.epoch for e in became if e.epoch is not None}),
        "crashed_events": kinds.get("crashed", 0),
        "elections_started": kinds.get("election_started", 0),
        "event_counts": dict(sorted(kinds.items())),
        "unexpected_exits": problems,
        "terms": terms,  # "epoch/leader" -> when it logged became_leader (wall time, s)
    }


# --------------------------------------------------------------------------------------------- main


def bridge_name() -> str:
    net_id = docker("network", "inspect", "-f", "{{.Id}}", NETWORK).stdout.strip()
    return f"br-{net_id[:12]}"


def set_slow_sources(add: bool) -> None:
    bridge = bridge_name()
    for address in SLOW_SOURCES:
        verb = "add" if add else "del"
        done = subprocess.run(
            ["ip", "addr", verb, f"{address}/32", "dev", bridge], capture_output=True, text=True, check=False
        )
        if add and done.returncode != 0 and "File exists" not in done.stderr:
            raise RuntimeError(f"ip addr add {address}/32 dev {bridge}: {done.stderr.strip()}")


def restore_containers(fc: Any) -> None:
    """Heal, resume, start; then remove the soak's iptables chain (jump and chain) everywhere."""
    with contextlib.suppress(BaseException):
        fc.restore()
    for node in fc.nodes:
        fc.sh(
            node,
            f"while iptables -w -D INPUT -j {SOAK_CHAIN} 2>/dev/null; do :; done; "
            f"iptables -w -F {SOAK_CHAIN} 2>/dev/null; iptables -w -X {SOAK_CHAIN} 2>/dev/null; true",
            check=False,
        )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command")
    sniff_cmd = sub.add_parser("sniff", help="internal: capture peer traffic (run under nsenter -n)")
    sniff_cmd.add_argument("--out", type=Path, required=True)
    sniff_cmd.add_argument("--seconds", type=float, required=True)
    sniff_cmd.add_argument("--port", type=int, default=PEER_PORT)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--algorithm", choices=("bully", "ring"), default="bully")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--max-faults", type=int, default=2, help="faults at once (default 2)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--fresh", action="store_true", help="recreate the cluster (make cluster-down, make cluster) first"
    )
    args = parser.parse_args(argv)
    if args.command == "sniff":
        return sniff(args.out, args.seconds, args.port)
    if os.geteuid() != 0:
        print("make soak needs root (docker, nsenter, ip addr on the bridge)", file=sys.stderr)
        return EXIT_SOAK_FAILED
    return soak(args)


def soak(args: argparse.Namespace) -> int:
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    log(f"soak: seed {seed} (replay the same choices with SOAK_SEED={seed}), {args.minutes} min, "
        f"algorithm {args.algorithm}, at most {args.max_faults} faults at once")  # fmt: skip

    def on_term(*_: object) -> None:
        raise SystemExit(EXIT_SOAK_FAILED)

    signal.signal(signal.SIGTERM, on_term)
    config = ensure_cluster(args.algorithm, args.fresh)
    sys.path[:0] = [str(REPO), str(REPO / "molecule"), str(REPO / "molecule" / "shared")]
    import conftest  # noqa: PLC0415 - molecule/conftest.py: Timers
    import faults as faults_mod  # noqa: PLC0415 - molecule/shared/faults.py: FaultCluster

    faults_mod.CHAIN = SOAK_CHAIN  # the same helpers; the soak's rules live in their own chain
    started_utc = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out_dir = args.out or REPO / "artifacts" / f"soak-{args.algorithm}-{started_utc}"
    out_dir.mkdir(parents=True, exist_ok=True)
    timers = conftest.Timers(
        heartbeat_s=duration_s(config.get("heartbeat_interval", f"{DEFAULT_HEARTBEAT_INTERVAL_MS}ms")),
        failure_s=duration_s(config.get("failure_timeout", f"{DEFAULT_FAILURE_TIMEOUT_MS}ms")),
        election_s=duration_s(config.get("election_timeout", f"{DEFAULT_ELECTION_TIMEOUT_MS}ms")),
    )
    hosts = []
    for node_id, peer in sorted(config["peers"].items(), key=lambda kv: int(kv[0])):
        hosts.append(
            DockerHost(
                f"leader-node-{node_id}",
                {
                    "leader_node_id": int(node_id),
                    "inventory_hostname": f"leader-node-{node_id}",
                    "leader_node_address": peer.split(":")[0],
                    "leader_node_algorithm": config["algorithm"],
                    "leader_node_http_port": HTTP_PORT,
                },
            )
        )
    fc = faults_mod.FaultCluster(hosts, timers, out_dir)
    # A silent leader is replaced within failure_timeout + listen (2 heartbeats) + 2 x election_timeout
    # + the backoff cap (docs/architecture.md, rule 4); 3 s of margin for a loaded machine.
    bound_s = timers.failure_s + 2 * timers.heartbeat_s + 2 * timers.election_s + timers.heartbeat_s / 2 + 3
    nodes = {n.id: n.address for n in fc.nodes}
    poller = Poller(nodes, out_dir / "polls.jsonl")
    metrics = MetricsScraper(nodes)
    nemesis = Nemesis(fc, faults_mod, args, rng)
    nemesis.poller, nemesis.metrics = poller, metrics
    watchdog = fc.sh(fc.nodes[0], "systemctl show -p WatchdogUSec --value leader-node", check=False).stdout
    watchdog_s = duration_s(watchdog) if re.fullmatch(r"\s*[0-9.]+m?s\s*", watchdog) else 10.0
    # Half of WatchdogSec is the daemon's ping interval; a pause longer than that may be a watchdog
    # restart. 1.5 s of margin for the `docker exec` latency of kill -STOP and -CONT on a busy machine.
    nemesis.max_pause_s = watchdog_s / 2 - 1.5
    result: dict[str, Any] = {"seed": seed, "algorithm": args.algorithm, "out_dir": str(out_dir)}
    result["code"] = deployed_code()
    log(f"deployed code: HEAD {result['code']['head'][:10]}, differs in {result['code']['differ_from_head']}")
    soak_start = soak_end = time.time()
    settled_after: float | None = None
    error: str | None = None
    try:
        restore_containers(fc)  # leftovers of an aborted soak
        set_slow_sources(False)
        set_slow_sources(True)
        agreement = fc.settle()
        result["leader_at_start"] = {"leader": agreement.leader_id, "epoch": agreement.epoch}
        poller.start()
        metrics.start()
        time.sleep(1.0)
        nemesis.capture(out_dir)
        fc.settle()
        soak_start = time.time()
        fc.step(f"soak: faults start, {args.minutes} min, seed {seed}")
        nemesis.run(time.monotonic() + args.minutes * 60)
        fc.step("soak: no new faults; waiting for the active ones to be undone")
        nemesis.finish()
        soak_end = time.time()
        restore_containers(fc)
        try:
            agreement = fc.settle()
            settled_after = time.time() - soak_end
            result["leader_at_end"] = {"leader": agreement.leader_id, "epoch": agreement.epoch}
        except BaseException as exc:
            error = f"no agreement at the end: {exc}"
        time.sleep(2 * POLL_INTERVAL_S + POLL_TIMEOUT_S)
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    finally:
        nemesis.finish(timeout_s=30)
        poller.stop()
        for node_id in nodes:
            metrics.scrape(node_id)
        metrics.stop()
        restore_containers(fc)
        with contextlib.suppress(Exception):
            set_slow_sources(False)
        if soak_end <= soak_start:  # interrupted before the faults ended
            soak_end = time.time()

    try:
        files = fc.collect()
    except BaseException as exc:
        print(f"soak: could not collect the journals: {exc}", file=sys.stderr)
        return EXIT_SOAK_FAILED
    check = subprocess.run(
        [sys.executable, "-m", "node", "check-history", "--svg", str(out_dir / "timeline.svg"),
         "--steps", str(out_dir / "steps.txt"), *map(str, files)],
        capture_output=True, text=True, check=False, cwd=REPO,
    )  # fmt: skip
    (out_dir / "timeline.txt").write_text(check.stdout + check.stderr, encoding="utf-8")
    journal = analyse_journals(files, soak_start, time.time())
    rounds = [r for r in poller.rounds if r.at >= soak_start]
    gaps = leaderless_gaps(rounds, nemesis.faults)
    same_epoch, other_epoch, stale = [], [], []
    for rnd in rounds:
        leaders = rnd.leaders()
        if len(leaders) > 1:
            epochs = [e for _, e in leaders]
            seen = {
                "sent": utc(rnd.at),
                "answers": {n: {"epoch": e, "answered": utc(rnd.answers[n][3])} for n, e in leaders},
            }
            if len(set(epochs)) < len(epochs):
                same_epoch.append(seen)
                continue
            other_epoch.append(seen)
            # Proven at one moment: the higher epoch's leader took office (its became_leader line) before
            # the request was even sent, and a lower epoch still answered 200 to that request.
            top_node, top_epoch = max(leaders, key=lambda ne: ne[1] or 0)
            began = journal["terms"].get(f"{top_epoch}/{top_node}")
            if began is not None and began < rnd.at:
                for node, epoch in leaders:
                    if epoch != top_epoch:
                        stale.append(
                            seen
                            | {
                                "stale_node": node,
                                "stale_epoch": epoch,
                                "leader": top_node,
                                "leader_epoch": top_epoch,
                                "leader_since": utc(began),
                            }
                        )
    changes, previous = 0, None
    for rnd in rounds:
        leaders = rnd.leaders()
        if len(leaders) == 1 and leaders[0] != previous:
            changes += previous is not None
            previous = leaders[0]
    worst = max(gaps, key=lambda g: g.seconds, default=None)
    worst_recovery = max(gaps, key=lambda g: g.since_last_change_s, default=None)
    rejections, rejections_by_node = metrics.totals()
    kinds = Counter(f.kind for f in nemesis.faults)
    failures: list[str] = []
    if journal["violations"]:
        failures.append(f"check-history: {len(journal['violations'])} violation(s)")
    if check.returncode != 0:
        failures.append(f"leader-node check-history exited {check.returncode}")
    if same_epoch:
        failures.append(f"{len(same_epoch)} poll round(s) with two nodes answering 200 under one epoch")
    if stale:
        failures.append(
            f"{len(stale)} stale 200(s): a node answered 200 under a lower epoch to a request sent after the "
            "higher epoch's leader took office (README: /leader answers 200 on at most one node at a time)"
        )
    if journal["crashed_events"] or journal["unexpected_exits"]:
        failures.append(
            f"daemon crashes or unexpected exits: {journal['crashed_events']} crashed events, "
            f"{len(journal['unexpected_exits'])} journal lines"
        )
    if worst_recovery is not None and worst_recovery.since_last_change_s > bound_s:
        failures.append(
            f"no leader for {worst_recovery.since_last_change_s:.1f} s after the last fault change "
            f"(bound {bound_s:.1f} s)"
        )
    if error:
        failures.append(error)
    result.update(
        {
            "started": utc(soak_start),
            "ended": utc(soak_end),
            "duration_s": round(soak_end - soak_start, 1),
            "minutes_asked": args.minutes,
            "timers": asdict(timers),
            "leaderless_bound_s": round(bound_s, 2),
            "faults_total": len(nemesis.faults),
            "faults_by_kind": dict(sorted(kinds.items())),
            "fault_errors": [f"{f.kind}: {f.error}" for f in nemesis.faults if f.error],
            "forged_connections_by_kind": dict(sorted(nemesis.forged.items())),
            "replayed_connections": nemesis.replayed,
            "replay_answers": dict(nemesis.replay_answers),
            "slow_clients": dict(nemesis.slow_stats),
            "recorded_sessions": {str(s): len(v) for s, v in sorted(nemesis.recordings.items())},
            "poll_rounds": len(rounds),
            "leader_changes_polled": changes,
            "leader_changes_journal": journal["became_leader_in_soak"],
            "leaderless_spans": len(gaps),
            "leaderless_by_last_fault": gaps_by_kind(gaps, nemesis.faults),
            "leaderless_spans_1s_or_more": sum(1 for g in gaps if g.seconds >= 1.0),
            "leaderless_total_s": round(sum(g.seconds for g in gaps), 1),
            "worst_leaderless_s": round(worst.seconds, 2) if worst else 0.0,
            "worst_leaderless": asdict(worst) | {"start": utc(worst.start)} if worst else None,
            "worst_recovery_after_last_fault_change_s": round(worst_recovery.since_last_change_s, 2)
            if worst_recovery
            else 0.0,
            "worst_recovery": asdict(worst_recovery) | {"start": utc(worst_recovery.start)}
            if worst_recovery
            else None,
            "longest_leaderless": [
                {"start": utc(g.start), "seconds": round(g.seconds, 2), "causes": g.causes}
                for g in sorted(gaps, key=lambda g: -g.seconds)[:10]
            ],
            "two_leaders_same_epoch": len(same_epoch),
            "two_leaders_same_epoch_rounds": same_epoch[:20],
            "two_leaders_different_epochs": len(other_epoch),
            "two_leaders_different_epochs_rounds": other_epoch[:20],
            "stale_200": len(stale),
            "stale_200_rounds": stale[:20],
            "history": journal,
            "check_history_exit": check.returncode,
            "peer_rejections_total": rejections,
            "peer_rejections_by_node": rejections_by_node,
            "metrics_scrapes": metrics.scrapes,
            "settled_after_s": round(settled_after, 2) if settled_after is not None else None,
            "failures": failures,
            "faults": [
                asdict(f) | {"start": utc(f.start), "end": utc(f.end) if f.end else None}
                for f in nemesis.faults
            ],
        }
    )
    (out_dir / "report.json").write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    (out_dir / "report.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
    log(f"report: {out_dir}/report.md")
    if error and not (journal["violations"] or same_epoch):
        return EXIT_SOAK_FAILED
    return EXIT_VIOLATION if failures else EXIT_OK


def esc(text: str) -> str:
    """A markdown table cell: fault kinds like partition-1|4 hold a pipe."""
    return text.replace("|", "\\|")


def markdown(r: dict[str, Any]) -> str:
    verdict = "PASS" if not r["failures"] else "FAIL: " + "; ".join(r["failures"])
    lines = [
        f"# Soak {r['algorithm']}, {r['started']}",
        "",
        f"**{verdict}**",
        "",
        "| | |",
        "| --- | --- |",
        f"| duration | {r['duration_s']} s of faults ({r['minutes_asked']} min asked), {r['started']} .. "
        f"{r['ended']} |",
        f"| seed | {r['seed']} (`SOAK_SEED={r['seed']}`) |",
        f"| code | {r['code']['head'][:10]} ("
        + ("deployed by the soak from a clean export" if r["code"]["deployed_by_soak"] else "HEAD")
        + "); the containers' node/ differs from it in: "
        + f"{', '.join(r['code']['differ_from_head']) or 'nothing'} |",
        f"| timers | heartbeat {r['timers']['heartbeat_s']} s, failure {r['timers']['failure_s']} s, "
        f"election {r['timers']['election_s']} s |",
        f"| faults injected | {r['faults_total']} |",
        f"| leader changes | {r['leader_changes_journal']} `became_leader` in the journals, "
        f"{r['leader_changes_polled']} changes of the 200-answering node in the polls |",
        f"| epochs | {r.get('leader_at_start', {}).get('epoch')} at the start, "
        f"{r.get('leader_at_end', {}).get('epoch')} at the end |",
        f"| `/leader` poll rounds | {r['poll_rounds']} (every {POLL_INTERVAL_S * 1000:.0f} ms, all five) |",
        f"| leaderless spans | {r['leaderless_spans']} ({r['leaderless_spans_1s_or_more']} of 1 s or more), "
        f"{r['leaderless_total_s']} s in all |",
        f"| worst leaderless time (polls) | {r['worst_leaderless_s']} s"
        + (
            f", from {r['worst_leaderless']['start']}; causes: "
            + esc("; ".join(r["worst_leaderless"]["causes"]))
            if r["worst_leaderless"]
            else ""
        )
        + " |",
        f"| worst time to a leader after the last fault change | "
        f"{r['worst_recovery_after_last_fault_change_s']} s (bound {r['leaderless_bound_s']} s) |",
        f"| two leaders in one round, same epoch | **{r['two_leaders_same_epoch']}** (must be 0) |",
        f"| two leaders in one round, different epochs | {r['two_leaders_different_epochs']}, of which "
        f"**{r['stale_200']}** proven at one moment (a lower epoch's 200 to a request sent after the higher "
        "epoch's leader took office; must be 0) |",
        f"| check-history violations | **{len(r['history']['violations'])}** (must be 0; "
        f"{r['history']['events']} events) |",
        f"| crashes / unexpected exits | {r['history']['crashed_events']} / "
        f"{len(r['history']['unexpected_exits'])} |",
        f"| agreement after the heal | {r['settled_after_s']} s |",
        "",
        "## Faults by kind",
        "",
        "| kind | count |",
        "| --- | ---: |",
        *(f"| {esc(k)} | {v} |" for k, v in r["faults_by_kind"].items()),
        "",
        f"Forged connections: {r['forged_connections_by_kind']}. Replayed sessions: "
        f"{r['replayed_connections']} connections ({r['replay_answers']}), recorded sessions by sender: "
        f"{r['recorded_sessions']}. Slow clients: {r['slow_clients']}.",
        "",
        "## Rejected peer connections (`leader_node_peer_rejections_total`, all nodes, all processes)",
        "",
        "| reason | count |",
        "| --- | ---: |",
        *(f"| {k} | {v} |" for k, v in sorted(r["peer_rejections_total"].items()) if v),
        "",
        "## Leaderless spans by the last fault that started before them",
        "",
        "| fault | injected | spans | median (s) | longest (s) |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(
            f"| {esc(k)} | {v['faults']} | {v['spans']} | {v['median_s']} | {v['max_s']} |"
            for k, v in r.get("leaderless_by_last_fault", {}).items()
        ),
        "",
        "## Longest leaderless spans",
        "",
        "| start | seconds | faults active (or the last one before) |",
        "| --- | ---: | --- |",
        *(
            f"| {g['start']} | {g['seconds']} | {esc('; '.join(g['causes']))} |"
            for g in r["longest_leaderless"]
        ),
        "",
    ]
    if r["history"]["violations"]:
        lines += ["## check-history violations", "", "```", *r["history"]["violations"], "```", ""]
    if r["history"]["unexpected_exits"]:
        lines += [
            "## Unexpected exits (journal)",
            "",
            "```",
            *r["history"]["unexpected_exits"][:50],
            "```",
            "",
        ]
    if r["stale_200_rounds"]:
        lines += ["## Stale 200s", "", "```", *(json.dumps(x) for x in r["stale_200_rounds"]), "```", ""]
    if r["fault_errors"]:
        lines += ["## Faults that failed to apply", "", *(f"- {e}" for e in r["fault_errors"]), ""]
    lines += [
        "Files: `polls.jsonl` (every round), `steps.txt` (every fault step), `leader-node-N.journal.json`, "
        "`timeline.txt` and `timeline.svg` (`leader-node check-history`), `capture.pcap`, `report.json`.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
