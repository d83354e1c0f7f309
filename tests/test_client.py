"""node.client.choose_leader: the newest term's leader, never a stale one (answers built by hand)."""

from __future__ import annotations

from typing import Any

import pytest

from node.client import Leader, NoLeaderError, Reply, choose_leader, normalize_url


def status(node_id: int, role: str, leader_id: int | None, epoch: int) -> Reply:
    body: dict[str, Any] = {"node_id": node_id, "role": role, "leader_id": leader_id, "epoch": epoch}
    return Reply(f"http://n{node_id}:7701", 200, body)


SILENT = Reply("http://gone:7701", None, None, "connection refused")


def test_the_leader_of_the_newest_term_wins() -> None:
    replies = [status(1, "follower", 3, 8), status(2, "follower", 3, 8), status(3, "leader", 3, 8)]
    assert choose_leader(replies) == Leader(3, 8, "http://n3:7701")


def test_a_stale_leader_never_wins() -> None:
    # Node 1 led epoch 7 and has not noticed yet; a majority follows node 3 under epoch 8.
    replies = [status(1, "leader", 1, 7), status(2, "follower", 3, 8), status(3, "leader", 3, 8)]
    assert choose_leader(replies).node_id == 3
    # The same, but node 3 does not answer here: no leader to give, not the stale one.
    with pytest.raises(NoLeaderError, match="epoch 8 is led by node 3"):
        choose_leader([status(1, "leader", 1, 7), status(2, "follower", 3, 8), SILENT])


def test_answers_without_a_majority_do_not_count() -> None:
    # A node cut off with an old view, and one that knows nothing yet.
    replies = [status(1, "no-quorum", 1, 9), status(2, "follower", 3, 8), status(3, "leader", 3, 8)]
    assert choose_leader(replies) == Leader(3, 8, "http://n3:7701")
    with pytest.raises(NoLeaderError, match="1 without a majority"):
        choose_leader([status(1, "no-quorum", None, 9), status(2, "candidate", None, 9), SILENT])


def test_a_candidates_promise_is_not_a_term() -> None:
    # Node 2 promised epoch 9 to a candidate (no leader named): the leader of 8 still leads.
    replies = [status(1, "follower", 3, 8), status(2, "candidate", None, 9), status(3, "leader", 3, 8)]
    assert choose_leader(replies).epoch == 8


def test_garbage_answers_are_ignored() -> None:
    odd = Reply("http://odd:7701", 200, {"node_id": "3", "role": "leader", "leader_id": 3, "epoch": "8"})
    with pytest.raises(NoLeaderError):
        choose_leader([odd, Reply("http://x:7701", 503, None), SILENT])


@pytest.mark.parametrize(
    ("text", "url"),
    [("10.0.0.1", "http://10.0.0.1:7701"), ("h:80", "http://h:80"), ("http://h:1/", "http://h:1")],
)
def test_urls(text: str, url: str) -> None:
    assert normalize_url(text) == url
