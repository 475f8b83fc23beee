"""The collector in-process: the scrape guard, partial failures and stage timings."""

from __future__ import annotations

import logging
import threading
import time
from typing import Dict, List, Optional, Sequence, Tuple

import pytest

from prometheus_cluster_exporter.collector import ClusterCollector
from prometheus_cluster_exporter.errors import SourceError
from prometheus_cluster_exporter.exposition import render
from prometheus_cluster_exporter.guard import SKIP_WARNING
from prometheus_cluster_exporter.jobid import JobidGrammar, Ref
from prometheus_cluster_exporter.records import (
    JobidRate,
    Parsed,
    PasswdEntry,
    RateColumn,
    Rates,
    SlurmJob,
    TargetRate,
)
from prometheus_cluster_exporter.report import Consumer
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


def stages(s: Scrape) -> Dict[str, float]:
    return {
        labels[0][1]: value
        for labels, value in s.series("cluster_exporter_stage_execution_seconds").items()
    }


class Answers:
    """Query answers given as lists; records the (deadline, at) of every call."""

    def __init__(
        self,
        read: Sequence[object] = (),
        write: Sequence[object] = (),
        metadata: Sequence[object] = (),
    ) -> None:
        self.answers = {"read": read, "write": write, "metadata": metadata}
        self.calls: Dict[str, Tuple[float, Optional[float]]] = {}

    def _answer(self, kind: str, deadline: float, at: Optional[float]) -> Parsed[List[object]]:
        self.calls[kind] = (deadline, at)
        items = self.answers[kind]
        return Parsed(items if isinstance(items, Rates) else list(items))

    def read_rates(self, deadline: float, at: Optional[float] = None) -> Parsed[List[object]]:
        return self._answer("read", deadline, at)

    def write_rates(self, deadline: float, at: Optional[float] = None) -> Parsed[List[object]]:
        return self._answer("write", deadline, at)

    def metadata_rates(self, deadline: float, at: Optional[float] = None) -> Parsed[List[object]]:
        return self._answer("metadata", deadline, at)


class KeyedIdentities(Identities):
    """Enumerations that miss uid 1002 and gid 2002; the keyed lookups know both."""

    def __init__(self) -> None:
        super().__init__()
        self.group_error: Optional[Exception] = None
        self.asked: List[Tuple[str, List[int], float]] = []

    def lookup_users(self, uids: Sequence[int], deadline: float) -> Parsed[dict[int, PasswdEntry]]:
        self.asked.append(("users", list(uids), deadline))
        known = {1002: PasswdEntry("bob", 2002)}
        return Parsed({uid: known[uid] for uid in uids if uid in known})

    def lookup_groups(self, gids: Sequence[int], deadline: float) -> Parsed[dict[int, str]]:
        self.asked.append(("groups", list(gids), deadline))
        if self.group_error is not None:
            raise self.group_error
        return Parsed({gid: "chem" for gid in gids if gid == 2002})


def test_the_queries_share_one_evaluation_instant_and_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lustre = Answers(read=[JobidRate("1", 1.0, "")], write=[JobidRate("1", 2.0, "")])
    collector = ClusterCollector(lustre, Jobs(), Identities(), timeout=5)
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.123_456)
    before = time.monotonic()
    assert scrape(collector).value("cluster_exporter_scrape_ok") == 1
    assert set(lustre.calls) == {"read", "write", "metadata"}
    for deadline, at in lustre.calls.values():
        assert at == 1_700_000_000.123  # the collect's start, to the millisecond
        assert isinstance(deadline, float) and before + 4 < deadline <= time.monotonic() + 5


def test_the_last_collect_is_reported(
    collector: ClusterCollector, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert collector.last is None  # nothing to report before the first collect
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.5)
    s = scrape(collector)
    report = collector.last
    assert report is not None
    assert report.started == 1_700_000_000.5
    assert report.ok is True
    assert 0 <= report.seconds < 60
    assert set(report.sources) == {
        "squeue",
        "getent passwd",
        "getent group",
        "metadata query",
        "read query",
        "write query",
    }
    for name, status in report.sources.items():
        assert status.name == name and status.ok
        assert isinstance(status.seconds, float) and 0 <= status.seconds < 60
    assert report.series == sum(len(s.series(name)) for name in s.families)
    assert report.top == (
        Consumer("job", "physics / alice", 10.0, 20.0),
        Consumer("process", "cp (alice, hpc)", 2.0, 4.0),
    )


def test_fs_label_adds_the_filesystem_to_every_series() -> None:
    lustre = Answers(
        read=[JobidRate("1", 1.0, "home"), JobidRate("1", 2.0, "scratch")],
        write=[JobidRate("cp.1001", 4.0, "home")],
        metadata=[TargetRate("1", 3.0, "scratch-MDT0000", "scratch")],
    )
    collector = ClusterCollector(lustre, Jobs(), Identities(), timeout=5, fs_label=True)
    s = scrape(collector)
    assert s.value("cluster_exporter_scrape_ok") == 1
    read = "cluster_job_read_throughput_bytes"
    assert s.value(read, account="physics", user="alice", fs="home") == 1
    assert s.value(read, account="physics", user="alice", fs="scratch") == 2
    write = "cluster_proc_write_throughput_bytes"
    assert s.value(write, proc_name="cp", group_name="hpc", user_name="alice", fs="home") == 4
    metadata = "cluster_job_metadata_operations"
    labels = {"account": "physics", "user": "alice", "target": "scratch-MDT0000"}
    assert s.value(metadata, **labels, fs="scratch") == 3


