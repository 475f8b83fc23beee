"""Users and groups from ``getent``.

``getent passwd`` lines are ``name:password:uid:gid:gecos:home:shell`` and
``getent group`` lines are ``name:password:gid:members``::

    alice:x:1001:2001:Alice:/home/alice:/bin/bash
    hpc-physics:x:2001:alice,bob

Running getent as a child process (not the in-process NSS calls) means a lookup hung in
SSSD or LDAP can be killed when the scrape deadline passes.
"""

from __future__ import annotations

import logging

from prometheus_cluster_exporter.records import GroupTable, Parsed, PasswdEntry, UserTable
from prometheus_cluster_exporter.sources.command import run_command

log = logging.getLogger(__name__)


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
    return Parsed(users, skipped)


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
    return Parsed(groups, skipped)


class GetentSource:
    """Enumerates the passwd and group databases with getent on every scrape."""

    def __init__(self, getent: str = "getent") -> None:
        self.getent = getent

    def users(self, deadline: float) -> Parsed[UserTable]:
        return parse_passwd(run_command([self.getent, "passwd"], deadline, name="getent passwd"))

    def groups(self, deadline: float) -> Parsed[GroupTable]:
        return parse_group(run_command([self.getent, "group"], deadline, name="getent group"))
