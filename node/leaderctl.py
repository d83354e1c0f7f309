"""`leaderctl`: the cluster as each node sees it, and the operator's two requests to a running node.

    leaderctl status [--json] [URL ...]   one row per node: role, leader, epoch, quorum, peers' liveness
    leaderctl leader [--json] [URL ...]   the leader's id, address and epoch (exit 1 when none answers)
    leaderctl switchover [--to ID]        on the leader's host: hand leadership on, wait for the successor
    leaderctl maintenance [on|off]        this host's node may not run for leader (a leader hands off)

`status` and `leader` read the nodes' read-only HTTP endpoints. URLs default to http://127.0.0.1:7701;
"host:port" and a bare "host" (port 7701) are accepted too. Nodes are asked in parallel with a short
timeout, so one dead host costs one timeout, not one per node.

`switchover` and `maintenance` change what a node does, so they speak only to the node on this host,
through its control socket (`--socket`, default /run/leader-node/control.sock): whoever may open it has
the host's privileges for the service (docs/operations.md, "The control socket"). Each waits, up to
`--wait` (10 s), until the change shows in the node's own view: a new leader, or no longer leading.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from node.client import DEFAULT_TIMEOUT_S, Reply, fetch_all, normalize_url
from node.control import DEFAULT_CONTROL_SOCKET, ControlError, ask
from node.core.durations import parse_duration_ms
from node.version import package_version

DEFAULT_URL = "http://127.0.0.1:7701"
DEFAULT_WAIT = "10s"
CONTROL_TIMEOUT_S = 10.0  # one request on the socket (the node answers within 5 s or says why not)
POLL_INTERVAL_S = 0.05


def _ids(peers: dict[str, Any], state: str) -> str:
    ids = sorted((int(peer_id) for peer_id, peer in peers.items() if peer.get("state") == state))
    return ",".join(map(str, ids)) or "-"


def status_rows(replies: Sequence[Reply]) -> list[list[str]]:
    rows = [["URL", "NODE", "ROLE", "LEADER", "EPOCH", "QUORUM", "ALIVE", "SUSPECTED", "NOTE"]]
    for reply in replies:
        body = reply.body
        if reply.status != 200 or body is None:
            note = reply.error or f"HTTP {reply.status}"
            rows.append([reply.url, "-", "unreachable", "-", "-", "-", "-", "-", note])
            continue
        quorum = body.get("quorum", {})
        reachable, size = quorum.get("reachable", 0), quorum.get("size", 0)
        peers = body.get("peers", {})
        rows.append(
            [
                reply.url,
                str(body.get("node_id")),
                str(body.get("role")),
                "-" if body.get("leader_id") is None else str(body["leader_id"]),
                str(body.get("epoch")),
                f"{reachable}/{size} {'ok' if reachable >= size else 'LOST'}",
                _ids(peers, "alive"),
                _ids(peers, "suspected"),
                "",
            ]
        )
    return rows


def format_table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def cmd_status(urls: Sequence[str], as_json: bool, timeout_s: float) -> int:
    replies = fetch_all(urls, "/status", timeout_s)
    if as_json:
        out = [
            {"url": r.url, "status": r.body if r.status == 200 else None, "error": r.error} for r in replies
        ]
        print(json.dumps(out, indent=2, sort_keys=True))
    else:
        print(format_table(status_rows(replies)))
    return 0 if all(r.status == 200 for r in replies) else 1


def cmd_leader(urls: Sequence[str], as_json: bool, timeout_s: float) -> int:
    replies = fetch_all(urls, "/leader", timeout_s)
    claims = sorted(
        (r for r in replies if r.status == 200 and r.body is not None),
        key=lambda r: r.body["epoch"] if r.body else 0,
        reverse=True,
    )
    if not claims:
        beliefs = {(r.body.get("leader_id"), r.body.get("epoch")) for r in replies if r.body is not None}
        hint = f"; followers believe (leader, epoch) in {sorted(beliefs, key=str)}" if beliefs else ""
        print(f"no node answered as leader{hint}", file=sys.stderr)
        return 1
    best = claims[0]
    assert best.body is not None
    for stale in claims[1:]:  # only possible for at most failure_timeout, on a minority side
        epoch = (stale.body or {}).get("epoch")
        print(f"warning: {stale.url} also claims to lead, under the older epoch {epoch}", file=sys.stderr)
    if as_json:
        print(json.dumps({**best.body, "url": best.url}, sort_keys=True))
    else:
        print(f"leader {best.body['leader_id']} at {best.body['address']}, epoch {best.body['epoch']}")
    return 0


# -- switchover and maintenance (the local control socket) ----------------------------------------------


def _wait_for(
    socket_path: str, wait_s: float, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any] | None:
    """Poll the node's status reply until `done(reply)`; the last reply, or None at the deadline."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            reply = ask(socket_path, {"op": "status"}, CONTROL_TIMEOUT_S)
        except ControlError:
            reply = None  # restarting, or busy: keep asking until the deadline
        if reply is not None and reply.get("ok") and done(reply):
            return reply
        if time.monotonic() >= deadline:
            return None
        time.sleep(POLL_INTERVAL_S)


