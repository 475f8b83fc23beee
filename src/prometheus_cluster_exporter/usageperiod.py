"""The usage report's period (``prometheus-cluster-exporter report``): ``--from``/``--to``
or ``--last``, parsed to whole Unix seconds, with the errors the command shows.

Pure: no I/O and no clock (the caller passes "now" and, for tests, the local time zone).
Imports nothing of the exporter's::

    >>> make_period("2024-05-01", "2024-06-01T00:00Z", None, now=1.8e9, tz=timezone.utc)
    Period(start=1714521600, end=1717200000)
    >>> make_period(None, None, "1d12h", now=1717200000)
    Period(start=1717070400, end=1717200000)
    >>> format_duration(2678400)
    '31d'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from typing import List, Optional


class PeriodError(ValueError):
    """A period the flags cannot give (the message is the one line shown)."""


#: How far in the future --to may be (clock differences), in seconds.
FUTURE_SLACK = 60
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))?"
)
_UNITS = (("y", 365 * 86400), ("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
_DURATION = re.compile("".join(rf"(?:(\d{{1,9}}){unit})?" for unit, _ in _UNITS))
_DATE_FORMS = "YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM]"


@dataclass(frozen=True)
class Period:
    """From ``start`` to ``end``, Unix seconds (whole)."""

    start: int
    end: int

    @property
    def seconds(self) -> int:
        return self.end - self.start


def utc_iso(instant: int) -> str:
    """``2024-05-01T00:00:00Z``."""
    return datetime.fromtimestamp(instant, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_instant(flag: str, text: str, tz: Optional[tzinfo] = None) -> int:
    """A date (midnight) or a datetime; without an offset in ``tz`` (None: local time)."""
    date = _DATE.fullmatch(text)
    full = date or _DATETIME.fullmatch(text)
    if full is None:
        raise PeriodError(f"{flag}: expected {_DATE_FORMS}, got {text!r}")
    numbers = [int(part) for part in full.groups()[:6] if part is not None]
    try:
        when = datetime(*numbers)  # type: ignore[arg-type]
        if date is None and full.group(7):
            when = when.replace(tzinfo=timezone.utc)
        elif date is None and full.group(8):
            hours, minutes = int(full.group(9)), int(full.group(10))
            if hours > 23 or minutes > 59:
                raise ValueError("the UTC offset is not from -23:59 to +23:59")
            offset = timedelta(hours=hours, minutes=minutes)
            when = when.replace(tzinfo=timezone(-offset if full.group(8) == "-" else offset))
        elif tz is not None:
            when = when.replace(tzinfo=tz)
        return int(when.timestamp())
    except (ValueError, OverflowError, OSError) as exc:
        raise PeriodError(f"{flag}: not a valid date or time: {text!r} ({exc})") from None


def parse_duration(text: str) -> int:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w``, ``1d12h`` (units in this order: y w d h m
    s; a year is 365 days, as in PromQL) in seconds."""
    found = _DURATION.fullmatch(text)
    if not text or found is None:
        raise PeriodError(f"--last: expected a duration like 30d, 12h, 90m or 1d12h, got {text!r}")
    return sum(int(n) * size for n, (_, size) in zip(found.groups(), _UNITS) if n is not None)


def format_duration(seconds: int) -> str:
    """``2678400`` -> ``31d``, ``129600`` -> ``1d12h`` (days at most, as parsed back)."""
    parts: List[str] = []
    for unit, size in _UNITS[2:]:
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


def make_period(
    start: Optional[str],
    end: Optional[str],
    last: Optional[str],
    now: float,
    tz: Optional[tzinfo] = None,
) -> Period:
    """The period of ``--from``/``--to`` or ``--last`` (ending ``now``, Unix seconds)."""
    if start is not None and last is not None:
        raise PeriodError("--from and --last exclude each other: give one of them")
    if start is None and last is None:
        raise PeriodError("give the period: --from DATE [--to DATE] or --last DURATION")
    if last is not None and end is not None:
        raise PeriodError("--to goes with --from; a period given by --last ends now")
    now_s = int(now)
    if last is not None:
        period = Period(now_s - parse_duration(last), now_s)
    else:
        assert start is not None  # noqa: S101
        finish = now_s if end is None else parse_instant("--to", end, tz)
        if finish > now + FUTURE_SLACK:
            raise PeriodError(
                f"--to {end} ({utc_iso(finish)}) is in the future: the report counts what "
                "was stored, so the period must end by now"
            )
        period = Period(parse_instant("--from", start, tz), finish)
        if period.seconds <= 0:
            shown = end if end is not None else f"now ({utc_iso(finish)})"
            raise PeriodError(f"--from {start} is not before --to {shown}")
    if period.seconds < 1:
        raise PeriodError("the period is shorter than 1 s")
    if period.start < 0:
        raise PeriodError(f"the period starts before 1970 ({period.seconds} s long)")
    return period
