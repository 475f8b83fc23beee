"""--metrics.operations through the real CLI: read and write calls per second attributed
like the bytes (every owner, every reason, the same sums), off by default, and a failing
operations query costs only its own families."""

from __future__ import annotations

from typing import Callable, Dict

import pytest

from prometheus_cluster_exporter.families import OPERATIONS, QUERIES
from prometheus_cluster_exporter.records import LustreSource
from prometheus_cluster_exporter.simulate import SCHEMAS, series_rates
from tests.helpers import FIXTURES, Exporter, FakePrometheus

Start = Callable[..., Exporter]
KINDS = ("job", "proc", "unattributed")


def crossed(fake: FakePrometheus) -> None:
    """The operations answers are the bytes answers crossed over (read calls = the write
    bytes' samples), so a family fed by the wrong query shows."""
    fake.set("read_ops", (FIXTURES / "prometheus-write.json").read_bytes())
    fake.set("write_ops", (FIXTURES / "prometheus-read.json").read_bytes())


def test_operations_are_attributed_like_bytes(
    start_exporter: Start, fake_prometheus: FakePrometheus
) -> None:
    crossed(fake_prometheus)
    s = start_exporter("--metrics.operations").scrape()
    assert s.value("cluster_exporter_scrape_ok") == 1
    for kind in KINDS:
        reads = s.series(f"cluster_{kind}_read_operations")
        assert reads and reads == s.series(f"cluster_{kind}_write_throughput_bytes"), kind
        writes = s.series(f"cluster_{kind}_write_operations")
        assert writes and writes == s.series(f"cluster_{kind}_read_throughput_bytes"), kind
    asked = fake_prometheus.queries
    assert "sum by(jobid)(irate(lustre_job_read_samples_total[1m]) != 0)" in asked
    assert "sum by(jobid)(irate(lustre_job_write_samples_total[1m]) != 0)" in asked
    stages = {dict(k)["name"] for k in s.series("cluster_exporter_stage_execution_seconds")}
    assert {"build_read_operations_metrics", "build_write_operations_metrics"} <= stages


def test_operations_are_off_by_default(
    start_exporter: Start, fake_prometheus: FakePrometheus
) -> None:
    crossed(fake_prometheus)
    s = start_exporter().scrape()
    assert s.value("cluster_exporter_scrape_ok") == 1
    assert not [f for f in s.families if f.endswith("_operations") and "metadata" not in f]
    stages = {dict(k)["name"] for k in s.series("cluster_exporter_stage_execution_seconds")}
    assert stages == {
        "retrieve_running_jobs", "retrieve_user_name_info", "retrieve_group_name_info",
        "retrieve_missing_user_info", "retrieve_missing_group_info",
        "build_metadata_metrics", "build_read_throughput_metrics", "build_write_throughput_metrics",
        "build_top_jobs_metrics", "retrieve_top_job_details",
    }  # fmt: skip
    assert not [q for q in fake_prometheus.queries if "samples" in q]


def test_a_failing_operations_query_costs_only_its_families(
    start_exporter: Start, fake_prometheus: FakePrometheus
) -> None:
    crossed(fake_prometheus)
    fake_prometheus.set("write_ops", b"upstream error", status=500)
    s = start_exporter("--metrics.operations").scrape()
    assert s.value("cluster_exporter_scrape_ok") == 0
    for kind in KINDS:
        assert not s.has(f"cluster_{kind}_write_operations"), kind
    assert s.series("cluster_job_read_operations") and s.series("cluster_job_read_throughput_bytes")


def test_the_call_counters_names_are_flags(
    start_exporter: Start, fake_prometheus: FakePrometheus
) -> None:
    start_exporter(
        "--metrics.operations", "--lustre.read-samples-metric=jobstats_read_calls",
        "--lustre.write-samples-metric=jobstats_write_calls", "--timerange=2m",
    ).scrape()  # fmt: skip
    asked = fake_prometheus.queries
    assert "sum by(jobid)(irate(jobstats_read_calls[2m]) != 0)" in asked
    assert "sum by(jobid)(irate(jobstats_write_calls[2m]) != 0)" in asked


@pytest.mark.parametrize("schema", SCHEMAS)
def test_the_simulator_serves_the_call_counters_in_every_schema(schema: str) -> None:
    spec = {"schema": schema, "filesystems": {"scratch": {"osts": 2, "mdts": 1}},
            "jobs": [{"jobid": "1", "read_ops": 10, "write_ops": 4, "read": 4096}]}  # fmt: skip
    rates = series_rates(spec)
    per_metric: Dict[str, float] = {}
    for (metric, labels), rate in rates.items():
        per_metric[metric] = per_metric.get(metric, 0.0) + rate
        if "samples" in metric:
            assert dict(labels)["target"].startswith("scratch-OST"), "per OST, as the bytes"
    assert per_metric["lustre_job_read_samples_total"] == 10
    assert per_metric["lustre_job_write_samples_total"] == 4


def test_every_query_names_a_method_of_the_lustre_source() -> None:
    for query in (*QUERIES, *OPERATIONS):
        assert callable(getattr(LustreSource, query.method, None)), query.method
