"""Names, help texts and labels of every metric the exporter exposes (one table), and
``RowFamily``, the pipeline's output: a spec with its rows, ready for ``exposition``.

Imports nothing of the exporter's: every room may use it.
"""

from __future__ import annotations

from typing import Collection, Iterator, Mapping, NamedTuple, Sequence, Tuple

#: Label values (in the spec's label order) and the value of each series of a family.
Rows = Collection[Tuple[Tuple[str, ...], float]]
Row = Tuple[Tuple[str, ...], float]


class OwnerRows(Collection[Row]):
    """The rows of one kind of owner, kept as attribution made them: for each tuple of
    labels after the owner's (``extra``), owner number -> value. Owner ``n``'s label
    values are ``labels_of[n]``; only owners with ``kinds[n] == kind`` are rows here. The
    renderer writes them straight from the numbers; iterating gives ordinary rows."""

    def __init__(
        self,
        labels_of: Sequence[Tuple[str, ...]],
        kinds: Sequence[int],
        kind: int,
        sums: Mapping[Tuple[str, ...], Mapping[int, float]],
    ) -> None:
        self.labels_of = labels_of
        self.kinds = kinds
        self.kind = kind
        self.sums = sums

    def __iter__(self) -> Iterator[Row]:
        labels_of, kinds, kind = self.labels_of, self.kinds, self.kind
        for extra, values in self.sums.items():
            for n, value in values.items():
                if kinds[n] == kind:
                    yield labels_of[n] + extra, value

    def __len__(self) -> int:
        kinds = self.kinds
        return sum(
            list(map(kinds.__getitem__, values)).count(self.kind) for values in self.sums.values()
        )

    def __contains__(self, row: object) -> bool:
        return row in list(self)


GAUGE, COUNTER = "gauge", "counter"


class MetricSpec(NamedTuple):
    name: str
    help: str
    labels: Tuple[str, ...]
    #: The ``# TYPE`` of the family: GAUGE or COUNTER (whose name ends in ``_total``).
    type: str = GAUGE

    def with_labels(self, *extra: str) -> MetricSpec:
        return self._replace(labels=(*self.labels, *extra))


class RowFamily(NamedTuple):
    """A family as the collector produces it: label-value tuples and values."""

    spec: MetricSpec
    rows: Rows


_PROC = ("proc_name", "group_name", "user_name")

JOB_READ = MetricSpec(
    "cluster_job_read_throughput_bytes",
    "Total IO read throughput of all jobs on the cluster per account in bytes per second.",
    ("account", "user"),
)
JOB_WRITE = MetricSpec(
    "cluster_job_write_throughput_bytes",
    "Total IO write throughput of all jobs on the cluster per account in bytes per second.",
    ("account", "user"),
)
JOB_METADATA = MetricSpec(
    "cluster_job_metadata_operations",
    "Total metadata operations per second of all jobs on the cluster per account, user and MDT.",
    ("account", "user", "target"),
)
PROC_READ = MetricSpec(
    "cluster_proc_read_throughput_bytes",
    "Total IO read throughput of process names on the cluster per group and user in bytes per second.",
    _PROC,
)
PROC_WRITE = MetricSpec(
    "cluster_proc_write_throughput_bytes",
    "Total IO write throughput of process names on the cluster per group and user in bytes per second.",
    _PROC,
)
PROC_METADATA = MetricSpec(
    "cluster_proc_metadata_operations",
    "Total metadata operations per second of process names on the cluster per group, user and MDT.",
    (*_PROC, "target"),
)
JOB_READ_OPS = MetricSpec(
    "cluster_job_read_operations",
    "Read operations (calls) per second of all jobs on the cluster per account and user.",
    ("account", "user"),
)
JOB_WRITE_OPS = MetricSpec(
    "cluster_job_write_operations",
    "Write operations (calls) per second of all jobs on the cluster per account and user.",
    ("account", "user"),
)
PROC_READ_OPS = MetricSpec(
    "cluster_proc_read_operations",
    "Read operations (calls) per second of process names per group and user.",
    _PROC,
)
PROC_WRITE_OPS = MetricSpec(
    "cluster_proc_write_operations",
    "Write operations (calls) per second of process names per group and user.",
    _PROC,
)
SCRAPE_OK = MetricSpec(
    "cluster_exporter_scrape_ok",
    "Indicates if the scrape of the exporter was successful or not.",
    (),
)
STAGE_SECONDS = MetricSpec(
    "cluster_exporter_stage_execution_seconds",
    "Execution duration in seconds spend in a specific exporter stage.",
    ("name",),
)

BUILD_INFO = MetricSpec(
    "cluster_exporter_build_info",
    "A metric with a constant '1' value labelled by the exporter's version and the Python "
    "version it runs on.",
    ("version", "python_version"),
)
TIMEOUT_SECONDS = MetricSpec(
    "cluster_exporter_timeout_seconds",
    "The deadline in seconds of a scrape, by which every external call ends (--timeout).",
    (),
)
UNATTRIBUTED_READ = MetricSpec(
    "cluster_unattributed_read_throughput_bytes",
    "IO read throughput in bytes per second that could not be attributed to a job or a "
    "process owner, per reason.",
    ("reason",),
)
UNATTRIBUTED_WRITE = MetricSpec(
    "cluster_unattributed_write_throughput_bytes",
    "IO write throughput in bytes per second that could not be attributed to a job or a "
    "process owner, per reason.",
    ("reason",),
)
UNATTRIBUTED_METADATA = MetricSpec(
    "cluster_unattributed_metadata_operations",
    "Metadata operations per second that could not be attributed to a job or a process "
    "owner, per reason and MDT.",
    ("reason", "target"),
)
UNATTRIBUTED_READ_OPS = MetricSpec(
    "cluster_unattributed_read_operations",
    "Read operations per second that could not be attributed to a job or a process owner, "
    "per reason.",
    ("reason",),
)
UNATTRIBUTED_WRITE_OPS = MetricSpec(
    "cluster_unattributed_write_operations",
    "Write operations per second that could not be attributed to a job or a process owner, "
    "per reason.",
    ("reason",),
)
FOLDED_OWNERS = MetricSpec(
    "cluster_exporter_folded_owners",
    "Owners summed under __other__ in this scrape by --metrics.max-series, per family.",
    ("family",),
)

