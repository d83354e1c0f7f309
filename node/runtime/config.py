"""node.toml -> a validated, frozen NodeConfig (every key, default and error: docs/configuration.md).

Every error names the offending field, so that `leader-node check-config` tells an operator exactly what
to fix. Relative paths (`secret_file`, `state_dir`, `control_socket`, the hooks) are resolved against
the config file's directory.
The rules on ids and timers are node/core/settings.py's (check_node_id, check_timers), applied here with
the file's key names; `check-config` is also what the Ansible role validates every rendered file with.
"""

from __future__ import annotations

import os
import re
import socket
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from node.algorithms import ALGORITHMS
from node.control import DEFAULT_CONTROL_SOCKET
from node.core import durations
from node.core.settings import Settings, SettingsError, check_node_id, check_timers
from node.runtime.hooks import HooksConfig

DEFAULT_PEER_PORT = 7700
DEFAULT_HTTP_LISTEN = "0.0.0.0:7701"
DEFAULT_HTTP_PORT = 7701
DEFAULT_STATE_DIR = "/var/lib/leader-node"
DEFAULT_ALGORITHM = "bully"
DEFAULT_CLUSTER_NAME = "leader-node"
MAX_CLUSTER_NAME_CHARS = 64  # node/core/session.py's limit
_CLUSTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MIN_SECRET_BYTES = 16
MAX_SECRET_BYTES = 4096  # a secret file this large is almost certainly the wrong file
# All-to-all heartbeats: 51 members measured on one 2-core machine, 101 did not fit one (docs/benchmarks.md,
# "Scale"); what a member pays grows linearly, 2(N-1) frames per heartbeat interval.
MAX_MEMBERS = 64

_KNOWN_KEYS = frozenset(
    {
        "node_id",
        "listen",
        "http_listen",
        "algorithm",
        "peers",
        "heartbeat_interval",
        "failure_timeout",
        "election_timeout",
        "secret_file",
        "previous_secret_file",
        "cluster_name",
        "state_dir",
        "preempt",
        "hooks",
        "control_socket",
    }
)
_HOOK_KEYS = frozenset({"on_role_change", "before_lead", "health_check", "timeout", "health_interval"})
_HOOK_EXECUTABLES = ("on_role_change", "before_lead", "health_check")
DEFAULT_HOOK_TIMEOUT = "10s"
MAX_HOOK_TIMEOUT_MS = 600_000
DEFAULT_HEALTH_INTERVAL = "2s"
# Below 100 ms a health check is a busy loop of process starts; above 10 minutes a broken service keeps
# its node eligible for longer than anyone wants (and the value is almost certainly a unit typo).
MIN_HEALTH_INTERVAL_MS = 100
MAX_HEALTH_INTERVAL_MS = 600_000
# sun_path holds 108 bytes with its terminating NUL (unix(7)): a longer path cannot be bound.
MAX_SOCKET_PATH_BYTES = 107


class ConfigError(Exception):
    """The configuration cannot be used. `field` names the key an operator has to fix."""

    def __init__(self, field_name: str, problem: str) -> None:
        super().__init__(f"{field_name}: {problem}")
        self.field = field_name
        self.problem = problem


class Address(NamedTuple):
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class NodeConfig:
    path: Path
    settings: Settings
    algorithm: str
    listen: Address  # where this node accepts peer connections
    http_listen: Address
    peers: Mapping[int, Address]  # every member, this node included: where to connect to it
    state_dir: Path
    secret: bytes = field(repr=False)
    # A second secret this node accepts (rotation: docs/operations.md); offered after `secret`.
    previous_secret: bytes | None = field(default=None, repr=False)
    cluster_name: str = DEFAULT_CLUSTER_NAME  # bound into every connection handshake
    hooks: HooksConfig = field(default_factory=HooksConfig)
    # The local control socket (leaderctl switchover / maintenance): node/runtime/control.py.
    control_socket: Path = Path(DEFAULT_CONTROL_SOCKET)
    # Problems that do not stop the node (a secret file others can read): check-config prints each on
    # stderr as "PATH: warning: ...", `leader-node run` logs each as a config_warning event at start.
    warnings: tuple[str, ...] = ()

    @property
    def node_id(self) -> int:
        return self.settings.node_id


