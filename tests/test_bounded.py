"""A collect stays bounded whatever its sources and its input do: one grace period in all,
no thread pile-up, attribution within the deadline, a response even after a bug, and log
lines and memory bounded however many or however long the bad ids are."""

from __future__ import annotations

import logging
import threading
import time
from typing import Dict, Iterator, List, Optional

import pytest

from prometheus_cluster_exporter import attribution as attr
from prometheus_cluster_exporter.collector import ClusterCollector
from prometheus_cluster_exporter.exposition import render
from prometheus_cluster_exporter.jobid import JobidGrammar
from prometheus_cluster_exporter.records import (
    JobidRate,
    Parsed,
    PasswdEntry,
    SlurmJob,
    TargetRate,
)
from tests.helpers import OK, Exporter, FakePrometheus, Scrape


class Hang:
    """Blocks, ignoring the deadline, until released (at most 60 s)."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def __call__(self) -> None:
        self.release.wait(60)


class Lustre:
    def __init__(self, hang: Optional[Hang] = None, rows: Optional[List[JobidRate]] = None):
        self.hang = hang
        self.rows = rows if rows is not None else [JobidRate("1", 10.0, "")]
        self.sleep_until_deadline = 0.0

    def _rows(self, deadline: float) -> Parsed[List[JobidRate]]:
        if self.hang is not None:
            self.hang()
        if self.sleep_until_deadline:
            time.sleep(max(0.0, deadline - time.monotonic() - self.sleep_until_deadline))
        return Parsed(self.rows)

    def read_rates(self, deadline: float, at: Optional[float] = None) -> Parsed[List[JobidRate]]:
        return self._rows(deadline)

    def write_rates(self, deadline: float, at: Optional[float] = None) -> Parsed[List[JobidRate]]:
        if self.hang is not None:
            self.hang()
        return Parsed([JobidRate("1", 20.0, "")])

    def metadata_rates(
        self, deadline: float, at: Optional[float] = None
    ) -> Parsed[List[TargetRate]]:
        if self.hang is not None:
            self.hang()
        return Parsed([TargetRate("1", 3.0, "fs-MDT0000", "fs")])


class Jobs:
    def __init__(self, hang: Optional[Hang] = None) -> None:
        self.hang = hang

    def jobs(self, deadline: float) -> Parsed[List[SlurmJob]]:
        if self.hang is not None:
            self.hang()
        return Parsed([SlurmJob("1", "physics", "alice")])


class Identities:
    def __init__(self, hang: Optional[Hang] = None) -> None:
        self.hang = hang

    def users(self, deadline: float) -> Parsed[Dict[int, PasswdEntry]]:
        if self.hang is not None:
            self.hang()
        return Parsed({1001: PasswdEntry("alice", 2001)})

    def groups(self, deadline: float) -> Parsed[Dict[int, str]]:
        if self.hang is not None:
            self.hang()
        return Parsed({2001: "hpc"})

    def lookup_users(self, uids: List[int], deadline: float) -> Parsed[Dict[int, PasswdEntry]]:
        return Parsed({})

    def lookup_groups(self, gids: List[int], deadline: float) -> Parsed[Dict[int, str]]:
        return Parsed({})


@pytest.fixture
def hang() -> Iterator[Hang]:
    h = Hang()
    yield h
    h.release.set()


def scrape(collector: ClusterCollector) -> Scrape:
    return Scrape(render(collector.scrape()).decode())


def test_waiting_for_six_hung_sources_adds_one_grace_period(hang: Hang) -> None:
    collector = ClusterCollector(Lustre(hang), Jobs(hang), Identities(hang), timeout=1)
    started = time.monotonic()
    s = scrape(collector)
    elapsed = time.monotonic() - started
    # The deadline (1 s) plus one grace period (1 s); one grace period per source would
    # be 7 s.
    assert elapsed < 5, f"collect took {elapsed:.1f}s"
    assert s.value(OK) == 0


def test_a_hung_source_costs_one_thread_and_never_the_other_sources(hang: Hang) -> None:
    collector = ClusterCollector(Lustre(), Jobs(hang), Identities(), timeout=0.5)
    threads = threading.active_count()
    for _ in range(8):
        s = scrape(collector)
        assert s.value(OK) == 0
        # The queries and getent still answer: their metrics are there every time.
        assert s.has("cluster_unattributed_read_throughput_bytes")
        assert (
            s.value("cluster_unattributed_read_throughput_bytes", reason="jobs_unavailable") == 10
        )
    assert threading.active_count() <= threads + 1
    assert collector.last is not None
    assert "still running" in (collector.last.sources["squeue"].error or "")
    hang.release.set()
    end = time.monotonic() + 30
    while collector.runner.abandoned() and time.monotonic() < end:
        time.sleep(0.05)
    healed = scrape(collector)
    assert healed.value(OK) == 1
    assert healed.value("cluster_job_read_throughput_bytes", account="physics", user="alice") == 10


def test_a_bug_in_a_collect_still_answers_with_scrape_ok_0(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(attr, "owners", broken)
    collector = ClusterCollector(Lustre(), Jobs(), Identities(), timeout=5)
    with caplog.at_level(logging.ERROR):
        s = scrape(collector)
    assert s.value(OK) == 0
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and errors[0].exc_info is not None and "a bug" in caplog.text


def test_attribution_past_the_deadline_drops_that_answer_and_answers_on_time() -> None:
    # Twelve million rows handed over 50 ms before the deadline: attributing them takes
    # far longer than the second allowed for attribution, on any machine.
    rows = [JobidRate("1", 1.0, "")] * 12_000_000
    lustre = Lustre(rows=rows)
    lustre.sleep_until_deadline = 0.05
    collector = ClusterCollector(lustre, Jobs(), Identities(), timeout=3)
    started = time.monotonic()
    s = scrape(collector)
    elapsed = time.monotonic() - started
    assert s.value(OK) == 0
    assert collector.last is not None
    error = collector.last.sources["read query"].error or ""
    assert "attribution did not finish by the scrape deadline" in error
    assert not s.has("cluster_job_read_throughput_bytes")
    assert not s.has("cluster_unattributed_read_throughput_bytes")
    # Attributing everything takes several seconds; the collect gives up after one.
    assert elapsed < 3 + 1 + 2.5, f"collect took {elapsed:.1f}s"


def test_200000_unknown_uids_write_a_bounded_number_of_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rows = [JobidRate(f"cp.{100000 + i}", 1.0, "") for i in range(200_000)]
    collector = ClusterCollector(Lustre(rows=rows), Jobs(), Identities(), timeout=60)
    with caplog.at_level(logging.WARNING):
        s = scrape(collector)
    assert s.value("cluster_unattributed_read_throughput_bytes", reason="unknown_uid") == 200_000
    lines = [r for r in caplog.records if "not attributed" in r.getMessage()]
    assert 2 <= len(lines) <= 25, len(lines)
    assert "199980 more jobids not attributed this scrape (unknown_uid: 199980)" in caplog.text


def test_long_ids_are_cut_in_the_log_and_remembered_in_fixed_size() -> None:
    from prometheus_cluster_exporter.problems import ProblemLog

    problems = ProblemLog(max_ids=100)
    lines: List[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("prometheus_cluster_exporter.collector")
    logger.addHandler(handler)
    try:
        for scrape_number in range(30):
            ids = [(attr.UNPARSABLE_JOBID, f"{scrape_number}-{i}-" + "x" * 1_000_000)
                   for i in range(40)]  # fmt: skip
            problems.report(ids, lambda reason, jobid: "why", float(scrape_number))
    finally:
        logger.removeHandler(handler)
    assert len(problems) <= 100
    assert all(len(digest) == 16 for digest in problems._last)
    assert lines and max(len(line) for line in lines) < 400


def test_an_id_is_named_once_per_interval() -> None:
    from prometheus_cluster_exporter.problems import ProblemLog

    problems = ProblemLog(interval=3600)
    explain = lambda reason, jobid: "why"  # noqa: E731
    assert problems.report([(attr.UNKNOWN_UID, "cp.7")], explain, 0.0) == 1
    assert problems.report([(attr.UNKNOWN_UID, "cp.7")], explain, 10.0) == 0
    assert problems.report([(attr.UNKNOWN_UID, "cp.7")], explain, 3601.0) == 1


@pytest.mark.timeout(60)
@pytest.mark.parametrize("formats", [("%e.%u",), ("%h.%e.%u",), ("%e.%h.%u",), ("%j.%H",)])
def test_huge_ids_are_unparsable_without_being_parsed(formats: tuple[str, ...]) -> None:
    # Quadratic matching would hold the GIL for hours on these.
    grammar = JobidGrammar(formats)
    ids = ("a." * 500_000 + "x", "1." * 500_000 + "x", "1" * 5000 + ".node", "." * 1_000_000)
    for jobid in ids:
        assert grammar.parse(jobid) is None


def test_ids_of_31_bytes_still_parse() -> None:
    grammar = JobidGrammar(("%e.%u",))
    assert grammar.parse("a" * 25 + ".1234") == attr.ProcRef("a" * 25, 1234)
    assert grammar.parse("a" * 25 + ".12345") is None  # 31 bytes: maybe cut, uid untrusted
    assert JobidGrammar().parse('"' + "1" * 10 + '"') == attr.JobRef("1" * 10)
    assert grammar.parse("é" * 16) is None  # 32 bytes


def test_a_5000_digit_jobid_costs_only_itself(
    start_exporter: object, fake_prometheus: FakePrometheus
) -> None:
    huge = "1" * 5000 + ".node01"
    fake_prometheus.set(
        "read",
        {"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"jobid": huge}, "value": [1, "5"]},
            {"metric": {"jobid": "4242"}, "value": [1, "7"]},
        ]}},
    )  # fmt: skip
    exporter: Exporter = start_exporter("--lustre.jobid-format=%j.%H", "--lustre.jobid-format=%j")  # type: ignore[operator]
    s = exporter.scrape()
    assert s.value(OK) == 1
    assert s.value("cluster_unattributed_read_throughput_bytes", reason="unparsable_jobid") == 5
    assert s.value("cluster_job_read_throughput_bytes", account="physics", user="alice") == 7
    assert "11111111" in exporter.log() and "(5007 characters)" in exporter.log()


class HungLookup:
    def __init__(self, hang: Hang) -> None:
        self.hang = hang

    def lookup_jobs(self, jobids: List[str], deadline: float) -> Parsed[List[SlurmJob]]:
        self.hang()
        return Parsed([])


def test_a_hung_lookup_after_the_queries_costs_only_its_own_ids(hang: Hang) -> None:
    # sacct (step 2) ignores the deadline: the collect waits for it until deadline + grace,
    # and the answers the queries gave are still attributed after that.
    lustre = Lustre(rows=[JobidRate("1", 10.0, ""), JobidRate("999", 5.0, "")])
    collector = ClusterCollector(
        lustre, Jobs(), Identities(), timeout=1, job_lookup=HungLookup(hang)
    )
    s = scrape(collector)
    assert s.value(OK) == 0
    assert collector.last is not None
    assert "did not return" in (collector.last.sources["sacct"].error or "")
    assert s.value("cluster_job_read_throughput_bytes", account="physics", user="alice") == 10
    assert s.value("cluster_unattributed_read_throughput_bytes", reason="unknown_job") == 5
    assert s.value("cluster_job_write_throughput_bytes", account="physics", user="alice") == 20


def test_escaped_bytes_count_as_the_byte_they_stand_for() -> None:
    grammar = JobidGrammar(("%e:%u:%H",))
    # 28 bytes, written with two \x20 escapes: 34 characters.
    escaped = "Isolated\\x20Web\\x20Co:12345:cn0123"
    assert len(escaped) == 34
    assert grammar.parse(escaped) == attr.ProcRef("Isolated\\x20Web\\x20Co", 12345)
    assert grammar.parse('"' + escaped + '"') == attr.ProcRef("Isolated\\x20Web\\x20Co", 12345)
    # 35 bytes of escapes and text: longer than Lustre writes.
    assert grammar.parse("\\x41" * 30 + ":1:h") is None
