"""The contract between the rooms: typed records and the interfaces of the sources.

Sources return these records and nothing else; attribution never sees JSON, text lines
or subprocess handles, and the collector knows a source only by the protocols below.
This module imports nothing of the exporter's but ``errors``: every other room may
import it.

Every source method takes an absolute ``deadline`` (``time.monotonic()`` value) and
must return or raise :class:`~prometheus_cluster_exporter.errors.SourceError` by then.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import chain
from typing import (
    Any,
    Callable,
    Dict,
    Generic,
    Iterable,
    Iterator,
    List,
    NamedTuple,
    Optional,
    Protocol,
    Sequence,
    Tuple,
    TypeVar,
    Union,
)

from prometheus_cluster_exporter.errors import SourceError

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
R = TypeVar("R")


#: A Lustre target name is ``<fsname>-<OST|MDT|MGT><4 hex digits>``.
FS_OF_TARGET = "(.+)-[A-Za-z]{3}[0-9a-fA-F]{4}"
_FS_OF_TARGET = re.compile(FS_OF_TARGET)


def fs_of_target(target: str) -> str:
    """``scratch-MDT0000`` -> ``scratch``; a target of another form is its own name."""
    match = _FS_OF_TARGET.fullmatch(target)
    return match.group(1) if match else target


class JobidRate(NamedTuple):
    """One answer row of a throughput query: ``sum by(jobid)(rate(...))``.

    ``fs`` is the filesystem the rate was measured on, "" when the source was not asked
    to tell filesystems apart (``--metrics.fs-label`` off).
    """

    jobid: str
    value: float
    fs: str


class TargetRate(NamedTuple):
    """One answer row of the metadata query: ``sum by(target, jobid)(rate(...))``.

    ``fs`` is the filesystem of the target (``fs_of_target``), set by the source;
    ``operation`` the metadata operation (open, close, ...) with
    ``--metrics.metadata-by-operation``, "" otherwise.
    """

    jobid: str
    value: float
    target: str
    fs: str
    operation: str = ""


class Packed(Sequence[str]):
    """Strings (jobids) kept as a few long strings with NUL between them: a million ids
    are a few objects, not a million. Iterating splits them afresh; none may hold NUL.
    """

    def __init__(self) -> None:
        self._texts: List[str] = []
        self._count = 0

    def extend(self, strings: List[str]) -> None:
        if strings:
            self._texts.append("\x00".join(strings))
            self._count += len(strings)

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[str]:
        return chain.from_iterable(text.split("\x00") for text in self._texts)

    def __getitem__(self, index: Any) -> Any:
        return list(self)[index]


class RateColumn(NamedTuple):
    """Samples of one query answer that share the labels after the owner's, in columns.

    ``extra`` are those labels' values (``()``; the MDT ``target``, then the
    ``operation`` with ``--metrics.metadata-by-operation``; ``fs`` with
    ``--metrics.fs-label``, last); ``jobids[i]`` had ``values[i]``. Columns
    rather than a record per sample: a million samples are two lists, not a million
    objects.
    """

    extra: Tuple[str, ...]
    jobids: Sequence[str]
    values: Sequence[float]


class Rates(List[RateColumn]):
    """A whole query answer as columns (one per distinct ``extra``)."""


#: What a LustreSource answers: columns, or rows that the collector puts in columns.
Answer = Union[Rates, Sequence[JobidRate], Sequence[TargetRate]]


def columns_of(rows: Iterable[R], extra_of: Optional[Callable[[R], Tuple[str, ...]]]) -> Rates:
    """Rows (``JobidRate``/``TargetRate``) as columns, grouped by ``extra_of(row)``."""
    groups: Dict[Tuple[str, ...], Tuple[List[str], List[float]]] = {}
    for row in rows:
        extra = extra_of(row) if extra_of is not None else ()
        group = groups.get(extra)
        if group is None:
            group = groups[extra] = ([], [])
        group[0].append(row.jobid)  # type: ignore[attr-defined]
        group[1].append(row.value)  # type: ignore[attr-defined]
    return Rates(RateColumn(extra, ids, values) for extra, (ids, values) in groups.items())


def fs_extra(row: JobidRate) -> Tuple[str, ...]:
    """The labels after the owner's of a throughput row with ``--metrics.fs-label``."""
    return (row.fs,)


def target_operation_extra(row: TargetRate) -> Tuple[str, ...]:
    """The labels after the owner's of a metadata row by operation."""
    return (row.target, row.operation)


