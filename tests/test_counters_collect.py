"""--metrics.counters in the collector: the first collect counts from the collector's start,
the next ones from the instant of the last; a failed or too-late increase query keeps its instant, so the next window (the
argument the source is asked with) covers the gap; the bound and its one log line; the
owners of the rates, the grace memory included; a skipped scrape changes nothing; the
labels with --metrics.fs-label and --metrics.metadata-by-operation; the flags, the demo
and the status page. Through the real CLI: off by default (no query, no family) and on
(the served answers, after two scrapes). The parts: test_counters.py."""

from __future__ import annotations

import logging
import re
import time
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

import pytest

from prometheus_cluster_exporter.collector import ClusterCollector
from prometheus_cluster_exporter.config import Config
from prometheus_cluster_exporter.counters import milliseconds
from prometheus_cluster_exporter.errors import SourceError
from prometheus_cluster_exporter.exposition import render
from prometheus_cluster_exporter.flags import parse_args
from prometheus_cluster_exporter.records import (
    JobidRate,
    Parsed,
    PasswdEntry,
    RateColumn,
    Rates,
    SlurmJob,
    TargetRate,
)
from prometheus_cluster_exporter.status import config_summary
from prometheus_cluster_exporter.wiring import build_collector, build_sources
from tests.helpers import FIXTURES, FakePrometheus, Scrape, kind_of

JOB_READ = "cluster_job_read_bytes_total"
JOB_WRITE = "cluster_job_write_bytes_total"
JOB_META = "cluster_job_metadata_ops_total"
PROC_READ = "cluster_proc_read_bytes_total"
LOST_READ = "cluster_unattributed_read_bytes_total"
LOST_META = "cluster_unattributed_metadata_ops_total"
COUNTER_STAGES = {
    "build_metadata_counters",
    "build_read_bytes_counters",
    "build_write_bytes_counters",
}
ALICE = {"account": "physics", "user": "alice"}
CP = {"proc_name": "cp", "group_name": "hpc", "user_name": "alice"}

# -- the collector -----------------------------------------------------------------------


class Lustre:
    """Rates and increases; ``asked`` records each increase call (method, at, window)."""

    def __init__(self) -> None:
        self.fail: Set[str] = set()
        self.asked: List[Tuple[str, float, int]] = []
        self.slow: Set[str] = set()
        self.read: List[JobidRate] = [JobidRate("1", 1000.0, "scratch"),
                                      JobidRate("cp.1001", 100.0, "scratch"),
                                      JobidRate("999", 10.0, "scratch"),
                                      JobidRate("2", 0.0, "scratch")]  # fmt: skip
        self.meta = [TargetRate("1", 50.0, "scratch-MDT0000", "scratch", "open"),
                     TargetRate("1", 7.0, "scratch-MDT0000", "scratch", "close"),
                     TargetRate("cp.1001", 5.0, "scratch-MDT0001", "scratch", "open")]  # fmt: skip

    def read_rates(self, deadline: float, at: Optional[float] = None) -> Parsed[Any]:
        return Parsed([JobidRate("1", 1.0, "scratch")])

    write_rates = read_rates

    def metadata_rates(self, deadline: float, at: Optional[float] = None) -> Parsed[Any]:
        return Parsed([TargetRate("1", 3.0, "scratch-MDT0000", "scratch", "open")])

    def _increase(self, method: str, at: float, window_ms: int, rows: Sequence[Any]) -> Any:
        self.asked.append((method, at, window_ms))
        if method in self.fail:
            raise SourceError(f"{method}: http://prom:9090/api/v1/query answered HTTP 503")
        if method in self.slow:  # attribution past the build deadline: too late
            return Parsed(Rates([RateColumn((), ["1"], Slow([1.0])), RateColumn((), ["1"], [1.0])]))
        return Parsed(list(rows))

    def read_increase(self, deadline: float, at: float, window_ms: int) -> Parsed[Any]:
        return self._increase("read_increase", at, window_ms, self.read)

    def write_increase(self, deadline: float, at: float, window_ms: int) -> Parsed[Any]:
        return self._increase("write_increase", at, window_ms, self.read[:1])

    def metadata_increase(self, deadline: float, at: float, window_ms: int) -> Parsed[Any]:
        return self._increase("metadata_increase", at, window_ms, self.meta)

    def windows(self, method: str) -> List[Tuple[float, int]]:
        return [(at, window) for m, at, window in self.asked if m == method]


