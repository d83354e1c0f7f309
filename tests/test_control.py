"""The local control protocol (node/control.py) without a node: every request an operator's tool sends
parses; anything else, however hostile, is a RequestError whose text says what is wrong."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from node.control import (
    MAX_REQUEST_BYTES,
    ControlError,
    MaintenanceRequest,
    Request,
    RequestError,
    StatusRequest,
    SwitchoverRequest,
    ask,
    parse_request,
)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b'{"op": "status"}', StatusRequest()),
        (b'{"op": "status"}\n', StatusRequest()),
        (b'{"op": "switchover"}', SwitchoverRequest(None)),
        (b'{"op": "switchover", "to": null}', SwitchoverRequest(None)),
        (b'{"op": "switchover", "to": 3}', SwitchoverRequest(3)),
        (b'{"to": 9223372036854775807, "op": "switchover"}', SwitchoverRequest(2**63 - 1)),
        (b'{"op": "maintenance", "on": true}', MaintenanceRequest(True)),
        (b'{"op": "maintenance", "on": false}', MaintenanceRequest(False)),
        (b'{"op": "maintenance"}', MaintenanceRequest(None)),
        (b'  {"op": "maintenance", "on": null}  ', MaintenanceRequest(None)),
    ],
)
def test_requests_parse(line: bytes, expected: Request) -> None:
    assert parse_request(line) == expected


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b"", "not JSON"),
        (b"hello", "not JSON"),
        (b'{"op": "status"', "not JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"status"', "must be a JSON object"),
        (b"null", "must be a JSON object"),
        (b"{}", "op must be one of maintenance, status, switchover, got null"),
        (b'{"op": "reboot"}', 'got "reboot"'),
        (b'{"op": 1}', "got 1"),
        (b'{"op": ["status"]}', "op must be one of"),
        (b'{"op": "status", "to": 3}', 'unknown key "to" for op status'),
        (b'{"op": "switchover", "on": true}', 'unknown key "on" for op switchover'),
        (b'{"op": "switchover", "to": 0}', "to must be a node id"),
        (b'{"op": "switchover", "to": -2}', "to must be a node id"),
        (b'{"op": "switchover", "to": 9223372036854775808}', "to must be a node id"),
        (b'{"op": "switchover", "to": "3"}', 'got "3"'),
        (b'{"op": "switchover", "to": 3.0}', "got 3.0"),
        (b'{"op": "switchover", "to": true}', "got true"),
        (b'{"op": "maintenance", "on": "yes"}', "on must be true or false"),
        (b'{"op": "maintenance", "on": 1}', "on must be true or false"),
        (b"[" * 2040 + b"]" * 2040, "nested too deeply"),
        (b'{"op": "' + b"x" * MAX_REQUEST_BYTES + b'"}', f"longer than {MAX_REQUEST_BYTES} bytes"),
        (b'{"op": "switchover", "to": ' + b"9" * 4090 + b"}", "request"),
    ],
)
def test_bad_requests_say_what_is_wrong(line: bytes, problem: str) -> None:
    with pytest.raises(RequestError) as caught:
        parse_request(line)
    assert problem in str(caught.value)
    assert len(str(caught.value)) < 300  # an echoed value is cut short, never the whole request


def test_ask_says_what_to_check_when_there_is_no_answer(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match="is leader-node running here"):
        ask(str(tmp_path / "missing.sock"), {"op": "status"}, 1.0)
    (tmp_path / "file").write_text("")
    with pytest.raises(ControlError, match="cannot connect"):
        ask(str(tmp_path / "file"), {"op": "status"}, 1.0)


def test_ask_refuses_a_garbled_or_silent_answer(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)
    answers = [b"not json\n", b'{"no_ok": 1}\n', None]

    def serve() -> None:
        for answer in answers:
            conn, _ = server.accept()
            with conn:
                conn.recv(4096)
                if answer is not None:
                    conn.sendall(answer)
                else:
                    conn.recv(1)  # says nothing until the client gives up

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with pytest.raises(ControlError, match="unreadable answer"):
            ask(str(path), {"op": "status"}, 2.0)
        with pytest.raises(ControlError, match="unexpected answer"):
            ask(str(path), {"op": "status"}, 2.0)
        with pytest.raises(ControlError, match=r"no answer .* within 0\.3 s"):
            ask(str(path), {"op": "status"}, 0.3)
    finally:
        thread.join(timeout=5)
        server.close()


def test_leaderctl_needs_no_gevent_for_the_control_socket() -> None:
    """leaderctl runs on an operator's shell: it loads the protocol module, not the node's runtime."""
    probe = "import json, sys, node.leaderctl; print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, check=True).stdout)
    assert "node.control" in loaded
    assert not [name for name in loaded if name.split(".")[0] == "gevent" or name.startswith("node.runtime")]
