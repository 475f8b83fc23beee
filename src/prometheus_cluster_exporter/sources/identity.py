"""Users and groups from ``getent``.

``getent passwd`` lines are ``name:password:uid:gid:gecos:home:shell`` and
``getent group`` lines are ``name:password:gid:members``::

    alice:x:1001:2001:Alice:/home/alice:/bin/bash
    hpc-physics:x:2001:alice,bob

Running getent as a child process (not the in-process NSS calls) means a lookup hung in
SSSD or LDAP can be killed when the scrape deadline passes.

Where SSSD runs with ``enumerate = false`` (its default) a bare ``getent passwd`` lists
only local users; uids and gids missing from the enumeration are therefore looked up by
key (``getent passwd 1001 1002 ...``), one call per scrape for all of them.
"""

from __future__ import annotations

import logging
from typing import Callable, Dict, List, Sequence, Tuple, TypeVar

from prometheus_cluster_exporter.cache import Memo, TTLCache
from prometheus_cluster_exporter.records import (
    GroupTable,
    Parsed,
    PasswdEntry,
    UserTable,
    checked,
)
from prometheus_cluster_exporter.sources import IdentitySource
from prometheus_cluster_exporter.sources.command import run_command

log = logging.getLogger(__name__)

V = TypeVar("V")

# getent exits 2 when one or more keys were not found; what it found is still printed.
_KEYS_NOT_FOUND = 2


def _id(text: str) -> int:
    if not text.isdigit() or not text.isascii():
        raise ValueError(text)
    return int(text)


def _parse_entries(
    output: bytes, what: str, min_fields: int, entry: Callable[[List[str]], Tuple[int, V]]
) -> Parsed[Dict[int, V]]:
    """Colon-separated database lines -> id -> value. The first entry of an id wins, as
    in NSS lookups; lines that do not fit are skipped and counted."""
    table: Dict[int, V] = {}
    skipped = 0
    for raw in output.decode("utf-8", "replace").splitlines():
        if not raw.strip():
            continue
        fields = raw.split(":")
        try:
            if len(fields) < min_fields or not fields[0]:
                raise ValueError(raw)
            key, value = entry(fields)
        except ValueError:
            skipped += 1
            log.debug("%s: skipping unexpected line %r", what, raw[:200])
            continue
        table.setdefault(key, value)
    return checked(table, skipped, what)


def parse_passwd(output: bytes) -> Parsed[UserTable]:
    """uid -> (name, primary gid), from ``name:password:uid:gid:...`` lines."""
    return _parse_entries(
        output, "getent passwd", 4, lambda f: (_id(f[2]), PasswdEntry(f[0], _id(f[3])))
    )


def parse_group(output: bytes) -> Parsed[GroupTable]:
    """gid -> group name, from ``name:password:gid:members`` lines."""
    return _parse_entries(output, "getent group", 3, lambda f: (_id(f[2]), f[0]))


class GetentSource:
    """Enumerates (and looks up by key) the passwd and group databases with getent."""

    def __init__(self, getent: str = "getent") -> None:
        self.getent = getent

    def users(self, deadline: float) -> Parsed[UserTable]:
        return parse_passwd(run_command([self.getent, "passwd"], deadline, name="getent passwd"))

    def groups(self, deadline: float) -> Parsed[GroupTable]:
        return parse_group(run_command([self.getent, "group"], deadline, name="getent group"))

    def lookup_users(self, uids: Sequence[int], deadline: float) -> Parsed[UserTable]:
        return parse_passwd(self._keyed("passwd", uids, "uid", deadline))

    def lookup_groups(self, gids: Sequence[int], deadline: float) -> Parsed[GroupTable]:
        return parse_group(self._keyed("group", gids, "gid", deadline))

    def _keyed(self, database: str, keys: Sequence[int], kind: str, deadline: float) -> bytes:
        """``getent DATABASE KEY...``: the entries found (status 2 = some keys missing)."""
        return run_command(
            [self.getent, database, *map(str, keys)],
            deadline,
            name=f"getent {database} (by {kind})",
            ok_status=(0, _KEYS_NOT_FOUND),
        )


class CachedIdentities:
    """An IdentitySource that keeps the enumeration for ``ttl`` seconds and remembers
    keyed lookups: found entries for ``ttl``, absent ones for ``negative_ttl``."""

    def __init__(self, source: IdentitySource, ttl: float, negative_ttl: float = 60.0) -> None:
        self.source = source
        self._users: Memo[Parsed[UserTable]] = Memo(ttl)
        self._groups: Memo[Parsed[GroupTable]] = Memo(ttl)
        self._uid_cache: TTLCache[int, PasswdEntry] = TTLCache(ttl, negative_ttl)
        self._gid_cache: TTLCache[int, str] = TTLCache(ttl, negative_ttl)

    def users(self, deadline: float) -> Parsed[UserTable]:
        cached = self._users.get()
        if cached is None:
            cached = self.source.users(deadline)
            self._users.put(cached)
        return cached

    def groups(self, deadline: float) -> Parsed[GroupTable]:
        cached = self._groups.get()
        if cached is None:
            cached = self.source.groups(deadline)
            self._groups.put(cached)
        return cached

    def lookup_users(self, uids: Sequence[int], deadline: float) -> Parsed[UserTable]:
        return _through_cache(self._uid_cache, uids, self.source.lookup_users, deadline)

    def lookup_groups(self, gids: Sequence[int], deadline: float) -> Parsed[GroupTable]:
        return _through_cache(self._gid_cache, gids, self.source.lookup_groups, deadline)


def _through_cache(
    cache: TTLCache[int, V],
    keys: Sequence[int],
    fetch: Callable[[Sequence[int], float], Parsed[Dict[int, V]]],
    deadline: float,
) -> Parsed[Dict[int, V]]:
    """Answer from the cache; look up the rest in one call and remember the answers."""
    found, missing = cache.split(keys)
    if not missing:
        return Parsed(found)
    looked = fetch(missing, deadline)
    for key in missing:
        value = looked.items.get(key)
        if value is None:
            cache.put_absent(key)
        else:
            cache.put(key, value)
            found[key] = value
    return Parsed(found, looked.skipped)
