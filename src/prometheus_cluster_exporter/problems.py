"""Warnings about jobids nobody could be named for, bounded in lines and in memory.

Each such id is named at WARNING at most once per ``interval`` (an hour), at most
``per_scrape`` ids per scrape; the rest of a scrape's ids are counted in one summary
line. Long ids are shown cut, with control characters escaped. What is remembered
is a fixed-size digest per id, at most ``max_ids`` of them, so neither huge ids nor
huge numbers of ids can grow the exporter's memory. Sample lines::

    WARNING ... jobid 'kworker/86:1.77' not attributed (unknown_uid): uid 77 is unknown to getent; not repeated for this id within 3600s
    WARNING ... 19980 more jobids not attributed this scrape (unknown_uid: 19980); not named one by one
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter, OrderedDict
from typing import Callable, Iterable, List, Mapping, Optional, Tuple

from prometheus_cluster_exporter import attribution as attr
from prometheus_cluster_exporter.jobid import ProcRef, Ref
from prometheus_cluster_exporter.records import PasswdEntry

log = logging.getLogger("prometheus_cluster_exporter.collector")

PROBLEM_LOG_INTERVAL = 3600.0
#: Ids named one by one in a scrape; the rest go into one summary line.
PER_SCRAPE = 20
#: Ids remembered (16-byte digests) to keep from naming them again within the interval.
MAX_REMEMBERED = 10_000
#: Characters of an id shown in a log line.
SHOWN_CHARS = 64


def shown_id(jobid: str) -> str:
    """The id for a log line: quoted, escaped, and cut after SHOWN_CHARS characters."""
    if len(jobid) <= SHOWN_CHARS:
        return repr(jobid)
    return f"{jobid[:SHOWN_CHARS]!r}... ({len(jobid)} characters)"


def _digest(reason: str, jobid: str) -> bytes:
    data = f"{reason}\0{jobid}".encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=16).digest()


class ProblemLog:
    """Names unattributable ids at WARNING (see the module docstring)."""

    def __init__(
        self,
        interval: float = PROBLEM_LOG_INTERVAL,
        max_ids: int = MAX_REMEMBERED,
        per_scrape: int = PER_SCRAPE,
    ) -> None:
        self.interval = interval
        self.max_ids = max_ids
        self.per_scrape = per_scrape
        self._last: OrderedDict[bytes, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._last)

    def report(
        self,
        problems: Iterable[Tuple[str, str]],
        explain: Callable[[str, str], str],
        now: float,
    ) -> int:
        """Log the (reason, jobid) problems not named within the interval; return how
        many lines were written. ``explain(reason, jobid)`` is asked only for named ids."""
        named = 0
        unnamed: Counter[str] = Counter()
        last = self._last
        for reason, jobid in problems:
            digest = _digest(reason, jobid)
            when = last.get(digest)
            if when is not None and now - when < self.interval:
                continue
            if named >= self.per_scrape:
                unnamed[reason] += 1
                continue
            named += 1
            last[digest] = now
            last.move_to_end(digest)
            log.warning(
                "jobid %s not attributed (%s): %s; not repeated for this id within %ds",
                shown_id(jobid), reason, explain(reason, jobid), int(self.interval),
            )  # fmt: skip
        while len(last) > self.max_ids:
            last.popitem(last=False)
        if unnamed:
            counts = ", ".join(f"{reason}: {count}" for reason, count in sorted(unnamed.items()))
            log.warning(
                "%d more jobids not attributed this scrape (%s); not named one by one",
                sum(unnamed.values()),
                counts,
            )
            named += 1
        return named

    def report_lost(
        self,
        lost: Iterable[Tuple[str, str]],
        refs: Mapping[str, Ref],
        users: Optional[Mapping[int, PasswdEntry]],
    ) -> None:
        """Warn about the (reason, jobid) of a scrape lost to bad input
        (``attr.INPUT_PROBLEMS``); the others (jobs that just ended, say) only at DEBUG."""
        problems: List[Tuple[str, str]] = []
        debug = log.isEnabledFor(logging.DEBUG)
        for reason, jobid in lost:
            if reason in attr.INPUT_PROBLEMS:
                problems.append((reason, jobid))
            elif debug:
                log.debug("jobid %s not attributed: %s", shown_id(jobid), reason)
        self.report(
            problems, lambda reason, jobid: explain(reason, refs[jobid], users), time.monotonic()
        )


def explain(reason: str, ref: Ref, users: Optional[Mapping[int, PasswdEntry]]) -> str:
    """Why an id is lost, in words, for its warning."""
    if reason == attr.UNKNOWN_UID and isinstance(ref, ProcRef):
        return f"uid {ref.uid} is unknown to getent"
    if reason == attr.UNKNOWN_GID and isinstance(ref, ProcRef) and users is not None:
        user = users.get(ref.uid)
        gid = user.gid if user is not None else "?"
        return f"primary gid {gid} of uid {ref.uid} has no group name"
    return "fits none of the jobid formats (see --lustre.jobid-format)"
