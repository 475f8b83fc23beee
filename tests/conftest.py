from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator, List

import pytest

from tests.helpers import Exporter, FakeCluster, FakePrometheus, exporter_env

#: The end-to-end tests (tests/e2e) start a Slurm test cluster with its own munged,
#: create test users and install packages: they run only with this set to 1.
E2E_SWITCH = "CLUSTER_EXPORTER_E2E"
E2E_DIR = Path(__file__).resolve().parent / "e2e"


def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    if os.environ.get(E2E_SWITCH) == "1":
        return
    skip = pytest.mark.skip(reason=f"end-to-end tests run only with {E2E_SWITCH}=1")
    for item in items:
        if E2E_DIR in Path(str(item.fspath)).resolve().parents or item.get_closest_marker("e2e"):
            item.add_marker(skip)


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