JOB_INFO = MetricSpec(
    "cluster_job_info",
    "A Slurm job the exporter knows (squeue, the grace period, sacct), for the join "
    "mode rules; always 1.",
    ("jobid", "account", "user"),
)
USER_INFO = MetricSpec(
    "cluster_user_info",
    "The user and primary group of a uid seen in process jobids, for the join mode "
    "rules (group_name empty if the gid has no name); always 1.",
    ("uid", "user_name", "group_name"),
)
_TOP = ("jobid", "account", "user", "job_name", "partition")
TOP_JOB_READ = MetricSpec(
    "cluster_top_job_read_throughput_bytes",
    "Read throughput of the jobs with the most read + write throughput this scrape "
    "(--metrics.top-jobs) in bytes per second.",
    _TOP,
)
TOP_JOB_WRITE = MetricSpec(
    "cluster_top_job_write_throughput_bytes",
    "Write throughput of the jobs with the most read + write throughput this scrape "
    "(--metrics.top-jobs) in bytes per second.",
    _TOP,
)
TOP_JOB_METADATA = MetricSpec(
    "cluster_top_job_metadata_operations",
    "Metadata operations per second over all MDTs of the jobs with the most read + "
    "write throughput this scrape (--metrics.top-jobs).",
    _TOP,
)


def _counter(name: str, what: str, per: str, labels: Tuple[str, ...]) -> MetricSpec:
    return MetricSpec(
        name,
        f"{what} {per} since the exporter started (--metrics.counters).",
        labels,
        COUNTER,
    )


_ANY = "that could not be attributed to a job or a process owner"
JOB_READ_TOTAL = _counter(
    "cluster_job_read_bytes_total",
    "Bytes read by all jobs on the cluster",
    "per account and user",
    ("account", "user"),
)
JOB_WRITE_TOTAL = _counter(
    "cluster_job_write_bytes_total",
    "Bytes written by all jobs on the cluster",
    "per account and user",
    ("account", "user"),
)
JOB_METADATA_TOTAL = _counter(
    "cluster_job_metadata_ops_total",
    "Metadata operations of all jobs on the cluster",
    "per account, user and MDT",
    ("account", "user", "target"),
)
PROC_READ_TOTAL = _counter(
    "cluster_proc_read_bytes_total",
    "Bytes read by process names on the cluster",
    "per group and user",
    _PROC,
)
PROC_WRITE_TOTAL = _counter(
    "cluster_proc_write_bytes_total",
    "Bytes written by process names on the cluster",
    "per group and user",
    _PROC,
)
PROC_METADATA_TOTAL = _counter(
    "cluster_proc_metadata_ops_total",
    "Metadata operations of process names on the cluster",
    "per group, user and MDT",
    (*_PROC, "target"),
)
UNATTRIBUTED_READ_TOTAL = _counter(
    "cluster_unattributed_read_bytes_total", f"Bytes read {_ANY}", "per reason", ("reason",)
)
UNATTRIBUTED_WRITE_TOTAL = _counter(
    "cluster_unattributed_write_bytes_total", f"Bytes written {_ANY}", "per reason", ("reason",)
)
UNATTRIBUTED_METADATA_TOTAL = _counter(
    "cluster_unattributed_metadata_ops_total",
    f"Metadata operations {_ANY}",
    "per reason and MDT",
    ("reason", "target"),
)

ALL = (
    JOB_READ,
    JOB_WRITE,
    JOB_METADATA,
    PROC_READ,
    PROC_WRITE,
    PROC_METADATA,
    UNATTRIBUTED_READ,
    UNATTRIBUTED_WRITE,
    UNATTRIBUTED_METADATA,
    JOB_READ_OPS,
    JOB_WRITE_OPS,
    PROC_READ_OPS,
    PROC_WRITE_OPS,
    UNATTRIBUTED_READ_OPS,
    UNATTRIBUTED_WRITE_OPS,
    SCRAPE_OK,
    STAGE_SECONDS,
    BUILD_INFO,
    TIMEOUT_SECONDS,
    JOB_INFO,
    USER_INFO,
    FOLDED_OWNERS,
    TOP_JOB_READ,
    TOP_JOB_WRITE,
    TOP_JOB_METADATA,
    JOB_READ_TOTAL,
    JOB_WRITE_TOTAL,
    JOB_METADATA_TOTAL,
    PROC_READ_TOTAL,
    PROC_WRITE_TOTAL,
    PROC_METADATA_TOTAL,
    UNATTRIBUTED_READ_TOTAL,
    UNATTRIBUTED_WRITE_TOTAL,
    UNATTRIBUTED_METADATA_TOTAL,
)
