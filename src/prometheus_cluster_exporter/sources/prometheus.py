"""Lustre jobstats rates from a Prometheus-compatible HTTP API.

Works with Prometheus, Thanos and VictoriaMetrics: only ``GET /api/v1/query`` is used.
The default queries are those of the original exporter, with the rate function, the
window and the metric/label names configurable::

    sum by(jobid)(irate(lustre_job_read_bytes_total[1m]) != 0)
    sum by(jobid)(irate(lustre_job_write_bytes_total[1m]) != 0)
    round(sum by(target,jobid)(irate(lustre_job_stats_total{target=~".*-MDT[0-9a-fA-F]{4}"}[1m]) >= 1))

With ``--metrics.metadata-by-operation`` the metadata query is by ``operation`` too.
With ``--metrics.counters`` three more queries ask the increase of the same counters over
a window the collector chooses (``promql.LustreSeries.increase``), in the same shapes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Tuple, TypeVar

from prometheus_cluster_exporter.errors import SourceError
from prometheus_cluster_exporter.jsonutil import vector_decoder
from prometheus_cluster_exporter.pacing import check_deadline
from prometheus_cluster_exporter.promql import FS_LABEL, OPERATION_LABEL, LustreSeries
from prometheus_cluster_exporter.records import (
    JobidRate,
    Parsed,
    Rates,
    TargetRate,
    columns_of,
    fs_extra,
    fs_target_extra,
    fs_target_operation_extra,
    target_extra,
    target_operation_extra,
)
from prometheus_cluster_exporter.sources.promhttp import PrometheusClient
from prometheus_cluster_exporter.sources.promscan import scan_pieces
from prometheus_cluster_exporter.sources.promvector import (
    decode_json,
    decoding,
    fast_jobid_rates,
    fast_target_rates,
    parse_jobid_vector,
    parse_target_vector,
    scanned_jobid_rates,
    scanned_target_rates,
    vector_result,
)

log = logging.getLogger(__name__)

R = TypeVar("R")


@dataclass(frozen=True)
class LustreQueries:
    """The PromQL expressions, built once at start-up from the configuration (the
    increase queries from ``series``, for the window of each collect)."""

    read: str
    write: str
    metadata: str
    read_operations: str
    write_operations: str
    jobid_label: str
    target_label: str
    mdt_target_regex: str
    fs_label: bool = False
    metadata_by_operation: bool = False
    series: LustreSeries = field(default_factory=LustreSeries)

    @classmethod
    def build(cls, **settings: Any) -> LustreQueries:
        """The queries of ``promql.LustreSeries(**settings)`` (its defaults: the original's)."""
        return cls.of(LustreSeries(**settings))

    @classmethod
    def of(cls, series: LustreSeries) -> LustreQueries:
        return cls(
            read=series.read,
            write=series.write,
            metadata=series.metadata_query,
            read_operations=series.read_operations,
            write_operations=series.write_operations,
            jobid_label=series.jobid_label,
            target_label=series.target_label,
            mdt_target_regex=series.mdt_target_regex,
            fs_label=series.fs_label,
            metadata_by_operation=series.metadata_by_operation,
            series=series,
        )


class PrometheusLustreSource:
    """The LustreSource of a real cluster: three instant queries, evaluated at one instant.

    Answers in the exact shape Prometheus writes are taken apart by the scanner
    (``promscan``); other well-formed answers are decoded into small typed objects, and
    anything else goes through the tolerant parsers, which skip malformed samples one
    by one. All three give the same rates.
    """

    def __init__(self, client: PrometheusClient, queries: LustreQueries) -> None:
        self.client = client
        self.queries = queries
        q = queries
        self._jobid_labels = (q.jobid_label, FS_LABEL) if q.fs_label else (q.jobid_label,)
        self._target_labels: Tuple[str, ...] = (q.jobid_label, q.target_label)
        if q.metadata_by_operation:
            self._target_labels += (OPERATION_LABEL,)
        self._jobid_decoder = vector_decoder(self._jobid_labels)
        self._target_decoder = vector_decoder(self._target_labels)

    def _throughput(
        self, promql: str, deadline: float, at: Optional[float], what: str
    ) -> Parsed[Rates]:
        q = self.queries
        answer = self.client.query_body(promql, deadline, what, at)
        columns = scan_pieces(answer.pieces(), self._jobid_labels, deadline, decoding(what))
        if columns is not None:
            return scanned_jobid_rates(columns, q.fs_label, what)
        body = answer.whole()
        del answer
        return _as_columns(
            self._decode_jobid_rates(body, deadline, what), fs_extra if q.fs_label else None
        )

    def _decode_jobid_rates(
        self, body: bytes, deadline: float, what: str
    ) -> Parsed[List[JobidRate]]:
        decoder = self._jobid_decoder
        samples = decoder.decode(body) if decoder is not None else None
        check_deadline(deadline, decoding(what))
        if decoder is not None and samples is not None:
            del body
            return fast_jobid_rates(samples, decoder, self.queries.fs_label, what, deadline)
        fs_label = FS_LABEL if self.queries.fs_label else None
        payload = decode_json(body, what)
        del body
        check_deadline(deadline, decoding(what))
        return parse_jobid_vector(payload, self.queries.jobid_label, what, fs_label, deadline)

    def probe(self, deadline: float) -> None:
        """Ask the query API a trivial query (``vector(1)``); SourceError unless it
        answers with a vector."""
        what = "check query vector(1)"
        body = self.client.query("vector(1)", deadline, what, None)
        rows = vector_result(decode_json(body, what), what)
        if len(rows) != 1:
            raise SourceError(f"{what}: expected one sample, got {len(rows)}")

    def read_rates(self, deadline: float, at: Optional[float] = None) -> Parsed[Rates]:
        return self._throughput(self.queries.read, deadline, at, "read query")

    def write_rates(self, deadline: float, at: Optional[float] = None) -> Parsed[Rates]:
        return self._throughput(self.queries.write, deadline, at, "write query")

    def read_operations(self, deadline: float, at: Optional[float] = None) -> Parsed[Rates]:
        return self._throughput(self.queries.read_operations, deadline, at, "read operations query")

    def write_operations(self, deadline: float, at: Optional[float] = None) -> Parsed[Rates]:
        what = "write operations query"
        return self._throughput(self.queries.write_operations, deadline, at, what)

    def metadata_rates(self, deadline: float, at: Optional[float] = None) -> Parsed[Rates]:
        return self._metadata(self.queries.metadata, deadline, at, "metadata query")

    def read_increase(self, deadline: float, at: float, window_ms: int) -> Parsed[Rates]:
        promql = self.queries.series.read_increase(window_ms)
        return self._throughput(promql, deadline, at, "read increase query")

    def write_increase(self, deadline: float, at: float, window_ms: int) -> Parsed[Rates]:
        promql = self.queries.series.write_increase(window_ms)
        return self._throughput(promql, deadline, at, "write increase query")

    def metadata_increase(self, deadline: float, at: float, window_ms: int) -> Parsed[Rates]:
        promql = self.queries.series.metadata_increase(window_ms)
        return self._metadata(promql, deadline, at, "metadata increase query")

    def _metadata(
        self, promql: str, deadline: float, at: Optional[float], what: str
    ) -> Parsed[Rates]:
        q = self.queries
        answer = self.client.query_body(promql, deadline, what, at)
        columns = scan_pieces(answer.pieces(), self._target_labels, deadline, decoding(what))
        if columns is not None:
            by_operation = q.metadata_by_operation
            return scanned_target_rates(columns, q.mdt_target_regex, q.fs_label, what, by_operation)
        body = answer.whole()
        del answer
        rows = self._decode_target_rates(body, deadline, what)
        return _as_columns(rows, self._metadata_extra())

    def _metadata_extra(self) -> Callable[[TargetRate], Tuple[str, ...]]:
        q = self.queries
        if q.metadata_by_operation:
            return fs_target_operation_extra if q.fs_label else target_operation_extra
        return fs_target_extra if q.fs_label else target_extra

    def _decode_target_rates(
        self, body: bytes, deadline: float, what: str
    ) -> Parsed[List[TargetRate]]:
        q = self.queries
        decoder = self._target_decoder
        samples = decoder.decode(body) if decoder is not None else None
        check_deadline(deadline, decoding(what))
        if decoder is not None and samples is not None:
            del body
            by_operation = q.metadata_by_operation
            return fast_target_rates(
                samples, decoder, q.mdt_target_regex, what, deadline, by_operation
            )
        payload = decode_json(body, what)
        del body
        check_deadline(deadline, decoding(what))
        operation = OPERATION_LABEL if q.metadata_by_operation else None
        return parse_target_vector(
            payload, q.jobid_label, q.target_label, q.mdt_target_regex, what, deadline, operation
        )


def _as_columns(
    parsed: Parsed[List[R]], extra_of: Optional[Callable[[R], Tuple[str, ...]]]
) -> Parsed[Rates]:
    return Parsed(columns_of(parsed.items, extra_of), parsed.skipped)


__all__: Tuple[str, ...] = (
    "LustreQueries",
    "PrometheusClient",
    "PrometheusLustreSource",
    "parse_jobid_vector",
    "parse_target_vector",
)
