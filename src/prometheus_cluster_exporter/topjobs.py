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
from typing import Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from prometheus_cluster_exporter.attribution import JOB, OwnerTable
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


def sums_by_id(columns: Iterable[RateColumn]) -> Dict[str, float]:
    """jobid -> its values summed over every column (over the labels after the owner's).
    The per-row work is done in C where the ids of a column are distinct (as an answer
    summed by jobid has them)."""
    total: Dict[str, float] = {}
    for column in columns:
        found = dict(zip(column.jobids, column.values))
        if len(found) < len(column.jobids):  # an id twice in one column: sum it
            found = {}
            for jobid, value in zip(column.jobids, column.values):
                found[jobid] = found.get(jobid, 0.0) + value
        for jobid in found.keys() & total.keys():
            found[jobid] += total[jobid]
        total.update(found)
    return total


def job_ids(ids: Iterable[str], table: OwnerTable, refs: Mapping[str, Ref]) -> Dict[str, str]:
    """jobid (as in the Lustre series) -> Slurm job id, for the ids attribution gave to a
    job: a parsed id names its job, a plain number nobody had to parse is its own."""
    ids = list(ids)
    kinds = map(table.kinds.__getitem__, map(table.number_of.get, ids, repeat(0)))
    of_jobs = list(compress(ids, map(JOB.__eq__, kinds)))
    found = dict(zip(of_jobs, of_jobs))
    for raw in refs.keys() & found.keys():  # the parsed ones: few where %j comes first
        ref = refs[raw]
        if isinstance(ref, JobRef):
            found[raw] = ref.jobid
    return found


def _per_job(sums: Mapping[str, float], slurm_id: Mapping[str, str]) -> Dict[str, float]:
    """Slurm job id -> the sum of its ids' values."""
    ids = list(slurm_id.keys() & sums.keys())
    jobids = list(map(slurm_id.__getitem__, ids))
    per_job = dict(zip(jobids, map(sums.__getitem__, ids)))
    if len(per_job) < len(ids):  # a job under several ids
        per_job = {}
        for raw, jobid in zip(ids, jobids):
            per_job[jobid] = per_job.get(jobid, 0.0) + sums[raw]
    return per_job


def _largest(count: int, values: Mapping[str, float]) -> List[str]:
    """The ``count`` keys with the largest positive values; on a tie the longer, then the
    greater key (the newer job) first."""
    positive = [v for v in heapq.nlargest(count, values.values()) if v > 0]
    if not positive:
        return []
    least = positive[-1]
    near = compress(values.keys(), map(least.__le__, values.values()))
    return sorted(near, key=lambda j: (values[j], len(j), j), reverse=True)[:count]


def top_jobs(
    count: int,
    read: Sequence[RateColumn],
    write: Sequence[RateColumn],
    metadata: Optional[Sequence[RateColumn]],
    table: OwnerTable,
    refs: Mapping[str, Ref],
    jobs: Mapping[str, SlurmJob],
) -> List[TopJob]:
    """The ``count`` jobs with the most read + write throughput, largest first.

    ``read``/``write``/``metadata`` are the answers' columns, ``table``/``refs`` what
    attribution decided for their ids and ``jobs`` every job known this scrape (squeue,
    the grace memory, sacct), which gives the account, user, name and partition.
    """
    if count <= 0:
        return []
    read_sums, write_sums = sums_by_id(read), sums_by_id(write)
    slurm_id = job_ids(read_sums.keys() | write_sums.keys(), table, refs)
    read_jobs, write_jobs = _per_job(read_sums, slurm_id), _per_job(write_sums, slurm_id)
    both = dict(write_jobs)
    both.update(read_jobs)
    for jobid in read_jobs.keys() & write_jobs.keys():
        both[jobid] = read_jobs[jobid] + write_jobs[jobid]
    chosen = [j for j in _largest(count, both) if j in jobs]
    meta: Optional[Dict[str, float]] = None
    if metadata is not None:
        # Summed over the MDTs; a job's metadata may come under ids without read or write.
        meta_sums = sums_by_id(metadata)
        meta_ids = job_ids(meta_sums.keys(), table, refs)
        wanted = set(chosen)
        raws = compress(meta_ids.keys(), map(wanted.__contains__, meta_ids.values()))
        meta = _per_job(meta_sums, {raw: meta_ids[raw] for raw in raws})
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