def test_jobs_squeue_does_not_list_are_looked_up_in_sacct() -> None:
    asked: List[Tuple[List[str], float]] = []

    class Sacct:
        def lookup_jobs(self, jobids: Sequence[str], deadline: float) -> Parsed[List[SlurmJob]]:
            asked.append((list(jobids), deadline))
            return Parsed([SlurmJob("77", "chem", "bob")])

    lustre = Answers(read=[JobidRate("1", 10.0, ""), JobidRate("77", 5.0, "")])
    collector = ClusterCollector(lustre, Jobs(), Identities(), timeout=5, job_lookup=Sacct())
    before = time.monotonic()
    s = scrape(collector)
    assert s.value("cluster_exporter_scrape_ok") == 1
    assert s.value("cluster_job_read_throughput_bytes", account="physics", user="alice") == 10
    assert s.value("cluster_job_read_throughput_bytes", account="chem", user="bob") == 5
    assert s.series("cluster_unattributed_read_throughput_bytes") == {}
    assert [jobids for jobids, _ in asked] == [["77"]]
    assert isinstance(asked[0][1], float) and asked[0][1] > before
    assert "retrieve_finished_jobs" in stages(s)


def test_uids_and_gids_missing_from_the_enumerations_are_looked_up_by_key() -> None:
    identities = KeyedIdentities()
    lustre = Answers(read=[JobidRate("cp.1001", 1.0, ""), JobidRate("cp.1002", 2.0, "")])
    collector = ClusterCollector(lustre, Jobs(), identities, timeout=5)
    before = time.monotonic()
    s = scrape(collector)
    assert s.value("cluster_exporter_scrape_ok") == 1
    read = "cluster_proc_read_throughput_bytes"
    assert s.value(read, proc_name="cp", group_name="hpc", user_name="alice") == 1
    assert s.value(read, proc_name="cp", group_name="chem", user_name="bob") == 2
    assert s.series("cluster_unattributed_read_throughput_bytes") == {}
    assert [(kind, ids) for kind, ids, _ in identities.asked] == [
        ("users", [1002]),
        ("groups", [2002]),
    ]
    assert all(isinstance(d, float) and d > before for _, _, d in identities.asked)
    assert {"retrieve_missing_user_info", "retrieve_missing_group_info"} <= set(stages(s))


def test_a_failed_keyed_group_lookup_costs_only_those_ids(
    caplog: pytest.LogCaptureFixture,
) -> None:
    identities = KeyedIdentities()
    identities.group_error = SourceError("getent group (by gid): getent exited with status 2")
    lustre = Answers(
        read=[
            JobidRate("1", 10.0, ""),
            JobidRate("cp.1001", 1.0, ""),
            JobidRate("cp.1002", 2.0, ""),
        ]
    )
    collector = ClusterCollector(lustre, Jobs(), identities, timeout=5)
    with caplog.at_level(logging.WARNING):
        s = scrape(collector)
    assert s.value("cluster_exporter_scrape_ok") == 0
    assert s.value("cluster_job_read_throughput_bytes", account="physics", user="alice") == 10
    read = "cluster_proc_read_throughput_bytes"
    assert s.value(read, proc_name="cp", group_name="hpc", user_name="alice") == 1
    assert s.value("cluster_unattributed_read_throughput_bytes", reason="unknown_gid") == 2
    # The warning names the gid that has no name, as learnt from the keyed passwd lookup.
    assert "primary gid 2002 of uid 1002 has no group name" in caplog.text


class SlowValues(List[float]):
    """Values that take 0.5 s to read: attributing them takes measurable time."""

    def __iter__(self):  # type: ignore[no-untyped-def]
        time.sleep(0.5)
        return super().__iter__()


def test_a_query_stage_counts_its_attribution_time() -> None:
    slow = Rates([RateColumn((), ["1"] * 10, SlowValues([1.0] * 10))])
    lustre = Answers(read=slow, write=[JobidRate("1", 1.0, "")])
    collector = ClusterCollector(lustre, Jobs(), Identities(), timeout=5)
    s = scrape(collector)
    assert s.value("cluster_job_read_throughput_bytes", account="physics", user="alice") == 10
    times = stages(s)
    assert 0.45 <= times["build_read_throughput_metrics"] < 60
    assert times["build_write_throughput_metrics"] < times["build_read_throughput_metrics"]


class SlowGrammar(JobidGrammar):
    """Takes longer than the second allowed for attribution over the first id it parses;
    every id is unparsable (and quick) after that."""

    def __init__(self) -> None:
        super().__init__()
        self.slept = False

    def parse(self, jobid: str) -> Ref:
        if not self.slept:
            self.slept = True
            time.sleep(1.7)
        return None


def test_classifying_past_the_deadline_fails_every_query_but_still_answers() -> None:
    # More distinct ids than one chunk, so the clock is looked at after the slow first one;
    # the sources answer at once, so classifying may last until timeout + 1 s.
    rows = [JobidRate(f"cp.{i}", 1.0, "") for i in range(70_000)]
    lustre = Answers(
        read=rows,
        write=[JobidRate("1", 1.0, "")],
        metadata=[TargetRate("1", 3.0, "fs-MDT0000", "fs")],
    )
    collector = ClusterCollector(lustre, Jobs(), Identities(), timeout=0.5, grammar=SlowGrammar())
    s = scrape(collector)
    assert s.value("cluster_exporter_scrape_ok") == 0
    # No query's families at all, but the rest of the scrape is still there.
    assert set(s.families) == {
        "cluster_exporter_stage_execution_seconds",
        "cluster_exporter_scrape_ok",
    }
    assert "retrieve_running_jobs" in stages(s)
    assert collector.last is not None
    for name in ("read query", "write query", "metadata query"):
        assert "attribution did not finish by the scrape deadline" in (
            collector.last.sources[name].error or ""
        )
