"""Join mode's two questions to the TSDB, answered in a sample per uid or per job.

The query texts come from ``joinrules`` (through ``wiring``), so the exporter asks about
exactly the ids its rules attribute::

    group by (uid) (label_replace({__name__=~"lustre_job_read_bytes_total|...",
        jobid=~"\\"?(.+)\\\\.0*([0-9]+)\\"?", ...}, "uid", "$2", "jobid", ...))
    -> {"metric":{"uid":"1001"},"value":[1733090000.123,"1"]}

Neither answer grows with the number of jobids: one sample per uid of a process id,
and one per Slurm job id with IO that no ``cluster_job_info`` names (asked only with
``--slurm.sacct``). Malformed samples are skipped one by one.
"""

from __future__ import annotations

import logging
from typing import Callable, List, Optional, TypeVar

from prometheus_cluster_exporter.errors import SourceError
from prometheus_cluster_exporter.records import Parsed
from prometheus_cluster_exporter.sources.identity import MAX_ID_DIGITS
from prometheus_cluster_exporter.sources.promhttp import PrometheusClient
from prometheus_cluster_exporter.sources.promvector import decode_json, vector_result

log = logging.getLogger(__name__)

T = TypeVar("T")


class PrometheusOwnerQueries:
    """The ``OwnerQueries`` of join mode, over the Prometheus HTTP API."""

    def __init__(self, client: PrometheusClient, uids_query: str, unknown_jobs_query: str):
        self.client = client
        self.uids_query = uids_query
        self.unknown_jobs_query = unknown_jobs_query

    def _values(
        self,
        promql: str,
        label: str,
        deadline: float,
        at: Optional[float],
        what: str,
        convert: Callable[[str], T],
    ) -> Parsed[List[T]]:
        if not promql:  # no jobid form of this kind: nothing to ask
            return Parsed([], fetched=False)
        samples = vector_result(
            decode_json(self.client.query(promql, deadline, what, at), what), what
        )
        values: List[T] = []
        skipped = 0
        for sample in samples:
            labels = sample.get("metric") if isinstance(sample, dict) else None
            text = labels.get(label) if isinstance(labels, dict) else None
            if not isinstance(text, str) or not text.isdigit() or not text.isascii():
                skipped += 1
                log.debug("%s: skipped a sample without a numeric %s: %.200r", what, label, sample)
            elif len(text) > MAX_ID_DIGITS:
                # No system has such a uid or job id: nobody to look up, nothing wrong.
                log.debug(
                    "%s: %s %.40s... has more than %d digits", what, label, text, MAX_ID_DIGITS
                )
            else:
                values.append(convert(str(int(text))))
        if skipped and not values:
            raise SourceError(f"{what}: none of the {skipped} samples has a numeric {label}")
        return Parsed(values, skipped)

    def process_uids(self, deadline: float, at: Optional[float] = None) -> Parsed[List[int]]:
        return self._values(self.uids_query, "uid", deadline, at, "process uids query", int)

    def unknown_jobs(self, deadline: float, at: Optional[float] = None) -> Parsed[List[str]]:
        return self._values(
            self.unknown_jobs_query, "jobid", deadline, at, "unknown jobs query", str
        )
