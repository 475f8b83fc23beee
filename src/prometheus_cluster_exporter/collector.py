"""The collector: runs the sources concurrently, attributes, builds metric families.

Sample output (``curl -s localhost:9846/metrics``)::

    # HELP cluster_job_read_throughput_bytes Total IO read throughput of all jobs on the cluster per account in bytes per second.
    # TYPE cluster_job_read_throughput_bytes gauge
    cluster_job_read_throughput_bytes{account="physics",user="alice"} 1.048576e+08
    # HELP cluster_proc_write_throughput_bytes Total IO write throughput of process names on the cluster per group and user in bytes per second.
    # TYPE cluster_proc_write_throughput_bytes gauge
    cluster_proc_write_throughput_bytes{group_name="hpc",proc_name="rsync",user_name="bob"} 5.24288e+06
    # HELP cluster_unattributed_read_throughput_bytes IO read throughput in bytes per second that could not be attributed to a job or a process owner, per reason.
    # TYPE cluster_unattributed_read_throughput_bytes gauge
    cluster_unattributed_read_throughput_bytes{reason="unknown_job"} 4096.0
    # HELP cluster_exporter_scrape_ok Indicates if the scrape of the exporter was successful or not.
    # TYPE cluster_exporter_scrape_ok gauge
    cluster_exporter_scrape_ok 1.0

A collect runs in three steps, each bounded by the same deadline:

1. concurrently: the three queries, squeue, and the passwd/group enumerations;
2. concurrently, for what step 1 left unknown: sacct for numeric jobids (if enabled) and a
   keyed ``getent passwd`` for uids missing from the enumeration;
3. a keyed ``getent group`` for primary gids still without a name.

Every call returns or fails by the deadline (``--timeout``); the runner waits at most one
grace second past it for a call that ignores it. Classifying and attributing the answers
then get BUILD_SECONDS: an answer not attributed by then is dropped (that query fails),
so a collect answers within ``--timeout`` plus two seconds, whatever the input.

Only one collect runs at a time. A scrape that arrives while one is running is answered
at once with ``cluster_exporter_scrape_ok 0`` and the warning
``Collect is still active... - Skipping now``.
"""

from __future__ import annotations

import gc
import heapq
import logging
import threading
import time
from collections import ChainMap
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import itemgetter
from typing import (
    Any,
    Callable,
    Dict,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    cast,
)

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from prometheus_cluster_exporter import attribution as attr
from prometheus_cluster_exporter.exposition import RowFamily
from prometheus_cluster_exporter.jobid import JobidGrammar, ProcRef, Ref
from prometheus_cluster_exporter.metrics import (
    JOB_METADATA,
    JOB_READ,
    JOB_WRITE,
    PROC_METADATA,
    PROC_READ,
    PROC_WRITE,
    SCRAPE_OK,
    STAGE_SECONDS,
    UNATTRIBUTED_METADATA,
    UNATTRIBUTED_READ,
    UNATTRIBUTED_WRITE,
)
from prometheus_cluster_exporter.pacing import Late, paced
from prometheus_cluster_exporter.problems import ProblemLog, shown_id
from prometheus_cluster_exporter.records import GroupTable, Parsed, PasswdEntry, SlurmJob, UserTable
from prometheus_cluster_exporter.runner import SourceOutcome, SourceRunner
from prometheus_cluster_exporter.sources import IdentitySource, JobLookup, JobSource, LustreSource
from prometheus_cluster_exporter.sources.prometheus import fsname

log = logging.getLogger(__name__)

K = TypeVar("K")
V = TypeVar("V")

SKIP_WARNING = "Collect is still active... - Skipping now"

# Source names as they appear in logs.
SQUEUE = "squeue"
PASSWD = "getent passwd"  # noqa: S105 - a source name, not a secret
GROUP = "getent group"
READ = "read query"
WRITE = "write query"
METADATA = "metadata query"
SACCT = "sacct"
PASSWD_KEYED = "getent passwd (by uid)"  # noqa: S105
GROUP_KEYED = "getent group (by gid)"

