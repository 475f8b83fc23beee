"""The collector: runs the sources concurrently, attributes, builds metric families.

Sample output (``curl -s localhost:9846/metrics``, HELP and TYPE lines left out)::

    cluster_job_read_throughput_bytes{account="physics",user="alice"} 104857600.0
    cluster_proc_write_throughput_bytes{group_name="hpc",proc_name="rsync",user_name="bob"} 5242880.0
    cluster_unattributed_read_throughput_bytes{reason="unknown_job"} 4096.0
    cluster_exporter_scrape_ok 1.0

A collect runs in three steps, each bounded by the same deadline:

1. concurrently: the queries (three, five with ``--metrics.operations``, and the
   increase queries of ``--metrics.counters``), squeue, and the passwd/group enumerations;
2. concurrently, for what step 1 left unknown: sacct for numeric jobids (if enabled) and a
   keyed ``getent passwd`` for uids missing from the enumeration;
3. a keyed ``getent group`` for primary gids still without a name.

Every call returns or fails by the deadline (``--timeout``); the runner waits at most one
grace second past it for a call that ignores it. Classifying and attributing the answers
then get BUILD_SECONDS: an answer not attributed by then is dropped (that query fails),
so a collect answers within ``--timeout`` plus two seconds, whatever the input.

The collector keeps the scrape guard and these steps; it knows the sources only by their
interfaces (``records``). Running the calls is ``runner``'s, attributing is
``attribution``'s, keeping to ``--metrics.max-series`` is ``budget``'s, building families
is ``families``'s and the report is ``report``'s (its top consumers from the unfolded sums).

Only one collect runs at a time (``guard``): a scrape that arrives while one is running
is answered at once with ``cluster_exporter_scrape_ok 0`` and the warning
``Collect is still active... - Skipping now``.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from prometheus_cluster_exporter import attribution as attr
from prometheus_cluster_exporter import budget, idsort, topjobs
from prometheus_cluster_exporter import families as fam
from prometheus_cluster_exporter.countersteps import CounterSteps
from prometheus_cluster_exporter.families import READ, WRITE, Query
from prometheus_cluster_exporter.guard import GuardedCollector
from prometheus_cluster_exporter.jobid import JobidGrammar, ProcRef
from prometheus_cluster_exporter.metrics import Row, RowFamily
from prometheus_cluster_exporter.pacing import Late, check_deadline, paced
from prometheus_cluster_exporter.problems import ProblemLog
from prometheus_cluster_exporter.records import (
    IdentitySource,
    JobDetailsSource,
    JobLookup,
    JobSource,
    LustreSource,
)
from prometheus_cluster_exporter.report import top_consumers
from prometheus_cluster_exporter.scrapestate import (
    BUILD_SECONDS,
    CHUNK,
    GROUP,
    GROUP_KEYED,
    PASSWD,
    PASSWD_KEYED,
    SACCT,
    SQUEUE,
    TOO_LATE,
    ScrapeState,
    stages,
)
from prometheus_cluster_exporter.topstep import TopJobsStep

log = logging.getLogger(__name__)


class ClusterCollector(GuardedCollector):
    """Collects the cluster's metrics: ``scrape()`` returns one collect's families."""

    def __init__(
        self,
        lustre: LustreSource,
        jobs: JobSource,
        identities: IdentitySource,
        *,
        timeout: float,
        grammar: Optional[JobidGrammar] = None,
        job_lookup: Optional[JobLookup] = None,
        job_grace: float = 0.0,
        fs_label: bool = False,
        max_series: int = 0,
        operations: bool = False,
        top_jobs: int = 0,
        job_details: Optional[JobDetailsSource] = None,
        metadata_by_operation: bool = False,
        counters: bool = False,
        counters_max_gap: float = 3600.0,
        counters_min_window: float = 0.0,
    ) -> None:
        super().__init__(jobs, identities, timeout, job_lookup, job_grace)
        self.lustre = lustre
        self.grammar = grammar or JobidGrammar()
        self.parsed = idsort.ParseCache(self.grammar)
        self.fs_label = fs_label
        #: The Lustre queries of a collect, in the order their families are exposed.
        self.queries = fam.queries_of(operations, metadata_by_operation)
        #: The metadata query among them (by operation or not), for the top jobs.
        self.metadata = next(q for q in self.queries if q.method == fam.METADATA.method)
        #: Owners kept per job and process family (``--metrics.max-series``); 0: all.
        self.max_series = max_series
        #: The jobs exported by job id (``--metrics.top-jobs``; 0: none) and their names.
        self.top_step = TopJobsStep(top_jobs, self.metadata, self.grammar, self.runner, job_details)
        self.problems = ProblemLog()
        #: --metrics.counters: the increase queries and the running totals they add to.
        self.counting: Optional[CounterSteps] = None
        if counters:
            increases = fam.counter_queries_of(metadata_by_operation)
            self.counting = CounterSteps(
                lustre, increases, (counters_min_window, counters_max_gap), fs_label, time.time()
            )

    # -- one collect ---------------------------------------------------------------------

    def _collect(self) -> List[RowFamily]:
        log.debug("Collect started")
        started = time.time()
        t0 = time.perf_counter()
        deadline = time.monotonic() + self.timeout
        # Classifying and attributing are bounded too: an answer not attributed by then is
        # dropped, so a collect lasts at most timeout + runner grace + BUILD_SECONDS.
        scrape = ScrapeState(deadline, deadline + self.runner.grace + BUILD_SECONDS)
        at = round(started, 3)  # the instant every query is evaluated at
        self._gather(scrape, at)
        self._classify(scrape)
        self._resolve_missing(scrape)
        self._resolve_groups(scrape)
        results, table = self._attribute_all(scrape)
        families, shown = self._query_families(scrape, results)
        jobs = self.top_step(scrape, results, table, scrape.build_end)
        if jobs is not None:
            families += topjobs.top_job_families(jobs, self.metadata in results)
        if self.counting is not None:
            families += self.counting.count(scrape, results, at)
        return self._finish(
            families,
            scrape.outcomes,
            stages(scrape, (*self.queries, *scrape.increases)),
            started,
            t0,
            owner_series=sum(r.size() for r in shown),
            top=tuple(top_consumers(results.get(READ), results.get(WRITE))),
            top_jobs=tuple(jobs or ()),
        )

    def _query_families(
        self, scrape: ScrapeState, results: Dict[Query, attr.Attribution]
    ) -> Tuple[List[RowFamily], List[attr.Attribution]]:
        """The families of every attributed answer and the attributions they show: with
        ``--metrics.max-series``, folded to the budget (``budget.fold``), followed by how
        many owners each job and process family had folded."""
        families: List[RowFamily] = []
        shown: List[attr.Attribution] = []
        folded: List[Row] = []
        for query in self.queries:
            result = results.get(query)
            if result is None:
                continue
            folding = time.perf_counter()
            result, counts = budget.fold(result, self.max_series)
            scrape.build_seconds[query] += time.perf_counter() - folding  # the query's stage
            built = fam.query_families(
                query,
                result.rows(attr.JOB),
                result.rows(attr.PROC),
                result.rows(attr.LOST),
                fs_label=self.fs_label,
                jobs_known=scrape.jobs is not None,
                identities_known=scrape.users is not None and scrape.groups is not None,
            )
            families.extend(built)
            shown.append(result)
            folded += fam.folded_rows(query, built, counts[attr.JOB], counts[attr.PROC])
        if self.max_series:
            families.append(fam.folded_family(folded))
        return families, shown

    def _gather(self, scrape: ScrapeState, at: float) -> None:
        """Step 1: the queries (at one evaluation instant, so that they all describe the
        same moment), squeue and the getent enumerations."""
        batch = self.runner.batch(scrape.deadline)
        squeue = batch.start(SQUEUE, self.job_source.jobs)
        passwd = batch.start(PASSWD, self.identities.users)
        group = batch.start(GROUP, self.identities.groups)
        asked = {q: batch.start(q.source, self._asker(q.method, at)) for q in self.queries}
        if self.counting is not None:
            asked.update(self.counting.ask(batch, scrape, at))
        scrape.outcomes.update(batch.wait())
        for query, pending in asked.items():
            answer = pending.outcome.value
            if answer is not None:
                scrape.rows[query] = answer.items
        if squeue.outcome.value is not None:
            scrape.jobs = self.recent_jobs.update(squeue.outcome.value.items)
        if passwd.outcome.value is not None:
            scrape.users = passwd.outcome.value.items
        if group.outcome.value is not None:
            scrape.groups = group.outcome.value.items

    def _asker(self, method: str, at: float) -> Callable[[float], Any]:
        ask = getattr(self.lustre, method)
        return lambda deadline: ask(deadline, at)

    def _classify(self, scrape: ScrapeState) -> None:
        """Find the ids that need parsing (and the unknown plain numbers), then parse each
        distinct one once, within the build deadline."""
        known = scrape.listed = idsort.listed_jobs(scrape.jobs) if scrape.jobs is not None else {}
        numbers = scrape.numbers if self.job_lookup is not None else None
        to_parse: Set[str] = set()
        deadline = scrape.build_deadline()
        scrape.in_columns(deadline, self.fs_label)
        try:
            columns = [c for rates in scrape.answers.values() for c in rates]
            for piece in attr.pieces(columns, CHUNK):
                check_deadline(deadline, TOO_LATE)
                idsort.ids_to_parse(piece.jobids, known, self.grammar, to_parse, numbers)
            for chunk in paced(list(to_parse), deadline, TOO_LATE, CHUNK):
                scrape.refs.update(self.parsed.classify(chunk))
        except Late:
            scrape.too_late()
            scrape.refs.clear()

    def _resolve_missing(self, scrape: ScrapeState) -> None:
        """Step 2: sacct for unknown job ids, keyed getent for uids not enumerated."""
        lookup, jobs, users = self.job_lookup, scrape.jobs, scrape.users
        missing_jobs = (
            attr.wanted_jobs(scrape.refs, jobs, scrape.numbers) if jobs is not None else []
        )
        missing_uids = attr.wanted_uids(scrape.refs, users) if users is not None else []
        batch = self.runner.batch(scrape.deadline)
        sacct = None
        if missing_jobs and lookup is not None:
            sacct = batch.start(SACCT, lambda d: lookup.lookup_jobs(missing_jobs, d))
        keyed = None
        if missing_uids:
            keyed = batch.start(
                PASSWD_KEYED, lambda d: self.identities.lookup_users(missing_uids, d)
            )
        if not batch.pending:
            return
        scrape.outcomes.update(batch.wait())
        if sacct is not None and sacct.outcome.value is not None and jobs is not None:
            found = attr.index_jobs(sacct.outcome.value.items)
            scrape.jobs = attr.overlay(jobs, found) if found else jobs
            for jobid, job in idsort.listed_jobs(found).items():
                scrape.listed.setdefault(jobid, job)
        if keyed is not None and keyed.outcome.value is not None and users is not None:
            extra = keyed.outcome.value.items
            scrape.users = attr.overlay(users, extra) if extra else users

    def _resolve_groups(self, scrape: ScrapeState) -> None:
        """Step 3: keyed getent group for primary gids the enumeration did not name."""
        users, groups = scrape.users, scrape.groups
        if users is None or groups is None:
            return
        uids = {r.uid for r in scrape.refs.values() if isinstance(r, ProcRef)}
        missing = attr.wanted_gids(uids, users, groups)
        if not missing:
            return
        batch = self.runner.batch(scrape.deadline)
        keyed = batch.start(GROUP_KEYED, lambda d: self.identities.lookup_groups(missing, d))
        scrape.outcomes.update(batch.wait())
        if keyed.outcome.value is not None and keyed.outcome.value.items:
            scrape.groups = attr.overlay(groups, keyed.outcome.value.items)

    def _attribute_all(
        self, scrape: ScrapeState
    ) -> Tuple[Dict[Query, attr.Attribution], attr.OwnerTable]:
        """Owners of every jobid, then each answer summed per owner, in pieces.

        Attribution counts against the scrape deadline: an answer not attributed by then
        is dropped (its query fails with TOO_LATE), so the scrape still answers on time.
        """
        deadline = scrape.build_end = scrape.build_deadline()
        table = attr.owner_table(
            scrape.refs,
            scrape.jobs,
            scrape.users,
            scrape.groups,
            scrape.listed if self.grammar.numbers_are_jobs else None,
        )
        results: Dict[Query, attr.Attribution] = {}
        for query in (*self.queries, *scrape.increases):
            build_start = time.perf_counter()
            rates = scrape.answers.get(query)
            if rates is not None:
                result = attr.Attribution.of(table)
                try:
                    for piece in attr.pieces(rates, CHUNK):
                        check_deadline(deadline, TOO_LATE)
                        attr.attribute((piece,), table, into=result)
                    results[query] = result
                except Late:
                    scrape.too_late(query)
            scrape.build_seconds[query] = time.perf_counter() - build_start
        self.problems.report_lost(attr.lost_ids(table, scrape.refs), scrape.refs, scrape.users)
        return results, table
