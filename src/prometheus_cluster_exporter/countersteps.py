"""``--metrics.counters`` in a direct-mode collect: the increase queries asked with the
others in step 1, each over its window (``counters.Counters.windows``), and their answers,
attributed with the same owners as the rates, added to the running totals at the end.

The collector runs these two steps; ``counters`` keeps the totals. A failed or too-late
increase query adds nothing and keeps its instant, so the next collect asks over the whole
gap, up to ``--metrics.counters-max-gap`` (a longer outage is said once in the log). A
scrape the guard skips runs no step at all, so it changes nothing.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from prometheus_cluster_exporter.attribution import Attribution
from prometheus_cluster_exporter.counters import Counters, milliseconds
from prometheus_cluster_exporter.families import Query
from prometheus_cluster_exporter.metrics import RowFamily
from prometheus_cluster_exporter.records import LustreSource
from prometheus_cluster_exporter.runner import Batch, Pending
from prometheus_cluster_exporter.scrapestate import ScrapeState

log = logging.getLogger(__name__)


class CounterSteps:
    """The increase queries of a collect and the totals they add to."""

    def __init__(
        self,
        lustre: LustreSource,
        queries: Sequence[Query],
        windows: Tuple[float, float],
        fs_label: bool,
        started: Optional[float] = None,
    ) -> None:
        self.lustre = lustre
        #: ``windows``: the shortest and the longest window asked, in seconds;
        #: ``started``: the instant the counting begins (the first collect asks from it).
        self.counters = Counters(queries, windows[1], started, windows[0])
        self.fs_label = fs_label

    def ask(self, batch: Batch, scrape: ScrapeState, at: float) -> Dict[Query, Pending[Any]]:
        """Start each increase query that has a window at the instant ``at``;
        ``scrape.increases`` says which, over how many milliseconds."""
        asked: Dict[Query, Pending[Any]] = {}
        for query, window in self.counters.windows(milliseconds(at)).items():
            if window.cut is not None:
                log.warning(
                    "%s: the IO of %gs before the last %gs is not counted: more than "
                    "--metrics.counters-max-gap since the last collect this query counted",
                    query.source,
                    window.cut,
                    window.ms / 1000,
                )
            scrape.increases[query] = window.ms
            asked[query] = batch.start(query.source, self._asker(query.method, at, window.ms))
        return asked

    def _asker(self, method: str, at: float, window_ms: int) -> Callable[[float], Any]:
        ask = getattr(self.lustre, method)
        return lambda deadline: ask(deadline, at, window_ms)

    def count(
        self, scrape: ScrapeState, results: Mapping[Query, Attribution], at: float
    ) -> List[RowFamily]:
        """Add the attributed increases of this collect (``results``: those that did not
        fail) up to ``at``; the counter families, every series seen since the start."""
        for query in scrape.increases:
            increase = results.get(query)
            if increase is not None:
                begun = time.perf_counter()
                self.counters.add(query, increase, milliseconds(at))
                scrape.build_seconds[query] += time.perf_counter() - begun
        return self.counters.families(self.fs_label)
