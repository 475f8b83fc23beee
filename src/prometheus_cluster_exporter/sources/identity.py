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
from typing import Callable, Dict, Sequence, TypeVar

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


def parse_passwd(output: bytes) -> Parsed[UserTable]:
    """uid -> (name, primary gid). The first entry of a uid wins, as in NSS lookups."""
    users: UserTable = {}
    skipped = 0
    for raw in output.decode("utf-8", "replace").splitlines():
        if not raw.strip():
            continue
        fields = raw.split(":")
        try:
            if len(fields) < 4 or not fields[0]:
                raise ValueError(raw)
            uid, gid = _id(fields[2]), _id(fields[3])
        except ValueError:
            skipped += 1
            log.debug("getent passwd: skipping unexpected line %r", raw[:200])
            continue
        if uid not in users:
            users[uid] = PasswdEntry(fields[0], gid)
    return checked(users, skipped, "getent passwd")


def parse_group(output: bytes) -> Parsed[GroupTable]:
    """gid -> group name. The first entry of a gid wins."""
    groups: GroupTable = {}
    skipped = 0
    for raw in output.decode("utf-8", "replace").splitlines():
        if not raw.strip():
            continue
        fields = raw.split(":")
        try:
            if len(fields) < 3 or not fields[0]:
                raise ValueError(raw)
            gid = _id(fields[2])
        except ValueError:
            skipped += 1
            log.debug("getent group: skipping unexpected line %r", raw[:200])
            continue
        groups.setdefault(gid, fields[0])
    return checked(groups, skipped, "getent group")


class GetentSource:
    """Enumerates (and looks up by key) the passwd and group databases with getent."""

    def __init__(self, getent: str = "getent") -> None:
        self.getent = getent

    def users(self, deadline: float) -> Parsed[UserTable]:
        return parse_passwd(run_command([self.getent, "passwd"], deadline, name="getent passwd"))

    def groups(self, deadline: float) -> Parsed[GroupTable]:
        return parse_group(run_command([self.getent, "group"], deadline, name="getent group"))

    def lookup_users(self, uids: Sequence[int], deadline: float) -> Parsed[UserTable]:
        out = run_command(
            [self.getent, "passwd", *map(str, uids)],
            deadline,
            name="getent passwd (by uid)",
            ok_status=(0, _KEYS_NOT_FOUND),
        )
        return parse_passwd(out)

    def lookup_groups(self, gids: Sequence[int], deadline: float) -> Parsed[GroupTable]:
        out = run_command(
            [self.getent, "group", *map(str, gids)],
            deadline,
            name="getent group (by gid)",
            ok_status=(0, _KEYS_NOT_FOUND),
        )
        return parse_group(out)


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
