"""Attribution: per-jobid rates in, per-account/user and per-process rows out.

Pure functions only (no I/O, no logging, no globals). Every lookup is a dict lookup,
so the cost is linear in the number of input rows. Nothing is dropped: a rate that
cannot be given to a job or a process owner is summed under a reason, so that

    sum(jobs) + sum(procs) + sum(unattributed) == sum(input rows)

for every query answer (up to float rounding).
"""

from __future__ import annotations

from collections import ChainMap
from dataclasses import dataclass, field
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Mapping,
    Optional,
    Protocol,
    Tuple,
    TypeVar,
    cast,
)

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
    "JOB",
    "LOST",
    "PROC",
    "REASONS",
    "Attribution",
    "JobRef",
    "ProcRef",
    "attribute",
    "classify",
    "index_jobs",
    "lost_ids",
    "overlay",
    "owners",
]


def classify(jobids: Iterable[str], grammar: JobidGrammar) -> Dict[str, Ref]:
    """Parse every distinct jobid once."""
    parse = grammar.parse
    return {jobid: parse(jobid) for jobid in set(jobids)}


def index_jobs(jobs: Iterable[SlurmJob]) -> Dict[str, SlurmJob]:
    """jobid -> job; the first listing of a jobid wins."""
    index: Dict[str, SlurmJob] = {}
    for job in jobs:
        index.setdefault(job.jobid, job)
    return index


K = TypeVar("K")
V = TypeVar("V")
Extra = Tuple[str, ...]
Key = Tuple[str, ...]


class Rate(Protocol):
    """A row of a query answer (``records.JobidRate``, ``records.TargetRate``)."""

    @property
    def jobid(self) -> str: ...

    @property
    def value(self) -> float: ...


#: Kinds of owner.
JOB, PROC, LOST = 0, 1, 2
#: (kind, label values): (JOB, (account, user)), (PROC, (proc_name, group, user)) or
#: (LOST, (reason,)).
Owner = Tuple[int, Key]


def owners(
    refs: Mapping[str, Ref],
    jobs: Optional[Mapping[str, SlurmJob]],
    users: Optional[Mapping[int, PasswdEntry]],
    groups: Optional[Mapping[int, str]],
) -> Dict[str, Owner]:
    """Who each distinct jobid belongs to, decided once per scrape for all queries.

    ``jobs`` is None when squeue failed and ``users``/``groups`` None when getent failed;
    the ids that need them are then unavailable.
    """
    result: Dict[str, Owner] = {}
    for jobid, ref in refs.items():
        if ref is None:
            result[jobid] = (LOST, (UNPARSABLE_JOBID,))
        elif isinstance(ref, JobRef):
            if jobs is None:
                result[jobid] = (LOST, (JOBS_UNAVAILABLE,))
                continue
            job = jobs.get(ref.jobid)
            if job is None:
                result[jobid] = (LOST, (UNKNOWN_JOB,))
            else:
                result[jobid] = (JOB, (job.account, job.user))
        elif users is None or groups is None:
            result[jobid] = (LOST, (IDENTITIES_UNAVAILABLE,))
        else:
            user = users.get(ref.uid)
            if user is None:
                result[jobid] = (LOST, (UNKNOWN_UID,))
                continue
            group = groups.get(user.gid)
            if group is None:
                result[jobid] = (LOST, (UNKNOWN_GID,))
            else:
                result[jobid] = (PROC, (ref.proc_name, group, user.name))
    return result


def lost_ids(owner_of: Mapping[str, Owner]) -> List[Tuple[str, str]]:
    """(reason, jobid) of every id nobody could be named for."""
    return [(key[0], jobid) for jobid, (kind, key) in owner_of.items() if kind == LOST]


@dataclass
class Attribution:
    """Aggregated rows of one query answer.

    ``jobs`` maps ``(account, user, *extra)``, ``procs`` maps
    ``(proc_name, group_name, user_name, *extra)`` and ``unattributed`` maps
    ``(reason, *extra)`` to summed values.
    """

    jobs: Dict[Key, float] = field(default_factory=dict)
    procs: Dict[Key, float] = field(default_factory=dict)
    unattributed: Dict[Key, float] = field(default_factory=dict)

    def total(self) -> float:
        return sum(self.jobs.values()) + sum(self.procs.values()) + sum(self.unattributed.values())


def attribute(
    rows: Iterable[Rate],
    owner_of: Mapping[str, Owner],
    extra_of: Optional[Callable[[Any], Extra]] = None,
    into: Optional[Attribution] = None,
) -> Attribution:
    """Sum rows per owner. A row has a ``jobid`` and a ``value`` (a JobidRate or a
    TargetRate); ``extra_of(row)`` gives the labels that follow the owner's (the MDT
    target, the fs).
    Every row lands in exactly one table, so nothing is lost. With ``into`` the sums are
    added to an earlier result (an answer attributed in chunks)."""
    result = Attribution() if into is None else into
    tables = (result.jobs, result.procs, result.unattributed)
    if extra_of is None:
        for row in rows:
            kind, key = owner_of[row.jobid]
            table = tables[kind]
            table[key] = table.get(key, 0.0) + row.value
    else:
        for row in rows:
            kind, key = owner_of[row.jobid]
            key = key + extra_of(row)
            table = tables[kind]
            table[key] = table.get(key, 0.0) + row.value
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


def overlay(base: Mapping[K, V], extra: Dict[K, V]) -> Mapping[K, V]:
    """``base`` with ``extra`` added (base wins), without copying ``base``."""
    return ChainMap(cast(Dict[K, V], base), extra)
