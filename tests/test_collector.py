"""The collector in-process: the scrape guard, partial failures and stage timings."""

from __future__ import annotations

import logging
import threading
from typing import List, Optional

import pytest

from prometheus_cluster_exporter.collector import SKIP_WARNING, ClusterCollector
from prometheus_cluster_exporter.errors import SourceError
from prometheus_cluster_exporter.exposition import render
from prometheus_cluster_exporter.records import (
    JobidRate,
    Parsed,
    PasswdEntry,
    SlurmJob,
    TargetRate,
)
from prometheus_cluster_exporter.sources.demo import demo_sources
from tests.helpers import Scrape

STAGES = {
    "retrieve_running_jobs",
    "retrieve_user_name_info",
    "retrieve_group_name_info",
    "build_metadata_metrics",
    "build_read_throughput_metrics",
    "build_write_throughput_metrics",
}


class Lustre:
    def __init__(self) -> None:
        self.fail: set[str] = set()

    def _check(self, kind: str) -> None:
        if kind in self.fail:
            raise SourceError(f"{kind} query: http://prom:9090/api/v1/query answered HTTP 500")

    def read_rates(self, deadline: float, at: Optional[float] = None) -> Parsed[List[JobidRate]]:
        self._check("read")
        return Parsed([JobidRate("1", 10.0, ""), JobidRate("cp.1001", 2.0, "")])

    def write_rates(self, deadline: float, at: Optional[float] = None) -> Parsed[List[JobidRate]]:
        self._check("write")
        return Parsed([JobidRate("1", 20.0, ""), JobidRate("cp.1001", 4.0, "")])

    def metadata_rates(
        self, deadline: float, at: Optional[float] = None
    ) -> Parsed[List[TargetRate]]:
        self._check("metadata")
        return Parsed([TargetRate("1", 3.0, "fs-MDT0000", "fs")])


class Jobs:
    def __init__(self) -> None:
        self.gate: threading.Event | None = None
        self.entered = threading.Event()
        self.error: Exception | None = None
        self.listing: List[SlurmJob] = [SlurmJob("1", "physics", "alice")]

    def jobs(self, deadline: float) -> Parsed[List[SlurmJob]]:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        if self.error is not None:
            raise self.error
        return Parsed(list(self.listing))


class Identities:
    def __init__(self) -> None:
        self.error: Exception | None = None

    def users(self, deadline: float) -> Parsed[dict[int, PasswdEntry]]:
        if self.error is not None:
            raise self.error
        return Parsed({1001: PasswdEntry("alice", 2001)})

    def groups(self, deadline: float) -> Parsed[dict[int, str]]:
        return Parsed({2001: "hpc"})


def scrape(collector: ClusterCollector) -> Scrape:
    return Scrape(render(collector.scrape()).decode())


@pytest.fixture
def parts() -> tuple[Lustre, Jobs, Identities]:
    return Lustre(), Jobs(), Identities()


@pytest.fixture
def collector(parts: tuple[Lustre, Jobs, Identities]) -> ClusterCollector:
    c = ClusterCollector(*parts, timeout=5)
    yield c
    c.close()


def test_full_scrape(collector: ClusterCollector) -> None:
    s = scrape(collector)
    assert s.value("cluster_exporter_scrape_ok") == 1
    assert s.value("cluster_job_read_throughput_bytes", account="physics", user="alice") == 10
    assert s.value("cluster_job_write_throughput_bytes", account="physics", user="alice") == 20
    assert (
        s.value(
            "cluster_proc_read_throughput_bytes",
            proc_name="cp",
            group_name="hpc",
            user_name="alice",
        )
        == 2
    )
    assert (
        s.value(
            "cluster_job_metadata_operations", account="physics", user="alice", target="fs-MDT0000"
        )
        == 3
    )
    names = {labels[0][1] for labels in s.series("cluster_exporter_stage_execution_seconds")}
    assert names == STAGES


