from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, List

import pytest

from tests.helpers import Exporter, FakeCluster, FakePrometheus, exporter_env


@pytest.fixture
def fake_prometheus() -> Iterator[FakePrometheus]:
    fake = FakePrometheus()
    fake.load_fixtures()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def fake_cluster(tmp_path: Path) -> FakeCluster:
    cluster = FakeCluster(tmp_path / "cluster")
    cluster.load_fixtures()
    return cluster


@pytest.fixture
def start_exporter(
    tmp_path: Path, fake_cluster: FakeCluster, fake_prometheus: FakePrometheus
) -> Iterator[Callable[..., Exporter]]:
    """Start the real CLI against the fakes; every process is stopped in teardown."""
    started: List[Exporter] = []

    def start(*args: str, promserver: bool = True) -> Exporter:
        argv = list(args)
        if promserver:
            argv.insert(0, f"--promserver={fake_prometheus.url}")
        exporter = Exporter(
            argv, exporter_env(fake_cluster.root), tmp_path / f"exporter-{len(started)}.log"
        )
        started.append(exporter)
        return exporter

    try:
        yield start
    finally:
        for exporter in started:
            exporter.stop()
