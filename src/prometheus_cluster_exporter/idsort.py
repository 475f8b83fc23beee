"""Which jobids of a scrape need the jobid grammar, and which are plain job numbers.

Where the first jobid format is ``%j`` (the default), an id of ASCII digits is a Slurm
job id. Such an id that squeue lists needs no parsing at all (its job is known), and one
that nobody lists is an unknown job: only the other ids (process ids, odd ids) are
parsed, once per distinct id. The sorting is done by C loops (``filter``, ``map``), so
a million plain numbers cost no Python call each::

    >>> split_ids(["7", "8", "cp.1001", "007"], {"7": "job"})
    (['8'], ['cp.1001', '007'])

Pure functions; imports only ``jobid`` and ``records``.
"""

from __future__ import annotations

from itertools import filterfalse
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from prometheus_cluster_exporter.jobid import JOBID_MAX_BYTES, JobidGrammar, Ref
from prometheus_cluster_exporter.records import SlurmJob


def classify(jobids: Iterable[str], grammar: JobidGrammar) -> Dict[str, Ref]:
    """Parse every distinct jobid once."""
    parse = grammar.parse
    return {jobid: parse(jobid) for jobid in set(jobids)}


class ParseCache:
    """``classify`` with a memory: an id parsed in an earlier scrape is not parsed again
    (processes and jobs keep their ids for minutes or hours). At most ``max_entries``
    are kept; past that the memory starts afresh."""

    def __init__(self, grammar: JobidGrammar, max_entries: int = 1 << 18) -> None:
        self.grammar = grammar
        self.max_entries = max_entries
        self._memo: Dict[str, Ref] = {}

    def classify(self, jobids: Iterable[str]) -> Dict[str, Ref]:
        memo = self._memo
        wanted = set(jobids)
        new = [jobid for jobid in wanted if jobid not in memo]
        if len(memo) + len(new) > self.max_entries:
            memo.clear()
            new = list(wanted)
        memo.update(classify(new, self.grammar))
        return {jobid: memo[jobid] for jobid in wanted}


def canonical(jobid: str) -> bool:
    """A job id as squeue writes it (ASCII digits, no leading zero) and short enough that
    Lustre cannot have cut it."""
    return (
        jobid.isdigit()
        and jobid.isascii()
        and len(jobid) < JOBID_MAX_BYTES
        and (jobid[0] != "0" or jobid == "0")
    )


def listed_jobs(jobs: Mapping[str, SlurmJob]) -> Dict[str, SlurmJob]:
    """The jobs whose ids are canonical numbers (all of them, from squeue and sacct)."""
    return {jobid: job for jobid, job in jobs.items() if canonical(jobid)}


def split_ids(
    ids: Iterable[str], known: Mapping[str, object], numbers_wanted: bool = True
) -> Tuple[List[str], List[str]]:
    """(canonical numbers not in ``known``, ids to parse): the ids of a column that no
    job listing explains, for grammars whose first format is ``%j``. ``known`` holds
    canonical numbers only (``listed_jobs``); the numbers are only listed when
    ``numbers_wanted``."""
    ids = ids if isinstance(ids, list) else list(ids)
    others = list(filterfalse(str.isdigit, ids))  # never in ``known``
    if len(others) == len(ids):
        return [], others
    # Odd numbers (non-ASCII digits, a leading zero, cut by Lustre) are rare: one look
    # at all the ids at once tells whether there is any.
    joined = "\x00".join(ids)
    odd = not (
        joined.isascii()
        and not joined.startswith("0")
        and joined.find("\x000") < 0
        and max(map(len, ids)) < JOBID_MAX_BYTES
    )
    if not (odd or numbers_wanted):
        return [], others
    numbers = list(filterfalse(known.__contains__, filter(str.isdigit, ids)))
    if odd:
        others.extend(n for n in numbers if not canonical(n))
        numbers = [n for n in numbers if canonical(n)]
    return (numbers if numbers_wanted else []), others


def ids_to_parse(
    ids: Sequence[str],
    known: Mapping[str, object],
    grammar: JobidGrammar,
    into: Set[str],
    numbers: Optional[Set[str]] = None,
) -> None:
    """Add the ids of a column that need the grammar to ``into``, and its unknown plain
    numbers to ``numbers`` (if given: only sacct needs them)."""
    if not grammar.numbers_are_jobs:
        into.update(ids)
        return
    found, others = split_ids(ids, known, numbers is not None)
    into.update(others)
    if numbers is not None:
        numbers.update(found)