def parse_duration_ms(field_name: str, value: object) -> int:
    """ "250ms" -> 250, "3s" -> 3000, "1.5s" -> 1500. Positive whole milliseconds only."""
    if not isinstance(value, str):
        raise ConfigError(
            field_name, f'expected a duration with a unit such as "250ms" or "3s", got {value!r}'
        )
    try:
        return durations.parse_duration_ms(value)
    except ValueError as exc:
        raise ConfigError(field_name, str(exc)) from None


def parse_address(field_name: str, value: object, default_port: int) -> Address:
    """ "host:port", "[v6]:port" or a bare "host" (then `default_port`)."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(field_name, f'expected "host:port", got {value!r}')
    text = value.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ConfigError(field_name, f"cannot read address {value!r}")
        port_text = rest[1:] if rest else ""
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    elif ":" in text:
        raise ConfigError(field_name, f"IPv6 addresses must be written in brackets: {value!r}")
    else:
        host, port_text = text, ""
    if not host:
        raise ConfigError(field_name, f"address {value!r} has no host")
    if not port_text:
        return Address(host, default_port)
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ConfigError(field_name, f"port in {value!r} must be 1..65535")
    return Address(host, int(port_text))


def _node_id(field_name: str, value: object) -> int:
    if isinstance(value, str) and value.isdigit():  # TOML table keys are always strings
        value = int(value)
    try:
        return check_node_id(field_name, value)
    except SettingsError as exc:
        raise ConfigError(exc.field, exc.problem) from exc


def _parse_peers(raw: object) -> dict[int, Address]:
    if not isinstance(raw, dict) or not raw:
        raise ConfigError("peers", 'a table of id = "host:port" for every member, this node included')
    if len(raw) > MAX_MEMBERS:
        raise ConfigError("peers", f"at most {MAX_MEMBERS} members are supported, got {len(raw)}")
    peers: dict[int, Address] = {}
    seen: dict[Address, int] = {}
    for key, value in raw.items():
        peer_id = _node_id(f"peers.{key}", key)
        if peer_id in peers:
            raise ConfigError(f"peers.{key}", f"node id {peer_id} is listed twice")
        address = parse_address(f"peers.{key}", value, DEFAULT_PEER_PORT)
        if address in seen:
            raise ConfigError(
                f"peers.{key}", f"duplicate address {address}: also used by node {seen[address]}"
            )
        seen[address] = peer_id
        peers[peer_id] = address
    ordered = dict(sorted(peers.items()))
    _check_peers_resolve_apart(ordered)
    return ordered


def resolve_address(field_name: str, address: Address) -> frozenset[tuple[str, int]]:
    """Every (IP, port) `address` names, by getaddrinfo. An unresolvable name is an error naming the key."""
    try:
        infos = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise ConfigError(field_name, f"cannot resolve {address.host!r}: {exc}") from exc
    # sockaddr[0] is the IP; an IPv6 scope ("fe80::1%eth0") stays part of it.
    return frozenset((str(info[4][0]), address.port) for info in infos)


def _check_peers_resolve_apart(peers: Mapping[int, Address]) -> None:
    """One host:port written two ways ("localhost:7700" and "127.0.0.1:7700", or "[::1]" and
    "localhost") is two members in one process: refused, like the same text twice."""
    seen: dict[tuple[str, int], int] = {}
    for peer_id, address in peers.items():
        for endpoint in sorted(resolve_address(f"peers.{peer_id}", address)):
            other = seen.setdefault(endpoint, peer_id)
            if other != peer_id:
                raise ConfigError(
                    f"peers.{peer_id}",
                    f"{address} resolves to {endpoint[0]} port {endpoint[1]}, "
                    f"like node {other}'s {peers[other]}: the same host:port written two ways",
                )


def secret_file_warnings(field_name: str, path: Path) -> tuple[str, ...]:
    """Warnings, not errors, on who may read or change the secret file (docs/configuration.md)."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return ()  # reading it already failed or will: that is an error of its own
    warnings = []
    if mode & (stat.S_IROTH | stat.S_IWOTH):
        warnings.append(
            f"{field_name}: {path} is {'readable' if mode & stat.S_IROTH else 'writable'} by others "
            f"(mode {mode:04o}); anyone who reads the secret can speak as every member: chmod o-rwx"
        )
    if mode & stat.S_IWGRP:
        warnings.append(
            f"{field_name}: {path} is writable by its group (mode {mode:04o}); chmod g-w "
            "(group read is fine for the service's own group, like the role's root:leader-node 0640)"
        )
    return tuple(warnings)