class Slow(List[float]):
    def __iter__(self) -> Any:
        time.sleep(1.3)
        return super().__iter__()


class Jobs:
    def __init__(self) -> None:
        self.listing = [SlurmJob("1", "physics", "alice"), SlurmJob("2", "chem", "bob")]

    def jobs(self, deadline: float) -> Parsed[List[SlurmJob]]:
        return Parsed(list(self.listing))


class Identities:
    def users(self, deadline: float) -> Parsed[Dict[int, PasswdEntry]]:
        return Parsed({1001: PasswdEntry("alice", 2001)})

    def groups(self, deadline: float) -> Parsed[Dict[int, str]]:
        return Parsed({2001: "hpc"})

    def lookup_users(self, uids: Any, deadline: float) -> Parsed[Dict[int, PasswdEntry]]:
        return Parsed({})

    def lookup_groups(self, gids: Any, deadline: float) -> Parsed[Dict[int, str]]:
        return Parsed({})


def collector(lustre: Lustre, jobs: Optional[Jobs] = None, **settings: Any) -> ClusterCollector:
    """A collector built at least 10 ms before its first collect, whose first window is
    then never empty."""
    settings.setdefault("counters", True)
    built = ClusterCollector(lustre, jobs or Jobs(), Identities(), timeout=5, **settings)  # type: ignore[arg-type]
    time.sleep(0.01)
    return built


def scrape(c: ClusterCollector) -> Scrape:
    return Scrape(render(c.scrape()).decode())


def stages(s: Scrape) -> Set[str]:
    return {dict(k)["name"] for k in s.series("cluster_exporter_stage_execution_seconds")}


def window_of(first: float, then: float) -> int:
    return milliseconds(then) - milliseconds(first)


def test_the_first_collect_counts_from_the_start_the_next_from_its_instant() -> None:
    lustre = Lustre()
    before = milliseconds(time.time())
    c = collector(lustre)  # built at least 10 ms before its first collect
    first = scrape(c)
    assert first.value("cluster_exporter_scrape_ok") == 1 and c.last is not None
    at1 = round(c.last.started, 3)
    for method in ("read_increase", "write_increase", "metadata_increase"):
        [(at, window)] = lustre.windows(method)
        assert at == at1 and 10 <= window <= milliseconds(at1) - before, method
    assert first.value(JOB_READ, **ALICE) == 1000
    assert first.value(PROC_READ, **CP) == 100
    assert first.series(LOST_READ) == {(("reason", "unknown_job"),): 10.0}
    assert first.value(JOB_READ, account="chem", user="bob") is None  # 0 bytes: no series
    assert first.value(JOB_WRITE, **ALICE) == 1000
    assert first.value(JOB_META, **ALICE, target="scratch-MDT0000") == 57
    assert first.value("cluster_proc_metadata_ops_total", **CP,
                       target="scratch-MDT0001") == 5  # fmt: skip
    assert first.has(LOST_META) and first.series(LOST_META) == {}
    assert stages(first) >= COUNTER_STAGES
    second = scrape(c)
    assert second.value("cluster_exporter_scrape_ok") == 1
    assert second.value(JOB_READ, **ALICE) == 2000  # and on, growing
    # Each at the collect's instant, over the time since the first collect's.
    assert c.last is not None
    at2 = round(c.last.started, 3)
    for method in ("read_increase", "write_increase", "metadata_increase"):
        assert lustre.windows(method)[1:] == [(at2, window_of(at1, at2))]
    assert window_of(at1, at2) > 0


