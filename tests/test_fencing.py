"""node.fencing: the highest token per resource, durable, and a write below it refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node.fencing import STORE_FILE_NAME, Entry, FenceStore, StaleTokenError


def test_tokens_only_go_up_per_resource(tmp_path: Path) -> None:
    store = FenceStore(tmp_path / STORE_FILE_NAME)
    store.write("orders", 5, "from epoch 5")
    store.write("orders", 5, "again from epoch 5")  # the same leader writes again
    store.write("orders", 7, "from epoch 7")
    with pytest.raises(StaleTokenError) as caught:
        store.write("orders", 6, "a paused leader of epoch 6 wakes up")
    assert (caught.value.token, caught.value.highest) == (6, 7)
    assert store.get("orders") == Entry(7, "from epoch 7")  # the refused write changed nothing
    store.admit("invoices", 3)  # resources are independent
    assert store.get("invoices") == Entry(3, None)
    with pytest.raises(StaleTokenError):
        store.admit("orders", 2)


def test_accepted_tokens_survive_a_restart_and_a_torn_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / STORE_FILE_NAME
    store = FenceStore(path)
    store.write("orders", 9, "nine")
    store.admit("orders", 10)  # keeps the value, raises the token
    (tmp_path / (STORE_FILE_NAME + ".tmp")).write_text('{"orders": {"tok')  # a crash mid-write
    reopened = FenceStore(path)
    assert reopened.get("orders") == Entry(10, "nine")
    with pytest.raises(StaleTokenError):
        reopened.write("orders", 9, "late")
    assert json.loads(path.read_text()) == {"orders": {"token": 10, "value": "nine"}}


@pytest.mark.parametrize(
    ("resource", "token"), [("", 1), ("a/b", 1), ("x" * 129, 1), ("ok", -1), ("ok", 2**63), ("ok", True)]
)
def test_bad_names_and_tokens_are_refused(tmp_path: Path, resource: str, token: int) -> None:
    store = FenceStore(tmp_path / STORE_FILE_NAME)
    with pytest.raises(ValueError, match=r"resource name|token"):
        store.write(resource, token, "v")
    assert not (tmp_path / STORE_FILE_NAME).exists()