def test_overlapping_scrape_is_skipped(
    collector: ClusterCollector,
    parts: tuple[Lustre, Jobs, Identities],
    caplog: pytest.LogCaptureFixture,
) -> None:
    jobs = parts[1]
    jobs.gate = threading.Event()
    first: list[Scrape] = []
    thread = threading.Thread(target=lambda: first.append(scrape(collector)))
    thread.start()
    try:
        assert jobs.entered.wait(5)
        with caplog.at_level(logging.WARNING):
            second = scrape(collector)
        assert second.value("cluster_exporter_scrape_ok") == 0
        assert set(second.families) == {"cluster_exporter_scrape_ok"}
        assert SKIP_WARNING in caplog.text
    finally:
        jobs.gate.set()
        thread.join(10)
    assert first[0].value("cluster_exporter_scrape_ok") == 1
    # The guard is released: the next scrape runs normally.
    assert scrape(collector).value("cluster_exporter_scrape_ok") == 1


def test_failed_squeue_costs_only_job_metrics(
    collector: ClusterCollector,
    parts: tuple[Lustre, Jobs, Identities],
    caplog: pytest.LogCaptureFixture,
) -> None:
    parts[1].error = SourceError(
        "squeue: squeue exited with status 1: Unable to contact slurm controller"
    )
    with caplog.at_level(logging.ERROR):
        s = scrape(collector)
    assert s.value("cluster_exporter_scrape_ok") == 0
    assert not s.has("cluster_job_read_throughput_bytes")
    assert not s.has("cluster_job_metadata_operations")
    assert (
        s.value(
            "cluster_proc_write_throughput_bytes",
            proc_name="cp",
            group_name="hpc",
            user_name="alice",
        )
        == 4
    )
    assert "source squeue failed: squeue: squeue exited with status 1" in caplog.text


def test_failed_getent_costs_only_proc_metrics(
    collector: ClusterCollector, parts: tuple[Lustre, Jobs, Identities]
) -> None:
    parts[2].error = SourceError("getent passwd: getent exited with status 2: x")
    s = scrape(collector)
    assert s.value("cluster_exporter_scrape_ok") == 0
    assert not s.has("cluster_proc_read_throughput_bytes")
    assert s.value("cluster_job_read_throughput_bytes", account="physics", user="alice") == 10


def test_failed_query_costs_only_its_metrics(
    collector: ClusterCollector, parts: tuple[Lustre, Jobs, Identities]
) -> None:
    parts[0].fail = {"read"}
    s = scrape(collector)
    assert s.value("cluster_exporter_scrape_ok") == 0
    assert not s.has("cluster_job_read_throughput_bytes")
    assert not s.has("cluster_proc_read_throughput_bytes")
    assert s.value("cluster_job_write_throughput_bytes", account="physics", user="alice") == 20
    assert (
        s.value(
            "cluster_job_metadata_operations", account="physics", user="alice", target="fs-MDT0000"
        )
        == 3
    )
    parts[0].fail = set()
    assert scrape(collector).value("cluster_exporter_scrape_ok") == 1


def test_unexpected_exception_in_a_source_does_not_lose_the_scrape(
    collector: ClusterCollector, parts: tuple[Lustre, Jobs, Identities]
) -> None:
    parts[1].error = RuntimeError("boom")
    s = scrape(collector)
    assert s.value("cluster_exporter_scrape_ok") == 0
    assert s.has("cluster_proc_read_throughput_bytes")


def test_no_jobs_is_not_an_error(
    collector: ClusterCollector, parts: tuple[Lustre, Jobs, Identities]
) -> None:
    parts[1].listing = []
    s = scrape(collector)
    assert s.value("cluster_exporter_scrape_ok") == 1
    assert s.series("cluster_job_read_throughput_bytes") == {}
    assert (
        s.value(
            "cluster_proc_read_throughput_bytes",
            proc_name="cp",
            group_name="hpc",
            user_name="alice",
        )
        == 2
    )


def test_demo_sources_plug_into_the_same_collector() -> None:
    collector = ClusterCollector(*demo_sources(), timeout=5)
    try:
        s = scrape(collector)
    finally:
        collector.close()
    assert s.value("cluster_exporter_scrape_ok") == 1
    for name in (
        "cluster_job_read_throughput_bytes",
        "cluster_job_write_throughput_bytes",
        "cluster_proc_read_throughput_bytes",
        "cluster_proc_write_throughput_bytes",
        "cluster_job_metadata_operations",
    ):
        assert len(s.series(name)) > 0, name
    assert all(v > 0 for v in s.series("cluster_job_read_throughput_bytes").values())
