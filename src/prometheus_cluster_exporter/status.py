"""The status page at ``/``: plain server-rendered HTML, no external assets.

Shows the version, a summary of the configuration (credentials never appear: URLs are
shown without user:password and secrets are only named by their file), each source's
last duration, result and error, the last scrape's time and scrape_ok, the top
consumers and the top jobs (by job id) of the last scrape, and the link to the metrics.

It renders plain values, a ``report.ScrapeReport`` and a list of configuration rows; it
never sees the collector, the sources or the run mode. Imports ``config`` and ``report``.
"""

from __future__ import annotations

import html
import platform
import time
from typing import List, Optional, Sequence, Tuple

from prometheus_cluster_exporter import __version__
from prometheus_cluster_exporter.config import JOIN, Config
from prometheus_cluster_exporter.report import ScrapeReport

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em;color:#222;max-width:1100px}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;margin-top:.4em}td,th{border:1px solid #ccc;padding:.3em .7em;text-align:left;vertical-align:top}
th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#16794c;font-weight:600}.fail{color:#b3261e;font-weight:600}.muted{color:#666}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def human_rate(value: float) -> str:
    for unit in ("B/s", "KiB/s", "MiB/s", "GiB/s"):
        if abs(value) < 1024 or unit == "GiB/s":
            return f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} GiB/s"  # pragma: no cover


def config_summary(config: Config, queried: str, listening: str = "") -> List[Tuple[str, str]]:
    """(name, value) rows of the configuration; ``queried`` says what the exporter queries
    (without credentials)."""
    rows = [
        ("Query API", queried),
        (
            "Listen address",
            listening or f"{config.listen_host or '*'}:{config.port}{config.telemetry_path}",
        ),
        ("Scrape deadline (--timeout)", f"{config.timeout:g} s"),
        (
            "Attribution (--mode)",
            "join: in the TSDB, by the rules of 'prometheus-cluster-exporter rules'"
            if config.mode == JOIN
            else "direct: here",
        ),
        ("Rate", f"{config.rate_function}(...[{config.timerange}])"),
        ("Jobid formats", ", ".join(config.jobid_formats)),
        ("squeue", f"{config.squeue_path}{' --json' if config.squeue_json else ''}"),
        ("sacct", config.sacct_path if config.sacct else "off"),
        ("getent", f"{config.getent_path} (cache {config.getent_cache_ttl:g} s)"),
        ("Job grace period", f"{config.effective_job_grace:g} s"),
        ("fs label", "on" if config.fs_label else "off"),
        ("Metadata by operation", "on" if config.metadata_by_operation else "off"),
        ("Operations (--metrics.operations)", "on" if config.operations else "off"),
        (
            "Counters (--metrics.counters)",
            (
                f"on, windows of {config.effective_counters_min_window:g} s to "
                f"{config.counters_max_gap:g} s"
            )
            if config.counters
            else "off",
        ),
        ("Owners per family (--metrics.max-series)", str(config.max_series or "all")),
        (
            "Top jobs (--metrics.top-jobs)",
            "a topk over the joined series"
            if config.mode == JOIN
            else str(config.top_jobs or "off"),
        ),
    ]
    if config.promserver_user:
        rows.append(("Query API user", f"{config.promserver_user} (password from a file)"))
    if config.promserver_bearer_token_file:
        rows.append(("Query API token", "from a file"))
    if config.web_config_file:
        rows.append(("Web config", config.web_config_file))
    return rows


def _top_jobs(last: ScrapeReport) -> List[str]:
    """The top jobs' table (``--metrics.top-jobs``), if there are any."""
    if not last.top_jobs:
        return []
    parts = [
        f"<h2>Top {len(last.top_jobs)} jobs</h2>",
        "<table><tr><th>#</th><th>Job id</th><th>Name</th><th>Partition</th><th>Account</th>"
        "<th>User</th><th>Read</th><th>Write</th><th>Metadata</th></tr>",
    ]
    for rank, job in enumerate(last.top_jobs, 1):
        metadata = "-" if job.metadata is None else f"{job.metadata:,.0f} ops/s"
        cells = (job.jobid, job.job_name, job.partition, job.account, job.user)
        parts.append(
            f"<tr><td class=num>{rank}</td>"
            + "".join(f"<td>{_e(cell)}</td>" for cell in cells)
            + f"<td class=num>{_e(human_rate(job.read))}</td>"
            f"<td class=num>{_e(human_rate(job.write))}</td>"
            f"<td class=num>{_e(metadata)}</td></tr>"
        )
    parts.append("</table>")
    return parts


def render_status_page(
    last: Optional[ScrapeReport], summary: Sequence[Tuple[str, str]], metrics_path: str
) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>Cluster Exporter</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Cluster Exporter</h1>",
        f"<p>Version {_e(__version__)} on Python {_e(platform.python_version())} &middot; "
        f'<a href="{_e(metrics_path)}">Metrics</a></p>',
    ]
    parts.append("<h2>Last scrape</h2>")
    if last is None:
        parts.append('<p class="muted">No scrape yet.</p>')
    else:
        when = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(last.started))
        state = '<span class="ok">1</span>' if last.ok else '<span class="fail">0</span>'
        parts.append(
            f"<p>{_e(when)} &middot; took {last.seconds:.3f} s &middot; "
            f"{last.series:,} series &middot; scrape_ok {state}</p>"
        )
        parts.append("<table><tr><th>Source</th><th>Duration</th><th>Result</th></tr>")
        for outcome in last.sources.values():
            result = (
                '<span class="ok">ok</span>'
                if outcome.ok
                else f'<span class="fail">failed</span>: {_e(outcome.error)}'
            )
            parts.append(
                f"<tr><td>{_e(outcome.name)}</td><td class=num>{outcome.seconds:.3f} s</td>"
                f"<td>{result}</td></tr>"
            )
        parts.append("</table>")
        parts.append(f"<h2>Top {len(last.top)} consumers</h2>")
        if last.top:
            parts.append(
                "<table><tr><th>#</th><th>Kind</th><th>Who</th><th>Read</th><th>Write</th></tr>"
            )
            for rank, (kind, who, read, write) in enumerate(last.top, 1):
                parts.append(
                    f"<tr><td class=num>{rank}</td><td>{_e(kind)}</td><td>{_e(who)}</td>"
                    f"<td class=num>{_e(human_rate(read))}</td>"
                    f"<td class=num>{_e(human_rate(write))}</td></tr>"
                )
            parts.append("</table>")
        else:
            parts.append('<p class="muted">No IO in the last scrape.</p>')
        parts.extend(_top_jobs(last))
    parts.append("<h2>Configuration</h2><table>")
    for name, value in summary:
        parts.append(f"<tr><th>{_e(name)}</th><td>{_e(value)}</td></tr>")
    parts.append("</table></body></html>\n")
    return "\n".join(parts)
