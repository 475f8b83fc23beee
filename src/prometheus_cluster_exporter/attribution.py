"""Attribution: per-jobid rates in, per-account/user and per-process rows out.

Pure functions only (no I/O, no logging, no globals). Every lookup is a dict lookup,
so the cost is linear in the number of input rows.

Jobid grammar (Lustre ``jobid_var=SLURM_JOB_ID`` with the default ``jobid_name=%e.%u``
fallback):

* ``12345``        -> Slurm job 12345
* ``my.app.1001``  -> process ``my.app`` of uid 1001 (split on the last dot)
* anything else    -> unparsable
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, NamedTuple, Optional, Tuple, Union

from prometheus_cluster_exporter.records import GroupTable, SlurmJob, UserTable

#: Reasons a rate could not be attributed.
UNKNOWN_JOB = "unknown_job"
UNKNOWN_UID = "unknown_uid"
UNKNOWN_GID = "unknown_gid"
UNPARSABLE_JOBID = "unparsable_jobid"
#: The source needed for this kind of jobid failed in this scrape.
JOBS_UNAVAILABLE = "jobs_unavailable"
IDENTITIES_UNAVAILABLE = "identities_unavailable"

#: Reasons that point at bad or unexpected input (warned about) rather than normal churn.
INPUT_PROBLEMS = frozenset({UNKNOWN_UID, UNKNOWN_GID, UNPARSABLE_JOBID})


class JobRef(NamedTuple):
    jobid: str


class ProcRef(NamedTuple):
    proc_name: str
    uid: int


def parse_jobid(jobid: str) -> Union[JobRef, ProcRef, None]:
    """Classify a Lustre jobid; ``None`` means it fits no known form."""
    if jobid.isdigit() and jobid.isascii():
        return JobRef(str(int(jobid)))
    name, dot, uid = jobid.rpartition(".")
    if dot and name and uid.isdigit() and uid.isascii():
        return ProcRef(name, int(uid))
    return None


def index_jobs(jobs: Iterable[SlurmJob]) -> Dict[str, SlurmJob]:
    """jobid -> job; the first listing of a jobid wins."""
    index: Dict[str, SlurmJob] = {}
    for job in jobs:
        index.setdefault(job.jobid, job)
    return index


Extra = Tuple[str, ...]
JobKey = Tuple[str, ...]  # (account, user, *extra)
ProcKey = Tuple[str, ...]  # (proc_name, group_name, user_name, *extra)


@dataclass
class Attribution:
    """Aggregated rows of one query answer.

    ``jobs`` and ``procs`` map label tuples to summed values; ``unattributed`` maps
    ``(reason, *extra)`` to the summed value nobody could be named for, and ``skipped``
    lists ``(reason, jobid)`` for every such row (for logging by the caller).
    """

    jobs: Dict[JobKey, float] = field(default_factory=dict)
    procs: Dict[ProcKey, float] = field(default_factory=dict)
    unattributed: Dict[Tuple[str, ...], float] = field(default_factory=dict)
    skipped: List[Tuple[str, str]] = field(default_factory=list)

    def total(self) -> float:
        return sum(self.jobs.values()) + sum(self.procs.values()) + sum(self.unattributed.values())


def attribute(
    rows: Iterable[Tuple[str, Extra, float]],
    jobs: Optional[Mapping[str, SlurmJob]],
    users: Optional[UserTable],
    groups: Optional[GroupTable],
) -> Attribution:
    """Sum ``(jobid, extra_labels, value)`` rows per job owner and per process owner.

    ``jobs`` is None when squeue failed and ``users``/``groups`` None when getent
    failed; the rows that would need them are then counted as unavailable.
    """
    result = Attribution()
    job_rows = result.jobs
    proc_rows = result.procs

    def unattributed(reason: str, jobid: str, extra: Extra, value: float) -> None:
        key = (reason, *extra)
        result.unattributed[key] = result.unattributed.get(key, 0.0) + value
        result.skipped.append((reason, jobid))

    parsed_cache: Dict[str, Union[JobRef, ProcRef, None]] = {}
    for jobid, extra, value in rows:
        if jobid in parsed_cache:
            ref = parsed_cache[jobid]
        else:
            ref = parsed_cache[jobid] = parse_jobid(jobid)
        if ref is None:
            unattributed(UNPARSABLE_JOBID, jobid, extra, value)
        elif isinstance(ref, JobRef):
            if jobs is None:
                unattributed(JOBS_UNAVAILABLE, jobid, extra, value)
                continue
            job = jobs.get(ref.jobid)
            if job is None:
                unattributed(UNKNOWN_JOB, jobid, extra, value)
                continue
            key = (job.account, job.user, *extra)
            job_rows[key] = job_rows.get(key, 0.0) + value
        else:
            if users is None or groups is None:
                unattributed(IDENTITIES_UNAVAILABLE, jobid, extra, value)
                continue
            user = users.get(ref.uid)
            if user is None:
                unattributed(UNKNOWN_UID, jobid, extra, value)
                continue
            group = groups.get(user.gid)
            if group is None:
                unattributed(UNKNOWN_GID, jobid, extra, value)
                continue
            key = (ref.proc_name, group, user.name, *extra)
            proc_rows[key] = proc_rows.get(key, 0.0) + value
    return result
