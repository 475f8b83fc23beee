"""Plain typed records that flow from the sources into attribution.

Sources return these and nothing else; attribution never sees JSON, text lines or
subprocess handles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Generic, NamedTuple, TypeVar

from prometheus_cluster_exporter.errors import SourceError

T = TypeVar("T")


class JobidRate(NamedTuple):
    """One answer row of a throughput query: ``sum by(jobid)(rate(...))``.

    ``fs`` is the filesystem name when the query also groups by filesystem, else "".
    """

    jobid: str
    value: float
    fs: str = ""


class TargetRate(NamedTuple):
    """One answer row of the metadata query: ``sum by(target, jobid)(rate(...))``."""

    jobid: str
    value: float
    target: str


class SlurmJob(NamedTuple):
    """A job as listed by squeue (``%A %a %u``)."""

    jobid: str
    account: str
    user: str


class PasswdEntry(NamedTuple):
    """The two fields of a passwd entry the exporter needs, keyed by uid elsewhere."""

    name: str
    gid: int


UserTable = Dict[int, PasswdEntry]
GroupTable = Dict[int, str]


@dataclass(frozen=True)
class Parsed(Generic[T]):
    """What a parser produced plus a count of the entries it had to skip.

    Every skipped entry is logged at DEBUG by the parser; the collector turns the
    counts into one WARNING per scrape.
    """

    items: T
    skipped: int = 0


def checked(items: T, skipped: int, what: str) -> Parsed[T]:
    """A parse result, or SourceError when every entry was malformed.

    Some bad lines are skipped; output in which no line at all has the expected form
    means the source itself is broken (another version, another format, a wrapper
    printing an error), and that is reported as the source failing.
    """
    if skipped and not items:
        raise SourceError(f"{what}: none of the {skipped} entries has the expected form")
    return Parsed(items, skipped)
