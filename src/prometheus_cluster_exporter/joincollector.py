"""The collector of join mode: the owners the TSDB lacks, never a per-jobid rate.

Sample output (``--mode=join``, HELP and TYPE lines left out)::

    cluster_job_info{jobid="4242",account="physics",user="alice"} 1.0
    cluster_user_info{uid="1001",user_name="bob",group_name="hpc-chem"} 1.0
    cluster_exporter_stage_execution_seconds{name="retrieve_process_uids"} 0.004
    cluster_exporter_scrape_ok 1.0

The recording rules (``joinrules``) join these with the Lustre series inside the TSDB.
A collect runs in three steps under one deadline, as in direct mode:

1. concurrently: squeue, the passwd/group enumerations, the uids of process ids (a
   query answering one sample per uid) and, with ``--slurm.sacct``, the job ids with IO
   that no info series names;
2. sacct for those ids that squeue and the grace memory do not know, and a keyed
   ``getent passwd`` for uids the enumeration missed;
3. a keyed ``getent group`` for primary gids still without a name.

Its cost follows the number of jobs and of process uids, not the number of jobids with
IO. A failing source costs only its own series (``scrape_ok`` 0): with squeue down the
jobs of the grace period and those sacct found are still exported, and the rules keep the
last series for their lookback, so a short squeue or getent outage loses no attribution.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple

from prometheus_cluster_exporter import attribution as attr
from prometheus_cluster_exporter import idsort
from prometheus_cluster_exporter.cache import FINISHED_JOB_SECONDS, RecentJobs
from prometheus_cluster_exporter.guard import GuardedCollector
from prometheus_cluster_exporter.metrics import JOB_INFO, USER_INFO, RowFamily
from prometheus_cluster_exporter.records import (
    GroupTable,
    IdentitySource,
    JobLookup,
    JobSource,
    OwnerQueries,
    SlurmJob,
    UserTable,
)
from prometheus_cluster_exporter.runner import SourceOutcome
from prometheus_cluster_exporter.scrapestate import (
    GROUP,
    GROUP_KEYED,
    PASSWD,
    PASSWD_KEYED,
    RETRIEVE_STAGES,
    SACCT,
    SQUEUE,
    made_a_call,
)

UIDS = "process uids query"
UNKNOWN_JOBS = "unknown jobs query"
STAGES = (
    *RETRIEVE_STAGES,
    (UIDS, "retrieve_process_uids"),
    (UNKNOWN_JOBS, "retrieve_unknown_jobs"),
)
BUILD_STAGE = "build_info_metrics"


class JoinCollector(GuardedCollector):
    """Collects join mode's owner series: ``scrape()`` returns one collect's families."""

    def __init__(
        self,
        owners: OwnerQueries,
        jobs: JobSource,
        identities: IdentitySource,
        *,
        timeout: float,
        job_lookup: Optional[JobLookup] = None,
        job_grace: float = 0.0,
    ) -> None:
        super().__init__(jobs, identities, timeout, job_lookup, job_grace)
        self.owners = owners
        self.found_jobs = RecentJobs(FINISHED_JOB_SECONDS)

    def _collect(self) -> List[RowFamily]:
        started = time.time()
        t0 = time.perf_counter()
        deadline = time.monotonic() + self.timeout
        outcomes: Dict[str, SourceOutcome[Any]] = {}
        jobs, users, groups, uids, unknown = self._gather(deadline, round(started, 3), outcomes)
        jobs, users = self._resolve_missing(deadline, jobs, users, uids, unknown, outcomes)
        groups, unnamed = self._resolve_groups(deadline, users, groups, uids, outcomes)
        build_start = time.perf_counter()
        families = [RowFamily(JOB_INFO, job_info_rows(jobs))]
        if users is not None and groups is not None and uids is not None:
            rows = user_info_rows(uids, users, groups, unnamed)
            families.append(RowFamily(USER_INFO, rows))
        build = time.perf_counter() - build_start
        stages = [
            (s, outcomes[n].seconds)
            for n, s in STAGES
            if n in outcomes and made_a_call(outcomes[n])
        ]
        return self._finish(families, outcomes, [*stages, (BUILD_STAGE, build)], started, t0)

    def _gather(
        self, deadline: float, at: float, outcomes: Dict[str, SourceOutcome[Any]]
    ) -> Tuple[
        Mapping[str, SlurmJob],
        Optional[UserTable],
        Optional[GroupTable],
        Optional[List[int]],
        List[str],
    ]:
        """Step 1: squeue, the enumerations and the TSDB's two small answers. When squeue
        fails, the jobs remembered (grace period) and found by sacct are still owners."""
        batch = self.runner.batch(deadline)
        squeue = batch.start(SQUEUE, self.job_source.jobs)
        passwd = batch.start(PASSWD, self.identities.users)
        group = batch.start(GROUP, self.identities.groups)
        uids = batch.start(UIDS, lambda d: self.owners.process_uids(d, at))
        unknown = None
        if self.job_lookup is not None:
            unknown = batch.start(UNKNOWN_JOBS, lambda d: self.owners.unknown_jobs(d, at))
        outcomes.update(batch.wait())
        listed = _items(squeue.outcome)
        jobs = self.recent_jobs.update(listed or [])
        return (
            jobs,
            _items(passwd.outcome),
            _items(group.outcome),
            _items(uids.outcome),
            (_items(unknown.outcome) or []) if unknown is not None else [],
        )

    def _resolve_missing(
        self,
        deadline: float,
        jobs: Mapping[str, SlurmJob],
        users: Optional[UserTable],
        uids: Optional[List[int]],
        unknown: List[str],
        outcomes: Dict[str, SourceOutcome[Any]],
    ) -> Tuple[Mapping[str, SlurmJob], Optional[UserTable]]:
        """Step 2: sacct for job ids nobody lists or remembers, keyed getent for uids not
        enumerated."""
        lookup = self.job_lookup
        found: Dict[str, SlurmJob] = self.found_jobs.update([])
        missing_jobs = [j for j in unknown if j not in jobs and j not in found]
        missing_uids = sorted({u for u in uids or () if users is not None and u not in users})
        batch = self.runner.batch(deadline)
        sacct = keyed = None
        if missing_jobs and lookup is not None:
            sacct = batch.start(SACCT, lambda d: lookup.lookup_jobs(missing_jobs, d))
        if missing_uids:
            keyed = batch.start(
                PASSWD_KEYED, lambda d: self.identities.lookup_users(missing_uids, d)
            )
        if batch.pending:
            outcomes.update(batch.wait())
        if sacct is not None:
            found = self.found_jobs.update(_items(sacct.outcome) or [])
        if found:
            jobs = attr.overlay(jobs, found)
        extra = _items(keyed.outcome) if keyed is not None else None
        if users is not None and extra:
            users = attr.overlay(users, extra)  # type: ignore[assignment]
        return jobs, users

    def _resolve_groups(
        self,
        deadline: float,
        users: Optional[UserTable],
        groups: Optional[GroupTable],
        uids: Optional[List[int]],
        outcomes: Dict[str, SourceOutcome[Any]],
    ) -> Tuple[Optional[GroupTable], Set[int]]:
        """Step 3: keyed getent group for primary gids the enumeration did not name. Also
        the gids whose lookup failed: nobody can say yet that they have no name."""
        if users is None or groups is None or not uids:
            return groups, set()
        missing = attr.wanted_gids(uids, users, groups)
        if not missing:
            return groups, set()
        batch = self.runner.batch(deadline)
        keyed = batch.start(GROUP_KEYED, lambda d: self.identities.lookup_groups(missing, d))
        outcomes.update(batch.wait())
        extra = _items(keyed.outcome)
        if extra is None:
            return groups, set(missing)
        return (attr.overlay(groups, extra) if extra else groups), set()  # type: ignore[return-value]


def _items(outcome: SourceOutcome[Any]) -> Any:
    return outcome.value.items if outcome.value is not None else None


def job_info_rows(jobs: Mapping[str, SlurmJob]) -> List[Tuple[Tuple[str, ...], float]]:
    """One row per job whose id is a plain number (the only ids the rules can join)."""
    return [
        ((jobid, job.account, job.user), 1.0) for jobid, job in idsort.listed_jobs(jobs).items()
    ]


def user_info_rows(
    uids: List[int], users: Mapping[int, Any], groups: Mapping[int, str], unknown: Set[int]
) -> List[Tuple[Tuple[str, ...], float]]:
    """One row per uid with a user; ``group_name`` empty when the gid has no name. Users
    whose gid could not be looked up (``unknown``) are left out this time."""
    rows: List[Tuple[Tuple[str, ...], float]] = []
    for uid in sorted(set(uids)):
        user = users.get(uid)
        if user is not None and user.gid not in unknown:
            rows.append(((str(uid), user.name, groups.get(user.gid, "")), 1.0))
    return rows
