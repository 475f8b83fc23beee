"""The PromQL of the site's Lustre series, defined once for the queries and the rules.

``LustreSeries`` holds what shapes the per-jobid expressions (rate function, window,
metric and label names, the MDT regex, the fs label). The exporter's three queries in
direct mode and the recording rules of join mode (``joinrules``) are both built from it,
so both modes compute the same per-jobid rates::

    sum by(jobid)(irate(lustre_job_read_bytes_total[1m]) != 0)
    round(sum by(target,jobid)(irate(lustre_job_stats_total{target=~".*-MDT[0-9a-fA-F]{4}"}[1m]) >= 1))

A selector may be narrowed by extra label matchers (``jobid=~"..."``), which is how the
rules pick the ids of one jobid form. With ``metadata_by_operation``
(``--metrics.metadata-by-operation``) the metadata query keeps the ``operation`` label::

    round(sum by(target,jobid,operation)(irate(lustre_job_stats_total{target=~"..."}[1m]) >= 1))

With ``--metrics.counters`` the exporter also asks the exact increase of the same
counters since its last collect, ``window_ms`` milliseconds up to the collect's instant
(``duration`` writes the PromQL duration), zeros left out and nothing rounded::

    sum by(jobid)(increase(lustre_job_read_bytes_total[15500ms]) > 0)
    sum by(target,jobid)(increase(lustre_job_stats_total{target=~".*-MDT[0-9a-fA-F]{4}"}[15s]) > 0)

The ``>= 1`` filter is on the raw per-MDT series, which carry the operation already, so
it keeps the same series either way; ``round`` then rounds each operation's rate, and
the operations of a jobid and MDT add up to the default's value within 0.5 per operation.
Imports ``records`` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

from prometheus_cluster_exporter.records import FS_OF_TARGET

FS_LABEL = "fs"
#: The label of lustre_job_stats_total naming the metadata operation (open, close, ...).
OPERATION_LABEL = "operation"


def quote(text: str) -> str:
    """``text`` as a PromQL string literal (double quotes, backslash escapes)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def duration(milliseconds: int) -> str:
    """A whole number of milliseconds (at least 1) as a PromQL duration: ``15s``, or
    ``15500ms`` when it is not a whole number of seconds."""
    milliseconds = max(1, milliseconds)
    if milliseconds % 1000 == 0:
        return f"{milliseconds // 1000}s"
    return f"{milliseconds}ms"


@dataclass(frozen=True)
class LustreSeries:
    """The site's Lustre jobstats series and how their rates are taken."""

    rate_function: str = "irate"
    window: str = "1m"
    read_metric: str = "lustre_job_read_bytes_total"
    write_metric: str = "lustre_job_write_bytes_total"
    stats_metric: str = "lustre_job_stats_total"
    read_samples_metric: str = "lustre_job_read_samples_total"
    write_samples_metric: str = "lustre_job_write_samples_total"
    jobid_label: str = "jobid"
    target_label: str = "target"
    mdt_target_regex: str = ".*-MDT[0-9a-fA-F]{4}"
    fs_label: bool = False
    #: --metrics.metadata-by-operation: the metadata query by operation too.
    metadata_by_operation: bool = False

    def throughput(self, metric: str, matchers: str = "") -> str:
        """Per-jobid rate of a byte or call counter (``, fs`` with the fs label), zeros
        left out."""
        selector = f"{metric}{{{matchers}}}" if matchers else metric
        return self._per_jobid(f"{self.rate_function}({selector}[{self.window}]) != 0")

    def increase(self, metric: str, window_ms: int) -> str:
        """Per-jobid increase of a byte counter over the ``window_ms`` milliseconds up to
        the evaluation instant (``, fs`` with the fs label), zeros left out."""
        return self._per_jobid(f"increase({metric}[{duration(window_ms)}]) > 0")

    def _per_jobid(self, inner: str) -> str:
        """``inner`` (per-series values) summed per jobid, and per filesystem with the fs
        label."""
        if not self.fs_label:
            return f"sum by({self.jobid_label})({inner})"
        # The filesystem is the target name without its -OSTxxxx/-MDTxxxx suffix.
        return (
            f"sum by({self.jobid_label},{FS_LABEL})(label_replace({inner}, "
            f'"{FS_LABEL}", "$1", "{self.target_label}", {quote(FS_OF_TARGET)}))'
        )

    def metadata(self, matchers: str = "") -> str:
        """Per-jobid and MDT rate of metadata operations (and per operation with
        ``metadata_by_operation``), rounded, series below 1/s left out."""
        matcher = f"{self.target_label}=~{quote(self.mdt_target_regex)}"
        if matchers:
            matcher = f"{matcher}, {matchers}"
        return (
            f"round(sum by({self._metadata_by()})"
            f"({self.rate_function}({self.stats_metric}{{{matcher}}}[{self.window}]) >= 1))"
        )

    def metadata_increase(self, window_ms: int) -> str:
        """Per-jobid and MDT increase of the metadata operations (and per operation with
        ``metadata_by_operation``) over the ``window_ms`` milliseconds up to the
        evaluation instant, zeros left out, not rounded."""
        selector = f"{self.stats_metric}{{{self.target_label}=~{quote(self.mdt_target_regex)}}}"
        inner = f"increase({selector}[{duration(window_ms)}]) > 0"
        return f"sum by({self._metadata_by()})({inner})"

    def _metadata_by(self) -> str:
        by = f"{self.target_label},{self.jobid_label}"
        return f"{by},{OPERATION_LABEL}" if self.metadata_by_operation else by

    @property
    def read(self) -> str:
        return self.throughput(self.read_metric)

    @property
    def write(self) -> str:
        return self.throughput(self.write_metric)

    @property
    def read_operations(self) -> str:
        return self.throughput(self.read_samples_metric)

    @property
    def write_operations(self) -> str:
        return self.throughput(self.write_samples_metric)

    @property
    def metadata_query(self) -> str:
        return self.metadata()

    def read_increase(self, window_ms: int) -> str:
        return self.increase(self.read_metric, window_ms)

    def write_increase(self, window_ms: int) -> str:
        return self.increase(self.write_metric, window_ms)

    def extra_labels(self, metadata: bool) -> Tuple[str, ...]:
        """The labels after the owner's in a family: the MDT for metadata (and the
        operation with ``metadata_by_operation``), then ``fs``."""
        fs = (FS_LABEL,) if self.fs_label else ()
        if not metadata:
            return fs
        operation = (OPERATION_LABEL,) if self.metadata_by_operation else ()
        return ("target", *operation, *fs)
