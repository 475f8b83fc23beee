"""The table of flags: each flag names the Config field (or run mode) it sets.

``FLAGS`` is what ``flags`` builds its parser from and what the README's flag table
lists; a flag's default is the ``Config`` field's, shown in its help as ``{default}``.
Imports ``config`` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple

from prometheus_cluster_exporter.config import (
    JOB_GRACE_MARGIN,
    LOG_FORMATS,
    LOG_LEVELS,
    MODES,
    RATE_FUNCTIONS,
    ConfigError,
    parse_duration,
    parse_listen_address,
)


@dataclass(frozen=True)
class Flag:
    """One flag. ``sets`` names the Config fields its value goes to (two for a
    ``(host, port)`` pair); ``convert`` turns the text into that value (ConfigError if
    bad). ``{default}`` in the help is the field's default, shown by ``show``."""

    name: str
    sets: Tuple[str, ...]
    help: str
    group: str
    metavar: Optional[str] = None
    convert: Optional[Callable[[str], Any]] = None
    switch: bool = False
    repeat: bool = False
    choices: Optional[Tuple[str, ...]] = None
    show: Callable[[Any], str] = str


def _duration(flag: str) -> Callable[[str], float]:
    return lambda text: parse_duration(text, flag)


def _number(kind: Callable[[str], Any], flag: str, what: str) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return kind(text)
        except ValueError:
            raise ConfigError(f"{flag}: expected {what}, got {text!r}") from None

    return convert


def _log_level(text: str) -> str:
    level = text.upper()
    return "WARNING" if level == "WARN" else level


def _seconds(value: float) -> str:
    return f"{value:g}s"


