"""Slurm jobs from ``squeue`` (text or ``--json``) and, for finished jobs, ``sacct``.

``squeue -a -h -o "%A %a %u"`` prints one line per job: the job id (unique per array
element and per het-job component), the account (``(null)`` when none) and the user::

    4242 physics alice
    4243 (null) bob

``sacct -X -n -P -a -j 4240,4241 -o JobIDRaw,Account,User`` prints the same facts for
finished jobs, ``|``-separated::

    4240|physics|alice
"""

from __future__ import annotations

import logging
from typing import Any, List, Optional, Sequence

from prometheus_cluster_exporter.cache import TTLCache
from prometheus_cluster_exporter.errors import SourceError
from prometheus_cluster_exporter.jsonutil import DecodeError, loads
from prometheus_cluster_exporter.records import Parsed, SlurmJob, checked
from prometheus_cluster_exporter.sources import JobLookup
from prometheus_cluster_exporter.sources.command import run_command

log = logging.getLogger(__name__)

SQUEUE_FORMAT = "%A %a %u"
NO_ACCOUNT = "(null)"


def _jobid(text: str) -> Optional[str]:
    return str(int(text)) if text.isdigit() and text.isascii() else None


def parse_squeue(output: bytes) -> Parsed[List[SlurmJob]]:
    """Parse ``squeue -h -o "%A %a %u"`` output; skip (and log) lines that do not fit."""
    jobs: List[SlurmJob] = []
    skipped = 0
    for raw in output.decode("utf-8", "replace").splitlines():
        fields = raw.split()
        if not fields:
            continue
        jobid = _jobid(fields[0]) if len(fields) == 3 else None
        if jobid is None:
            skipped += 1
            log.debug("squeue: skipping unexpected line %r", raw[:200])
            continue
        jobs.append(SlurmJob(jobid, fields[1], fields[2]))
    return checked(jobs, skipped, "squeue")


def _number(value: Any) -> Optional[int]:
    """A JSON number of either shape: ``42`` (22.05) or ``{"set": true, "number": 42}``."""
    if isinstance(value, dict):
        if not value.get("set", True) or value.get("infinite"):
            return None
        value = value.get("number")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def parse_squeue_json(output: bytes) -> Parsed[List[SlurmJob]]:
    """Parse ``squeue --json`` (Slurm 22.05 and later shapes)."""
    try:
        payload = loads(output)
    except DecodeError as exc:
        raise SourceError(f"squeue --json: output is not valid JSON: {exc}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("jobs"), list):
        raise SourceError("squeue --json: output has no jobs list")
    jobs: List[SlurmJob] = []
    aliases: List[SlurmJob] = []
    skipped = 0
    for entry in payload["jobs"]:
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
        jobs.append(SlurmJob(str(jobid), account, user))
        # All IO of a het job arrives under its leader's id: let any component name it,
        # in case the leader itself is no longer listed.
        leader = _number(entry.get("het_job_id"))
        if leader and leader != jobid:
            aliases.append(SlurmJob(str(leader), account, user))
    # Real listings come first, so they win over aliases when jobs are indexed.
    return checked(jobs + aliases, skipped, "squeue --json")


def parse_sacct(output: bytes) -> Parsed[List[SlurmJob]]:
    """Parse ``sacct -n -P -o JobIDRaw,Account,User`` output."""
    jobs: List[SlurmJob] = []
    skipped = 0
    for raw in output.decode("utf-8", "replace").splitlines():
        if not raw.strip():
            continue
        fields = raw.split("|")
        jobid = _jobid(fields[0]) if len(fields) == 3 and fields[2] else None
        if jobid is None:
            skipped += 1
            log.debug("sacct: skipping unexpected line %r", raw[:200])
            continue
        jobs.append(SlurmJob(jobid, fields[1] or NO_ACCOUNT, fields[2]))
    return checked(jobs, skipped, "sacct")


class SqueueSource:
    """Runs squeue as a child process on every scrape."""

    def __init__(self, squeue: str = "squeue", json: bool = False) -> None:
        self.json = json
        if json:
            self.argv = [squeue, "--json"]
        else:
            self.argv = [squeue, "-a", "-h", "-o", SQUEUE_FORMAT]

    def jobs(self, deadline: float) -> Parsed[List[SlurmJob]]:
        name = "squeue --json" if self.json else "squeue"
        out = run_command(self.argv, deadline, name=name)
        return parse_squeue_json(out) if self.json else parse_squeue(out)


class SacctSource:
    """Looks up jobs squeue no longer lists, in one sacct call per scrape."""

    def __init__(self, sacct: str = "sacct") -> None:
        self.sacct = sacct

    def lookup_jobs(self, jobids: Sequence[str], deadline: float) -> Parsed[List[SlurmJob]]:
        argv = [self.sacct, "-X", "-n", "-P", "-a", "-j", ",".join(jobids),
                "-o", "JobIDRaw,Account,User"]  # fmt: skip
        return parse_sacct(run_command(argv, deadline, name="sacct"))


class CachedJobLookup:
    """Remembers sacct answers: a finished job's owner never changes (kept ``ttl``); an
    id sacct does not know is asked again after ``negative_ttl``."""

    def __init__(self, source: JobLookup, ttl: float = 3600.0, negative_ttl: float = 60.0):
        self.source = source
        self.cache: TTLCache[str, SlurmJob] = TTLCache(ttl, negative_ttl)

    def lookup_jobs(self, jobids: Sequence[str], deadline: float) -> Parsed[List[SlurmJob]]:
        found, missing = self.cache.split(jobids)
        skipped = 0
        if missing:
            looked = self.source.lookup_jobs(missing, deadline)
            skipped = looked.skipped
            answered = {job.jobid: job for job in looked.items}
            for jobid in missing:
                job = answered.get(jobid)
                if job is None:
                    self.cache.put_absent(jobid)
                else:
                    self.cache.put(jobid, job)
                    found[jobid] = job
        return Parsed(list(found.values()), skipped)
