"""`leader-node check-history`: verdict, timeline, exit codes."""

from __future__ import annotations

import io
import json
from pathlib import Path

from node.history.cli import EXIT_BAD_INPUT, EXIT_OK, EXIT_VIOLATION, main


def journal_line(time_ms: int, node_id: int, event: str, epoch: int, leader_id: int | None = None) -> str:
    fields = {
        "__REALTIME_TIMESTAMP": str(time_ms * 1000),
        "SYSLOG_IDENTIFIER": "leader-node",
        "EVENT": event,
        "NODE_ID": str(node_id),
        "EPOCH": str(epoch),
        "MESSAGE": f"node {node_id} {event}",
    }
    if leader_id is not None:
        fields["LEADER_ID"] = str(leader_id)
    return json.dumps(fields)


def write(tmp_path: Path, name: str, lines: list[str]) -> str:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def run(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    return main(argv, out), out.getvalue()


def test_a_clean_history_from_two_hosts(tmp_path: Path) -> None:
    a = write(tmp_path, "a.json", [journal_line(1_000, 1, "became_leader", 1, 1)])
    b = write(tmp_path, "b.json", [journal_line(1_010, 2, "leader_accepted", 1, 1)])
    code, output = run([a, b])
    assert code == EXIT_OK
    assert output.startswith("ok: 2 events from 2 nodes, no violation")
    assert "followers: 2@10" in output


def test_two_leaders_of_one_epoch_is_a_violation(tmp_path: Path) -> None:
    a = write(tmp_path, "a.json", [journal_line(1_000, 1, "became_leader", 1, 1)])
    b = write(tmp_path, "b.json", [journal_line(1_200, 2, "became_leader", 1, 2)])
    code, output = run([a, b])
    assert code == EXIT_VIOLATION
    assert "nodes 1 and 2 both became leader under epoch 1" in output
    assert "(" + b + ")" in output


def test_unreadable_or_missing_input(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.json", ["{oops"])
    assert run([bad])[0] == EXIT_BAD_INPUT
    assert run([str(tmp_path / "missing.json")])[0] == EXIT_BAD_INPUT
    assert run([])[0] == EXIT_BAD_INPUT


def test_standard_input() -> None:
    stdin = io.StringIO(journal_line(5, 3, "became_leader", 2, 3) + "\n")
    out = io.StringIO()
    assert main(["-"], out, stdin) == EXIT_OK
    assert "leader   3" in out.getvalue()
