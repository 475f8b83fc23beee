"""What the last collect did, as a plain value for logs and the status page.

The status page renders a ``ScrapeReport``; it never sees the collector, the sources or
their records. Imports only ``attribution`` (for the tables ``top_consumers`` reads).

Sample (``report.top``)::

    [("job", "physics / alice", 104857600.0, 0.0),
     ("process", "rsync (bob, hpc)", 0.0, 5242880.0)]
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, NamedTuple, Optional, Tuple

from prometheus_cluster_exporter.attribution import Attribution

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


def top_consumers(
    read: Optional[Attribution], write: Optional[Attribution], count: int = TOP_CONSUMERS
) -> List[Consumer]:
    """The ``count`` job owners and process owners with the most read + write throughput.

    Rows that differ only in labels after the owner's (fs) are summed per owner.
    """
    totals: Dict[Tuple[str, Tuple[str, ...]], List[float]] = {}
    for column, result in ((0, read), (1, write)):
        if result is None:
            continue
        for kind, table, width in (("job", result.jobs, 2), ("process", result.procs, 3)):
            for key, value in table.items():
                totals.setdefault((kind, key[:width]), [0.0, 0.0])[column] += value
    biggest = heapq.nlargest(count, totals.items(), key=lambda item: item[1][0] + item[1][1])
    rows = []
    for (kind, key), (r, w) in biggest:
        who = f"{key[0]} / {key[1]}" if kind == "job" else f"{key[0]} ({key[2]}, {key[1]})"
        rows.append(Consumer(kind, who, r, w))
    return rows
