"""--metrics.counters, its parts: the increase queries' text (window, fs label, metadata,
the site's names), the Prometheus source asking them at the collect's instant, and the
running totals (``counters``): accumulated, monotonic, no series for a zero, conserved,
the windows from each query's last instant and their bound. The collector, the flags and
the CLI: test_counters_collect.py."""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Tuple

import pytest

from prometheus_cluster_exporter import attribution as attr
from prometheus_cluster_exporter import families as fam
from prometheus_cluster_exporter.counters import Counters, milliseconds
from prometheus_cluster_exporter.promql import LustreSeries, duration
from prometheus_cluster_exporter.records import RateColumn
from prometheus_cluster_exporter.sources.httpbody import Body
from prometheus_cluster_exporter.sources.prometheus import LustreQueries, PrometheusLustreSource
from tests.helpers import FIXTURES

MDT = ".*-MDT[0-9a-fA-F]{4}"
FS_OF_TARGET = '"(.+)-[A-Za-z]{3}[0-9a-fA-F]{4}"'

# -- the queries -------------------------------------------------------------------------


def test_windows_are_whole_seconds_or_milliseconds() -> None:
    assert duration(15000) == "15s"
    assert duration(15500) == "15500ms"
    assert duration(3_600_000) == "3600s"
    assert duration(1) == duration(0) == "1ms"


def test_the_increase_queries_come_from_the_series_definition() -> None:
    s = LustreSeries()
    assert s.read_increase(15500) == (
        "sum by(jobid)(increase(lustre_job_read_bytes_total[15500ms]) > 0)"
    )
    assert s.write_increase(60000) == (
        "sum by(jobid)(increase(lustre_job_write_bytes_total[60s]) > 0)"
    )
    assert s.metadata_increase(15000) == (
        f'sum by(target,jobid)(increase(lustre_job_stats_total{{target=~"{MDT}"}}[15s]) > 0)'
    )
    # The site's names; neither the rate function nor the rates' window.
    site = LustreSeries(rate_function="rate", window="5m", read_metric="rb", write_metric="wb",
                        stats_metric="md", jobid_label="job", target_label="mdt",
                        mdt_target_regex="x-MDT.*", metadata_by_operation=True)  # fmt: skip
    assert site.read_increase(2000) == "sum by(job)(increase(rb[2s]) > 0)"
    assert site.write_increase(2001) == "sum by(job)(increase(wb[2001ms]) > 0)"
    assert site.metadata_increase(2000) == (
        'sum by(mdt,job,operation)(increase(md{mdt=~"x-MDT.*"}[2s]) > 0)'
    )


def test_the_fs_label_is_taken_as_the_rates_take_it() -> None:
    fs = LustreSeries(fs_label=True)
    assert fs.read_increase(15000) == (
        "sum by(jobid,fs)(label_replace(increase(lustre_job_read_bytes_total[15s]) > 0, "
        f'"fs", "$1", "target", {FS_OF_TARGET}))'
    )
    assert fs.read == (
        "sum by(jobid,fs)(label_replace(irate(lustre_job_read_bytes_total[1m]) != 0, "
        f'"fs", "$1", "target", {FS_OF_TARGET}))'
    )
    # Metadata keeps the MDT, whose name the fs is read from (as for the rates).
    assert fs.metadata_increase(15000) == LustreSeries().metadata_increase(15000)


