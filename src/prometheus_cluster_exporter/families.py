"""Metric families from attribution results: pure functions, no I/O, no state.

One table of queries, ``QUERIES`` (the original's three), ``OPERATIONS`` (with
``--metrics.operations``) and ``COUNTERS`` (the increase queries of ``--metrics.counters``,
whose families are the running totals ``counters`` keeps), says for each Lustre query which families it feeds, which
``LustreSource`` method answers it, which stage times its build, and which labels follow
the owner's: the MDT ``target`` for
metadata (then the ``operation`` with ``--metrics.metadata-by-operation``: the query
``METADATA_BY_OPERATION``), and ``fs`` with ``--metrics.fs-label``. Imports ``metrics``
and ``records``.

Sample (a read answer, fs label on)::

    cluster_job_read_throughput_bytes{account="physics",fs="scratch",user="alice"} 1048576.0
    cluster_unattributed_read_throughput_bytes{fs="scratch",reason="unknown_job"} 4096.0
"""

from __future__ import annotations

from typing import Any, Callable, List, NamedTuple, Optional, Sequence, Tuple

from prometheus_cluster_exporter.metrics import (
    FOLDED_OWNERS,
    JOB_METADATA,
    JOB_METADATA_TOTAL,
    JOB_READ,
    JOB_READ_OPS,
    JOB_READ_TOTAL,
    JOB_WRITE,
    JOB_WRITE_OPS,
    JOB_WRITE_TOTAL,
    PROC_METADATA,
    PROC_METADATA_TOTAL,
    PROC_READ,
    PROC_READ_OPS,
    PROC_READ_TOTAL,
    PROC_WRITE,
    PROC_WRITE_OPS,
    PROC_WRITE_TOTAL,
    SCRAPE_OK,
    STAGE_SECONDS,
    UNATTRIBUTED_METADATA,
    UNATTRIBUTED_METADATA_TOTAL,
    UNATTRIBUTED_READ,
    UNATTRIBUTED_READ_OPS,
    UNATTRIBUTED_READ_TOTAL,
    UNATTRIBUTED_WRITE,
    UNATTRIBUTED_WRITE_OPS,
    UNATTRIBUTED_WRITE_TOTAL,
    MetricSpec,
    Row,
    RowFamily,
    Rows,
)
from prometheus_cluster_exporter.records import (
    fs_extra,
    fs_target_extra,
    fs_target_operation_extra,
    target_extra,
    target_operation_extra,
)

FS = "fs"
OPERATION = "operation"

#: The labels a record adds after its owner's (see ``attribution.attribute``).
ExtraLabels = Callable[[Any], Tuple[str, ...]]


class Query(NamedTuple):
    """One Lustre query: its name (in logs), its build stage and its three families."""

    source: str
    stage: str
    job: MetricSpec
    proc: MetricSpec
    lost: MetricSpec
    #: Labels after the owner's without and with the fs label.
    extra: Optional[ExtraLabels]
    extra_fs: ExtraLabels
    #: The ``LustreSource`` method that answers it.
    method: str


METADATA = Query(
    "metadata query",
    "build_metadata_metrics",
    JOB_METADATA,
    PROC_METADATA,
    UNATTRIBUTED_METADATA,
    target_extra,
    fs_target_extra,
    "metadata_rates",
)


def _by_operation(query: Query, help_of: Callable[[str], str]) -> Query:
    """A metadata query with ``operation`` after ``target`` in its families (their help
    rewritten by ``help_of``) and in the labels its records add."""

    def spec(family: MetricSpec) -> MetricSpec:
        return family._replace(help=help_of(family.help)).with_labels(OPERATION)

    return query._replace(
        job=spec(query.job),
        proc=spec(query.proc),
        lost=spec(query.lost),
        extra=target_operation_extra,
        extra_fs=fs_target_operation_extra,
    )


#: METADATA with --metrics.metadata-by-operation.
METADATA_BY_OPERATION = _by_operation(METADATA, lambda text: f"{text[:-1]}, by operation.")
READ = Query(
    "read query",
    "build_read_throughput_metrics",
    JOB_READ,
    PROC_READ,
    UNATTRIBUTED_READ,
    None,
    fs_extra,
    "read_rates",
)
WRITE = Query(
    "write query",
    "build_write_throughput_metrics",
    JOB_WRITE,
    PROC_WRITE,
    UNATTRIBUTED_WRITE,
    None,
    fs_extra,
    "write_rates",
)
READ_OPS = Query(
    "read operations query",
    "build_read_operations_metrics",
    JOB_READ_OPS,
    PROC_READ_OPS,
    UNATTRIBUTED_READ_OPS,
    None,
    fs_extra,
    "read_operations",
)
WRITE_OPS = Query(
    "write operations query",
    "build_write_operations_metrics",
    JOB_WRITE_OPS,
    PROC_WRITE_OPS,
    UNATTRIBUTED_WRITE_OPS,
    None,
    fs_extra,
    "write_operations",
)
#: In the order their families are exposed: the original's three, then the opt-in ones.
QUERIES = (METADATA, READ, WRITE)
OPERATIONS = (READ_OPS, WRITE_OPS)

