"""Long work cut into chunks, with a look at the deadline before each one.

Decoding a huge answer or attributing millions of rows is pure CPU work that no socket
timeout bounds; done in chunks, it stops soon after the scrape deadline instead::

    for chunk in paced(rows, deadline, "read query"):
        total += sum(value for _, value in chunk)
"""

from __future__ import annotations

import time
from typing import Iterator, Sequence, TypeVar

from prometheus_cluster_exporter.errors import SourceError

T = TypeVar("T")

#: Items handled between two looks at the clock.
CHUNK = 1 << 14


class Late(SourceError):
    """The deadline passed before the work was done."""


def check_deadline(deadline: float, what: str) -> None:
    """Late if ``deadline`` (a ``time.monotonic()`` value) has passed."""
    if time.monotonic() > deadline:
        raise Late(f"{what}: did not finish by the scrape deadline")


def paced(
    items: Sequence[T], deadline: float, what: str, size: int = CHUNK
) -> Iterator[Sequence[T]]:
    """``items`` in slices of ``size``; Late instead of a slice once the deadline passed."""
    for start in range(0, len(items), size):
        check_deadline(deadline, what)
        yield items[start : start + size]