def fs_target_operation_extra(row: TargetRate) -> Tuple[str, ...]:
    """The labels after the owner's of a metadata row by operation with the fs label."""
    return (row.target, row.operation, row.fs)


def target_extra(row: TargetRate) -> Tuple[str, ...]:
    """The labels after the owner's of a metadata row."""
    return (row.target,)


def fs_target_extra(row: TargetRate) -> Tuple[str, ...]:
    """The labels after the owner's of a metadata row with ``--metrics.fs-label``."""
    return (row.target, row.fs)


class SlurmJob(NamedTuple):
    """A job as listed by squeue (``%A %a %u``)."""

    jobid: str
    account: str
    user: str
    #: Known from ``squeue --json`` and the demo; "" otherwise (``sources.jobdetails``).
    partition: str = ""
    job_name: str = ""


class PasswdEntry(NamedTuple):
    """The two fields of a passwd entry the exporter needs, keyed by uid elsewhere."""

    name: str
    gid: int


UserTable = Dict[int, PasswdEntry]
GroupTable = Dict[int, str]


@dataclass(frozen=True)
class Parsed(Generic[T_co]):
    """What a parser produced plus a count of the entries it had to skip.

    Every skipped entry is logged at DEBUG by the parser; the collector turns the
    counts into one WARNING per scrape.
    """

    items: T_co
    skipped: int = 0
    #: False when a cache answered everything and no external call was made.
    fetched: bool = True


def checked(items: T, skipped: int, what: str) -> Parsed[T]:
    """A parse result, or SourceError when every entry was malformed.

    Some bad lines are skipped; output in which no line at all has the expected form
    means the source itself is broken (another version, another format, a wrapper
    printing an error), and that is reported as the source failing.
    """
    if skipped and not items:
        raise SourceError(f"{what}: none of the {skipped} entries has the expected form")
    return Parsed(items, skipped)


class LustreSource(Protocol):
    """Per-jobid Lustre rates, as computed by a Prometheus-compatible server.

    ``at`` is the evaluation time (Unix seconds) shared by the answers of a scrape, so
    that read, write and metadata describe the same instant; None means "now". An
    answer is ``Rates`` (columns, as the Prometheus source decodes it) or a list of rows
    (``JobidRate``/``TargetRate``), which the collector puts in columns.
    """

    def read_rates(self, deadline: float, at: Optional[float] = None) -> Parsed[Answer]: ...

    def write_rates(self, deadline: float, at: Optional[float] = None) -> Parsed[Answer]: ...

    def metadata_rates(self, deadline: float, at: Optional[float] = None) -> Parsed[Answer]: ...

    def read_operations(self, deadline: float, at: Optional[float] = None) -> Parsed[Answer]:
        """Read calls per second per jobid (asked only with --metrics.operations)."""
        ...

    def write_operations(self, deadline: float, at: Optional[float] = None) -> Parsed[Answer]:
        """Write calls per second per jobid (asked only with --metrics.operations)."""
        ...

    def read_increase(self, deadline: float, at: float, window_ms: int) -> Parsed[Answer]:
        """Bytes read per jobid in the ``window_ms`` milliseconds up to ``at`` (asked only
        with --metrics.counters)."""
        ...

    def write_increase(self, deadline: float, at: float, window_ms: int) -> Parsed[Answer]:
        """Bytes written per jobid in the ``window_ms`` milliseconds up to ``at``."""
        ...

    def metadata_increase(self, deadline: float, at: float, window_ms: int) -> Parsed[Answer]:
        """Metadata operations per jobid and MDT in the ``window_ms`` milliseconds up to
        ``at``, in the shape of ``metadata_rates``."""
        ...


class JobSource(Protocol):
    """Slurm jobs that may be doing IO right now."""

    def jobs(self, deadline: float) -> Parsed[List[SlurmJob]]: ...


class JobDetailsSource(Protocol):
    """Partition and job name of a few jobs (the top jobs), asked apart from the listing."""

    def details(
        self, jobids: Sequence[str], deadline: float
    ) -> Parsed[Dict[str, Tuple[str, str]]]: ...


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


class OwnerQueries(Protocol):
    """Join mode: what the TSDB knows of the Lustre ids, asked in small answers (one
    sample per uid or per unknown job, never one per jobid)."""

    def process_uids(self, deadline: float, at: Optional[float] = None) -> Parsed[List[int]]:
        """The uids of process ids that have Lustre series."""
        ...

    def unknown_jobs(self, deadline: float, at: Optional[float] = None) -> Parsed[List[str]]:
        """Slurm job ids with IO now that no ``cluster_job_info`` series names."""
        ...
