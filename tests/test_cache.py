"""The caches between scrapes: bounded, expiring, and never answering for a miss."""

from __future__ import annotations

import logging
from typing import Dict, List

import pytest

from prometheus_cluster_exporter.cache import Memo, RecentJobs, TTLCache
from prometheus_cluster_exporter.records import Parsed, SlurmJob


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_ttl_cache_keeps_at_most_max_entries_newest_first() -> None:
    cache: TTLCache[int, str] = TTLCache(ttl=60, max_entries=10, clock=Clock())
    for key in range(100):
        cache.put(key, f"v{key}")
    hits, missing = cache.split(range(100))
    assert 0 < len(hits) <= 10
    assert 99 in hits and hits[99] == "v99"  # the newest stays
    assert 0 in missing  # the oldest went
    assert len(hits) + len(missing) == 100


def test_ttl_cache_drops_expired_entries_before_live_ones() -> None:
    clock = Clock()
    cache: TTLCache[int, str] = TTLCache(ttl=10, max_entries=3, clock=clock)
    cache.put(1, "old")
    clock.now += 11  # 1 has expired
    cache.put(2, "a")
    cache.put(3, "b")
    cache.put(4, "c")  # four entries: eviction runs, the expired one is enough to drop
    hits, missing = cache.split([1, 2, 3, 4])
    assert hits == {2: "a", 3: "b", 4: "c"}
    assert missing == [1]


def test_ttl_cache_entries_expire() -> None:
    clock = Clock()
    cache: TTLCache[str, int] = TTLCache(ttl=30, clock=clock)
    cache.put("a", 1)
    clock.now += 29
    assert cache.split(["a"]) == ({"a": 1}, [])
    clock.now += 1
    assert cache.split(["a"]) == ({}, ["a"])


def test_ttl_zero_keeps_nothing() -> None:
    cache: TTLCache[str, int] = TTLCache(ttl=0, clock=Clock())
    cache.put("a", 1)
    assert cache.split(["a"]) == ({}, ["a"])


def test_through_asks_only_for_what_is_missing_and_never_caches_a_miss() -> None:
    cache: TTLCache[int, str] = TTLCache(ttl=60, clock=Clock())
    asked: List[List[int]] = []

    def fetch(keys: List[int]) -> Parsed[Dict[int, str]]:
        asked.append(list(keys))
        return Parsed({k: f"user{k}" for k in keys if k != 3}, skipped=1)

    first = cache.through([1, 2, 3], fetch, limit=100, what="getent passwd (by uid)")
    assert first.items == {1: "user1", 2: "user2"} and first.skipped == 1
    second = cache.through([1, 2, 3, 4], fetch, limit=100, what="getent passwd (by uid)")
    assert second.items == {1: "user1", 2: "user2", 4: "user4"}
    assert asked == [[1, 2, 3], [3, 4]]  # 3 was not found: asked again, not remembered


def test_through_fetches_at_most_limit_keys_in_order() -> None:
    cache: TTLCache[int, str] = TTLCache(ttl=60, clock=Clock())
    asked: List[List[int]] = []

    def fetch(keys: List[int]) -> Parsed[Dict[int, str]]:
        asked.append(list(keys))
        return Parsed({k: str(k) for k in keys})

    result = cache.through([5, 4, 3, 2, 1], fetch, limit=2, what="sacct")
    assert asked == [[5, 4]]
    assert result.items == {5: "5", 4: "4"}


def test_memo_keeps_one_value_for_its_ttl() -> None:
    clock = Clock()
    memo: Memo[str] = Memo(ttl=5, clock=clock)
    assert memo.get() is None
    memo.put("table")
    clock.now += 4.9
    assert memo.get() == "table"
    clock.now += 0.1
    assert memo.get() is None
    off: Memo[str] = Memo(ttl=0, clock=clock)
    off.put("table")
    assert off.get() is None