def test_a_failed_increase_keeps_its_instant_and_the_next_window_covers_the_gap(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lustre = Lustre()
    c = collector(lustre)
    scrape(c)
    lustre.fail = {"read_increase"}
    failed = scrape(c)
    assert failed.value("cluster_exporter_scrape_ok") == 0
    assert failed.value(JOB_READ, **ALICE) == 1000  # still there, not grown
    assert failed.value(JOB_WRITE, **ALICE) == 2000
    assert "read increase query" in caplog.text
    lustre.fail = set()
    after = scrape(c)
    assert after.value("cluster_exporter_scrape_ok") == 1
    reads, writes = lustre.windows("read_increase"), lustre.windows("write_increase")
    assert [at for at, _ in reads] == [at for at, _ in writes]
    (at1, _), (at2, _), (at3, doubled) = reads
    assert doubled == window_of(at1, at3) > writes[-1][1] == window_of(at2, at3)
    assert after.value(JOB_READ, **ALICE) == 2000 and after.value(JOB_WRITE, **ALICE) == 3000


def test_a_collect_sooner_than_the_shortest_window_leaves_the_counters_to_the_next() -> None:
    lustre = Lustre()
    c = collector(lustre, counters_min_window=0.5)
    soon = scrape(c)  # about 10 ms after the start
    assert soon.value("cluster_exporter_scrape_ok") == 1
    assert lustre.asked == [] and soon.has(JOB_READ) and soon.series(JOB_READ) == {}
    assert soon.value("cluster_job_read_throughput_bytes", **ALICE) == 1  # rates as ever
    time.sleep(0.6)
    counted = scrape(c)
    assert counted.value(JOB_READ, **ALICE) == 1000
    assert c.last is not None
    at = round(c.last.started, 3)
    [(asked_at, window)] = lustre.windows("read_increase")
    assert asked_at == at and window >= 600  # from the start, over the skipped collect
    again = scrape(c)
    assert again.value(JOB_READ, **ALICE) == 1000 and len(lustre.asked) == 3


def test_a_too_late_increase_keeps_its_instant() -> None:
    lustre = Lustre()
    c = ClusterCollector(lustre, Jobs(), Identities(), timeout=0.2, counters=True)  # type: ignore[arg-type]
    time.sleep(0.01)
    scrape(c)
    assert c.last is not None
    at1 = round(c.last.started, 3)
    lustre.slow = {"read_increase"}
    late = scrape(c)
    assert late.value("cluster_exporter_scrape_ok") == 0
    assert "did not finish" in (c.last.sources["read increase query"].error or "")
    assert late.value(JOB_READ, **ALICE) == 1000  # the first collect's, not grown
    assert late.value(JOB_META, **ALICE, target="scratch-MDT0000") == 2 * 57  # counted
    lustre.slow = set()
    assert scrape(c).value(JOB_READ, **ALICE) == 2000
    # The read increase of the third collect covers the second's window too; the metadata
    # one (counted in the second) only its own.
    (_, _), (at2, _), (at3, window) = lustre.windows("read_increase")
    assert window == window_of(at1, at3)
    assert lustre.windows("metadata_increase")[1:] == [
        (at2, window_of(at1, at2)),
        (at3, window_of(at2, at3)),
    ]


def test_the_bound_and_its_log_line(caplog: pytest.LogCaptureFixture) -> None:
    lustre = Lustre()
    c = collector(lustre, counters_max_gap=0.001)
    with caplog.at_level(logging.WARNING):
        scrape(c)  # 10 ms or more since the start: cut, and said
        assert len([r for r in caplog.records if "counters-max-gap" in r.getMessage()]) == 3
        caplog.clear()
        lustre.fail = {"read_increase"}
        scrape(c)
        scrape(c)
    assert {window for _, _, window in lustre.asked} == {1}
    assert "[1ms]" not in caplog.text  # the source formats the query, the log says why
    said = [r for r in caplog.records if "counters-max-gap" in r.getMessage()]
    assert [r.getMessage().split(":")[0] for r in said] == [
        "metadata increase query", "read increase query", "write increase query",
        "metadata increase query", "write increase query",
    ]  # fmt: skip


@pytest.mark.parametrize("grace", [300.0, 0.0])
def test_a_job_that_left_squeue_keeps_its_bytes_in_the_grace_memory(grace: float) -> None:
    lustre, jobs = Lustre(), Jobs()
    c = collector(lustre, jobs, job_grace=grace)
    scrape(c)
    jobs.listing = []
    s = scrape(c)
    if grace:
        assert s.value(JOB_READ, **ALICE) == 2000
        assert s.value(LOST_READ, reason="unknown_job") == 20
        # The rates of the same collect have the same owner.
        assert s.value("cluster_job_read_throughput_bytes", **ALICE) == 1
    else:
        assert s.value(JOB_READ, **ALICE) == 1000  # kept, not grown
        assert s.value(LOST_READ, reason="unknown_job") == 10 + 1010


def test_a_skipped_scrape_changes_nothing() -> None:
    lustre = Lustre()
    c = collector(lustre)
    scrape(c)
    asked = list(lustre.asked)
    assert c._guard.acquire(blocking=False)
    try:
        skipped = scrape(c)
    finally:
        c._guard.release()
    assert set(skipped.families) == {"cluster_exporter_scrape_ok"} and not skipped.counters
    assert lustre.asked == asked
    s = scrape(c)
    assert s.value(JOB_READ, **ALICE) == 2000


def test_the_labels_follow_the_fs_label_and_the_operation() -> None:
    lustre = Lustre()
    c = collector(lustre, fs_label=True, metadata_by_operation=True)
    s = scrape(c)
    fs = {"fs": "scratch"}
    assert s.value(JOB_READ, **ALICE, **fs) == 1000
    assert s.value(JOB_META, **ALICE, target="scratch-MDT0000", operation="open", **fs) == 50
    assert s.value(JOB_META, **ALICE, target="scratch-MDT0000", operation="close", **fs) == 7
    family = s.family(JOB_META)
    assert family is not None and family.type == "counter"
    assert "MDT and operation since the exporter started" in family.documentation


def test_counters_are_off_by_default() -> None:
    lustre = Lustre()
    c = collector(lustre, counters=False)
    scrape(c)
    s = scrape(c)
    assert lustre.asked == []
    assert not s.counters
    assert not stages(s) & COUNTER_STAGES


# -- flags, the demo, the status page ----------------------------------------------------


def test_the_flags() -> None:
    assert not Config().counters and Config().counters_max_gap == 3600
    config = parse_args(["--promserver=http://p:9090", "--metrics.counters",
                         "--metrics.counters-max-gap=15m"]).config  # fmt: skip
    assert config.counters and config.counters_max_gap == 900
    # The shortest window: the --timerange window unless given.
    assert config.effective_counters_min_window == 60 == Config().effective_counters_min_window
    given = parse_args(["--promserver=http://p:9090", "--timerange=5m",
                        "--metrics.counters-min-window=90s"]).config  # fmt: skip
    assert given.effective_counters_min_window == 90
    assert (
        parse_args(
            ["--promserver=http://p:9090", "--timerange=5m"]
        ).config.effective_counters_min_window
        == 300
    )
    for bad in (["--metrics.counters-max-gap=0"], ["--metrics.counters", "--mode=join"],
                ["--metrics.counters-min-window=-1s"],
                ["--metrics.counters-min-window=2h"]):  # fmt: skip
        with pytest.raises(SystemExit) as exit_info:
            parse_args(["--promserver=http://p:9090", *bad])
        assert exit_info.value.code == 2
    rows = dict(config_summary(config, "Prometheus"))
    assert rows["Counters (--metrics.counters)"] == "on, windows of 60 s to 900 s"
    assert dict(config_summary(Config(), "x"))["Counters (--metrics.counters)"] == "off"


def test_the_demo_counts_its_rates_over_the_window() -> None:
    demo = build_collector(Config(), build_sources(Config(), demo=True))
    try:
        time.sleep(0.05)
        first = Scrape(render(demo.scrape()).decode())
        time.sleep(0.05)
        second = Scrape(render(demo.scrape()).decode())
    finally:
        demo.close()
    assert second.value("cluster_exporter_scrape_ok") == 1
    before, reads = first.series(JOB_READ), second.series(JOB_READ)
    assert before and all(reads[k] > value > 0 for k, value in before.items())
    rates = second.series("cluster_job_read_throughput_bytes")
    # About the rate over the 50 ms or so between the two collects.
    grown = sum(reads.values()) - sum(before.values())
    assert 0.03 < grown / sum(rates.values()) < 5
    assert {dict(k)["operation"] for k in second.series(JOB_META)} >= {"open", "close"}


# -- through the real CLI ----------------------------------------------------------------

Start = Any


def crossed(fake: FakePrometheus) -> None:
    """The increases are other answers (read <- write, write <- read), so a family fed by
    the wrong query shows."""
    fake.set("read_increase", (FIXTURES / "prometheus-write.json").read_bytes())
    fake.set("write_increase", (FIXTURES / "prometheus-read.json").read_bytes())
    fake.set("metadata_increase", (FIXTURES / "prometheus-metadata.json").read_bytes())


def asked(fake: FakePrometheus, kind: str) -> List[Tuple[float, int]]:
    """(time, window in ms) of every query of ``kind`` the fake received."""
    out = []
    for params in fake.params:
        if kind_of(params["query"]) == kind:
            match = re.search(r"\[([0-9]+)(ms|s)\]", params["query"])
            assert match is not None
            window = int(match.group(1)) * (1 if match.group(2) == "ms" else 1000)
            out.append((float(params["time"]), window))
    return out


def test_off_by_default_through_the_cli(
    start_exporter: Start, fake_prometheus: FakePrometheus
) -> None:
    crossed(fake_prometheus)
    exporter = start_exporter()
    exporter.scrape()
    s = exporter.scrape()
    assert s.value("cluster_exporter_scrape_ok") == 1
    assert not [q for q in fake_prometheus.queries if "increase(" in q]
    assert not [name for name in s.counters if name.startswith("cluster_")]
    assert s.has("cluster_job_metadata_operations")


def test_the_counters_are_the_served_increases_through_the_cli(
    start_exporter: Start, fake_prometheus: FakePrometheus
) -> None:
    crossed(fake_prometheus)
    exporter = start_exporter("--metrics.counters", "--metrics.counters-min-window=0s")
    s = exporter.scrape()  # the first collect counts since the exporter started
    assert s.value("cluster_exporter_scrape_ok") == 1
    for kind in ("job", "proc", "unattributed"):
        reads = s.series(f"cluster_{kind}_read_bytes_total")
        assert reads and reads == s.series(f"cluster_{kind}_write_throughput_bytes"), kind
        writes = s.series(f"cluster_{kind}_write_bytes_total")
        assert writes and writes == s.series(f"cluster_{kind}_read_throughput_bytes"), kind
        meta = s.series(f"cluster_{kind}_metadata_ops_total")
        assert meta == s.series(f"cluster_{kind}_metadata_operations"), kind
        assert meta or kind == "unattributed", kind  # the answer has no unattributed id
        assert s.family(f"cluster_{kind}_read_bytes_total").type == "counter"  # type: ignore[union-attr]
    assert stages(s) >= COUNTER_STAGES
    # Each increase at the collect's instant: the first over the time since the start, the
    # next over the time since the first collect's.
    second = exporter.scrape()
    assert second.value("cluster_exporter_scrape_ok") == 1
    for kind in ("read_increase", "write_increase", "metadata_increase"):
        [(first_at, first_window), (at, window)] = asked(fake_prometheus, kind)
        assert first_window > 0 and window == window_of(first_at, at) > 0, kind
    # A failed increase keeps its instant: the next window covers both collects.
    fake_prometheus.set("read_increase", b"upstream error", status=500)
    failed = exporter.scrape()
    assert failed.value("cluster_exporter_scrape_ok") == 0
    reads = "cluster_job_read_bytes_total"
    assert failed.series(reads) == second.series(reads)
    crossed(fake_prometheus)
    third = exporter.scrape()
    _, (at2, _), _, (at4, window) = asked(fake_prometheus, "read_increase")
    assert window == window_of(at2, at4)
    assert third.series(reads) == {k: 3 * v for k, v in s.series(reads).items()}
    assert third.series("cluster_job_write_bytes_total") == {
        k: 4 * v for k, v in s.series("cluster_job_write_bytes_total").items()
    }
