"""`--version` on both commands and VERSION in the `listening` event: the installed package's version."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest

from node.core.session import PROTOCOL_VERSION
from node.version import package_version

from .cluster import Cluster, wait_until


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        # the daemon also names the peer protocol it speaks: the role restarts every member together
        # when an upgrade changes it (docs/operations.md, "Upgrading")
        ("node", f"leader-node {package_version()} (protocol {PROTOCOL_VERSION})\n"),
        ("node.leaderctl", f"leaderctl {package_version()}\n"),
    ],
)
def test_version_option(module: str, expected: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", module, "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, expected, "")
    assert package_version() != "unknown"  # the test venv has the package installed (make venv: -e .)


def test_listening_event_names_the_version(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(1, 2, 3)
    cluster.start(1)
    events = wait_until(lambda: cluster.events(1, "listening"), 15, "node 1's listening event")
    assert events[0]["VERSION"] == package_version()
