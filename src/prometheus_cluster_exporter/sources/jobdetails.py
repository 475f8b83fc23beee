"""Partition and job name of the top jobs, asked apart from the job listing.

Job names are chosen by users and Slurm takes almost any character in them, a newline
included. In a line-oriented listing such a name could forge a line of its own, so they
never share an output with the accounts and users attribution relies on: the listing is
``squeue -a -h -o "%A %a %u"`` (no user text), and only once the top jobs are known
their details are asked, for those few ids::

    squeue -a -h -j 4242,4250 -o "%A|%P|%j"
    4242|batch|relax the lattice
    4250|gpu|md

and, with ``--slurm.sacct``, for the ids squeue no longer lists::

    sacct -X -n -P -a -j 4999 -o JobIDRaw,Partition,JobName
    4999|debug|late

A line counts only for an id that was asked, and only if it is the id's one line: an id
answered twice (a name forging a line) gets no details. Lines are split on ``\\n`` only.
Answers, and ids nobody named, are remembered for ``ttl`` seconds (names seldom change). Imports ``records``,
``cache`` and the command runner only.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Set, Tuple

from prometheus_cluster_exporter.cache import TTLCache
from prometheus_cluster_exporter.records import Parsed
from prometheus_cluster_exporter.sources.command import DEFAULT_MAX_OUTPUT, run_command

#: Names and partitions are kept (and exported) up to this many characters.
MAX_NAME_CHARS = 128
#: (partition, job name).
Details = Tuple[str, str]
#: How long an answer is remembered.
DETAILS_SECONDS = 300.0
#: Ids asked per scrape at most (--metrics.top-jobs is at most 1000).
MAX_ASKED = 1000


def parse_details(output: bytes, asked: Set[str]) -> Dict[str, Details]:
    """jobid -> (partition, name) from ``id|partition|name`` lines, for asked ids
    answered exactly once."""
    found: Dict[str, Details] = {}
    twice: Set[str] = set()
    for raw in output.decode("utf-8", "replace").split("\n"):
        fields = raw.split("|", 2)
        if len(fields) != 3 or fields[0] not in asked:
            continue
        jobid = fields[0]
        if jobid in found:
            twice.add(jobid)
        name = fields[2][:-1] if fields[2].endswith("\r") else fields[2]
        found[jobid] = (fields[1][:MAX_NAME_CHARS], name.strip()[:MAX_NAME_CHARS])
    for jobid in twice:
        del found[jobid]
    return found


class SlurmJobDetails:
    """Asks squeue (then sacct, if given) for the partition and name of a few jobs."""

    def __init__(
        self,
        squeue: str = "squeue",
        sacct: Optional[str] = None,
        max_output: int = DEFAULT_MAX_OUTPUT,
        ttl: float = DETAILS_SECONDS,
    ) -> None:
        self.squeue = squeue
        self.sacct = sacct
        self.max_output = max_output
        self.cache: TTLCache[str, Details] = TTLCache(ttl)

    def details(self, jobids: Sequence[str], deadline: float) -> Parsed[Dict[str, Details]]:
        return self.cache.through(jobids, lambda m: self._fetch(m, deadline), MAX_ASKED, "details")

    def _fetch(self, jobids: List[str], deadline: float) -> Parsed[Dict[str, Details]]:
        asked = set(jobids)
        argv = [self.squeue, "-a", "-h", "-j", ",".join(jobids), "-o", "%A|%P|%j"]
        # squeue exits 1 when an id is no longer known to it; the others are answered.
        out = run_command(argv, deadline, name="squeue (top jobs)", ok_status=(0, 1),
                          max_output=self.max_output)  # fmt: skip
        found = parse_details(out, asked)
        missing = [j for j in jobids if j not in found]
        if missing and self.sacct is not None:
            argv = [self.sacct, "-X", "-n", "-P", "-a", "-j", ",".join(missing),
                    "-o", "JobIDRaw,Partition,JobName"]  # fmt: skip
            out = run_command(argv, deadline, name="sacct (top jobs)", max_output=self.max_output)
            found.update(parse_details(out, set(missing)))
        # An id neither names is remembered as unnamed too: not asked every scrape.
        found.update((jobid, ("", "")) for jobid in jobids if jobid not in found)
        return Parsed(found)