class Canned:
    """A query API client that answers every query with one body."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.asked: List[Tuple[str, Optional[float]]] = []

    def query_body(self, promql: str, deadline: float, what: str, at: Any = None) -> Body:
        self.asked.append((promql, at))
        return Body([self.body], "identity", 0, what)


def test_the_source_asks_at_the_collects_instant_and_parses_like_the_rates() -> None:
    read = Canned((FIXTURES / "prometheus-read.json").read_bytes())
    source = PrometheusLustreSource(read, LustreQueries.build())  # type: ignore[arg-type]
    increase = source.read_increase(math.inf, 1733090000.5, 15500)
    assert read.asked == [
        ("sum by(jobid)(increase(lustre_job_read_bytes_total[15500ms]) > 0)", 1733090000.5)
    ]
    assert increase == source.read_rates(math.inf, 1733090000.5)
    meta = Canned((FIXTURES / "prometheus-metadata.json").read_bytes())
    source = PrometheusLustreSource(meta, LustreQueries.build())  # type: ignore[arg-type]
    answer = source.metadata_increase(math.inf, 1733090000.5, 30000)
    assert meta.asked[0] == (LustreSeries().metadata_increase(30000), 1733090000.5)
    assert answer == source.metadata_rates(math.inf)
    assert {column.extra for column in answer.items} == {("scratch-MDT0000",), ("scratch-MDT0001",)}


# -- the running totals ------------------------------------------------------------------

TABLE = attr.OwnerTable(
    {"1": 1, "cp.1001": 2, "nodot": 3, "2": 4},
    [attr.LOST, attr.JOB, attr.PROC, attr.LOST, attr.JOB],
    [("unknown_job",), ("physics", "alice"), ("cp", "hpc", "alice"), ("unparsable_jobid",),
     ("chem", "bob")],
)  # fmt: skip


def increase(values: Dict[str, float], extra: Tuple[str, ...] = ()) -> attr.Attribution:
    return attr.attribute([RateColumn(extra, list(values), list(values.values()))], TABLE)


def totals(counters: Counters, query: fam.Query) -> List[Dict[Tuple[str, ...], float]]:
    return [dict(f.rows) for f in counters.families(False) if f.spec in query[2:5]]


def test_the_first_collect_asks_nothing_and_the_next_from_its_instant() -> None:
    counters = Counters(fam.COUNTERS, 3600)
    assert counters.windows(1_000_000) == {}
    assert counters.windows(1_015_500) == dict.fromkeys(fam.COUNTERS, (15500, None))
    # Not counted: the instant stays, the window grows.
    assert counters.windows(1_030_000) == dict.fromkeys(fam.COUNTERS, (30000, None))
    counters.add(fam.READ_INCREASE, increase({"1": 1.0}), 1_030_000)
    windows = counters.windows(1_045_000)
    assert windows[fam.READ_INCREASE].ms == 15000 and windows[fam.WRITE_INCREASE].ms == 45000
    # The clock went back: start again from there, ask nothing.
    assert counters.windows(1_000_000) == {}
    assert counters.windows(1_001_000) == dict.fromkeys(fam.COUNTERS, (1000, None))


def test_with_a_start_instant_the_first_collect_asks_from_it() -> None:
    counters = Counters(fam.COUNTERS, 3600, started=1_000.0)
    assert counters.windows(1_012_250) == dict.fromkeys(fam.COUNTERS, (12250, None))
    # Bounded like any window, and said once.
    late = Counters((fam.READ_INCREASE,), 60, started=1_000.0)
    assert late.windows(1_000_000 + 90_000) == {fam.READ_INCREASE: (60000, 30.0)}
    # A start in the future (the clock went back since): start again from the collect.
    ahead = Counters((fam.READ_INCREASE,), 60, started=2_000.0)
    assert ahead.windows(1_500_000) == {}
    assert ahead.windows(1_501_000) == {fam.READ_INCREASE: (1000, None)}


def test_a_collect_sooner_than_the_shortest_window_asks_nothing() -> None:
    counters = Counters(fam.COUNTERS, 3600, started=1_000.0, min_window=30)
    assert counters.windows(1_029_999) == {}  # 29.999 s since the start
    assert counters.windows(1_030_000) == dict.fromkeys(fam.COUNTERS, (30000, None))
    for query in fam.COUNTERS:
        counters.add(query, increase({"1": 1.0}), 1_030_000)
    # Two Prometheus servers scraping 5 s apart: only every 30 s or more counts.
    assert counters.windows(1_035_000) == {}
    assert counters.windows(1_059_000) == {}
    assert counters.windows(1_061_500) == dict.fromkeys(fam.COUNTERS, (31500, None))


def test_totals_grow_by_the_increases_and_never_lose_a_series() -> None:
    counters = Counters(fam.COUNTERS, 3600)
    read = fam.READ_INCREASE
    counters.add(read, increase({"1": 100.0, "cp.1001": 10.0, "nodot": 1.0, "2": 0.0}), 1)
    job, proc, lost = totals(counters, read)
    assert job == {("physics", "alice"): 100.0}  # chem/bob's 0 makes no series
    assert proc == {("cp", "hpc", "alice"): 10.0}
    assert lost == {("unparsable_jobid",): 1.0}
    counters.add(read, increase({"1": 50.0, "9": 5.0, "2": -3.0, "nodot": math.nan}), 2)
    job, proc, lost = totals(counters, read)
    assert job == {("physics", "alice"): 150.0}
    assert proc == {("cp", "hpc", "alice"): 10.0}  # no increase: the series stays
    assert lost == {("unparsable_jobid",): 1.0, ("unknown_job",): 5.0}
    # The other queries' totals are their own.
    assert all(not rows for rows in totals(counters, fam.WRITE_INCREASE))
    # The families are copies: a later collect does not change a page being rendered.
    page = counters.families(False)
    counters.add(read, increase({"1": 1.0}), 3)
    assert dict(page[3].rows) == {("physics", "alice"): 150.0}
    assert page[3].spec.type == "counter"


def test_job_process_and_unattributed_add_up_to_the_answer() -> None:
    counters = Counters(fam.COUNTERS, 3600)
    answers = [
        {"1": 1e9, "cp.1001": 3.5, "nodot": 0.25, "9": 7.0, "2": 12.0},
        {"1": 2.0, "8": 1e-3, "cp.1001": 1e12},
    ]
    for at, answer in enumerate(answers):
        counters.add(fam.METADATA_INCREASE, increase(answer, ("fs-MDT0000",)), at)
    counted = sum(sum(rows.values()) for rows in totals(counters, fam.METADATA_INCREASE))
    assert counted == pytest.approx(sum(sum(a.values()) for a in answers), rel=1e-12)
    labels = [f.spec.labels for f in counters.families(True)[:3]]
    assert labels == [
        ("account", "user", "target", "fs"),
        ("proc_name", "group_name", "user_name", "target", "fs"),
        ("reason", "target", "fs"),
    ]


def test_a_longer_gap_is_cut_to_the_bound_and_said_once() -> None:
    counters = Counters((fam.READ_INCREASE,), 60)
    counters.windows(0)
    assert counters.windows(200_000) == {fam.READ_INCREASE: (60000, 140.0)}
    # Failed again: still cut, not said again.
    assert counters.windows(215_000) == {fam.READ_INCREASE: (60000, None)}
    counters.add(fam.READ_INCREASE, increase({"1": 1.0}), 215_000)
    assert counters.windows(230_000) == {fam.READ_INCREASE: (15000, None)}
    assert counters.windows(400_000) == {fam.READ_INCREASE: (60000, 125.0)}  # a new outage
    assert Counters((), 0.0005).max_gap_ms == 1 and Counters((), 1.0001).max_gap_ms == 1001


def test_instants_are_whole_milliseconds() -> None:
    assert milliseconds(1733090000.123) == 1733090000123
    assert milliseconds(1733090015.623) - milliseconds(1733090000.123) == 15500
    assert milliseconds(round(1733090015.6235, 3)) == 1733090015624
