"""What one collect has learnt, step by step, and the stage times it reports.

The collector fills a ``ScrapeState`` as its steps run (answers, put in columns here,
parsed ids, job and identity tables) and turns it into
``cluster_exporter_stage_execution_seconds``::

    cluster_exporter_stage_execution_seconds{name="retrieve_running_jobs"} 0.031
    cluster_exporter_stage_execution_seconds{name="build_read_throughput_metrics"} 0.412
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from prometheus_cluster_exporter.families import Query, extra_labels
from prometheus_cluster_exporter.jobid import Ref
from prometheus_cluster_exporter.pacing import Late, paced
from prometheus_cluster_exporter.records import (
    Answer,
    Parsed,
    PasswdEntry,
    Rates,
    SlurmJob,
    columns_of,
)
from prometheus_cluster_exporter.runner import SourceOutcome

# Source names as they appear in logs (the queries' are in ``families``).
SQUEUE = "squeue"
PASSWD = "getent passwd"  # noqa: S105 - a source name, not a secret
GROUP = "getent group"
SACCT = "sacct"
PASSWD_KEYED = "getent passwd (by uid)"  # noqa: S105
GROUP_KEYED = "getent group (by gid)"
JOB_DETAILS = "top jobs' partition and name"
#: The stage each source's time is exposed under.
RETRIEVE_STAGES = (
    (SQUEUE, "retrieve_running_jobs"),
    (PASSWD, "retrieve_user_name_info"),
    (GROUP, "retrieve_group_name_info"),
    (SACCT, "retrieve_finished_jobs"),
    (PASSWD_KEYED, "retrieve_missing_user_info"),
    (GROUP_KEYED, "retrieve_missing_group_info"),
    (JOB_DETAILS, "retrieve_top_job_details"),
)

#: Rows (or distinct jobids) classified or summed between two looks at the clock.
CHUNK = 1 << 16
#: Time allowed for attribution once the sources have answered (or were abandoned).
BUILD_SECONDS = 1.0
TOO_LATE = "attribution did not finish by the scrape deadline"
#: The stage of ranking the top jobs (``--metrics.top-jobs``).
TOP_JOBS_STAGE = "build_top_jobs_metrics"


@dataclass
class ScrapeState:
    """What one collect has learnt so far; each step adds to it."""

    deadline: float
    hard_end: float
    outcomes: Dict[str, SourceOutcome[Any]] = field(default_factory=dict)
    #: The answers as the sources gave them, then in columns.
    rows: Dict[Query, Answer] = field(default_factory=dict)
    answers: Dict[Query, Rates] = field(default_factory=dict)
    #: The parsed ids: those that are not plain numbers (or all, for other grammars).
    refs: Dict[str, Ref] = field(default_factory=dict)
    #: Plain numbers no job listing knew, kept only when sacct may look them up.
    numbers: Set[str] = field(default_factory=set)
    jobs: Optional[Mapping[str, SlurmJob]] = None
    #: The jobs whose ids are plain canonical numbers (``idsort.listed_jobs``).
    listed: Dict[str, SlurmJob] = field(default_factory=dict)
    users: Optional[Mapping[int, PasswdEntry]] = None
    groups: Optional[Mapping[int, str]] = None
    #: Seconds spent attributing each answer.
    build_seconds: Dict[Query, float] = field(default_factory=dict)
    #: When attribution had to be done by (set as it starts); later steps keep to it.
    build_end: float = 0.0
    #: (stage, seconds) of work after attribution (the top jobs).
    more_stages: List[Tuple[str, float]] = field(default_factory=list)
    #: The increase queries asked (--metrics.counters) and their windows in milliseconds.
    increases: Dict[Query, int] = field(default_factory=dict)

    def build_deadline(self) -> float:
        """BUILD_SECONDS from now (or from the deadline, if that is later), never past the
        collect's hard end."""
        return min(max(self.deadline, time.monotonic()) + BUILD_SECONDS, self.hard_end)

    def in_columns(self, deadline: float, fs_label: bool) -> None:
        """Answers given as rows (``JobidRate``/``TargetRate``) into columns, a chunk at a
        time: an answer not in columns by the deadline is dropped (its query fails)."""
        for query, items in self.rows.items():
            if isinstance(items, Rates):
                self.answers[query] = items
                continue
            extra = extra_labels(query, fs_label)
            self.answers[query] = Rates()
            try:
                for chunk in paced(items, deadline, TOO_LATE, CHUNK):
                    self.answers[query].extend(columns_of(chunk, extra))
            except Late:
                self.too_late(query)
        self.rows.clear()

    def too_late(self, *queries: Query) -> None:
        """Drop answers not attributed by the deadline (all, if none named); their
        queries fail."""
        for query in queries or tuple(self.answers):
            if self.answers.pop(query, None) is not None:
                name = query.source
                self.outcomes[name] = self.outcomes[name].failed(f"{name}: {TOO_LATE}")


def made_a_call(outcome: SourceOutcome[Any]) -> bool:
    """False for a lookup its cache answered in full (no sacct or getent ran)."""
    return not (isinstance(outcome.value, Parsed) and not outcome.value.fetched)


def stages(scrape: ScrapeState, queries: Sequence[Query]) -> List[Tuple[str, float]]:
    """(stage, seconds): each source's call (lookups only when they ran), then each
    query's call plus its attribution."""
    out = scrape.outcomes
    stages = [
        (stage, out[name].seconds)
        for name, stage in RETRIEVE_STAGES
        if name in out and made_a_call(out[name])
    ]
    for query in queries:
        seconds = out[query.source].seconds + scrape.build_seconds.get(query, 0.0)
        stages.append((query.stage, seconds))
    return stages + scrape.more_stages
