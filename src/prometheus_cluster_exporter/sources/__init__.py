"""Sources: each wraps one external system and returns plain records (see ``records``).

Every source method takes an absolute ``deadline`` (``time.monotonic()`` value) and
must return or raise :class:`~prometheus_cluster_exporter.errors.SourceError` by then.
"""

from __future__ import annotations

from typing import List, Optional, Protocol, Sequence

from prometheus_cluster_exporter.records import (
    GroupTable,
    JobidRate,
    Parsed,
    SlurmJob,
    TargetRate,
    UserTable,
)


class LustreSource(Protocol):
    """Per-jobid Lustre rates, as computed by a Prometheus-compatible server.

    ``at`` is the evaluation time (Unix seconds) shared by the three answers of a scrape,
    so that read, write and metadata describe the same instant; None means "now".
    """

    def read_rates(
        self, deadline: float, at: Optional[float] = None
    ) -> Parsed[List[JobidRate]]: ...

    def write_rates(
        self, deadline: float, at: Optional[float] = None
    ) -> Parsed[List[JobidRate]]: ...

    def metadata_rates(
        self, deadline: float, at: Optional[float] = None
    ) -> Parsed[List[TargetRate]]: ...


class JobSource(Protocol):
    """Slurm jobs that may be doing IO right now."""

    def jobs(self, deadline: float) -> Parsed[List[SlurmJob]]: ...


class JobLookup(Protocol):
    """Jobs by id, including finished ones (sacct)."""

    def lookup_jobs(self, jobids: Sequence[str], deadline: float) -> Parsed[List[SlurmJob]]: ...


class IdentitySource(Protocol):
    """uid -> (user name, primary gid) and gid -> group name.

    ``users``/``groups`` enumerate the databases; ``lookup_users``/``lookup_groups``
    resolve ids the enumeration did not list (directory services often do not enumerate).
    """

    def users(self, deadline: float) -> Parsed[UserTable]: ...

    def groups(self, deadline: float) -> Parsed[GroupTable]: ...

    def lookup_users(self, uids: Sequence[int], deadline: float) -> Parsed[UserTable]: ...

    def lookup_groups(self, gids: Sequence[int], deadline: float) -> Parsed[GroupTable]: ...
