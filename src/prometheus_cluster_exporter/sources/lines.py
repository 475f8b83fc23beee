"""The one line parser of the command sources: squeue, sacct and getent print one entry
per line, in fields split by a separator.

Blank lines are ignored; a line that does not fit (``entry`` returns None or raises
ValueError) is skipped, counted and logged at DEBUG (cut to 200 characters). Bytes that
are not UTF-8 are replaced, never an error.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterator, List, Optional, Tuple, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


def entries(
    output: bytes,
    what: str,
    sep: Optional[str],
    entry: Callable[[List[str]], Optional[T]],
    skipped: List[int],
) -> Iterator[T]:
    """The entries of ``output``; the count of skipped lines is added to ``skipped[0]``.

    ``sep`` None splits on runs of whitespace (squeue's text format).
    """
    for raw in output.decode("utf-8", "replace").splitlines():
        if not raw.strip():
            continue
        try:
            value = entry(raw.split(sep))
        except ValueError:
            value = None
        if value is None:
            skipped[0] += 1
            log.debug("%s: skipping unexpected line %r", what, raw[:200])
            continue
        yield value


def parse_lines(
    output: bytes, what: str, sep: Optional[str], entry: Callable[[List[str]], Optional[T]]
) -> Tuple[List[T], int]:
    """Every entry of ``output`` and the number of lines skipped."""
    skipped = [0]
    items = list(entries(output, what, sep, entry, skipped))
    return items, skipped[0]
