"""Finding the leader from an application: ask every node, trust the newest term. Standard library only.

    from node.client import NoLeaderError, find_leader, wait_for_leader

    leader = wait_for_leader(["10.0.0.11", "10.0.0.12", "10.0.0.13"], deadline_s=10)
    leader.node_id, leader.epoch, leader.url     # the epoch is the fencing token (node.fencing)

Every node's `GET /status` is asked in parallel (`timeout_s` each; a dead host costs one timeout). The
rules, so that a stale leader is never the answer:

- an answer from a node without a majority (role `no-quorum`) is ignored: its view may be old;
- the newest term known is the highest epoch among the answers that name a leader (a leader naming
  itself, or a follower naming its leader);
- the leader is the node that answers role `leader` under that epoch. A node still saying `leader`
  under an older epoch (cut off, not yet stepped down) never wins; when the newest term's leader does
  not answer (dead, or unreachable from here) there is no leader to give: `NoLeaderError` says why.

URLs may be "http://host:port", "host:port" or a bare "host" (port 7701).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

DEFAULT_HTTP_PORT = 7701
DEFAULT_TIMEOUT_S = 1.0
MAX_PARALLEL_REQUESTS = 16


class NoLeaderError(Exception):
    """No node can be named leader now; the message says what the nodes answered."""


@dataclass(frozen=True, slots=True)
class Leader:
    node_id: int
    epoch: int  # the fencing token of this term
    url: str  # the base URL it answered on


@dataclass(frozen=True, slots=True)
class Reply:
    url: str
    status: int | None  # HTTP status; None when the node did not answer
    body: dict[str, Any] | None
    error: str | None = None


def normalize_url(text: str) -> str:
    url = text if "://" in text else f"http://{text}"
    host_part = url.split("://", 1)[1].split("/", 1)[0]
    if ":" not in host_part.rsplit("]", 1)[-1]:
        url = url.replace(host_part, f"{host_part}:{DEFAULT_HTTP_PORT}", 1)
    return url.rstrip("/")


def fetch(url: str, path: str, timeout_s: float) -> Reply:
    try:
        with urllib.request.urlopen(url + path, timeout=timeout_s) as response:
            return Reply(url, int(response.status), _json_object(response.read()))
    except urllib.error.HTTPError as exc:  # /leader answers 503 on non-leaders: still an answer
        return Reply(url, exc.code, _json_object(exc.read()))
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        text = reason.strerror if isinstance(reason, OSError) and reason.strerror else str(reason)
        return Reply(url, None, None, text.lower())


def _json_object(data: bytes) -> dict[str, Any] | None:
    try:
        body = json.loads(data)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def fetch_all(urls: Sequence[str], path: str, timeout_s: float) -> list[Reply]:
    with ThreadPoolExecutor(max_workers=max(1, min(MAX_PARALLEL_REQUESTS, len(urls)))) as pool:
        return list(pool.map(lambda url: fetch(url, path, timeout_s), urls))


def _int(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    return value if type(value) is int else None


def choose_leader(replies: Sequence[Reply]) -> Leader:
    """The rules of the module docstring, applied to answers already in hand. Raises NoLeaderError."""
    heard = [r for r in replies if r.status == 200 and r.body is not None]
    counted = [r for r in heard if r.body is not None and r.body.get("role") != "no-quorum"]
    terms = [
        (epoch, leader_id)
        for r in counted
        if r.body is not None
        and (epoch := _int(r.body, "epoch")) is not None
        and (leader_id := _int(r.body, "leader_id")) is not None
    ]
    if not terms:
        silent = len(replies) - len(heard)
        raise NoLeaderError(
            f"no node names a leader ({len(heard)} of {len(replies)} answered, {silent} did not, "
            f"{len(heard) - len(counted)} without a majority)"
        )
    newest = max(epoch for epoch, _ in terms)
    named = sorted({leader_id for epoch, leader_id in terms if epoch == newest})
    for r in counted:
        assert r.body is not None
        if r.body.get("role") == "leader" and _int(r.body, "epoch") == newest:
            node_id = _int(r.body, "node_id")
            if node_id is not None and node_id in named:
                return Leader(node_id, newest, r.url)
    raise NoLeaderError(
        f"epoch {newest} is led by node {' or '.join(map(str, named))} according to the others, "
        "but that node does not answer as leader"
    )


def find_leader(urls: Sequence[str], timeout_s: float = DEFAULT_TIMEOUT_S) -> Leader:
    """Ask every node once. Raises NoLeaderError when no leader can be named now."""
    if not urls:
        raise ValueError("no node URLs given")
    return choose_leader(fetch_all([normalize_url(u) for u in urls], "/status", timeout_s))


def wait_for_leader(
    urls: Sequence[str],
    deadline_s: float,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    poll_interval_s: float = 0.1,
) -> Leader:
    """find_leader() again every `poll_interval_s` until it names a leader or `deadline_s` passed;
    then NoLeaderError with the last reason."""
    give_up_at = time.monotonic() + deadline_s
    while True:
        try:
            return find_leader(urls, timeout_s)
        except NoLeaderError as exc:
            if time.monotonic() + poll_interval_s > give_up_at:
                raise NoLeaderError(f"no leader within {deadline_s} s: {exc}") from None
        time.sleep(poll_interval_s)