def test_recent_jobs_remembers_for_the_grace_period_and_the_listing_wins() -> None:
    clock = Clock()
    recent = RecentJobs(grace=90, clock=clock)
    assert set(recent.update([SlurmJob("1", "a", "u"), SlurmJob("2", "a", "u")])) == {"1", "2"}
    clock.now += 60
    jobs = recent.update([SlurmJob("2", "b", "v")])
    assert jobs["1"] == SlurmJob("1", "a", "u")  # gone from squeue, still remembered
    assert jobs["2"] == SlurmJob("2", "b", "v")  # the listing wins over memory
    clock.now += 31
    assert set(recent.update([])) == {"2"}  # 1 was last listed 91 s ago


def test_ttl_cache_never_holds_more_than_max_entries() -> None:
    cache: TTLCache[int, str] = TTLCache(ttl=60, max_entries=10, clock=Clock())
    for key in range(11):
        cache.put(key, f"v{key}")
    hits, _ = cache.split(range(11))
    assert len(hits) <= 10
    assert 10 in hits


def test_ttl_cache_eviction_drops_only_expired_entries_when_that_is_enough() -> None:
    clock = Clock()
    cache: TTLCache[int, str] = TTLCache(ttl=10, max_entries=10, clock=clock)
    cache.put(0, "old")
    clock.now += 10  # 0 expires at this very moment
    for key in range(1, 11):
        cache.put(key, f"v{key}")  # the eleventh entry: eviction runs
    hits, missing = cache.split(range(11))
    assert hits == {key: f"v{key}" for key in range(1, 11)}
    assert missing == [0]


def test_ttl_cache_put_again_makes_an_entry_the_newest() -> None:
    cache: TTLCache[int, str] = TTLCache(ttl=60, max_entries=10, clock=Clock())
    for key in range(10):
        cache.put(key, f"v{key}")
    cache.put(0, "again")  # 0 is now the newest, 1 the oldest
    cache.put(10, "v10")  # past max_entries: the oldest go
    hits, missing = cache.split(range(11))
    assert hits[0] == "again" and hits[10] == "v10"
    assert 1 in missing


def test_ttl_under_a_second_still_keeps_entries() -> None:
    clock = Clock()
    cache: TTLCache[str, int] = TTLCache(ttl=0.5, clock=clock)
    cache.put("a", 1)
    clock.now += 0.4
    assert cache.split(["a"]) == ({"a": 1}, [])
    clock.now += 0.1
    assert cache.split(["a"]) == ({}, ["a"])


def test_through_with_every_key_cached_does_not_fetch() -> None:
    cache: TTLCache[int, str] = TTLCache(ttl=60, clock=Clock())
    asked: List[List[int]] = []

    def fetch(keys: List[int]) -> Parsed[Dict[int, str]]:
        asked.append(list(keys))
        return Parsed({k: str(k) for k in keys})

    cache.through([1, 2], fetch, limit=10, what="sacct")
    again = cache.through([2, 1], fetch, limit=10, what="sacct")
    assert again.items == {1: "1", 2: "2"} and again.skipped == 0
    assert asked == [[1, 2]]


def test_through_warns_only_when_it_leaves_keys_out(caplog: pytest.LogCaptureFixture) -> None:
    def fetch(keys: List[int]) -> Parsed[Dict[int, str]]:
        return Parsed({k: str(k) for k in keys})

    with caplog.at_level(logging.WARNING):
        exact = TTLCache[int, str](ttl=60, clock=Clock())
        assert len(exact.through([1, 2, 3], fetch, limit=3, what="sacct").items) == 3
        assert caplog.records == []
        over = TTLCache[int, str](ttl=60, clock=Clock())
        assert len(over.through([1, 2, 3], fetch, limit=2, what="sacct").items) == 2
    assert [r.getMessage() for r in caplog.records] == [
        "sacct: looking up only 2 of the 3 ids not known yet; the rest stay unattributed "
        "this scrape"
    ]


def test_memo_with_a_ttl_under_a_second_keeps_its_value() -> None:
    clock = Clock()
    memo: Memo[str] = Memo(ttl=0.5, clock=clock)
    memo.put("table")
    clock.now += 0.4
    assert memo.get() == "table"
    clock.now += 0.1
    assert memo.get() is None
