"""The top jobs' step of a direct-mode collect (``--metrics.top-jobs``).

After attribution: rank the jobs (``topjobs``, from the answers and the owner table
attribution made), then ask the partition and name of those the job listing did not
name (``records.JobDetailsSource``: squeue and sacct, apart from the listing, within the
scrape's deadline). A failed details call costs only the names (``scrape_ok`` 0, one log
line); a failed squeue, read or write query costs the top jobs. Part of the collector
room: imports no source.
"""

from __future__ import annotations

import logging
import time
from typing import Dict, List, Optional

from prometheus_cluster_exporter import attribution as attr
from prometheus_cluster_exporter import topjobs
from prometheus_cluster_exporter.families import READ, WRITE, Query
from prometheus_cluster_exporter.jobid import JobidGrammar
from prometheus_cluster_exporter.pacing import Late, check_deadline
from prometheus_cluster_exporter.records import JobDetailsSource
from prometheus_cluster_exporter.runner import SourceRunner
from prometheus_cluster_exporter.scrapestate import (
    JOB_DETAILS,
    TOO_LATE,
    TOP_JOBS_STAGE,
    ScrapeState,
)

log = logging.getLogger(__name__)


class TopJobsStep:
    """Ranks a collect's top jobs and names them."""

    def __init__(
        self,
        count: int,
        metadata: Query,
        grammar: JobidGrammar,
        runner: SourceRunner,
        details: Optional[JobDetailsSource],
    ) -> None:
        self.count = count
        self.metadata = metadata
        self.grammar = grammar
        self.runner = runner
        self.details = details

    def __call__(
        self,
        scrape: ScrapeState,
        results: Dict[Query, attr.Attribution],
        table: attr.OwnerTable,
        deadline: float,
    ) -> Optional[List[topjobs.TopJob]]:
        """The top jobs, or None when they cannot be ranked: squeue, the read or the write
        query failed, or attribution used up the time it had (``deadline``)."""
        if not self.count or scrape.jobs is None or READ not in results or WRITE not in results:
            return None
        begun = time.perf_counter()
        try:
            check_deadline(deadline, TOO_LATE)
        except Late:
            log.warning("No top jobs this scrape: %s", TOO_LATE)
            return None
        found = topjobs.top_jobs(
            self.count,
            scrape.answers[READ],
            scrape.answers[WRITE],
            scrape.answers[self.metadata] if self.metadata in results else None,
            table,
            scrape.refs,
            scrape.jobs,
            scrape.listed if self.grammar.numbers_are_jobs else None,
        )
        scrape.more_stages.append((TOP_JOBS_STAGE, time.perf_counter() - begun))
        return self._named(scrape, found)

    def _named(self, scrape: ScrapeState, found: List[topjobs.TopJob]) -> List[topjobs.TopJob]:
        """``found`` with the partition and name of the jobs the listing left unnamed."""
        details = self.details
        unnamed = [t.jobid for t in found if not (t.job_name or t.partition)]
        if details is None or not unnamed:
            return found
        batch = self.runner.batch(scrape.deadline)
        pending = batch.start(JOB_DETAILS, lambda d: details.details(unnamed, d))
        scrape.outcomes.update(batch.wait())
        answer = pending.outcome.value
        if answer is None:
            return found
        named = answer.items
        return [
            t._replace(partition=named[t.jobid][0], job_name=named[t.jobid][1])
            if t.jobid in named
            else t
            for t in found
        ]
