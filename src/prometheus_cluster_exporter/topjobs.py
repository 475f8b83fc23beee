"""The top jobs: the N Slurm jobs with the most read + write throughput in a scrape.

Taken from the answers the attribution already has (no query of its own): each jobid
that attribution gave to a job is summed under that job's id, so a job whose IO
arrives under several jobids (one per node with ``%j:%u:%H``, a het job's components)
counts once, with all of it. Only jobs somebody can be named for are ranked (ids
nobody knows stay in the unattributed families); a job with neither read nor write
throughput is not ranked. Ties go to the higher job id (the newer job).

Sample (``--metrics.top-jobs=2``; the metadata rate is over all MDTs)::

    cluster_top_job_read_throughput_bytes{account="physics",job_name="relax",jobid="4242",partition="batch",user="alice"} 1.048576e+08
    cluster_top_job_write_throughput_bytes{account="physics",job_name="relax",jobid="4242",partition="batch",user="alice"} 0.0
    cluster_top_job_metadata_operations{account="physics",job_name="relax",jobid="4242",partition="batch",user="alice"} 12.0

Pure functions; imports ``attribution``, ``jobid``, ``metrics`` and ``records``.
"""

from __future__ import annotations

import heapq
from itertools import compress, repeat
from operator import le
from typing import Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from prometheus_cluster_exporter.attribution import JOB, OwnerTable, add_sums
from prometheus_cluster_exporter.jobid import JobRef, Ref
from prometheus_cluster_exporter.metrics import (
    TOP_JOB_METADATA,
    TOP_JOB_READ,
    TOP_JOB_WRITE,
    Row,
    RowFamily,
)
from prometheus_cluster_exporter.records import RateColumn, SlurmJob

#: Label values (job names, partitions) are cut to this many characters.
MAX_LABEL_CHARS = 128


class TopJob(NamedTuple):
    """One of the top jobs: who it is and its rates this scrape (metadata None when the
    metadata query failed)."""

    jobid: str
    account: str
    user: str
    job_name: str
    partition: str
    read: float
    write: float
    metadata: Optional[float]

    @property
    def labels(self) -> Tuple[str, ...]:
        """Label values in the families' order: jobid, account, user, job_name, partition."""
        cut = MAX_LABEL_CHARS
        return (
            self.jobid[:cut],
            self.account[:cut],
            self.user[:cut],
            self.job_name[:cut],
            self.partition[:cut],
        )


def parsed_jobs(table: OwnerTable, refs: Mapping[str, Ref]) -> Dict[str, str]:
    """jobid -> Slurm job id for the parsed ids that attribution gave to a job (``%j.%u``,
    a quoted or zero-padded number, ...): one step per parsed id, none per plain number."""
    number_of, kinds = table.number_of, table.kinds
    return {
        raw: ref.jobid
        for raw, ref in refs.items()
        if isinstance(ref, JobRef) and kinds[number_of.get(raw, 0)] == JOB
    }


def job_sums(
    columns: Iterable[RateColumn], plain: Mapping[str, object], parsed: Mapping[str, str]
) -> Dict[str, float]:
    """Slurm job id -> its values summed over every column: over the ids that are plain
    job numbers (``plain``: the listed jobs, their own ids) one look-up per row and the
    sums in C; over the ``parsed`` ids (several may name one job) a step each."""
    total: Dict[str, float] = {}
    for column in columns:
        ids = column.jobids if isinstance(column.jobids, list) else list(column.jobids)
        values = column.values
        pick = list(map(plain.__contains__, ids))
        found = dict(zip(compress(ids, pick), compress(values, pick)))
        if len(found) < pick.count(True):  # an id twice in one column: sum it
            found = {}
            for jobid, value in zip(compress(ids, pick), compress(values, pick)):
                found[jobid] = found.get(jobid, 0.0) + value
        if parsed:
            named = list(map(parsed.__contains__, ids))
            for raw, value in zip(compress(ids, named), compress(values, named)):
                jobid = parsed[raw]
                found[jobid] = found.get(jobid, 0.0) + value
        add_sums(total, found)
    return total


def _picked_sums(columns: Iterable[RateColumn], job_of: Mapping[str, str]) -> Dict[str, float]:
    """Slurm job id -> its values summed, for the few ids in ``job_of`` only."""
    total: Dict[str, float] = {}
    for column in columns:
        ids = column.jobids if isinstance(column.jobids, list) else list(column.jobids)
        pick = list(map(job_of.__contains__, ids))
        for raw, value in zip(compress(ids, pick), compress(column.values, pick)):
            jobid = job_of[raw]
            total[jobid] = total.get(jobid, 0.0) + value
    return total


def _largest(count: int, values: Mapping[str, float]) -> List[str]:
    """The ``count`` keys with the largest positive values; on a tie the longer, then the
    greater key (the newer job) first."""
    positive = [v for v in heapq.nlargest(count, values.values()) if v > 0]
    if not positive:
        return []
    least = positive[-1]
    near = compress(values.keys(), map(le, repeat(least), values.values()))
    return sorted(near, key=lambda j: (values[j], len(j), j), reverse=True)[:count]


def top_jobs(
    count: int,
    read: Sequence[RateColumn],
    write: Sequence[RateColumn],
    metadata: Optional[Sequence[RateColumn]],
    table: OwnerTable,
    refs: Mapping[str, Ref],
    jobs: Mapping[str, SlurmJob],
    listed: Optional[Mapping[str, SlurmJob]] = None,
) -> List[TopJob]:
    """The ``count`` jobs with the most read + write throughput, largest first.

    ``read``/``write``/``metadata`` are the answers' columns, ``table``/``refs`` what
    attribution decided for their ids and ``jobs`` every job known this scrape (squeue,
    the grace memory, sacct), which gives the account, user, name and partition.
    ``listed`` are the jobs whose plain-number ids need no parsing (``idsort``), when
    the first jobid format is ``%j``.
    """
    if count <= 0:
        return []
    plain: Mapping[str, object] = listed or {}
    parsed = parsed_jobs(table, refs)
    read_jobs, write_jobs = job_sums(read, plain, parsed), job_sums(write, plain, parsed)
    both = dict(write_jobs)
    add_sums(both, dict(read_jobs))
    chosen = [j for j in _largest(count, both) if j in jobs]
    meta: Optional[Dict[str, float]] = None
    if metadata is not None:
        # Summed over the MDTs, for the chosen jobs only (under every id that names them).
        wanted = set(chosen)
        job_of = {j: j for j in chosen if j in plain}
        job_of.update((raw, j) for raw, j in parsed.items() if j in wanted)
        meta = _picked_sums(metadata, job_of)
    result = []
    for jobid in chosen:
        job = jobs[jobid]
        result.append(
            TopJob(
                jobid,
                job.account,
                job.user,
                job.job_name,
                job.partition,
                read_jobs.get(jobid, 0.0),
                write_jobs.get(jobid, 0.0),
                None if meta is None else meta.get(jobid, 0.0),
            )
        )
    return result


def top_job_families(top: Sequence[TopJob], metadata: bool) -> List[RowFamily]:
    """The three families of the top jobs (metadata only if its query answered)."""
    read: List[Row] = [(t.labels, t.read) for t in top]
    write: List[Row] = [(t.labels, t.write) for t in top]
    families = [RowFamily(TOP_JOB_READ, read), RowFamily(TOP_JOB_WRITE, write)]
    if metadata:
        rows: List[Row] = [(t.labels, t.metadata or 0.0) for t in top]
        families.append(RowFamily(TOP_JOB_METADATA, rows))
    return families
