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
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
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
from prometheus_cluster_exporter.errors import SourceError
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
from prometheus_cluster_exporter.records import GroupTable, Parsed, PasswdEntry, SlurmJob, UserTable
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

# Extra time allowed past the deadline before a source that ignores it is abandoned.
_GRACE_SECONDS = 1.0
# An unattributable id is named in the log at most this often.
PROBLEM_LOG_INTERVAL = 3600.0


@dataclass
class SourceOutcome:
    name: str
    seconds: float
    value: Any = None
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.error is None


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


def _timed(func: Callable[[float], Any], deadline: float) -> Tuple[Any, Optional[str], float]:
    start = time.perf_counter()
    try:
        return func(deadline), None, time.perf_counter() - start
    except SourceError as exc:
        return None, str(exc), time.perf_counter() - start
    except Exception as exc:  # a bug or an unexpected answer must not lose the scrape
        log.debug("source raised", exc_info=True)
        return None, f"unexpected {type(exc).__name__}: {exc}", time.perf_counter() - start


class ProblemLog:
    """Names each unattributable id at WARNING at most once per ``interval`` seconds."""

    def __init__(self, interval: float = PROBLEM_LOG_INTERVAL, max_ids: int = 50_000) -> None:
        self.interval = interval
        self.max_ids = max_ids
        self._last: Dict[Tuple[str, str], float] = {}

    def report(self, problems: Mapping[Tuple[str, str], str], now: float) -> None:
        """Log the problems not logged within the interval."""
        for key, detail in problems.items():
            last = self._last.get(key)
            if last is not None and now - last < self.interval:
                continue
            self._last[key] = now
            log.warning(
                "jobid %r not attributed (%s): %s; not repeated for this id within %ds",
                key[1], key[0], detail, int(self.interval),
            )  # fmt: skip
        if len(self._last) > self.max_ids:
            horizon = now - self.interval
            self._last = {k: t for k, t in self._last.items() if t >= horizon}


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
        self._pool = ThreadPoolExecutor(max_workers=6, thread_name_prefix="source")
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
        finally:
            self._guard.release()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The prometheus-client Collector protocol (registries, ``generate_latest``)."""
        for family in self.scrape():
            yield family.to_prometheus_client()

    def close(self) -> None:
        self._pool.shutdown(wait=False)

    # -- one collect ---------------------------------------------------------------------

    def _run(
        self, calls: Mapping[str, Callable[[float], Any]], deadline: float
    ) -> Dict[str, SourceOutcome]:
        """Run calls concurrently; each returns or fails by the deadline."""
        futures: Dict[str, Future[Tuple[Any, Optional[str], float]]] = {
            name: self._pool.submit(_timed, func, deadline) for name, func in calls.items()
        }
        outcomes: Dict[str, SourceOutcome] = {}
        for name, future in futures.items():
            try:
                value, error, seconds = future.result(
                    timeout=max(0.0, deadline - time.monotonic()) + _GRACE_SECONDS
                )
            except FutureTimeout:
                value, error, seconds = None, "did not return by the scrape deadline", self.timeout
            outcomes[name] = SourceOutcome(name, seconds, value, error)
        return outcomes

    def _collect(self) -> List[RowFamily]:
        log.debug("Collect started")
        started = time.time()
        t0 = time.perf_counter()
        deadline = time.monotonic() + self.timeout

        out = self._run(
            {
                SQUEUE: self.job_source.jobs,
                PASSWD: self.identities.users,
                GROUP: self.identities.groups,
                READ: self.lustre.read_rates,
                WRITE: self.lustre.write_rates,
                METADATA: self.lustre.metadata_rates,
            },
            deadline,
        )
        answers = {name: out[name].value.items for name in (READ, WRITE, METADATA) if out[name].ok}
        refs = attr.classify(
            {jobid for rows in answers.values() for jobid in map(itemgetter(0), rows)},
            self.grammar,
        )
        jobs: Optional[Mapping[str, SlurmJob]] = None
        if out[SQUEUE].ok:
            jobs = self.recent_jobs.update(out[SQUEUE].value.items)
        users: Optional[Mapping[int, PasswdEntry]] = (
            out[PASSWD].value.items if out[PASSWD].ok else None
        )
        groups: Optional[Mapping[int, str]] = out[GROUP].value.items if out[GROUP].ok else None

        jobs, users = self._resolve_missing(out, refs, jobs, users, deadline)
        groups = self._resolve_groups(out, refs, users, groups, deadline)

        scrape_ok = True
        for outcome in out.values():
            if not outcome.ok:
                scrape_ok = False
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

        families, stages, results = self._build(out, answers, refs, jobs, users, groups)
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
        answers: Mapping[str, Any],
        refs: Mapping[str, Ref],
        jobs: Optional[Mapping[str, SlurmJob]],
        users: Optional[Mapping[int, PasswdEntry]],
        groups: Optional[Mapping[int, str]],
    ) -> Tuple[List[RowFamily], List[Tuple[Tuple[str, ...], float]], Dict[str, attr.Attribution]]:
        """Attribute each answer and build its metric families."""
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

        owner_of = attr.owners(refs, jobs, users, groups)
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
            if name in answers:
                result = results[name] = attr.attribute(
                    answers[name], owner_of, self._extra_labels(name)
                )
                job_spec, proc_spec, lost_spec = (spec.with_labels(*fs) for spec in specs)
                if jobs is not None:
                    families.append(RowFamily(job_spec, result.jobs.items()))
                if users is not None and groups is not None:
                    families.append(RowFamily(proc_spec, result.procs.items()))
                families.append(RowFamily(lost_spec, result.unattributed.items()))
            stages.append(((stage,), out[name].seconds + time.perf_counter() - build_start))
        self._report_lost(owner_of, refs, users)
        return families, stages, results

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
        problems: Dict[Tuple[str, str], str] = {}
        debug = log.isEnabledFor(logging.DEBUG)
        for reason, jobid in attr.lost_ids(owner_of):
            if reason in attr.INPUT_PROBLEMS:
                problems[(reason, jobid)] = _explain(reason, refs[jobid], users)
            elif debug:
                log.debug("jobid %r not attributed: %s", jobid, reason)
        self.problems.report(problems, time.monotonic())


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
