"""The usage report as text, CSV and JSON (``prometheus-cluster-exporter report --format``).

Pure: strings from a ``usage.Report``, no I/O. Imports ``usage`` and ``usageperiod``;
``usagehtml`` uses its table rows and units. Text, for the terminal, in SI units::

    Lustre usage report
    Period  2024-05-01 00:00:00 CEST to 2024-06-01 00:00:00 CEST (31d)
            2024-04-30 22:00:00 UTC to 2024-05-31 22:00:00 UTC
    Server  http://prometheus:9090, selector job="cluster"

    ACCOUNT / USER          READ   WRITTEN  METADATA OPS    SHARE
    physics             140.2 TB    3.1 GB         1.2 M   96.4 %
      alice             100.0 TB    2.0 GB       800.0 k
      bob                40.2 TB    1.1 GB       400.0 k
    chem                  3.1 GB  512.0 GB        35.0 k    0.4 %
      carol               3.1 GB  512.0 GB             0
      dave                   0 B       0 B        35.0 k
    Outside Slurm jobs    4.4 TB    1.0 GB            12    3.0 %
      root                4.4 TB    1.0 GB            12
    Unattributed        312.0 GB     512 B           950    0.2 %
      unknown_job       312.0 GB     512 B           950
    Total               144.9 TB  516.1 GB         1.2 M  100.0 %

CSV and JSON carry exact integers: CSV one row per job user, user outside jobs and
reason (``kind,account,user,reason,read_bytes,write_bytes,metadata_ops``), JSON the
accounts with their users and shares in percent (see ``render_json``).
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone, tzinfo
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

from prometheus_cluster_exporter.usage import JOB, OUTSIDE, UNATTRIBUTED, Report, Row, Usage
from prometheus_cluster_exporter.usageperiod import format_duration, utc_iso

_BYTE_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_OP_UNITS = ("", "k", "M", "G", "T", "P", "E", "Z", "Y")
OUTSIDE_TITLE, UNATTRIBUTED_TITLE, TOTAL_TITLE = "Outside Slurm jobs", "Unattributed", "Total"


def _human(value: int, units: Sequence[str], space: str) -> str:
    if value < 1000:
        return f"{value}{space}{units[0]}".rstrip()
    number = float(value)
    for unit in units[1:]:
        number /= 1000
        if round(number, 1) < 1000 or unit == units[-1]:
            return f"{number:.1f} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def human_bytes(value: int) -> str:
    """SI (decimal) units: ``512 B``, ``3.1 GB``, ``140.2 TB``."""
    return _human(value, _BYTE_UNITS, " ")


def human_ops(value: int) -> str:
    """``950``, ``35.0 k``, ``1.2 M``."""
    return _human(value, _OP_UNITS, "")


def percent(share: float) -> str:
    return f"{share:.1f} %"


def shown_name(name: str) -> str:
    """A label value fit for a terminal: control characters written as escapes, an
    empty value as ``(none)``."""
    if not name:
        return "(none)"
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in name)


class TableRow(NamedTuple):
    """One line of the table: ``level`` 0 for an account, a section or the total, 1 for
    a user or a reason under it; ``share`` in percent, or None (not shown)."""

    level: int
    kind: str
    name: str
    usage: Usage
    share: Optional[float]


def table_rows(report: Report) -> List[TableRow]:
    """Accounts with their users, then outside jobs and unattributed with theirs, then
    the total: the order of every human format."""
    rows: List[TableRow] = []
    for account in report.accounts:
        rows.append(TableRow(0, JOB, account.account, account.usage, account.share))
        rows.extend(TableRow(1, JOB, user.name, user.usage, None) for user in account.users)
    total_bytes = report.total.bytes
    for kind, title, members in (
        (OUTSIDE, OUTSIDE_TITLE, report.outside_jobs),
        (UNATTRIBUTED, UNATTRIBUTED_TITLE, report.unattributed),
    ):
        if members:
            usage = report.outside_total if kind == OUTSIDE else report.unattributed_total
            share = 100.0 * usage.bytes / total_bytes if total_bytes else 0.0
            rows.append(TableRow(0, kind, title, usage, share))
            rows.extend(TableRow(1, kind, row.name, row.usage, None) for row in members)
    rows.append(TableRow(0, "total", TOTAL_TITLE, report.total, 100.0 if total_bytes else 0.0))
    return rows


def local_time(instant: int, tz: Optional[tzinfo] = None) -> str:
    """``2024-05-01 00:00:00 CEST`` in ``tz`` (None: this host's local time)."""
    when = datetime.fromtimestamp(instant, tz) if tz else datetime.fromtimestamp(instant)
    return when.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z").rstrip()


def period_lines(report: Report, tz: Optional[tzinfo] = None) -> Tuple[str, str]:
    """The period in local time (with its length), and in UTC ("" where local time is
    UTC)."""
    start, end = report.period.start, report.period.end
    local = f"{local_time(start, tz)} to {local_time(end, tz)}"
    utc = f"{local_time(start, timezone.utc)} to {local_time(end, timezone.utc)}"
    return f"{local} ({format_duration(report.period.seconds)})", "" if utc == local else utc


def server_line(report: Report) -> str:
    return report.server + (f", selector {report.selector}" if report.selector else "")


_HEAD = ("ACCOUNT / USER", "READ", "WRITTEN", "METADATA OPS", "SHARE")


def render_text(report: Report, tz: Optional[tzinfo] = None) -> str:
    local, utc = period_lines(report, tz)
    lines = ["Lustre usage report", f"Period  {local}"]
    lines += [f"        {utc}"] if utc else []
    lines += [f"Server  {shown_name(server_line(report))}", ""]
    cells = [_HEAD]
    for row in table_rows(report):
        cells.append(
            (
                "  " * row.level + shown_name(row.name),
                human_bytes(row.usage.read_bytes),
                human_bytes(row.usage.write_bytes),
                human_ops(row.usage.metadata_ops),
                "" if row.share is None else percent(row.share),
            )
        )
    widths = [max(len(cell[i]) for cell in cells) for i in range(len(_HEAD))]
    for cell in cells:
        name = cell[0].ljust(widths[0])
        numbers = (value.rjust(width) for value, width in zip(cell[1:], widths[1:]))
        lines.append("  ".join((name, *numbers)).rstrip())
    if not report.accounts and not report.outside_jobs and not report.unattributed:
        lines.append("(no IO in this period)")
    return "\n".join(lines) + "\n"


CSV_HEADER = ("kind", "account", "user", "reason", "read_bytes", "write_bytes", "metadata_ops")


def render_csv(report: Report) -> str:
    """One row per (kind, account, user, reason), exact integers; the rows add up to the
    total."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for account in report.accounts:
        for user in account.users:
            writer.writerow((JOB, account.account, user.name, "", *user.usage))
    for row in report.outside_jobs:
        writer.writerow((OUTSIDE, "", row.name, "", *row.usage))
    for row in report.unattributed:
        writer.writerow((UNATTRIBUTED, "", "", row.name, *row.usage))
    return out.getvalue()


def _numbers(usage: Usage) -> Dict[str, int]:
    return dict(usage._asdict())


def _named(key: str, rows: Sequence[Row]) -> List[Dict[str, Any]]:
    return [{key: row.name, **_numbers(row.usage)} for row in rows]


def render_json(report: Report) -> str:
    """``{"from", "to" (UTC), "seconds", "server", "selector", "accounts": [{"account",
    "read_bytes", "write_bytes", "metadata_ops", "share" (percent), "users": [{"user",
    ...}]}], "outside_jobs": [{"user", ...}], "unattributed": [{"reason", ...}], "total",
    "unattributed_share" (percent)}``."""
    document = {
        "from": utc_iso(report.period.start),
        "to": utc_iso(report.period.end),
        "seconds": report.period.seconds,
        "server": report.server,
        "selector": report.selector,
        "accounts": [
            {
                "account": account.account,
                **_numbers(account.usage),
                "share": round(account.share, 4),
                "users": _named("user", account.users),
            }
            for account in report.accounts
        ],
        "outside_jobs": _named("user", report.outside_jobs),
        "unattributed": _named("reason", report.unattributed),
        "total": _numbers(report.total),
        "unattributed_share": round(report.unattributed_share, 4),
    }
    return json.dumps(document, indent=2) + "\n"
