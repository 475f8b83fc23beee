"""Small in-memory caches with expiry, for lookups that are safe to repeat less often.

They hold state between scrapes but do no I/O; the clock is injectable for tests.
"""

from __future__ import annotations

import time
from typing import Callable, Dict, Generic, Hashable, Iterable, List, Optional, Tuple, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_MISSING = object()


class TTLCache(Generic[K, V]):
    """Positive entries live ``ttl`` seconds, negative ones (known absent) ``negative_ttl``.

    At most ``max_entries`` are kept; past that the oldest entries are dropped.
    """

    def __init__(
        self,
        ttl: float,
        negative_ttl: float,
        max_entries: int = 200_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.max_entries = max_entries
        self.clock = clock
        self._entries: Dict[K, Tuple[float, object]] = {}

    def split(self, keys: Iterable[K]) -> Tuple[Dict[K, V], List[K]]:
        """(cached hits, keys to look up). Keys cached as absent are in neither."""
        now = self.clock()
        hits: Dict[K, V] = {}
        missing: List[K] = []
        for key in keys:
            entry = self._entries.get(key)
            if entry is None or entry[0] <= now:
                missing.append(key)
            elif entry[1] is not _MISSING:
                hits[key] = entry[1]  # type: ignore[assignment]
        return hits, missing

    def put(self, key: K, value: V) -> None:
        self._store(key, value, self.ttl)

    def put_absent(self, key: K) -> None:
        self._store(key, _MISSING, self.negative_ttl)

    def _store(self, key: K, value: object, ttl: float) -> None:
        if ttl <= 0:
            return
        self._entries.pop(key, None)
        self._entries[key] = (self.clock() + ttl, value)
        if len(self._entries) > self.max_entries:
            self._evict()

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