def _read_secret(path: Path, field_name: str = "secret_file") -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(field_name, f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > MAX_SECRET_BYTES:
        raise ConfigError(field_name, f"{path} is {len(data)} bytes; a secret is at most {MAX_SECRET_BYTES}")
    secret = data.strip()
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(
            field_name,
            f"the secret in {path} is {len(secret)} bytes; at least {MIN_SECRET_BYTES} required",
        )
    return secret


def _path(field_name: str, value: object, base_dir: Path) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(field_name, f"expected a path, got {value!r}")
    return base_dir / Path(value).expanduser()


def _executable(field_name: str, value: object, base_dir: Path) -> Path:
    path = _path(field_name, value, base_dir)
    if not path.is_file():
        raise ConfigError(field_name, f"{path} does not exist or is not a file")
    if not os.access(path, os.X_OK):
        raise ConfigError(field_name, f"{path} is not executable (chmod +x {path})")
    return path


def _hooks(value: object, base_dir: Path) -> HooksConfig:
    if not isinstance(value, dict):
        raise ConfigError("hooks", f"expected a table [hooks], got {value!r}")
    for key in value:
        if key not in _HOOK_KEYS:
            raise ConfigError(f"hooks.{key}", f"unknown key (known keys: {', '.join(sorted(_HOOK_KEYS))})")
    executables = {
        key: _executable(f"hooks.{key}", value[key], base_dir) for key in _HOOK_EXECUTABLES if key in value
    }
    timeout_ms = parse_duration_ms("hooks.timeout", value.get("timeout", DEFAULT_HOOK_TIMEOUT))
    if timeout_ms > MAX_HOOK_TIMEOUT_MS:
        raise ConfigError("hooks.timeout", f"at most {MAX_HOOK_TIMEOUT_MS // 1000} s, got {timeout_ms} ms")
    interval_ms = parse_duration_ms(
        "hooks.health_interval", value.get("health_interval", DEFAULT_HEALTH_INTERVAL)
    )
    if not MIN_HEALTH_INTERVAL_MS <= interval_ms <= MAX_HEALTH_INTERVAL_MS:
        raise ConfigError(
            "hooks.health_interval",
            f"{interval_ms} ms is outside {MIN_HEALTH_INTERVAL_MS} ms to "
            f"{MAX_HEALTH_INTERVAL_MS // 60_000} min",
        )
    return HooksConfig(
        on_role_change=executables.get("on_role_change"),
        before_lead=executables.get("before_lead"),
        health_check=executables.get("health_check"),
        timeout_ms=timeout_ms,
        health_interval_ms=interval_ms,
    )


def _socket_path(field_name: str, value: object, base_dir: Path) -> Path:
    path = _path(field_name, value, base_dir)
    size = len(os.fsencode(path))
    if size > MAX_SOCKET_PATH_BYTES:
        raise ConfigError(
            field_name, f"{path} is {size} bytes; a Unix socket's path is at most {MAX_SOCKET_PATH_BYTES}"
        )
    return path


def _cluster_name(value: object) -> str:
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= MAX_CLUSTER_NAME_CHARS
        or not _CLUSTER_NAME.match(value)
    ):
        raise ConfigError(
            "cluster_name",
            f"expected 1 to {MAX_CLUSTER_NAME_CHARS} characters of letters, digits, '.', '_', '-' "
            f"(starting with a letter or digit), got {value!r}",
        )
    return value


def _same_socket(a: Address, b: Address) -> bool:
    wildcard = {"0.0.0.0", "::", ""}
    return a.port == b.port and (a.host == b.host or a.host in wildcard or b.host in wildcard)


