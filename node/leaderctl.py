"""`leaderctl`: the cluster as each node sees it, from the nodes' read-only HTTP endpoints.

    leaderctl status [--json] [URL ...]   one row per node: role, leader, epoch, quorum, peers' liveness
    leaderctl leader [--json] [URL ...]   the leader's id, address and epoch (exit 1 when none answers)

URLs default to http://127.0.0.1:7701; "host:port" and a bare "host" (port 7701) are accepted too.
Nodes are asked in parallel with a short timeout, so one dead host costs one timeout, not one per node.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from node.client import DEFAULT_TIMEOUT_S, Reply, fetch_all, normalize_url
from node.version import package_version

DEFAULT_URL = "http://127.0.0.1:7701"


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="leaderctl", description="Ask leader-node nodes who leads.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per node (1)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in (("status", "every node's view, one row each"), ("leader", "the current leader")):
        command = commands.add_parser(name, help=text)
        command.add_argument("--json", action="store_true", help="machine-readable output")
        command.add_argument("urls", nargs="*", metavar="URL", help=f"node HTTP URLs (default {DEFAULT_URL})")
    args = parser.parse_args(argv)
    urls = [normalize_url(u) for u in args.urls] or [DEFAULT_URL]
    if args.command == "status":
        return cmd_status(urls, args.json, args.timeout)
    return cmd_leader(urls, args.json, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