ORIGINAL, LOGGING, WEB, UPSTREAM, QUERIES, ATTRIBUTION, SCALE, COMMANDS, OTHER = (
    "flags of the original exporter",
    "logging",
    "web",
    "upstream (Prometheus, Thanos, VictoriaMetrics) access",
    "queries",
    "attribution",
    "large sites",
    "commands",
    "other",
)
_G = ORIGINAL
FLAGS: Tuple[Flag, ...] = (
    Flag("promserver", ("promserver",), "[REQUIRED unless --demo] Prometheus server to query, "
         "e.g. http://prometheus-server:9090", _G, "URL"),
    Flag("port", ("port",), "port to listen on for HTTP requests (default {default})", _G,
         "PORT", _number(int, "--port", "a port number")),
    Flag("timeout", ("timeout",), "one deadline in seconds for the whole scrape: every "
         "Prometheus query, squeue, getent and sacct call ends by it (default {default})", _G, "SECONDS",
         _number(float, "--timeout", "a number of seconds"), show=lambda v: f"{v:g}"),
    Flag("timerange", ("timerange",), "range of the rate function: 1-3 digits and a unit s, m, "
         "h or d (default {default})", _G, "RANGE"),
    Flag("log", ("log_level",), "log level, as --log.level", _G, "LEVEL", _log_level),
    Flag("version", ("version",), "print the version and exit", _G, switch=True),
    Flag("log.level", ("log_level",), f"log level: {', '.join(LOG_LEVELS)}, case-insensitive, "
         "WARN for WARNING (default {default})", LOGGING, "LEVEL", _log_level),
    Flag("log.format", ("log_format",), "log format: text, logfmt or json; timestamps are UTC "
         "(default {default})", LOGGING, choices=LOG_FORMATS),
    Flag("web.listen-address", ("listen_host", "port"), "address to listen on, e.g. "
         "127.0.0.1:9846 (overrides --port; default :9846)", WEB, "[HOST]:PORT",
         parse_listen_address),
    Flag("web.telemetry-path", ("telemetry_path",), "path of the metrics (default {default})",
         WEB, "PATH"),
    Flag("web.config.file", ("web_config_file",), "TLS and basic auth, in the exporter-toolkit "
         "web configuration format", WEB, "FILE"),
    Flag("promserver.user", ("promserver_user",), "basic auth user for the query API",
         UPSTREAM, "USER"),
    Flag("promserver.password-file", ("promserver_password_file",),
         "file holding the basic auth password", UPSTREAM, "FILE"),
    Flag("promserver.bearer-token-file", ("promserver_bearer_token_file",),
         "file holding a bearer token (re-read when it changes)", UPSTREAM, "FILE"),
    Flag("promserver.ca-file", ("promserver_ca_file",), "CA certificates to verify the server "
         "with (default: the system's)", UPSTREAM, "FILE"),
    Flag("promserver.cert-file", ("promserver_cert_file",), "client certificate for mutual TLS",
         UPSTREAM, "FILE"),
    Flag("promserver.key-file", ("promserver_key_file",), "key of the client certificate",
         UPSTREAM, "FILE"),
    Flag("promserver.insecure-skip-verify", ("promserver_insecure",),
         "do not verify the server's certificate (testing only)", UPSTREAM, switch=True),
    Flag("query.rate-function", ("rate_function",), "PromQL rate function (default {default}, "
         "as the original)", QUERIES, choices=RATE_FUNCTIONS),
    Flag("lustre.read-metric", ("read_metric",), "read bytes counter (default {default})",
         QUERIES, "NAME"),
    Flag("lustre.write-metric", ("write_metric",), "write bytes counter (default {default})",
         QUERIES, "NAME"),
    Flag("lustre.stats-metric", ("stats_metric",), "metadata operations counter (default "
         "{default})", QUERIES, "NAME"),
    Flag("lustre.read-samples-metric", ("read_samples_metric",), "read operations counter, "
         "for --metrics.operations (default {default})", QUERIES, "NAME"),
    Flag("lustre.write-samples-metric", ("write_samples_metric",), "write operations "
         "counter, for --metrics.operations (default {default})", QUERIES, "NAME"),
    Flag("lustre.jobid-label", ("jobid_label",), "label holding the Lustre jobid (default "
         "{default})", QUERIES, "LABEL"),
    Flag("lustre.target-label", ("target_label",), "label holding the Lustre target (default "
         "{default})", QUERIES, "LABEL"),
    Flag("lustre.mdt-target-regex", ("mdt_target_regex",), "targets counted as metadata "
         "targets (fully anchored; default {default})", QUERIES, "REGEX"),
    Flag("max-response-bytes", ("max_response_bytes",), "abandon a query answer larger than "
         "this, 0 for no limit (default {default})", QUERIES, "BYTES",
         _number(int, "--max-response-bytes", "a number of bytes")),
    Flag("lustre.jobid-format", ("jobid_formats",), "a jobid form in Lustre jobid_name codes "
         "(%e %u %g %j %h %H %p); repeat for several, tried in order (default: {default})",
         ATTRIBUTION, "FORMAT", repeat=True, show=" then ".join),
    Flag("slurm.job-grace-period", ("job_grace",), "keep attributing a job this long after "
         "squeue last listed it (default: the --timerange window plus "
         f"{JOB_GRACE_MARGIN:g}s)", ATTRIBUTION, "DURATION",
         _duration("--slurm.job-grace-period")),
    Flag("slurm.sacct", ("sacct",), "look up job ids unknown to squeue with sacct (needs "
         "slurmdbd accounting)", ATTRIBUTION, switch=True),
    Flag("getent.cache-ttl", ("getent_cache_ttl",), "reuse the passwd/group enumeration and "
         "keyed lookups this long; 0 to enumerate on every scrape (default {default})",
         ATTRIBUTION, "DURATION", _duration("--getent.cache-ttl"), show=_seconds),
    Flag("metrics.fs-label", ("fs_label",), "add an fs label (the Lustre filesystem name) to "
         "the job, process and unattributed metrics", ATTRIBUTION, switch=True),
    Flag("metrics.operations", ("operations",), "also export read and write operations per "
         "second per job and process owner (cluster_*_read_operations, ...)", ATTRIBUTION,
         switch=True),
    Flag("metrics.metadata-by-operation", ("metadata_by_operation",), "add an operation "
         "label (open, close, getattr, ...) to the job, process and unattributed metadata "
         "metrics", ATTRIBUTION, switch=True),
    Flag("metrics.counters", ("counters",), "also export the bytes read and written and the "
         "metadata operations since the exporter started as counters, per account and user, "
         "per process owner and unattributed by reason (cluster_*_bytes_total, "
         "cluster_*_metadata_ops_total); direct mode only", ATTRIBUTION, switch=True),
    Flag("metrics.counters-max-gap", ("counters_max_gap",), "with --metrics.counters, the "
         "longest time an increase query looks back after failed collects; IO before it is "
         "not counted (default {default})", ATTRIBUTION, "DURATION",
         _duration("--metrics.counters-max-gap"), show=_seconds),
    Flag("metrics.counters-min-window", ("counters_min_window",), "with --metrics.counters, "
         "count a collect only this long or more after the last one counted, so that every "
         "increase window holds two Lustre samples; a scrape sooner than that shows the "
         "counters unchanged (default: the --timerange window)", ATTRIBUTION, "DURATION",
         _duration("--metrics.counters-min-window")),
    Flag("mode", ("mode",), "where IO is attributed: direct (here, from per-jobid rates) or "
         "join (only cluster_job_info and cluster_user_info are exported; the recording "
         "rules printed by 'prometheus-cluster-exporter rules' attribute in the TSDB) "
         "(default {default})", SCALE, choices=MODES),
    Flag("join.info-lookback", ("info_lookback",), "how long join mode's rules keep a job's "
         "or user's info series after its last scrape (default {default})", SCALE,
         "DURATION"),
    Flag("metrics.max-series", ("max_series",), "export at most this many owners per job and "
         "process family, the others summed as __other__; 0 for all (default {default})",
         ATTRIBUTION, "N", _number(int, "--metrics.max-series", "a whole number of owners")),
    Flag("metrics.top-jobs", ("top_jobs",), "export the N jobs with the most read + write "
         "throughput by job id, name and partition (cluster_top_job_*); 0 turns them off "
         "(default {default})", ATTRIBUTION, "N",
         _number(int, "--metrics.top-jobs", "a whole number of jobs")),
    Flag("slurm.squeue-path", ("squeue_path",), "squeue executable (default: {default} on "
         "PATH)", COMMANDS, "PATH"),
    Flag("getent.path", ("getent_path",), "getent executable (default: {default} on PATH)",
         COMMANDS, "PATH"),
    Flag("slurm.squeue-json", ("squeue_json",), "run squeue --json instead of the text format "
         "(lists recently ended jobs too)", COMMANDS, switch=True),
    Flag("slurm.sacct-path", ("sacct_path",), "sacct executable (default: {default} on PATH)",
         COMMANDS, "PATH"),
    Flag("max-command-output-bytes", ("max_command_output_bytes",), "kill squeue, getent or "
         "sacct once it has printed more than this, 0 for no limit (default {default})",
         COMMANDS, "BYTES", _number(int, "--max-command-output-bytes", "a number of bytes")),
    Flag("once", ("once",), "collect once, print the metrics to standard output and exit "
         "(status 0 only if scrape_ok is 1); for debugging and the node_exporter textfile "
         "collector", OTHER, switch=True),
    Flag("check-config", ("check",), "check the flags and files (and that the commands "
         "exist), then exit", OTHER, switch=True),
    Flag("demo", ("demo",), "serve a built-in synthetic cluster; no Prometheus or Slurm "
         "needed", OTHER, switch=True),
)  # fmt: skip
