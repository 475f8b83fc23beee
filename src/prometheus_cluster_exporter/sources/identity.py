"""Users and groups from ``getent``.

``getent passwd`` lines are ``name:password:uid:gid:gecos:home:shell`` and
``getent group`` lines are ``name:password:gid:members``::

    alice:x:1001:2001:Alice:/home/alice:/bin/bash
    hpc-physics:x:2001:alice,bob

Running getent as a child process (not the in-process NSS calls) means a lookup hung in
SSSD or LDAP can be killed when the scrape deadline passes.

Where SSSD runs with ``enumerate = false`` (its default) a bare ``getent passwd`` lists
only local users; uids and gids missing from the enumeration are therefore looked up by
key (``getent passwd 1001 1002 ...``), a few thousand per call.
"""

from __future__ import annotations

import logging
from typing import Callable, Dict, List, Optional, Sequence, Tuple, TypeVar

from prometheus_cluster_exporter.cache import Memo, TTLCache
from prometheus_cluster_exporter.records import (
    GroupTable,
    IdentitySource,
    Parsed,
    PasswdEntry,
    UserTable,
    checked,
)
from prometheus_cluster_exporter.sources.command import DEFAULT_MAX_OUTPUT, batches, run_command
from prometheus_cluster_exporter.sources.lines import parse_lines

log = logging.getLogger(__name__)

V = TypeVar("V")

# getent exits 2 when one or more keys were not found; what it found is still printed.
_KEYS_NOT_FOUND = 2
# Keys per keyed getent call, and their length with separators, at most: well within
# the smallest limit the kernel puts on an argument list (128 KiB).
MAX_KEYS_PER_CALL = 4096
MAX_KEYS_BYTES = 64 * 1024
# uids (and gids) looked up by key per scrape at most.
MAX_ID_LOOKUPS = 20_000
# uids and gids are 32-bit: a longer digit string is garbage, not an id.
MAX_ID_DIGITS = 20


def _id(text: str) -> int:
    if len(text) > MAX_ID_DIGITS or not text.isdigit() or not text.isascii():
        raise ValueError(text[:40])
    return int(text)


def _parse_entries(
    output: bytes, what: str, min_fields: int, entry: Callable[[List[str]], Tuple[int, V]]
) -> Parsed[Dict[int, V]]:
    """Colon-separated database lines -> id -> value. The first entry of an id wins, as
    in NSS lookups; lines that do not fit are skipped and counted."""

    def fitting(fields: List[str]) -> Optional[Tuple[int, V]]:
        return entry(fields) if len(fields) >= min_fields and fields[0] else None

    pairs, skipped = parse_lines(output, what, ":", fitting)
    table: Dict[int, V] = {}
    for key, value in pairs:
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
    """Enumerates (and looks up by key) the passwd and group databases with getent.

    Keys go in at most ``MAX_KEYS_PER_CALL`` per call (the whole argument list must stay
    within the kernel's limit), one call after the other within the same deadline. A
    call that fails fails the whole lookup.
    """

    def __init__(self, getent: str = "getent", max_output: int = DEFAULT_MAX_OUTPUT) -> None:
        self.getent = getent
        self.max_output = max_output

    def users(self, deadline: float) -> Parsed[UserTable]:
        return parse_passwd(self._run([self.getent, "passwd"], deadline, "getent passwd"))

    def groups(self, deadline: float) -> Parsed[GroupTable]:
        return parse_group(self._run([self.getent, "group"], deadline, "getent group"))

    def lookup_users(self, uids: Sequence[int], deadline: float) -> Parsed[UserTable]:
        return self._keyed("passwd", uids, "uid", parse_passwd, deadline)

    def lookup_groups(self, gids: Sequence[int], deadline: float) -> Parsed[GroupTable]:
        return self._keyed("group", gids, "gid", parse_group, deadline)

    def _run(self, argv: List[str], deadline: float, name: str, ok: Sequence[int] = (0,)) -> bytes:
        return run_command(argv, deadline, name=name, ok_status=ok, max_output=self.max_output)

    def _keyed(
        self,
        database: str,
        keys: Sequence[int],
        kind: str,
        parse: Callable[[bytes], Parsed[Dict[int, V]]],
        deadline: float,
    ) -> Parsed[Dict[int, V]]:
        """``getent DATABASE KEY...``: the entries found (status 2 = some keys missing)."""
        table: Dict[int, V] = {}
        skipped = 0
        for batch in batches([str(k) for k in keys], MAX_KEYS_PER_CALL, MAX_KEYS_BYTES):
            out = self._run([self.getent, database, *batch], deadline,
                            f"getent {database} (by {kind})", (0, _KEYS_NOT_FOUND))  # fmt: skip
            parsed = parse(out)
            for key, value in parsed.items.items():
                table.setdefault(key, value)
            skipped += parsed.skipped
        return Parsed(table, skipped)


class CachedIdentities:
    """An IdentitySource that keeps the enumeration for ``ttl`` seconds and the answers
    of keyed lookups as long. An id a keyed lookup did not find is asked again on the
    next scrape (a user just added to the directory is named at once); at most
    ``max_lookups`` ids are asked per scrape."""

    def __init__(
        self, source: IdentitySource, ttl: float, max_lookups: int = MAX_ID_LOOKUPS
    ) -> None:
        self.source = source
        self.max_lookups = max_lookups
        self._users: Memo[Parsed[UserTable]] = Memo(ttl)
        self._groups: Memo[Parsed[GroupTable]] = Memo(ttl)
        self._uid_cache: TTLCache[int, PasswdEntry] = TTLCache(ttl)
        self._gid_cache: TTLCache[int, str] = TTLCache(ttl)

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
        return self._uid_cache.through(
            uids, lambda keys: self.source.lookup_users(keys, deadline), self.max_lookups,
            "getent passwd (by uid)",
        )  # fmt: skip

    def lookup_groups(self, gids: Sequence[int], deadline: float) -> Parsed[GroupTable]:
        return self._gid_cache.through(
            gids, lambda keys: self.source.lookup_groups(keys, deadline), self.max_lookups,
            "getent group (by gid)",
        )  # fmt: skip
