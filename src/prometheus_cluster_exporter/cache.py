"""Small in-memory caches with expiry, for lookups that are safe to repeat less often.

They hold state between scrapes but do no I/O themselves (``TTLCache.through`` calls
the lookup it is given); the clock is injectable for tests.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Dict, Generic, Hashable, Iterable, List, Optional, Tuple, TypeVar

from prometheus_cluster_exporter.records import Parsed

log = logging.getLogger(__name__)

#: How long a finished job's owner is remembered once sacct named it (it never changes).
FINISHED_JOB_SECONDS = 3600.0

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    """Answers of a keyed lookup, each kept ``ttl`` seconds.

    Only answers are kept: a key the lookup did not find is asked again the next time,
    so an id that appears later (a user added to the directory, a job that accounting
    records only after a delay) is resolved as soon as it exists. At most ``max_entries`` are
    kept; past that the oldest entries are dropped.
    """

    def __init__(
        self,
        ttl: float,
        max_entries: int = 200_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._entries: Dict[K, Tuple[float, V]] = {}

    def split(self, keys: Iterable[K]) -> Tuple[Dict[K, V], List[K]]:
        """(cached answers, keys to look up), in the order of ``keys``."""
        now = self.clock()
        hits: Dict[K, V] = {}
        missing: List[K] = []
        for key in keys:
            entry = self._entries.get(key)
            if entry is None or entry[0] <= now:
                missing.append(key)
            else:
                hits[key] = entry[1]
        return hits, missing

    def put(self, key: K, value: V) -> None:
        if self.ttl <= 0:
            return
        self._entries.pop(key, None)
        self._entries[key] = (self.clock() + self.ttl, value)
        if len(self._entries) > self.max_entries:
            self._evict()

    def through(
        self,
        keys: Iterable[K],
        fetch: Callable[[List[K]], Parsed[Dict[K, V]]],
        limit: int,
        what: str,
    ) -> Parsed[Dict[K, V]]:
        """Answers for ``keys``: from the cache, the others with one call of ``fetch``.

        At most ``limit`` keys are fetched, the first ones in the order of ``keys``;
        the rest get no answer this time (and a WARNING says so).
        """
        found, missing = self.split(keys)
        if len(missing) > limit:
            log.warning(
                "%s: looking up only %d of the %d ids not known yet; the rest stay "
                "unattributed this scrape",
                what,
                limit,
                len(missing),
            )
            missing = missing[:limit]
        if not missing:
            return Parsed(found, fetched=False)
        looked = fetch(missing)
        for key in missing:
            value = looked.items.get(key)
            if value is not None:
                self.put(key, value)
                found[key] = value
        return Parsed(found, looked.skipped)

    def _evict(self) -> None:
        now = self.clock()
        live = {k: e for k, e in self._entries.items() if e[0] > now}
        # Dicts keep insertion order: the first entries are the oldest.
        excess = len(live) - self.max_entries
        if excess > 0:
            for key in list(live)[: excess + self.max_entries // 10]:
                del live[key]
        self._entries = live


class Memo(Generic[V]):
    """One value kept for ``ttl`` seconds (e.g. a whole passwd enumeration)."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._value: Optional[V] = None
        self._expires = 0.0

    def get(self) -> Optional[V]:
        if self._value is not None and self.clock() < self._expires:
            return self._value
        return None

    def put(self, value: V) -> None:
        if self.ttl > 0:
            self._value = value
            self._expires = self.clock() + self.ttl


class RecentJobs:
    """Jobs seen in squeue, remembered for ``grace`` seconds after they were last listed.

    A job that ended a moment ago still has IO in the rate window; remembering it keeps
    that tail IO with its account and user instead of losing it.
    """

    def __init__(self, grace: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.grace = grace
        self.clock = clock
        self._seen: Dict[str, Tuple[float, object]] = {}

    def update(self, jobs: Iterable[V]) -> Dict[str, V]:
        """Record this listing; return jobid -> job for listed and remembered jobs.

        ``jobs`` are records with a ``jobid`` attribute; the listing wins over memory.
        """
        now = self.clock()
        seen = self._seen
        for job in jobs:
            seen[job.jobid] = (now, job)  # type: ignore[attr-defined]
        horizon = now - self.grace
        stale = [jobid for jobid, (when, _) in seen.items() if when < horizon]
        for jobid in stale:
            del seen[jobid]
        return {jobid: job for jobid, (_, job) in seen.items()}  # type: ignore[misc]
