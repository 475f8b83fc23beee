"""The one line parser of the command sources: squeue, sacct and getent print one entry
per line, in fields split by a separator.

Blank lines are ignored; a line that does not fit (``entry`` returns None or raises
ValueError) is skipped, counted and logged at DEBUG (cut to 200 characters). Bytes that
are not UTF-8 are replaced, never an error.
"""

from __future__ import annotations

import logging
from typing import Callable, List, Optional, Tuple, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


def parse_lines(
    output: bytes, what: str, sep: Optional[str], entry: Callable[[List[str]], Optional[T]]
) -> Tuple[List[T], int]:
    """Every entry of ``output`` and the number of lines skipped.

    ``sep`` None splits on runs of whitespace (squeue's text format).
    """
    items: List[T] = []
    skipped = 0
    # Only a newline ends a line: str.splitlines() would also split at \x1c-\x1e, \x85,
    # \u2028, ..., which a field's text may hold.
    for line in output.decode("utf-8", "replace").split("\n"):
        raw = line[:-1] if line.endswith("\r") else line
        if not raw.strip():
            continue
        try:
            value = entry(raw.split(sep))
        except ValueError:
            value = None
        if value is None:
            skipped += 1
            log.debug("%s: skipping unexpected line %r", what, raw[:200])
            continue
        items.append(value)
    return items, skipped