#: Rows (or distinct jobids) attributed between two looks at the clock.
CHUNK = 1 << 16
#: Time allowed for attribution once the sources have answered (or were abandoned).
BUILD_SECONDS = 1.0
TOO_LATE = "attribution did not finish by the scrape deadline"


@dataclass
class ScrapeReport:
    """What the last completed collect did (for logs and the landing page)."""

    started: float
    seconds: float
    ok: bool
    sources: Dict[str, SourceOutcome] = field(default_factory=dict)
    series: int = 0
    #: The biggest consumers: (kind, who, read bytes/s, write bytes/s), largest first.
    top: List[Tuple[str, str, float, float]] = field(default_factory=list)


TOP_CONSUMERS = 10


def top_consumers(
    read: Optional[attr.Attribution], write: Optional[attr.Attribution], count: int = TOP_CONSUMERS
) -> List[Tuple[str, str, float, float]]:
    """The ``count`` job owners and process owners with the most read + write throughput."""
    totals: Dict[Tuple[str, Tuple[str, ...]], List[float]] = {}
    for column, result in ((0, read), (1, write)):
        if result is None:
            continue
        for kind, table in (("job", result.jobs), ("process", result.procs)):
            for key, value in table.items():
                totals.setdefault((kind, key[:3] if kind == "process" else key[:2]), [0.0, 0.0])[
                    column
                ] += value
    biggest = heapq.nlargest(count, totals.items(), key=lambda item: item[1][0] + item[1][1])
    rows = []
    for (kind, key), (r, w) in biggest:
        who = f"{key[0]} / {key[1]}" if kind == "job" else f"{key[0]} ({key[2]}, {key[1]})"
        rows.append((kind, who, r, w))
    return rows


