"""Attribution: per-jobid rates in, per-account/user and per-process rows out.

Pure functions only (no I/O, no logging, no globals). Every lookup is a dict lookup,
so the cost is linear in the number of input rows. Nothing is dropped: a rate that
cannot be given to a job or a process owner is summed under a reason, so that

    sum(jobs) + sum(procs) + sum(unattributed) == sum(input rows)

for every query answer (up to float rounding).

Answers come in columns (``records.RateColumn``) and the per-row work is done by C
loops (``map``, ``compress``) wherever it can be: every jobid maps to a small owner
number (``owner_table``), and a plain number nobody lists (``idsort``) falls into one
shared "unknown job" owner without an entry of its own.
"""

from __future__ import annotations

from collections import ChainMap
from itertools import compress, islice, repeat
from operator import eq, not_
from typing import (
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    cast,
)

from prometheus_cluster_exporter.jobid import JobRef, ProcRef, Ref
from prometheus_cluster_exporter.metrics import OwnerRows
from prometheus_cluster_exporter.records import PasswdEntry, RateColumn, SlurmJob

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
    "OwnerTable",
    "ProcRef",
    "attribute",
    "index_jobs",
    "lost_ids",
    "overlay",
    "owner_table",
    "owners",
]


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


def lost_ids(table: OwnerTable, refs: Iterable[str]) -> List[Tuple[str, str]]:
    """(reason, jobid) of every parsed id (``refs``) nobody could be named for."""
    number_of, kinds, labels = table.number_of, table.kinds, table.labels
    lost = []
    for jobid in refs:
        number = number_of[jobid]
        if kinds[number] == LOST:
            lost.append((labels[number][0], jobid))
    return lost


class OwnerTable(NamedTuple):
    """Who every jobid of a scrape belongs to, as small numbers.

    ``number_of`` maps a jobid to its owner's number: owner ``n`` is of kind ``kinds[n]``
    (JOB, PROC or LOST) with label values ``labels[n]``. A jobid ``number_of`` does not
    hold is a plain canonical number that no job listing knows: owner 0 (``unknown_job``,
    or ``jobs_unavailable`` when squeue failed).
    """

    number_of: Dict[str, int]
    kinds: List[int]
    labels: List[Key]


def owner_table(
    refs: Mapping[str, Ref],
    jobs: Optional[Mapping[str, SlurmJob]],
    users: Optional[Mapping[int, PasswdEntry]],
    groups: Optional[Mapping[int, str]],
    listed: Optional[Mapping[str, SlurmJob]] = None,
) -> OwnerTable:
    """The owners of the ids in ``refs`` and, where plain numbers are job ids, of the
    ``listed`` jobs (``idsort.listed_jobs``: their ids need no parsing)."""
    unknown: Owner = (LOST, (JOBS_UNAVAILABLE if jobs is None else UNKNOWN_JOB,))
    numbers: Dict[Owner, int] = {unknown: 0}
    number_of: Dict[str, int] = {}
    if listed is not None and jobs is not None:
        for jobid, job in listed.items():
            owner: Owner = (JOB, (job.account, job.user))
            number_of[jobid] = numbers.setdefault(owner, len(numbers))
    for jobid, owner in owners(refs, jobs, users, groups).items():
        number_of[jobid] = numbers.setdefault(owner, len(numbers))
    return OwnerTable(number_of, [k for k, _ in numbers], [key for _, key in numbers])