def _leader_of(reply: dict[str, Any]) -> tuple[Any, Any]:
    status = reply.get("status") or {}
    return status.get("leader_id"), status.get("epoch")


def _request(socket_path: str, request: dict[str, Any], refused: str) -> dict[str, Any] | None:
    """Ask the node; the reply when it says ok, else None after printing why (`refused`: the prefix of
    the node's own refusal)."""
    try:
        reply = ask(socket_path, request, CONTROL_TIMEOUT_S)
    except ControlError as exc:
        print(f"{request['op']}: {exc}", file=sys.stderr)
        return None
    if not reply["ok"]:
        print(f"{refused}: {reply.get('error')}", file=sys.stderr)
        return None
    return reply


def cmd_switchover(socket_path: str, target: int | None, wait_s: float) -> int:
    reply = _request(socket_path, {"op": "switchover", "to": target}, "switchover refused, nothing changed")
    if reply is None:
        return 1
    old_leader, old_epoch = reply.get("leader_id"), int(reply.get("epoch", 0))
    to = "the best eligible node" if target is None else f"node {target}"
    print(f"node {old_leader} hands leadership of epoch {old_epoch} on to {to}", file=sys.stderr)

    def decided(status: dict[str, Any]) -> bool:
        """A leader of a later epoch: the successor, or (the hand-off failed) the old leader again."""
        leader_id, epoch = _leader_of(status)
        return leader_id is not None and isinstance(epoch, int) and epoch > old_epoch

    done = _wait_for(socket_path, wait_s, decided)
    if done is None:
        print(
            f"switchover: node {old_leader} resigned, but knows no new leader within {wait_s:g} s "
            "(leaderctl status shows the cluster)",
            file=sys.stderr,
        )
        return 1
    leader_id, epoch = _leader_of(done)
    print(f"leader {leader_id}, epoch {epoch}")
    if leader_id == old_leader:
        print(f"switchover: the hand-off did not happen; node {leader_id} leads again", file=sys.stderr)
        return 1
    if target is not None and leader_id != target:
        print(f"switchover: node {leader_id} leads, not node {target}", file=sys.stderr)
        return 1
    return 0


def cmd_maintenance(socket_path: str, on: bool | None, wait_s: float) -> int:
    reply = _request(socket_path, {"op": "maintenance", "on": on}, "maintenance")
    if reply is None:
        return 1
    status = reply.get("status") or {}
    node_id = status.get("node_id")
    if on is None or not reply.get("maintenance"):
        state = "on" if reply.get("maintenance") else "off"
        reason = status.get("ineligible_reason")
        may = f"may not run for leader ({reason})" if reason else "may run for leader"
        print(f"maintenance {state}: node {node_id} {may}")
        return 0
    give_up_at = time.monotonic() + wait_s
    done = _wait_for(socket_path, wait_s, lambda r: (r.get("status") or {}).get("role") != "leader")
    if done is None:
        print(f"maintenance on, but node {node_id} still leads after {wait_s:g} s", file=sys.stderr)
        return 1
    # It no longer leads; name its successor if one shows before the deadline (not required).
    successor = _wait_for(
        socket_path,
        max(0.0, give_up_at - time.monotonic()),
        lambda r: _leader_of(r)[0] not in (None, node_id),
    )
    leader_id, epoch = _leader_of(successor or done)
    leader = "no leader known yet" if leader_id is None else f"leader {leader_id}, epoch {epoch}"
    print(f"maintenance on: node {node_id} does not lead and will not run for leader; {leader}")
    return 0


def _wait_seconds(text: str) -> float:
    try:
        return parse_duration_ms(text) / 1000
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _node_id(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a node id is a positive integer, got {text!r}")
    return int(text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="leaderctl", description="Ask leader-node nodes who leads.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per node (1)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in (("status", "every node's view, one row each"), ("leader", "the current leader")):
        command = commands.add_parser(name, help=text)
        command.add_argument("--json", action="store_true", help="machine-readable output")
        command.add_argument("urls", nargs="*", metavar="URL", help=f"node HTTP URLs (default {DEFAULT_URL})")
    switchover = commands.add_parser(
        "switchover", help="on the leader's host: hand leadership on and wait for the new leader"
    )
    switchover.add_argument("--to", type=_node_id, metavar="ID", help="the successor (default: the best)")
    maintenance = commands.add_parser(
        "maintenance", help="this host's node may not (on) or may again (off) run for leader; alone: show"
    )
    maintenance.add_argument("state", nargs="?", choices=("on", "off"))
    for command in (switchover, maintenance):
        command.add_argument("--socket", default=DEFAULT_CONTROL_SOCKET, help="the node's control socket")
        command.add_argument(
            "--wait", type=_wait_seconds, default=DEFAULT_WAIT, help="how long to wait for the change (10s)"
        )
    args = parser.parse_args(argv)
    if args.command == "switchover":
        return cmd_switchover(args.socket, args.to, args.wait)
    if args.command == "maintenance":
        return cmd_maintenance(args.socket, None if args.state is None else args.state == "on", args.wait)
    urls = [normalize_url(u) for u in args.urls] or [DEFAULT_URL]
    if args.command == "status":
        return cmd_status(urls, args.json, args.timeout)
    return cmd_leader(urls, args.json, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
