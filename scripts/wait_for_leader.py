#!/usr/bin/env python3
"""Poll the /status endpoints of a cluster until every node names the same leader.

Exit 0 once all nodes agree on one leader_id (not null) and one epoch and that leader's /leader
answers 200; exit 1 at the deadline, printing what each node said last. The deadline derives from
the protocol timers: three election rounds plus failure detection plus slack.

    wait_for_leader.py --election-timeout 5s --failure-timeout 3s http://172.30.77.11:7701 ...
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request

from node.core.durations import DEFAULT_ELECTION_TIMEOUT_MS, DEFAULT_FAILURE_TIMEOUT_MS, duration_s


def fetch(url: str, timeout_s: float) -> tuple[int, dict | None]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, None
    except (OSError, ValueError):
        return 0, None


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--election-timeout", default=f"{DEFAULT_ELECTION_TIMEOUT_MS}ms")
    parser.add_argument("--failure-timeout", default=f"{DEFAULT_FAILURE_TIMEOUT_MS}ms")
    parser.add_argument("--slack", default="10s", help="added to the derived deadline (start-up, scheduling)")
    parser.add_argument("urls", nargs="+", help="base URLs of the nodes' HTTP endpoints")
    args = parser.parse_args()

    deadline_s = (
        3 * duration_s(args.election_timeout) + duration_s(args.failure_timeout) + duration_s(args.slack)
    )
    started = time.monotonic()
    last: dict[str, object] = {}
    while True:
        statuses = {url: fetch(url.rstrip("/") + "/status", 2.0) for url in args.urls}
        last = {
            url: body if code == 200 else f"HTTP {code or 'unreachable'}"
            for url, (code, body) in statuses.items()
        }
        bodies = [body for code, body in statuses.values() if code == 200 and body is not None]
        if len(bodies) == len(args.urls):
            leaders = {body.get("leader_id") for body in bodies}
            epochs = {body.get("epoch") for body in bodies}
            if len(leaders) == 1 and None not in leaders and len(epochs) == 1:
                leader_id = leaders.pop()
                leader_urls = [
                    url for url, (_, body) in statuses.items() if body and body.get("node_id") == leader_id
                ]
                if leader_urls and fetch(leader_urls[0].rstrip("/") + "/leader", 2.0)[0] == 200:
                    elapsed = time.monotonic() - started
                    print(
                        f"leader: node {leader_id} at epoch {epochs.pop()}, agreed by all "
                        f"{len(bodies)} nodes after {elapsed:.1f} s"
                    )
                    return 0
        if time.monotonic() - started > deadline_s:
            print(f"no agreed leader within {deadline_s:.0f} s; last answers:", file=sys.stderr)
            for url, answer in last.items():
                print(f"  {url}: {answer}", file=sys.stderr)
            return 1
        time.sleep(0.25)


if __name__ == "__main__":
    sys.exit(main())