def config_from_mapping(raw: Mapping[str, Any], path: Path) -> NodeConfig:
    """Validate an already parsed TOML document. `path` locates relative files and names errors."""
    for key in raw:
        if key not in _KNOWN_KEYS:
            raise ConfigError(key, f"unknown key (known keys: {', '.join(sorted(_KNOWN_KEYS))})")
    if "node_id" not in raw:
        raise ConfigError("node_id", "missing (this node's id, a key of [peers])")
    try:
        node_id = check_node_id("node_id", raw["node_id"])  # a TOML integer: "1" is refused here
    except SettingsError as exc:
        raise ConfigError(exc.field, exc.problem) from exc
    if "peers" not in raw:
        raise ConfigError("peers", 'missing: a table of id = "host:port" for every member')
    peers = _parse_peers(raw["peers"])
    if node_id not in peers:
        raise ConfigError("node_id", f"{node_id} is not in [peers] (members: {sorted(peers)})")

    algorithm = raw.get("algorithm", DEFAULT_ALGORITHM)
    if algorithm not in ALGORITHMS:
        raise ConfigError(
            "algorithm", f"unknown algorithm {algorithm!r}; expected one of {', '.join(ALGORITHMS)}"
        )

    heartbeat_interval_ms = parse_duration_ms(
        "heartbeat_interval", raw.get("heartbeat_interval", f"{durations.DEFAULT_HEARTBEAT_INTERVAL_MS}ms")
    )
    failure_timeout_ms = parse_duration_ms(
        "failure_timeout", raw.get("failure_timeout", f"{durations.DEFAULT_FAILURE_TIMEOUT_MS}ms")
    )
    election_timeout_ms = parse_duration_ms(
        "election_timeout", raw.get("election_timeout", f"{durations.DEFAULT_ELECTION_TIMEOUT_MS}ms")
    )
    try:
        check_timers(heartbeat_interval_ms, failure_timeout_ms, election_timeout_ms)
    except SettingsError as exc:
        raise ConfigError(exc.field, exc.problem) from exc
    preempt = raw.get("preempt", False)
    if type(preempt) is not bool:
        raise ConfigError("preempt", f"must be true or false, got {preempt!r}")

    listen = parse_address("listen", raw["listen"], DEFAULT_PEER_PORT) if "listen" in raw else peers[node_id]
    http_listen = parse_address("http_listen", raw.get("http_listen", DEFAULT_HTTP_LISTEN), DEFAULT_HTTP_PORT)
    if _same_socket(listen, http_listen):
        raise ConfigError("http_listen", f"{http_listen} clashes with listen {listen}")

    if "secret_file" not in raw:
        raise ConfigError("secret_file", "missing (a file holding the cluster secret, at least 16 bytes)")
    base_dir = path.parent
    secret_path = _path("secret_file", raw["secret_file"], base_dir)
    secret = _read_secret(secret_path)
    warnings = secret_file_warnings("secret_file", secret_path)
    previous_secret = None
    if "previous_secret_file" in raw:
        previous_path = _path("previous_secret_file", raw["previous_secret_file"], base_dir)
        previous_secret = _read_secret(previous_path, "previous_secret_file")
        if previous_secret == secret:
            raise ConfigError("previous_secret_file", f"{previous_path} holds the same secret as secret_file")
    cluster_name = _cluster_name(raw.get("cluster_name", DEFAULT_CLUSTER_NAME))
    state_dir = _path("state_dir", raw.get("state_dir", DEFAULT_STATE_DIR), base_dir)
    control_socket = _socket_path(
        "control_socket", raw.get("control_socket", DEFAULT_CONTROL_SOCKET), base_dir
    )
    hooks = _hooks(raw["hooks"], base_dir) if "hooks" in raw else HooksConfig()

    settings = Settings(
        node_id=node_id,
        member_ids=tuple(peers),
        heartbeat_interval_ms=heartbeat_interval_ms,
        failure_timeout_ms=failure_timeout_ms,
        election_timeout_ms=election_timeout_ms,
        preempt=preempt,
        gated=hooks.before_lead is not None,
        gate_timeout_ms=hooks.timeout_ms,
    )
    return NodeConfig(
        path=path,
        settings=settings,
        algorithm=algorithm,
        listen=listen,
        http_listen=http_listen,
        peers=peers,
        state_dir=state_dir,
        secret=secret,
        previous_secret=previous_secret,
        cluster_name=cluster_name,
        hooks=hooks,
        control_socket=control_socket,
        warnings=warnings,
    )


def load_config(path: Path) -> NodeConfig:
    """Read and validate node.toml. Raises ConfigError naming the field (or `config` for the file)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError("config", f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError("config", f"{path} is not valid TOML: {exc}") from exc
    return config_from_mapping(raw, path)
