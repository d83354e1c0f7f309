"""Fixtures for loopback runtime tests: every process and socket a test opens is closed afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .cluster import BlackHole, Cluster, FramePeer


@pytest.fixture
def make_cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Cluster]]:
    clusters: list[Cluster] = []

    def make(*node_ids: int, **kwargs: Any) -> Cluster:
        cluster = Cluster(tmp_path / f"cluster{len(clusters)}", node_ids or (1, 2, 3), **kwargs)
        clusters.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in clusters:
            cluster.close()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            for cluster in clusters:  # the nodes' own account of what happened, shown with the failure
                for node_id in cluster.nodes:
                    print(f"----- node {node_id} log -----\n{cluster.log_text(node_id)[-6000:]}")


@pytest.fixture
def frame_peer() -> Iterator[FramePeer]:
    peer = FramePeer()
    try:
        yield peer
    finally:
        peer.close()


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    try:
        yield hole
    finally:
        hole.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    # Lets the fixture above know whether the test body failed (the pytest docs' recipe).
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
