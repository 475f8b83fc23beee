"""Slurm jobs from ``squeue`` (text or ``--json``) and, for finished jobs, ``sacct``.

``squeue -a -h -o "%A %a %u"`` prints one line per job: the job id (unique per array
element and per het-job component), the account (``(null)`` when none) and the user::

    4242 physics alice
    4243 (null) bob

``sacct -X -n -P -a -j 4240,4241 -o JobIDRaw,Account,User`` prints the same facts for
finished jobs, ``|``-separated::

    4240|physics|alice

Neither is ever asked for a job name: users choose them, and a name holding a newline
could forge a line of the listing. The top jobs' names are asked apart
(``jobdetails``); ``squeue --json``, whose strings are escaped, gives them here too (cut
to ``MAX_NAME_CHARS``: they become label values).
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any, Dict, List, Optional, Sequence, Tuple

from prometheus_cluster_exporter import jsonutil
from prometheus_cluster_exporter.cache import FINISHED_JOB_SECONDS, TTLCache
from prometheus_cluster_exporter.errors import SourceError
from prometheus_cluster_exporter.records import JobLookup, Parsed, SlurmJob, checked
from prometheus_cluster_exporter.sources.command import DEFAULT_MAX_OUTPUT, batches, run_command
from prometheus_cluster_exporter.sources.jobdetails import MAX_NAME_CHARS
from prometheus_cluster_exporter.sources.lines import parse_lines

log = logging.getLogger(__name__)

SQUEUE_FORMAT = "%A %a %u"
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


def parse_squeue(output: bytes) -> Parsed[List[SlurmJob]]:
    """Parse ``squeue -h -o "%A %a %u"`` output; skip (and log) lines that do not fit."""

    def entry(fields: List[str]) -> Optional[SlurmJob]:
        jobid = _jobid(fields[0]) if len(fields) == 3 else None
        return SlurmJob(jobid, fields[1], fields[2]) if jobid is not None else None

    return checked(*parse_lines(output, "squeue", None, entry), "squeue")


def _text_details(entry: Any) -> Tuple[str, str]:
    """(partition, name) of a ``squeue --json`` entry, cut to MAX_NAME_CHARS; "" for a
    value that is not a string (optional labels: never a reason to skip the job)."""
    partition, name = entry.get("partition"), entry.get("name")
    return (
        partition.strip()[:MAX_NAME_CHARS] if isinstance(partition, str) else "",
        name.strip()[:MAX_NAME_CHARS] if isinstance(name, str) else "",
    )


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
            if jobid is None or not isinstance(account, str) or not isinstance(user, str):
                raise ValueError("unexpected field types")
            if not user:
                raise ValueError("empty user_name")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            skipped += 1
            log.debug("squeue --json: skipping job entry %.200r: %s", entry, exc)
            continue
        job = SlurmJob(str(jobid), account, user, *_text_details(entry))
        jobs.append(job)
        # All IO of a het job arrives under its leader's id: let any component name it,
        # in case the leader itself is no longer listed.
        leader = _number(entry.get("het_job_id"))
        if leader and leader != jobid:
            aliases.append(job._replace(jobid=str(leader)))
    # A leader listed itself keeps its own listing; else its first component names it.
    listed = {job.jobid for job in jobs}
    for alias in aliases:
        if alias.jobid not in listed:
            listed.add(alias.jobid)
            jobs.append(alias)
    return checked(jobs, skipped, "squeue --json")


def parse_sacct(output: bytes) -> Parsed[List[SlurmJob]]:
    """Parse ``sacct -n -P -o JobIDRaw,Account,User`` output."""

    def entry(fields: List[str]) -> Optional[SlurmJob]:
        jobid = _jobid(fields[0]) if len(fields) == 3 and fields[2] else None
        return SlurmJob(jobid, fields[1] or NO_ACCOUNT, fields[2]) if jobid is not None else None

    return checked(*parse_lines(output, "sacct", "|", entry), "sacct")


class SqueueSource:
    """Runs squeue as a child process on every scrape."""

    def __init__(
        self,
        squeue: str = "squeue",
        json: bool = False,
        max_output: int = DEFAULT_MAX_OUTPUT,
    ) -> None:
        self.json = json
        self.max_output = max_output
        if json:
            self.argv = [squeue, "--json"]
        else:
            self.argv = [squeue, "-a", "-h", "-o", SQUEUE_FORMAT]

    def jobs(self, deadline: float) -> Parsed[List[SlurmJob]]:
        name = "squeue --json" if self.json else "squeue"
        out = run_command(self.argv, deadline, name=name, max_output=self.max_output)
        return parse_squeue_json(out) if self.json else parse_squeue(out)


class SacctSource:
    """Looks up jobs squeue no longer lists with sacct.

    The ids go in as one ``-j`` argument of at most ``MAX_JOBIDS_BYTES`` (the kernel
    refuses a single argument over 128 KiB), in as many calls as that takes, one after
    the other within the same deadline. A call that fails fails the whole lookup.
    """

    def __init__(self, sacct: str = "sacct", max_output: int = DEFAULT_MAX_OUTPUT) -> None:
        self.sacct = sacct
        self.max_output = max_output

    def lookup_jobs(self, jobids: Sequence[str], deadline: float) -> Parsed[List[SlurmJob]]:
        jobs: List[SlurmJob] = []
        skipped = 0
        for batch in batches(jobids, len(jobids), MAX_JOBIDS_BYTES):
            argv = [self.sacct, "-X", "-n", "-P", "-a", "-j", ",".join(batch),
                    "-o", "JobIDRaw,Account,User"]  # fmt: skip
            out = run_command(argv, deadline, name="sacct", max_output=self.max_output)
            parsed = parse_sacct(out)
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