#: --metrics.counters: the increase of the same counters since the last collect, added to
#: running totals (``counters``); their methods take the window too.
METADATA_INCREASE = Query(
    "metadata increase query",
    "build_metadata_counters",
    JOB_METADATA_TOTAL,
    PROC_METADATA_TOTAL,
    UNATTRIBUTED_METADATA_TOTAL,
    target_extra,
    fs_target_extra,
    "metadata_increase",
)
METADATA_INCREASE_BY_OPERATION = _by_operation(
    METADATA_INCREASE, lambda text: text.replace(" and MDT since", ", MDT and operation since")
)
READ_INCREASE = Query(
    "read increase query",
    "build_read_bytes_counters",
    JOB_READ_TOTAL,
    PROC_READ_TOTAL,
    UNATTRIBUTED_READ_TOTAL,
    None,
    fs_extra,
    "read_increase",
)
WRITE_INCREASE = Query(
    "write increase query",
    "build_write_bytes_counters",
    JOB_WRITE_TOTAL,
    PROC_WRITE_TOTAL,
    UNATTRIBUTED_WRITE_TOTAL,
    None,
    fs_extra,
    "write_increase",
)
COUNTERS = (METADATA_INCREASE, READ_INCREASE, WRITE_INCREASE)


def counter_queries_of(metadata_by_operation: bool = False) -> Tuple[Query, ...]:
    """The increase queries of --metrics.counters; with --metrics.metadata-by-operation
    the metadata one by operation, as the metadata families are."""
    if not metadata_by_operation:
        return COUNTERS
    return tuple(METADATA_INCREASE_BY_OPERATION if q is METADATA_INCREASE else q for q in COUNTERS)


def queries_of(operations: bool, metadata_by_operation: bool = False) -> Tuple[Query, ...]:
    """The queries a collect runs: the original's, and with --metrics.operations the
    read and write operations; with --metrics.metadata-by-operation, the metadata query
    by operation."""
    queries: Tuple[Query, ...] = QUERIES + OPERATIONS if operations else QUERIES
    if metadata_by_operation:
        queries = tuple(METADATA_BY_OPERATION if q is METADATA else q for q in queries)
    return queries


def extra_labels(query: Query, fs_label: bool) -> Optional[ExtraLabels]:
    return query.extra_fs if fs_label else query.extra


def query_families(
    query: Query,
    jobs: Rows,
    procs: Rows,
    unattributed: Rows,
    *,
    fs_label: bool,
    jobs_known: bool,
    identities_known: bool,
) -> List[RowFamily]:
    """The families of one attributed answer.

    The job family is left out when squeue failed, the process family when getent did
    (their rows are all unattributed then); the unattributed family is always there.
    """
    fs = (FS,) if fs_label else ()
    families = []
    if jobs_known:
        families.append(RowFamily(query.job.with_labels(*fs), jobs))
    if identities_known:
        families.append(RowFamily(query.proc.with_labels(*fs), procs))
    families.append(RowFamily(query.lost.with_labels(*fs), unattributed))
    return families


def folded_rows(query: Query, families: Sequence[RowFamily], job: int, proc: int) -> List[Row]:
    """Rows of ``cluster_exporter_folded_owners`` for the job and process families among
    ``families`` (those of ``query``): how many owners each had folded (``job``, ``proc``)."""
    folded = {query.job.name: job, query.proc.name: proc}
    return [((f.spec.name,), float(folded[f.spec.name])) for f in families if f.spec.name in folded]


def folded_family(rows: Sequence[Row]) -> RowFamily:
    """``cluster_exporter_folded_owners`` (only with ``--metrics.max-series``)."""
    return RowFamily(FOLDED_OWNERS, list(rows))


def stage_family(stages: Sequence[Tuple[str, float]]) -> RowFamily:
    """``cluster_exporter_stage_execution_seconds`` for (stage name, seconds) pairs."""
    return RowFamily(STAGE_SECONDS, [((name,), seconds) for name, seconds in stages])


def scrape_ok_family(ok: bool) -> RowFamily:
    return RowFamily(SCRAPE_OK, [((), 1.0 if ok else 0.0)])