class _GcPause:
    """Pause the cyclic garbage collector while a scrape builds its data.

    A scrape allocates hundreds of thousands of short-lived, acyclic objects (freed by
    reference counting); the collector's repeated passes over them cost as much as the
    work itself. Nested and concurrent pauses are counted; collection resumes when the
    last one ends. If something else had already disabled it, it is left alone.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            owned = self._depth > 0 or gc.isenabled()
            if owned:
                self._depth += 1
                gc.disable()
        try:
            yield
        finally:
            if owned:
                with self._lock:
                    self._depth -= 1
                    if self._depth == 0:
                        gc.enable()


gc_paused = _GcPause()


class ClusterCollector(Collector):
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
    ) -> None:
        from prometheus_cluster_exporter.cache import RecentJobs

        self.lustre = lustre
        self.job_source = jobs
        self.identities = identities
        self.job_lookup = job_lookup
        self.timeout = timeout
        self.grammar = grammar or JobidGrammar()
        self.recent_jobs = RecentJobs(job_grace)
        self.fs_label = fs_label
        self.problems = ProblemLog()
        self._guard = threading.Lock()
        self.runner = SourceRunner()
        self.last: Optional[ScrapeReport] = None

    def describe(self) -> List[Any]:
        # Registering must never run squeue or query Prometheus.
        return []

    def scrape(self) -> List[RowFamily]:
        """One collect, as row families (see ``exposition.render``).

        If a collect is already running, only ``cluster_exporter_scrape_ok 0``.
        """
        if not self._guard.acquire(blocking=False):
            log.warning(SKIP_WARNING)
            return [RowFamily(SCRAPE_OK, [((), 0.0)])]
        try:
            with gc_paused():
                return self._collect()
        except Exception:
            # A bug must cost this scrape's data, never the response.
            log.exception("collect failed unexpectedly; answering with scrape_ok 0")
            return [RowFamily(SCRAPE_OK, [((), 0.0)])]
        finally:
            self._guard.release()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The prometheus-client Collector protocol (registries, ``generate_latest``)."""
        for family in self.scrape():
            yield family.to_prometheus_client()

    def close(self) -> None:
        """Nothing to release: calls still running end at their deadline on their own."""

    # -- one collect ---------------------------------------------------------------------

    def _run(
        self, calls: Mapping[str, Callable[[float], Any]], deadline: float
    ) -> Dict[str, SourceOutcome]:
        """Run calls concurrently; each returns or fails by the deadline."""
        return self.runner.run(calls, deadline)

    def _collect(self) -> List[RowFamily]:
        log.debug("Collect started")
        started = time.time()
        t0 = time.perf_counter()
        deadline = time.monotonic() + self.timeout
        # One evaluation instant for the three queries: read, write and metadata then
        # describe the same moment.
        at = round(started, 3)
        lustre = self.lustre

        out = self._run(
            {
                SQUEUE: self.job_source.jobs,
                PASSWD: self.identities.users,
                GROUP: self.identities.groups,
                READ: lambda d: lustre.read_rates(d, at),
                WRITE: lambda d: lustre.write_rates(d, at),
                METADATA: lambda d: lustre.metadata_rates(d, at),
            },
            deadline,
        )
        answers = {name: out[name].value.items for name in (READ, WRITE, METADATA) if out[name].ok}
        # Classifying and attributing are bounded too: an answer not attributed by then is
        # dropped, so a collect lasts at most timeout + runner grace + BUILD_SECONDS.
        hard_end = deadline + self.runner.grace + BUILD_SECONDS
        refs = self._classify(answers, out, self._build_deadline(deadline, hard_end))
        jobs: Optional[Mapping[str, SlurmJob]] = None
        if out[SQUEUE].ok:
            jobs = self.recent_jobs.update(out[SQUEUE].value.items)
        users: Optional[Mapping[int, PasswdEntry]] = (
            out[PASSWD].value.items if out[PASSWD].ok else None
        )
        groups: Optional[Mapping[int, str]] = out[GROUP].value.items if out[GROUP].ok else None

        jobs, users = self._resolve_missing(out, refs, jobs, users, deadline)
        groups = self._resolve_groups(out, refs, users, groups, deadline)

        families, stages, results = self._build(
            out, answers, refs, jobs, users, groups, self._build_deadline(deadline, hard_end)
        )
        scrape_ok = True
        for outcome in out.values():
            if not outcome.ok:
                scrape_ok = False
                if outcome.trace:
                    log.error(
                        "source %s failed: %s\n%s", outcome.name, outcome.error, outcome.trace
                    )
                else:
                    log.error("source %s failed: %s", outcome.name, outcome.error)
        malformed = {
            o.name: o.value.skipped
            for o in out.values()
            if o.ok and isinstance(o.value, Parsed) and o.value.skipped
        }
        if malformed:
            parts = ", ".join(f"{n} from {src}" for src, n in malformed.items())
            log.warning(
                "skipped malformed entries this scrape: %s (details with --log=DEBUG)", parts
            )

        families.append(RowFamily(STAGE_SECONDS, stages))
        families.append(RowFamily(SCRAPE_OK, [((), 1.0 if scrape_ok else 0.0)]))
        elapsed = time.perf_counter() - t0
        self.last = ScrapeReport(
            started=started,
            seconds=elapsed,
            ok=scrape_ok,
            # Only timings and errors: keeping the records would hold a whole scrape's
            # data in memory until the next one.
            sources={n: SourceOutcome(n, o.seconds, None, o.error) for n, o in out.items()},
            series=sum(len(f.rows) for f in families),
            top=top_consumers(results.get(READ), results.get(WRITE)),
        )
        log.debug("Collect finished in %.3fs (scrape_ok=%d)", elapsed, scrape_ok)
        return families

    def _resolve_missing(
        self,
        out: Dict[str, SourceOutcome],
        refs: Mapping[str, Ref],
        jobs: Optional[Mapping[str, SlurmJob]],
        users: Optional[Mapping[int, PasswdEntry]],
        deadline: float,
    ) -> Tuple[Optional[Mapping[str, SlurmJob]], Optional[Mapping[int, PasswdEntry]]]:
        """Step 2: sacct for unknown job ids, keyed getent for uids not enumerated."""
        calls: Dict[str, Callable[[float], Any]] = {}
        lookup = self.job_lookup
        missing_jobs = attr.wanted_jobs(refs, jobs) if jobs is not None and lookup else []
        if missing_jobs and lookup is not None:
            calls[SACCT] = lambda d: lookup.lookup_jobs(missing_jobs, d)
        missing_uids = attr.wanted_uids(refs, users) if users is not None else []
        if missing_uids:
            calls[PASSWD_KEYED] = lambda d: self.identities.lookup_users(missing_uids, d)
        if not calls:
            return jobs, users
        out.update(self._run(calls, deadline))
        if SACCT in calls and out[SACCT].ok and jobs is not None:
            found = attr.index_jobs(out[SACCT].value.items)
            jobs = _overlay(jobs, found) if found else jobs
        if PASSWD_KEYED in calls and out[PASSWD_KEYED].ok and users is not None:
            extra: UserTable = out[PASSWD_KEYED].value.items
            users = _overlay(users, extra) if extra else users
        return jobs, users

    def _resolve_groups(
        self,
        out: Dict[str, SourceOutcome],
        refs: Mapping[str, Ref],
        users: Optional[Mapping[int, PasswdEntry]],
        groups: Optional[Mapping[int, str]],
        deadline: float,
    ) -> Optional[Mapping[int, str]]:
        """Step 3: keyed getent group for primary gids the enumeration did not name."""
        if users is None or groups is None:
            return groups
        uids = {r.uid for r in refs.values() if isinstance(r, ProcRef)}
        missing = attr.wanted_gids(uids, users, groups)
        if not missing:
            return groups
        out.update(
            self._run({GROUP_KEYED: lambda d: self.identities.lookup_groups(missing, d)}, deadline)
        )
        if out[GROUP_KEYED].ok and out[GROUP_KEYED].value.items:
            extra: GroupTable = out[GROUP_KEYED].value.items
            return _overlay(groups, extra)
        return groups

    def _build(
        self,
        out: Dict[str, SourceOutcome],
        answers: Dict[str, Any],
        refs: Mapping[str, Ref],
        jobs: Optional[Mapping[str, SlurmJob]],
        users: Optional[Mapping[int, PasswdEntry]],
        groups: Optional[Mapping[int, str]],
        deadline: float,
    ) -> Tuple[List[RowFamily], List[Tuple[Tuple[str, ...], float]], Dict[str, attr.Attribution]]:
        """Attribute each answer and build its metric families.

        Attribution counts against the scrape deadline: an answer not attributed by then
        is dropped (its query fails with TOO_LATE), so the scrape still answers on time.
        """
        fs = ("fs",) if self.fs_label else ()
        families: List[RowFamily] = []
        stages: List[Tuple[Tuple[str, ...], float]] = [
            (("retrieve_running_jobs",), out[SQUEUE].seconds),
            (("retrieve_user_name_info",), out[PASSWD].seconds),
            (("retrieve_group_name_info",), out[GROUP].seconds),
        ]
        for name, stage in (
            (SACCT, "retrieve_finished_jobs"),
            (PASSWD_KEYED, "retrieve_missing_user_info"),
            (GROUP_KEYED, "retrieve_missing_group_info"),
        ):
            if name in out:
                stages.append(((stage,), out[name].seconds))

        owner_of: Dict[str, attr.Owner] = {}
        try:
            for chunk in paced(list(refs.items()), deadline, TOO_LATE, CHUNK):
                owner_of.update(attr.owners(dict(chunk), jobs, users, groups))
        except Late:
            self._too_late(out, answers)
        results: Dict[str, attr.Attribution] = {}
        for stage, name, specs in (
            (
                "build_metadata_metrics",
                METADATA,
                (JOB_METADATA, PROC_METADATA, UNATTRIBUTED_METADATA),
            ),
            ("build_read_throughput_metrics", READ, (JOB_READ, PROC_READ, UNATTRIBUTED_READ)),
            ("build_write_throughput_metrics", WRITE, (JOB_WRITE, PROC_WRITE, UNATTRIBUTED_WRITE)),
        ):
            build_start = time.perf_counter()
            result = self._attribute(answers, name, owner_of, deadline)
            if result is None and name in answers:
                self._too_late(out, answers, name)
            if result is not None:
                results[name] = result
                job_spec, proc_spec, lost_spec = (spec.with_labels(*fs) for spec in specs)
                if jobs is not None:
                    families.append(RowFamily(job_spec, result.jobs.items()))
                if users is not None and groups is not None:
                    families.append(RowFamily(proc_spec, result.procs.items()))
                families.append(RowFamily(lost_spec, result.unattributed.items()))
            stages.append(((stage,), out[name].seconds + time.perf_counter() - build_start))
        self._report_lost(owner_of, refs, users)
        return families, stages, results

    @staticmethod
    def _build_deadline(deadline: float, hard_end: float) -> float:
        """BUILD_SECONDS from now (or from the deadline, if that is later), never past the
        collect's hard end."""
        return min(max(deadline, time.monotonic()) + BUILD_SECONDS, hard_end)

    def _attribute(
        self,
        answers: Mapping[str, Any],
        name: str,
        owner_of: Mapping[str, attr.Owner],
        deadline: float,
    ) -> Optional[attr.Attribution]:
        """One answer attributed in chunks; None if absent or not done by the deadline."""
        rows = answers.get(name)
        if rows is None:
            return None
        extra = self._extra_labels(name)
        result = attr.Attribution()
        try:
            for chunk in paced(rows, deadline, TOO_LATE, CHUNK):
                attr.attribute(chunk, owner_of, extra, into=result)
        except Late:
            return None
        return result

    def _too_late(
        self,
        out: Dict[str, SourceOutcome],
        answers: Dict[str, Any],
        *names: str,
    ) -> None:
        """Drop answers that could not be attributed by the deadline; their queries fail."""
        for name in names or tuple(answers):
            if answers.pop(name, None) is not None:
                out[name] = SourceOutcome(name, out[name].seconds, None, f"{name}: {TOO_LATE}")

    def _classify(
        self, answers: Dict[str, Any], out: Dict[str, SourceOutcome], deadline: float
    ) -> Dict[str, Ref]:
        """Parse every distinct jobid of the answers once, within the deadline."""
        distinct = list({jobid for rows in answers.values() for jobid in map(itemgetter(0), rows)})
        refs: Dict[str, Ref] = {}
        try:
            for chunk in paced(distinct, deadline, TOO_LATE, CHUNK):
                refs.update(attr.classify(chunk, self.grammar))
        except Late:
            self._too_late(out, answers)
            return {}
        return refs

    def _extra_labels(self, name: str) -> Optional[Callable[[Sequence[Any]], Tuple[str, ...]]]:
        """Labels after the owner's: the MDT target for metadata, the fs with --metrics.fs-label."""
        if name == METADATA:
            if self.fs_label:
                return lambda row: (row[2], fsname(row[2]))
            return lambda row: (row[2],)
        if self.fs_label:
            return lambda row: (row[2],)
        return None

    def _report_lost(
        self,
        owner_of: Mapping[str, attr.Owner],
        refs: Mapping[str, Ref],
        users: Optional[Mapping[int, PasswdEntry]],
    ) -> None:
        problems: List[Tuple[str, str]] = []
        debug = log.isEnabledFor(logging.DEBUG)
        for reason, jobid in attr.lost_ids(owner_of):
            if reason in attr.INPUT_PROBLEMS:
                problems.append((reason, jobid))
            elif debug:
                log.debug("jobid %s not attributed: %s", shown_id(jobid), reason)
        self.problems.report(
            problems, lambda reason, jobid: _explain(reason, refs[jobid], users), time.monotonic()
        )


def _overlay(base: Mapping[K, V], extra: Dict[K, V]) -> Mapping[K, V]:
    """``base`` with ``extra`` added (base wins), without copying ``base``."""
    return ChainMap(cast(Dict[K, V], base), extra)


def _explain(reason: str, ref: Ref, users: Optional[Mapping[int, PasswdEntry]]) -> str:
    if reason == attr.UNKNOWN_UID and isinstance(ref, ProcRef):
        return f"uid {ref.uid} is unknown to getent"
    if reason == attr.UNKNOWN_GID and isinstance(ref, ProcRef) and users is not None:
        user = users.get(ref.uid)
        gid = user.gid if user is not None else "?"
        return f"primary gid {gid} of uid {ref.uid} has no group name"
    return "fits none of the jobid formats (see --lustre.jobid-format)"
