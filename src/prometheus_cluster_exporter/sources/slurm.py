"""Slurm jobs from ``squeue`` (text or ``--json``) and, for finished jobs, ``sacct``.

``squeue -a -h -o "%A %a %u"`` prints one line per job: the job id (unique per array
element and per het-job component), the account (``(null)`` when none) and the user::

    4242 physics alice
    4243 (null) bob

With the top jobs on (``--metrics.top-jobs``) the same single call also asks for the
partition and the job name, last because a name may hold spaces (``%A %a %u %P %j``)::

    4242 physics alice batch relax the lattice

``sacct -X -n -P -a -j 4240,4241 -o JobIDRaw,Account,User`` prints the same facts for
finished jobs, ``|``-separated (``,Partition,JobName`` added with the top jobs)::

    4240|physics|alice|batch|relax

Job names and partitions are cut to ``MAX_NAME_CHARS``: they become label values.
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any, Dict, List, Optional, Sequence

from prometheus_cluster_exporter import jsonutil
from prometheus_cluster_exporter.cache import FINISHED_JOB_SECONDS, TTLCache
from prometheus_cluster_exporter.errors import SourceError
from prometheus_cluster_exporter.records import JobLookup, Parsed, SlurmJob, checked
from prometheus_cluster_exporter.sources.command import DEFAULT_MAX_OUTPUT, batches, run_command
from prometheus_cluster_exporter.sources.lines import parse_lines

log = logging.getLogger(__name__)

SQUEUE_FORMAT = "%A %a %u"
#: With the partition and the job name (``--metrics.top-jobs``); the name comes last.
SQUEUE_DETAILS_FORMAT = "%A %a %u %P %j"
SACCT_FIELDS = "JobIDRaw,Account,User"
SACCT_DETAILS_FIELDS = "JobIDRaw,Account,User,Partition,JobName"
#: Job names and partitions are kept (and exported) up to this many characters.
MAX_NAME_CHARS = 128
NO_ACCOUNT = "(null)"
# Slurm job ids are 32-bit; anything longer is garbage, and converting a long enough
# digit string would even raise (Python's int-from-string limit).
MAX_ID_DIGITS = 20
_MAX_ID = 10**MAX_ID_DIGITS - 1
# The -j argument of one sacct call (a single argument may not exceed 128 KiB).
MAX_JOBIDS_BYTES = 64 * 1024
# Job ids looked up with sacct per scrape at most.
MAX_JOB_LOOKUPS = 20_000


def _jobid(text: str) -> Optional[str]:
    if len(text) > MAX_ID_DIGITS or not text.isdigit() or not text.isascii():
        return None
    return str(int(text))


def _job(fields: List[str], account: str) -> Optional[SlurmJob]:
    """A job from its fields: id, account, user, and perhaps partition and name."""
    jobid = _jobid(fields[0])
    if jobid is None:
        return None
    partition = fields[3][:MAX_NAME_CHARS] if len(fields) > 3 else ""
    name = fields[4].strip()[:MAX_NAME_CHARS] if len(fields) > 4 else ""
    return SlurmJob(jobid, account, fields[2], partition, name)


def parse_squeue(output: bytes, details: bool = False) -> Parsed[List[SlurmJob]]:
    """Parse ``squeue -h -o "%A %a %u"`` output (``details``: ``"%A %a %u %P %j"``, where
    a job without a name has four fields); skip (and log) lines that do not fit."""
    widths = (3, 4, 5) if details else (3,)

    def entry(fields: List[str]) -> Optional[SlurmJob]:
        return _job(fields, fields[1]) if len(fields) in widths else None

    lines = parse_lines(output, "squeue", None, entry, maxsplit=4 if details else -1)
    return checked(*lines, "squeue")


def _number(value: Any) -> Optional[int]:
    """A JSON number of either shape: ``42`` (22.05) or ``{"set": true, "number": 42}``."""
    if isinstance(value, dict):
        if not value.get("set", True) or value.get("infinite"):
            return None
        value = value.get("number")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_ID:
        return None
    return value


def _bounded_int(text: str) -> Optional[int]:
    """``parse_int`` of the standard json module: too long a number decodes as None."""
    return int(text) if len(text) <= MAX_ID_DIGITS + 1 else None


@functools.cache
def _listing_decoder(msgspec: Any) -> Any:
    listing = msgspec.defstruct("Listing", [("jobs", List[msgspec.Raw])])
    return msgspec.json.Decoder(listing)


def _job_entries(output: bytes) -> List[Any]:
    """The ``jobs`` list of a ``squeue --json`` document.

    With msgspec each entry is decoded on its own, so one that cannot be (a number out
    of range) costs only itself: the decoding error stands in for it. The standard
    library decodes over-long integers as None instead.
    """
    msgspec = jsonutil.msgspec
    if msgspec is None:
        try:
            payload = json.loads(output, parse_int=_bounded_int)
        except ValueError as exc:
            raise SourceError(f"squeue --json: output is not valid JSON: {exc}") from None
        jobs = payload.get("jobs") if isinstance(payload, dict) else None
        if not isinstance(jobs, list):
            raise SourceError("squeue --json: output has no jobs list")
        return jobs
    try:
        raws = _listing_decoder(msgspec).decode(output).jobs
    except msgspec.ValidationError as exc:
        raise SourceError(f"squeue --json: output has no jobs list: {exc}") from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise SourceError(f"squeue --json: output is not valid JSON: {exc}") from None
    entries: List[Any] = []
    for raw in raws:
        try:
            entries.append(msgspec.json.decode(raw))
        except msgspec.DecodeError as exc:
            entries.append(exc)
    return entries


def parse_squeue_json(output: bytes) -> Parsed[List[SlurmJob]]:
    """Parse ``squeue --json`` (Slurm 22.05 and later shapes)."""
    jobs: List[SlurmJob] = []
    aliases: List[SlurmJob] = []
    skipped = 0
    for entry in _job_entries(output):
        if isinstance(entry, ValueError):
            skipped += 1
            log.debug("squeue --json: skipping a job entry that cannot be decoded: %.200s", entry)
            continue
        try:
            jobid = _number(entry["job_id"])
            account = entry.get("account") or NO_ACCOUNT
            user = entry["user_name"]
            partition = entry.get("partition") or ""
            name = entry.get("name") or ""
            texts = (account, user, partition, name)
            if jobid is None or not all(isinstance(t, str) for t in texts):
                raise ValueError("unexpected field types")
            if not user:
                raise ValueError("empty user_name")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            skipped += 1
            log.debug("squeue --json: skipping job entry %.200r: %s", entry, exc)
            continue
        job = SlurmJob(str(jobid), account, user, partition[:MAX_NAME_CHARS], name[:MAX_NAME_CHARS])
        jobs.append(job)
        # All IO of a het job arrives under its leader's id: let any component name it,
        # in case the leader itself is no longer listed.
        leader = _number(entry.get("het_job_id"))
        if leader and leader != jobid:
            aliases.append(job._replace(jobid=str(leader)))
    # Real listings come first, so they win over aliases when jobs are indexed.
    return checked(jobs + aliases, skipped, "squeue --json")


def parse_sacct(output: bytes, details: bool = False) -> Parsed[List[SlurmJob]]:
    """Parse ``sacct -n -P -o JobIDRaw,Account,User`` output (``details``: with
    ``,Partition,JobName``; the name may hold ``|``, so it is the rest of the line; the
    three fields alone are taken too)."""
    widths = (3, 5) if details else (3,)

    def entry(fields: List[str]) -> Optional[SlurmJob]:
        if len(fields) not in widths or not fields[2]:
            return None
        return _job(fields, fields[1] or NO_ACCOUNT)

    lines = parse_lines(output, "sacct", "|", entry, maxsplit=4 if details else -1)
    return checked(*lines, "sacct")


class SqueueSource:
    """Runs squeue as a child process on every scrape."""

    def __init__(
        self,
        squeue: str = "squeue",
        json: bool = False,
        max_output: int = DEFAULT_MAX_OUTPUT,
        details: bool = False,
    ) -> None:
        self.json = json
        self.details = details
        self.max_output = max_output
        if json:
            self.argv = [squeue, "--json"]
        else:
            form = SQUEUE_DETAILS_FORMAT if details else SQUEUE_FORMAT
            self.argv = [squeue, "-a", "-h", "-o", form]

    def jobs(self, deadline: float) -> Parsed[List[SlurmJob]]:
        name = "squeue --json" if self.json else "squeue"
        out = run_command(self.argv, deadline, name=name, max_output=self.max_output)
        return parse_squeue_json(out) if self.json else parse_squeue(out, self.details)


class SacctSource:
    """Looks up jobs squeue no longer lists with sacct.

    The ids go in as one ``-j`` argument of at most ``MAX_JOBIDS_BYTES`` (the kernel
    refuses a single argument over 128 KiB), in as many calls as that takes, one after
    the other within the same deadline. A call that fails fails the whole lookup.
    """

    def __init__(
        self, sacct: str = "sacct", max_output: int = DEFAULT_MAX_OUTPUT, details: bool = False
    ) -> None:
        self.sacct = sacct
        self.max_output = max_output
        self.details = details
        self.fields = SACCT_DETAILS_FIELDS if details else SACCT_FIELDS

    def lookup_jobs(self, jobids: Sequence[str], deadline: float) -> Parsed[List[SlurmJob]]:
        jobs: List[SlurmJob] = []
        skipped = 0
        for batch in batches(jobids, len(jobids), MAX_JOBIDS_BYTES):
            argv = [self.sacct, "-X", "-n", "-P", "-a", "-j", ",".join(batch),
                    "-o", self.fields]  # fmt: skip
            out = run_command(argv, deadline, name="sacct", max_output=self.max_output)
            parsed = parse_sacct(out, self.details)
            jobs += parsed.items
            skipped += parsed.skipped
        return Parsed(jobs, skipped)


class CachedJobLookup:
    """Remembers sacct answers for ``ttl`` (a finished job's owner never changes).

    An id sacct does not know is asked again on the next scrape: accounting records a
    job a few seconds after squeue shows it. At most ``max_lookups`` ids are asked per
    scrape, the newest (highest) first.
    """

    def __init__(
        self,
        source: JobLookup,
        ttl: float = FINISHED_JOB_SECONDS,
        max_lookups: int = MAX_JOB_LOOKUPS,
    ) -> None:
        self.source = source
        self.max_lookups = max_lookups
        self.cache: TTLCache[str, SlurmJob] = TTLCache(ttl)

    def lookup_jobs(self, jobids: Sequence[str], deadline: float) -> Parsed[List[SlurmJob]]:
        def fetch(missing: List[str]) -> Parsed[Dict[str, SlurmJob]]:
            looked = self.source.lookup_jobs(missing, deadline)
            answered: Dict[str, SlurmJob] = {}
            for job in looked.items:
                answered.setdefault(job.jobid, job)
            return Parsed(answered, looked.skipped)

        newest = sorted(jobids, key=lambda jobid: (len(jobid), jobid), reverse=True)
        found = self.cache.through(newest, fetch, self.max_lookups, "sacct")
        return Parsed(list(found.items.values()), found.skipped, found.fetched)
