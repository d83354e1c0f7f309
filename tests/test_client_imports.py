"""node.client and node.fencing are what applications import: the standard library only."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["node.client", "node.fencing"])
def test_application_modules_load_nothing_else_of_node_and_no_gevent(module: str) -> None:
    probe = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, check=True).stdout)
    ours = [name for name in loaded if name == "node" or name.startswith("node.")]
    assert sorted(ours) == ["node", module]
    assert not [name for name in loaded if name.split(".")[0] in ("gevent", "prometheus_client")]
