"""The running totals of ``--metrics.counters``: bytes and metadata operations attributed
since the exporter started, per owner, and the instant each increase query last counted.

Pure: no I/O, no logging, no clock (the collector passes the instants). Imports
``attribution``, ``families`` and ``metrics``.

Every collect, ``windows`` gives each increase query the milliseconds since the instant
of the last collect it was counted in, bounded by the maximum gap; the first collect asks
from the instant the counting started (the collector was built), so a restarted exporter
loses only the IO between its predecessor's last collect and its own start, and its
counters begin again near 0 (a counter reset, to Prometheus). ``add`` sums an
attributed answer into the totals and makes the collect's instant the query's. A query
that failed is never added, so its instant stays and the next window covers the gap.

Only increases above 0 make or grow a series, and a series once made stays for as long
as the exporter runs, so every total only grows::

    cluster_job_read_bytes_total{account="physics",user="alice"} 1572864000.0
    cluster_unattributed_read_bytes_total{reason="unknown_job"} 40960.0
"""

from __future__ import annotations

import math
from typing import Dict, List, NamedTuple, Optional, Sequence, Set, Tuple

from prometheus_cluster_exporter.attribution import JOB, LOST, PROC, Attribution
from prometheus_cluster_exporter.families import FS, Query
from prometheus_cluster_exporter.metrics import RowFamily

#: Label values (the owner's, then those after it) -> the total.
Totals = Dict[Tuple[str, ...], float]


def milliseconds(at: float) -> int:
    """An instant (Unix seconds, as the queries are evaluated at) in whole milliseconds."""
    return round(at * 1000)


class Window(NamedTuple):
    """The milliseconds up to a collect's instant an increase query is asked over."""

    ms: int
    #: Seconds since the query last counted that the bound leaves out: set once per outage
    #: (the first collect it happens in), None otherwise.
    cut: Optional[float] = None


class Counters:
    """Totals per family of each increase query (its job, process and unattributed
    families), and each query's last instant."""

    def __init__(
        self,
        queries: Sequence[Query],
        max_gap: float,
        started: Optional[float] = None,
        min_window: float = 0.0,
    ) -> None:
        self.queries = tuple(queries)
        #: The longest window asked (--metrics.counters-max-gap), in milliseconds.
        self.max_gap_ms = max(1, math.ceil(max_gap * 1000))
        #: The shortest (--metrics.counters-min-window): a collect sooner after the last
        #: counted one asks nothing, and the next window covers its time.
        self.min_window_ms = round(min_window * 1000)
        #: query -> (job, process, unattributed) totals.
        self.totals: Dict[Query, Tuple[Totals, Totals, Totals]] = {
            query: ({}, {}, {}) for query in self.queries
        }
        #: query -> the instant (ms) its increase was last counted up to; at first the
        #: instant the counting started (``started``), if given.
        self.since: Dict[Query, int] = (
            {} if started is None else {query: milliseconds(started) for query in self.queries}
        )
        self._cut: Set[Query] = set()

    def windows(self, at_ms: int) -> Dict[Query, Window]:
        """The window to ask each increase query over at the instant ``at_ms``: from the
        query's last instant, at most ``max_gap_ms``. No window for a query without an
        instant yet (the first collect without a start instant) or with one at or after
        ``at_ms`` (the clock went back): its instant becomes ``at_ms`` and it is not asked.
        Nor for one whose instant is less than ``min_window_ms`` back: a window holding
        fewer than two samples of a Lustre series would count nothing for it, and that IO
        would be lost; the instant stays, so the next window covers the time."""
        windows: Dict[Query, Window] = {}
        for query in self.queries:
            since = self.since.get(query)
            if since is None or since >= at_ms:
                self.since[query] = at_ms
                continue
            gap = at_ms - since
            if gap < self.min_window_ms:
                continue
            window = min(gap, self.max_gap_ms)
            cut = None
            if window < gap and query not in self._cut:
                self._cut.add(query)
                cut = (gap - window) / 1000
            windows[query] = Window(window, cut)
        return windows

    def add(self, query: Query, increase: Attribution, at_ms: int) -> None:
        """Add the attributed increase of ``query`` up to the instant ``at_ms``, and make
        ``at_ms`` the query's instant. Increases of 0 or less (or NaN) add nothing."""
        for kind, totals in zip((JOB, PROC, LOST), self.totals[query]):
            for labels, value in increase.rows(kind):
                if value > 0:
                    totals[labels] = totals.get(labels, 0.0) + value
        self.since[query] = at_ms
        self._cut.discard(query)

    def families(self, fs_label: bool) -> List[RowFamily]:
        """The job, process and unattributed counters of every query (copies of the rows:
        the page is rendered while the next collect may already add)."""
        fs = (FS,) if fs_label else ()
        families = []
        for query in self.queries:
            for spec, totals in zip((query.job, query.proc, query.lost), self.totals[query]):
                families.append(RowFamily(spec.with_labels(*fs), list(totals.items())))
        return families
