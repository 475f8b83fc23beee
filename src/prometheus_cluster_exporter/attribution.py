"""Attribution: per-jobid rates in, per-account/user and per-process rows out.

Pure functions only (no I/O, no logging, no globals). Every lookup is a dict lookup,
so the cost is linear in the number of input rows. Nothing is dropped: a rate that
cannot be given to a job or a process owner is summed under a reason, so that

    sum(jobs) + sum(procs) + sum(unattributed) == sum(input rows)

for every query answer (up to float rounding).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

from prometheus_cluster_exporter.jobid import JobidGrammar, JobRef, ProcRef, Ref
from prometheus_cluster_exporter.records import PasswdEntry, SlurmJob

#: A numeric jobid that neither squeue (nor the recently-seen jobs, nor sacct) knows.
UNKNOWN_JOB = "unknown_job"
#: A process id whose uid no passwd lookup resolves.
UNKNOWN_UID = "unknown_uid"
#: A process id whose user's primary gid has no group name.
UNKNOWN_GID = "unknown_gid"
#: An id that fits none of the configured jobid formats (or was cut at 31 bytes).
UNPARSABLE_JOBID = "unparsable_jobid"
#: squeue failed in this scrape: numeric jobids could not be looked up.
JOBS_UNAVAILABLE = "jobs_unavailable"
#: getent failed in this scrape: process ids could not be resolved.
IDENTITIES_UNAVAILABLE = "identities_unavailable"

REASONS = (
    UNKNOWN_JOB,
    UNKNOWN_UID,
    UNKNOWN_GID,
    UNPARSABLE_JOBID,
    JOBS_UNAVAILABLE,
    IDENTITIES_UNAVAILABLE,
)

#: Reasons that point at bad or unexpected input (warned about) rather than normal churn.
INPUT_PROBLEMS = frozenset({UNKNOWN_UID, UNKNOWN_GID, UNPARSABLE_JOBID})

__all__ = [
    "REASONS",
    "Attribution",
    "JobRef",
    "ProcRef",
    "attribute",
    "classify",
    "index_jobs",
]


def classify(jobids: Iterable[str], grammar: JobidGrammar) -> Dict[str, Ref]:
    """Parse every distinct jobid once."""
    refs: Dict[str, Ref] = {}
    for jobid in jobids:
        if jobid not in refs:
            refs[jobid] = grammar.parse(jobid)
    return refs


def index_jobs(jobs: Iterable[SlurmJob]) -> Dict[str, SlurmJob]:
    """jobid -> job; the first listing of a jobid wins."""
    index: Dict[str, SlurmJob] = {}
    for job in jobs:
        index.setdefault(job.jobid, job)
    return index


Extra = Tuple[str, ...]
Key = Tuple[str, ...]


@dataclass
class Attribution:
    """Aggregated rows of one query answer.

    ``jobs`` maps ``(account, user, *extra)``, ``procs`` maps
    ``(proc_name, group_name, user_name, *extra)`` and ``unattributed`` maps
    ``(reason, *extra)`` to summed values; ``skipped`` lists ``(reason, jobid)`` for every
    unattributed row (for logging by the caller).
    """

    jobs: Dict[Key, float] = field(default_factory=dict)
    procs: Dict[Key, float] = field(default_factory=dict)
    unattributed: Dict[Key, float] = field(default_factory=dict)
    skipped: List[Tuple[str, str]] = field(default_factory=list)

    def total(self) -> float:
        return sum(self.jobs.values()) + sum(self.procs.values()) + sum(self.unattributed.values())


def attribute(
    rows: Iterable[Tuple[str, Extra, float]],
    refs: Mapping[str, Ref],
    jobs: Optional[Mapping[str, SlurmJob]],
    users: Optional[Mapping[int, PasswdEntry]],
    groups: Optional[Mapping[int, str]],
) -> Attribution:
    """Sum ``(jobid, extra_labels, value)`` rows per job owner and per process owner.

    ``refs`` is the classification of every jobid (see :func:`classify`). ``jobs`` is
    None when squeue failed and ``users``/``groups`` None when getent failed; the rows
    that need them are then summed as unavailable.
    """
    result = Attribution()
    job_rows = result.jobs
    proc_rows = result.procs
    lost = result.unattributed
    skipped = result.skipped

    for jobid, extra, value in rows:
        ref = refs[jobid]
        reason: Optional[str] = None
        if ref is None:
            reason = UNPARSABLE_JOBID
        elif isinstance(ref, JobRef):
            if jobs is None:
                reason = JOBS_UNAVAILABLE
            else:
                job = jobs.get(ref.jobid)
                if job is None:
                    reason = UNKNOWN_JOB
                else:
                    key = (job.account, job.user, *extra)
                    job_rows[key] = job_rows.get(key, 0.0) + value
        elif users is None or groups is None:
            reason = IDENTITIES_UNAVAILABLE
        else:
            user = users.get(ref.uid)
            if user is None:
                reason = UNKNOWN_UID
            else:
                group = groups.get(user.gid)
                if group is None:
                    reason = UNKNOWN_GID
                else:
                    key = (ref.proc_name, group, user.name, *extra)
                    proc_rows[key] = proc_rows.get(key, 0.0) + value
        if reason is not None:
            key = (reason, *extra)
            lost[key] = lost.get(key, 0.0) + value
            skipped.append((reason, jobid))
    return result


def wanted_jobs(refs: Mapping[str, Ref], known: Mapping[str, SlurmJob]) -> List[str]:
    """Numeric jobids of this scrape that ``known`` does not hold."""
    return sorted(
        {r.jobid for r in refs.values() if isinstance(r, JobRef) and r.jobid not in known},
        key=int,
    )


def wanted_uids(refs: Mapping[str, Ref], users: Mapping[int, PasswdEntry]) -> List[int]:
    """uids of this scrape's process ids that ``users`` does not hold."""
    return sorted({r.uid for r in refs.values() if isinstance(r, ProcRef) and r.uid not in users})


def wanted_gids(
    uids: Iterable[int], users: Mapping[int, PasswdEntry], groups: Mapping[int, str]
) -> List[int]:
    """Primary gids of these users that ``groups`` does not hold."""
    return sorted({users[u].gid for u in uids if u in users and users[u].gid not in groups})
