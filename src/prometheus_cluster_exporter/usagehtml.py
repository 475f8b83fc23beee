"""The usage report as one self-contained HTML file (``report --format=html``), to mail to
a project lead or print on A4.

Pure: a string from a ``usage.Report``, no I/O. Imports ``usage``, ``usageperiod`` and
``usagerender`` (the table's rows and the units). Nothing is loaded from elsewhere: the
CSS is inline, the chart an inline SVG, the fonts the reader's own sans-serif. Every
label value is escaped: account and user names are not trusted. Shape::

    <h1>Lustre usage report</h1>
    <p class="period">2024-05-01 00:00:00 CEST to 2024-06-01 00:00:00 CEST (31d) ...</p>
    <svg id="chart" ...>  one bar per account: read (blue) and written (orange),
                          with a legend and the values in SI units
    <table id="usage">    accounts with their users indented, outside Slurm jobs,
                          unattributed, total; the exact numbers in each cell's title
"""

from __future__ import annotations

from datetime import tzinfo
from html import escape
from typing import List, Optional

from prometheus_cluster_exporter import __version__
from prometheus_cluster_exporter.usage import Report
from prometheus_cluster_exporter.usagerender import (
    TableRow,
    human_bytes,
    human_ops,
    percent,
    period_lines,
    server_line,
    shown_name,
    table_rows,
)

READ_COLOUR, WRITE_COLOUR = "#2f6db5", "#e08a1e"
#: Bars drawn at most; the other accounts are in the table.
MAX_BARS = 40
_NAME_CHARS = 28
_CSS = """
@page { size: A4; margin: 14mm; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px; color: #1d1d1f; background: #fff;
  font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  -webkit-print-color-adjust: exact; print-color-adjust: exact; }
main { max-width: 1100px; margin: 0 auto; }
h1 { font-size: 22px; margin: 0 0 6px; }
h2 { font-size: 16px; margin: 26px 0 8px; }
p { margin: 2px 0; }
.meta { color: #555; }
svg { display: block; width: 100%; height: auto; max-width: 1100px; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e3e3e3; text-align: right;
  white-space: nowrap; }
th:first-child, td:first-child { text-align: left; white-space: normal;
  overflow-wrap: anywhere; }
thead th { border-bottom: 2px solid #999; font-weight: 600; }
tr.top td { font-weight: 600; background: #f6f7f9; }
tr.sub td:first-child { padding-left: 28px; }
tr.total td { font-weight: 700; border-top: 2px solid #999; border-bottom: none; }
footer { margin-top: 22px; color: #777; font-size: 12px; }
@media print {
  body { padding: 0; font-size: 10pt; }
  h2 { break-after: avoid; page-break-after: avoid; }
  thead { display: table-header-group; }
  tr { break-inside: avoid; page-break-inside: avoid; }
  #chart { break-inside: avoid; page-break-inside: avoid; }
}
"""


def _e(text: str) -> str:
    return escape(text, quote=True)


def _short(name: str) -> str:
    name = shown_name(name)
    return name if len(name) <= _NAME_CHARS else name[: _NAME_CHARS - 1] + "\u2026"


def chart(report: Report) -> str:
    """An SVG bar chart: one bar per account (the biggest MAX_BARS), read and written."""
    accounts = report.accounts[:MAX_BARS]
    width, label_w, bar_w, row_h, top = 1000, 230, 500, 26, 40
    height = top + row_h * max(1, len(accounts)) + (24 if len(report.accounts) > MAX_BARS else 8)
    parts = [
        f'<svg id="chart" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="Bytes read and written per account">',
        f'<rect x="{label_w}" y="8" width="14" height="14" fill="{READ_COLOUR}"/>',
        f'<text x="{label_w + 20}" y="20" font-size="13">read</text>',
        f'<rect x="{label_w + 80}" y="8" width="14" height="14" fill="{WRITE_COLOUR}"/>',
        f'<text x="{label_w + 100}" y="20" font-size="13">written</text>',
    ]
    biggest = max((account.usage.bytes for account in accounts), default=0)
    for i, account in enumerate(accounts):
        y, usage = top + i * row_h, account.usage
        read_w = bar_w * usage.read_bytes / biggest if biggest else 0.0
        write_w = bar_w * usage.write_bytes / biggest if biggest else 0.0
        values = f"{human_bytes(usage.read_bytes)} read, {human_bytes(usage.write_bytes)} written"
        parts += [
            f"<g><title>{_e(shown_name(account.account))}: {values}</title>",
            f'<text x="{label_w - 8}" y="{y + 15}" font-size="13" text-anchor="end">'
            f"{_e(_short(account.account))}</text>",
            f'<rect x="{label_w}" y="{y + 3}" width="{read_w:.1f}" height="16" '
            f'fill="{READ_COLOUR}"/>',
            f'<rect x="{label_w + read_w:.1f}" y="{y + 3}" width="{write_w:.1f}" height="16" '
            f'fill="{WRITE_COLOUR}"/>',
            f'<text x="{label_w + read_w + write_w + 8:.1f}" y="{y + 15}" font-size="12" '
            f'fill="#444">{values}</text></g>',
        ]
    if not accounts:
        parts.append(
            f'<text x="{label_w}" y="{top + 15}" font-size="13">No IO in Slurm jobs.</text>'
        )
    elif len(report.accounts) > MAX_BARS:
        more = len(report.accounts) - MAX_BARS
        parts.append(
            f'<text x="{label_w}" y="{height - 8}" font-size="12" fill="#555">and {more} '
            "smaller accounts, in the table</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts)


def _cell(text: str, exact: str) -> str:
    return f'<td title="{_e(exact)}">{_e(text)}</td>'


def _row(row: TableRow) -> str:
    usage = row.usage
    css = "total" if row.kind == "total" else ("top" if row.level == 0 else "sub")
    share = "" if row.share is None else percent(row.share)
    return (
        f'<tr class="{css}"><td>{_e(shown_name(row.name))}</td>'
        + _cell(human_bytes(usage.read_bytes), f"{usage.read_bytes:,} bytes")
        + _cell(human_bytes(usage.write_bytes), f"{usage.write_bytes:,} bytes")
        + _cell(human_ops(usage.metadata_ops), f"{usage.metadata_ops:,} operations")
        + f"<td>{_e(share)}</td></tr>"
    )


def table(report: Report) -> str:
    head = "".join(
        f"<th>{name}</th>"
        for name in ("Account / user", "Read", "Written", "Metadata operations", "Share")
    )
    body = "\n".join(_row(row) for row in table_rows(report))
    return (
        f'<table id="usage">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>'
    )


def render_html(report: Report, tz: Optional[tzinfo] = None) -> str:
    local, utc = period_lines(report, tz)
    lines: List[str] = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Lustre usage report, {_e(local)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body><main>",
        "<h1>Lustre usage report</h1>",
        f'<p class="period">{_e(local)}</p>',
        f'<p class="meta">{_e(utc)}</p>' if utc else "",
        f'<p class="meta">Prometheus: {_e(shown_name(server_line(report)))}</p>',
        "<h2>Bytes read and written per account</h2>",
        chart(report),
        "<h2>Usage</h2>",
        table(report),
        f'<p class="meta">Unattributed share of all bytes: {percent(report.unattributed_share)}.'
        " Bytes in SI units (1 GB = 10<sup>9</sup> bytes); the exact numbers are in each "
        "cell's tooltip.</p>",
        f"<footer>prometheus-cluster-exporter report {_e(__version__)}, from the "
        "--metrics.counters series</footer>",
        "</main></body>",
        "</html>",
    ]
    return "\n".join(lines) + "\n"
