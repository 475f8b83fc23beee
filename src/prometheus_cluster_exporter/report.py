"""What the last collect did, as a plain value for logs and the status page.

The status page renders a ``ScrapeReport``; it never sees the collector, the sources or
their records. Imports only ``attribution`` (for the tables ``top_consumers`` reads) and
``topjobs`` (the top jobs' rows).

Sample (``report.top``)::

    [("job", "physics / alice", 104857600.0, 0.0),
     ("process", "rsync (bob, hpc)", 0.0, 5242880.0)]
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import List, Mapping, NamedTuple, Optional, Tuple

from prometheus_cluster_exporter.attribution import JOB, LOST, Attribution
from prometheus_cluster_exporter.topjobs import TopJob

TOP_CONSUMERS = 10


class SourceStatus(NamedTuple):
    """One source call of a collect: how long it took and why it failed (None if it did not)."""

    name: str
    seconds: float
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Consumer(NamedTuple):
    """One of the biggest consumers: a job owner or a process owner."""

    kind: str  # "job" or "process"
    who: str
    read: float
    write: float


@dataclass(frozen=True)
class ScrapeReport:
    """What the last completed collect did.

    Only timings, errors and a few rows: keeping the records would hold a whole scrape's
    data in memory until the next one.
    """

    started: float
    seconds: float
    ok: bool
    #: Every source call of the collect, by name, in the order they were made.
    sources: Mapping[str, SourceStatus] = field(default_factory=dict)
    series: int = 0
    #: The biggest consumers, largest read + write first.
    top: Tuple[Consumer, ...] = field(default_factory=tuple)
    #: The top jobs (``--metrics.top-jobs``), largest read + write first.
    top_jobs: Tuple[TopJob, ...] = field(default_factory=tuple)


def top_consumers(
    read: Optional[Attribution], write: Optional[Attribution], count: int = TOP_CONSUMERS
) -> List[Consumer]:
    """The ``count`` job owners and process owners with the most read + write throughput.

    Rows that differ only in labels after the owner's (fs) are summed per owner.
    """
    answers = [r for r in (read, write) if r is not None]
    if not answers:
        return []
    kinds, labels = answers[0].kinds, answers[0].labels
    totals = [r.per_owner() for r in answers]
    both = dict(totals[0])
    for number, value in totals[-1].items() if len(totals) > 1 else ():
        both[number] = both.get(number, 0.0) + value
    named = [n for n in both if kinds[n] != LOST]
    rows = []
    for number in heapq.nlargest(count, named, key=both.__getitem__):
        key = labels[number]
        r = totals[0].get(number, 0.0) if read is not None else 0.0
        w = totals[-1].get(number, 0.0) if write is not None else 0.0
        if kinds[number] == JOB:
            rows.append(Consumer("job", f"{key[0]} / {key[1]}", r, w))
        else:
            rows.append(Consumer("process", f"{key[0]} ({key[2]}, {key[1]})", r, w))
    return rows
