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
from typing import List, Optional

from prometheus_cluster_exporter import families as fam
from prometheus_cluster_exporter.cache import RecentJobs
from prometheus_cluster_exporter.gcpause import gc_paused
from prometheus_cluster_exporter.metrics import RowFamily
from prometheus_cluster_exporter.records import IdentitySource, JobLookup, JobSource
from prometheus_cluster_exporter.report import ScrapeReport
from prometheus_cluster_exporter.runner import SourceRunner

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

    def close(self) -> None:
        """Nothing to release: calls still running end at their deadline on their own."""