class Attribution:
    """Aggregated rows of one query answer: for each ``extra`` (the labels after the
    owner's), owner number -> summed value (``sums``).

    ``rows(kind)`` gives them under the owners' labels: job rows ``(account, user, *extra)``,
    process rows ``(proc_name, group_name, user_name, *extra)`` and unattributed rows
    ``(reason, *extra)``; ``jobs``, ``procs`` and ``unattributed`` as dicts.
    """

    def __init__(self, kinds: List[int], labels: List[Key]) -> None:
        self.kinds = kinds
        self.labels = labels
        self.sums: Dict[Extra, Dict[int, float]] = {}

    @classmethod
    def of(cls, table: OwnerTable) -> Attribution:
        return cls(table.kinds, table.labels)

    def rows(self, kind: int) -> OwnerRows:
        """The rows of owners of ``kind`` (JOB, PROC or LOST)."""
        return OwnerRows(self.labels, self.kinds, kind, self.sums)

    @property
    def jobs(self) -> Dict[Key, float]:
        return dict(self.rows(JOB))

    @property
    def procs(self) -> Dict[Key, float]:
        return dict(self.rows(PROC))

    @property
    def unattributed(self) -> Dict[Key, float]:
        return dict(self.rows(LOST))

    def per_owner(self) -> Dict[int, float]:
        """owner number -> its value summed over the labels after the owner's (read only:
        with one tuple of labels after the owner's, that tuple's sums themselves)."""
        if len(self.sums) == 1:
            return next(iter(self.sums.values()))
        total: Dict[int, float] = {}
        for sums in self.sums.values():
            for number, value in sums.items():
                total[number] = total.get(number, 0.0) + value
        return total

    def size(self) -> int:
        """How many rows (series) the answer gives, of all kinds."""
        return sum(map(len, self.sums.values()))

    def total(self) -> float:
        return sum(sum(sums.values()) for sums in self.sums.values())


def pieces(columns: Iterable[RateColumn], size: int) -> Iterator[RateColumn]:
    """The columns cut into pieces of at most ``size`` rows."""
    for column in columns:
        if len(column.jobids) <= size:
            yield column
            continue
        ids = iter(column.jobids)
        for start in range(0, len(column.jobids), size):
            piece = list(islice(ids, size))
            yield RateColumn(column.extra, piece, column.values[start : start + size])


def attribute(
    columns: Iterable[RateColumn], table: OwnerTable, into: Optional[Attribution] = None
) -> Attribution:
    """Sum each column's values per owner, apart for each ``extra``. Every row lands
    with exactly one owner, so nothing is lost. With ``into`` the sums are added to an
    earlier result (an answer attributed in pieces)."""
    result = Attribution.of(table) if into is None else into
    for extra, jobids, values in columns:
        found = _sum_by_owner(list(map(table.number_of.get, jobids, repeat(0))), values)
        sums = result.sums.get(extra)
        if sums is None:
            result.sums[extra] = found
        else:
            add_sums(sums, found)
    return result


def add_sums(into: Dict[K, float], found: Dict[K, float]) -> None:
    """``found`` added to ``into`` (``found`` is used up): one Python step per key in both,
    the rest in C."""
    for key in found.keys() & into.keys():
        found[key] += into[key]
    into.update(found)


def _sum_by_owner(numbers: List[int], values: Sequence[float]) -> Dict[int, float]:
    """owner number -> sum of its values, in C loops but for owners with several rows."""
    named = list(compress(numbers, numbers))  # owner 0 (unknown numbers) apart
    named_values = list(compress(values, numbers))
    sums = dict(zip(named, named_values))
    if len(sums) < len(named):
        # Sorted, a repeated number sits next to itself.
        ordered = sorted(named)
        repeated = set(compress(ordered, map(eq, ordered, islice(ordered, 1, None))))
        for number in repeated:
            sums[number] = 0.0
        pick = list(map(repeated.__contains__, named))
        for number, value in zip(compress(named, pick), compress(named_values, pick)):
            sums[number] += value
    if len(named) < len(numbers):
        sums[0] = sum(compress(values, map(not_, numbers)))
    return sums


def wanted_jobs(
    refs: Mapping[str, Ref], known: Mapping[str, SlurmJob], numbers: Iterable[str] = ()
) -> List[str]:
    """Job ids of this scrape that ``known`` does not hold: those of parsed ids, and
    ``numbers`` (plain numbers already found missing by ``split_ids``)."""
    wanted = {r.jobid for r in refs.values() if isinstance(r, JobRef) and r.jobid not in known}
    wanted.update(numbers)
    return sorted(wanted, key=int)


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
