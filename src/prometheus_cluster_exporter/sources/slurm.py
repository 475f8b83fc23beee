"""Slurm jobs from ``squeue``.

``squeue -a -h -o "%A %a %u"`` prints one line per job: the job id (unique per array
element and per het-job component), the account (``(null)`` when none) and the user::

    4242 physics alice
    4243 (null) bob
"""

from __future__ import annotations

import logging
from typing import List, Sequence

from prometheus_cluster_exporter.records import Parsed, SlurmJob
from prometheus_cluster_exporter.sources.command import run_command

log = logging.getLogger(__name__)

SQUEUE_FORMAT = "%A %a %u"


def parse_squeue(output: bytes) -> Parsed[List[SlurmJob]]:
    """Parse ``squeue -h -o "%A %a %u"`` output; skip (and log) lines that do not fit."""
    jobs: List[SlurmJob] = []
    skipped = 0
    for raw in output.decode("utf-8", "replace").splitlines():
        fields = raw.split()
        if not fields:
            continue
        if len(fields) != 3 or not fields[0].isdigit() or not fields[0].isascii():
            skipped += 1
            log.debug("squeue: skipping unexpected line %r", raw[:200])
            continue
        jobs.append(SlurmJob(str(int(fields[0])), fields[1], fields[2]))
    return Parsed(jobs, skipped)


class SqueueSource:
    """Runs squeue as a child process on every scrape."""

    def __init__(self, squeue: str = "squeue", extra_args: Sequence[str] = ()) -> None:
        self.argv = [squeue, "-a", "-h", "-o", SQUEUE_FORMAT, *extra_args]

    def jobs(self, deadline: float) -> Parsed[List[SlurmJob]]:
        return parse_squeue(run_command(self.argv, deadline, name="squeue"))
