"""What both collectors share: the scrape guard (one collect at a time, a bug costs only
data), the Slurm and identity sources and the grace memory of jobs.

``GuardedCollector.scrape()`` runs the subclass's ``_collect`` under a lock. A scrape
that arrives while a collect is running is answered at once with
``cluster_exporter_scrape_ok 0`` and the warning ``Collect is still active... - Skipping
now``; an exception in a collect is logged with its traceback and answered the same way,
so no bug and no source can lose the response.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, List, Mapping, Optional, Sequence, Tuple

from prometheus_cluster_exporter import families as fam
from prometheus_cluster_exporter.cache import RecentJobs
from prometheus_cluster_exporter.gcpause import gc_paused
from prometheus_cluster_exporter.metrics import OwnerRows, RowFamily
from prometheus_cluster_exporter.records import IdentitySource, JobLookup, JobSource
from prometheus_cluster_exporter.report import Consumer, ScrapeReport, SourceStatus
from prometheus_cluster_exporter.runner import SourceOutcome, SourceRunner, log_outcomes
from prometheus_cluster_exporter.topjobs import TopJob

log = logging.getLogger(__name__)

SKIP_WARNING = "Collect is still active... - Skipping now"


class GuardedCollector:
    """A collector: ``scrape()`` returns one collect's families, ``last`` its report."""

    def __init__(
        self,
        jobs: JobSource,
        identities: IdentitySource,
        timeout: float,
        job_lookup: Optional[JobLookup],
        job_grace: float,
    ) -> None:
        self.job_source = jobs
        self.identities = identities
        self.job_lookup = job_lookup
        #: Jobs squeue listed, remembered for the grace period after they left it.
        self.recent_jobs = RecentJobs(job_grace)
        self.timeout = timeout
        self.runner = SourceRunner()
        self.last: Optional[ScrapeReport] = None
        self._guard = threading.Lock()

    def scrape(self) -> List[RowFamily]:
        """One collect, as row families (see ``exposition.render``).

        If a collect is already running, only ``cluster_exporter_scrape_ok 0``.
        """
        if not self._guard.acquire(blocking=False):
            log.warning(SKIP_WARNING)
            return [fam.scrape_ok_family(False)]
        try:
            with gc_paused():
                return self._collect()
        except Exception:
            # A bug must cost this scrape's data, never the response.
            log.exception("collect failed unexpectedly; answering with scrape_ok 0")
            return [fam.scrape_ok_family(False)]
        finally:
            self._guard.release()

    def _collect(self) -> List[RowFamily]:
        raise NotImplementedError

    def _finish(
        self,
        families: List[RowFamily],
        outcomes: Mapping[str, SourceOutcome[Any]],
        stages: Sequence[Tuple[str, float]],
        started: float,
        t0: float,
        owner_series: int = 0,
        top: Tuple[Consumer, ...] = (),
        top_jobs: Tuple[TopJob, ...] = (),
    ) -> List[RowFamily]:
        """The end of a collect, as both collectors end it: ``families`` with the stage
        times and ``scrape_ok`` (one log line per failed source), and ``last`` the report.
        ``owner_series`` are the rows of ``OwnerRows`` families, counted by the caller."""
        logger = logging.getLogger(type(self).__module__)  # the collector's, as its lines
        scrape_ok = log_outcomes(outcomes, logger)
        families.append(fam.stage_family(stages))
        families.append(fam.scrape_ok_family(scrape_ok))
        elapsed = time.perf_counter() - t0
        self.last = ScrapeReport(
            started=started,
            seconds=elapsed,
            ok=scrape_ok,
            sources={n: SourceStatus(n, o.seconds, o.error) for n, o in outcomes.items()},
            series=owner_series
            + sum(len(f.rows) for f in families if not isinstance(f.rows, OwnerRows)),
            top=top,
            top_jobs=top_jobs,
        )
        logger.debug("Collect finished in %.3fs (scrape_ok=%d)", elapsed, scrape_ok)
        return families

    def close(self) -> None:
        """Nothing to release: calls still running end at their deadline on their own."""
