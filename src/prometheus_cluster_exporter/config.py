"""Validated, immutable configuration.

``Config`` is built once at start-up from the command line (see ``flags``); every value
is checked in ``__post_init__`` so a bad setting stops the exporter with one clear
message instead of failing later, on a scrape. It holds settings only: how the exporter
runs (serve, ``--once``, ``--check-config``, ``--demo``) is ``flags.Mode``. The defaults
defined here are the flags' defaults.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Optional, Tuple

from prometheus_cluster_exporter.credentials import read_token
from prometheus_cluster_exporter.jobid import DEFAULT_FORMATS, tokenize
from prometheus_cluster_exporter.logs import FORMATS
from prometheus_cluster_exporter.upstream import parse_server_url

JOB_GRACE_MARGIN = 60.0
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)?")
LOG_LEVELS = ("ERROR", "WARNING", "INFO", "DEBUG", "TRACE")
LOG_FORMATS = FORMATS
RATE_FUNCTIONS = ("irate", "rate")
#: Where IO is attributed: here (direct) or by recording rules in the TSDB (join).
DIRECT, JOIN = "direct", "join"
MODES = (DIRECT, JOIN)
#: The settings join mode's rules depend on (``rules`` takes only these from its flags).
RULES_SETTINGS = (
    "rate_function",
    "timerange",
    "read_metric",
    "write_metric",
    "stats_metric",
    "read_samples_metric",
    "write_samples_metric",
    "operations",
    "metadata_by_operation",
    "jobid_label",
    "target_label",
    "mdt_target_regex",
    "jobid_formats",
    "fs_label",
    "max_series",
    "info_lookback",
)

#: The most top jobs exported (each is a series in three families).
MAX_TOP_JOBS = 1000

_TIMERANGE = re.compile(r"[0-9]{1,3}[smhd]")
_PROMQL_DURATION = re.compile(r"[1-9][0-9]{0,5}[smhd]")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_METRIC = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


class ConfigError(ValueError):
    """A setting is invalid; the message names the flag and the problem."""


def parse_listen_address(address: str) -> Tuple[str, int]:
    """``[host]:port`` (``:9846``, ``127.0.0.1:9846``, ``[::1]:9846``) -> (host, port)."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ConfigError(f"--web.listen-address: expected [host]:port, got {address!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    port = int(port_text)
    if port > 65535:
        raise ConfigError(f"--web.listen-address: port {port} is out of range")
    return host, port


_NOT_RE2 = (
    ("(?=", "lookahead"),
    ("(?!", "negative lookahead"),
    ("(?<=", "lookbehind"),
    ("(?<!", "negative lookbehind"),
    ("(?>", "atomic group"),
    ("(?(", "conditional"),
    ("(?P=", "backreference"),
    ("*+", "possessive quantifier"),
    ("++", "possessive quantifier"),
    ("?+", "possessive quantifier"),
)


def re2_problem(regex: str) -> Optional[str]:
    """What in ``regex`` Prometheus' regular expressions (RE2 syntax) do not accept, or
    None. Escaped characters are skipped; ``\\1``-``\\9`` are backreferences."""
    plain = []
    i = 0
    while i < len(regex):
        if regex[i] == "\\" and i + 1 < len(regex):
            if regex[i + 1] in "123456789":
                return f"backreference \\{regex[i + 1]}"
            if regex[i + 1] == "Z":
                return "\\Z (RE2 spells it \\z)"
            plain.append("..")  # an escaped character: never part of a construct
            i += 2
            continue
        plain.append(regex[i])
        i += 1
    text = "".join(plain)
    for token, name in _NOT_RE2:
        if token in text:
            return f"{name} {token!r}"
    return None


def parse_duration(text: str, flag: str) -> float:
    """``90``, ``90s``, ``1.5m``, ``500ms``, ``1h`` -> seconds."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise ConfigError(f"{flag}: expected a duration such as 90s, 5m or 1h, got {text!r}")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]


@dataclass(frozen=True)
class Config:
    promserver: Optional[str] = None
    listen_host: str = ""
    port: int = 9846
    timeout: float = 15.0
    timerange: str = "1m"
    log_level: str = "INFO"
    log_format: str = "text"
    rate_function: str = "irate"
    read_metric: str = "lustre_job_read_bytes_total"
    write_metric: str = "lustre_job_write_bytes_total"
    stats_metric: str = "lustre_job_stats_total"
    read_samples_metric: str = "lustre_job_read_samples_total"
    write_samples_metric: str = "lustre_job_write_samples_total"
    #: --metrics.operations: read and write operations per second, attributed like bytes.
    operations: bool = False
    #: --metrics.metadata-by-operation: the metadata families by operation too.
    metadata_by_operation: bool = False
    jobid_label: str = "jobid"
    target_label: str = "target"
    mdt_target_regex: str = ".*-MDT[0-9a-fA-F]{4}"
    squeue_path: str = "squeue"
    getent_path: str = "getent"
    max_response_bytes: int = 256 * 1024 * 1024
    max_command_output_bytes: int = 256 * 1024 * 1024
    telemetry_path: str = "/metrics"
    jobid_formats: Tuple[str, ...] = DEFAULT_FORMATS
    squeue_json: bool = False
    sacct: bool = False
    sacct_path: str = "sacct"
    #: Seconds a job is remembered after squeue last listed it; None: window + 60 s.
    job_grace: Optional[float] = None
    getent_cache_ttl: float = 300.0
    fs_label: bool = False
    #: Owners kept per job and process family, the rest summed as __other__; 0: all.
    max_series: int = 0
    #: --metrics.top-jobs: the jobs with the most read + write throughput; 0: off.
    top_jobs: int = 10
    #: --metrics.counters: bytes and metadata operations since the start, as counters.
    counters: bool = False
    #: --metrics.counters-max-gap: the longest window an increase query asks (seconds).
    counters_max_gap: float = 3600.0
    #: --metrics.counters-min-window (seconds); None: the --timerange window.
    counters_min_window: Optional[float] = None
    web_config_file: Optional[str] = None
    promserver_user: Optional[str] = None
    promserver_password_file: Optional[str] = None
    promserver_bearer_token_file: Optional[str] = None
    promserver_ca_file: Optional[str] = None
    promserver_cert_file: Optional[str] = None
    promserver_key_file: Optional[str] = None
    promserver_insecure: bool = False
    mode: str = DIRECT
    #: How long join mode's rules keep an info series after its last scrape (PromQL).
    info_lookback: str = "5m"

    def _check_upstream_auth(self) -> None:
        if self.promserver_password_file and not self.promserver_user:
            raise ConfigError("--promserver.password-file needs --promserver.user")
        if self.promserver_bearer_token_file and (
            self.promserver_user
            or (self.promserver and parse_server_url(self.promserver).username is not None)
        ):
            raise ConfigError("--promserver.bearer-token-file and basic auth exclude each other")
        if bool(self.promserver_cert_file) != bool(self.promserver_key_file):
            raise ConfigError("--promserver.cert-file and --promserver.key-file go together")
        for flag, path in (
            ("--promserver.password-file", self.promserver_password_file),
            ("--promserver.bearer-token-file", self.promserver_bearer_token_file),
            ("--promserver.ca-file", self.promserver_ca_file),
            ("--promserver.cert-file", self.promserver_cert_file),
            ("--promserver.key-file", self.promserver_key_file),
            ("--web.config.file", self.web_config_file),
        ):
            if path is not None and not os.access(path, os.R_OK):
                raise ConfigError(f"{flag}: cannot read {path}")
        if self.promserver_bearer_token_file:
            try:
                read_token(self.promserver_bearer_token_file)
            except ValueError as exc:
                raise ConfigError(f"--promserver.bearer-token-file: {exc}") from None

    def promserver_password(self) -> str:
        """The upstream basic-auth password (read from its file; never logged)."""
        if not self.promserver_password_file:
            return ""
        with open(self.promserver_password_file) as handle:
            return handle.read().rstrip("\r\n")

    @property
    def window_seconds(self) -> float:
        return int(self.timerange[:-1]) * _UNIT_SECONDS[self.timerange[-1]]

    @property
    def effective_job_grace(self) -> float:
        grace = self.job_grace
        return self.window_seconds + JOB_GRACE_MARGIN if grace is None else grace

    @property
    def effective_counters_min_window(self) -> float:
        window = self.counters_min_window
        return self.window_seconds if window is None else window

    def __post_init__(self) -> None:
        self._check_server()
        self._check_queries()
        self._check_limits_and_paths()
        self._check_attribution()
        self._check_upstream_auth()

    def _check_server(self) -> None:
        if self.promserver:
            try:
                parse_server_url(self.promserver)
            except ValueError as exc:
                raise ConfigError(f"--promserver: {exc}") from None
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port: {self.port} is out of range 0-65535")
        if not 0 < self.timeout <= 3600:
            raise ConfigError(
                f"--timeout: must be more than 0 and at most 3600 seconds, got {self.timeout:g}"
            )
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(
                f"--log.level: expected one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}"
            )
        if self.log_format not in LOG_FORMATS:
            raise ConfigError(
                f"--log.format: expected one of {', '.join(LOG_FORMATS)}, got {self.log_format!r}"
            )
        if not self.telemetry_path.startswith("/") or self.telemetry_path == "/":
            raise ConfigError("--web.telemetry-path: must start with / and not be /")

    def _check_queries(self) -> None:
        if not _TIMERANGE.fullmatch(self.timerange):
            raise ConfigError(
                f"--timerange: expected 1-3 digits and a unit s|m|h|d (e.g. 1m), "
                f"got {self.timerange!r}"
            )
        if int(self.timerange[:-1]) == 0:
            raise ConfigError("--timerange: must not be zero")
        if self.rate_function not in RATE_FUNCTIONS:
            raise ConfigError(
                f"--query.rate-function: expected irate or rate, got {self.rate_function!r}"
            )
        for flag, value in (
            ("--lustre.read-metric", self.read_metric),
            ("--lustre.write-metric", self.write_metric),
            ("--lustre.stats-metric", self.stats_metric),
            ("--lustre.read-samples-metric", self.read_samples_metric),
            ("--lustre.write-samples-metric", self.write_samples_metric),
        ):
            if not _METRIC.fullmatch(value):
                raise ConfigError(f"{flag}: {value!r} is not a valid metric name")
        for flag, value in (
            ("--lustre.jobid-label", self.jobid_label),
            ("--lustre.target-label", self.target_label),
        ):
            if not _LABEL.fullmatch(value):
                raise ConfigError(f"{flag}: {value!r} is not a valid label name")
        try:
            re.compile(self.mdt_target_regex)
        except re.error as exc:
            raise ConfigError(f"--lustre.mdt-target-regex: {exc}") from None
        if '"' in self.mdt_target_regex:
            raise ConfigError("--lustre.mdt-target-regex: must not contain a double quote")
        problem = re2_problem(self.mdt_target_regex)
        if problem is not None:
            raise ConfigError(
                f"--lustre.mdt-target-regex: Prometheus (RE2) does not support {problem}"
            )

    def _check_limits_and_paths(self) -> None:
        for flag, size in (
            ("--max-response-bytes", self.max_response_bytes),
            ("--max-command-output-bytes", self.max_command_output_bytes),
        ):
            if size < 0:
                raise ConfigError(f"{flag}: must be 0 (no limit) or positive")
        for flag, value in (
            ("--slurm.squeue-path", self.squeue_path),
            ("--getent.path", self.getent_path),
            ("--slurm.sacct-path", self.sacct_path),
        ):
            if not value:
                raise ConfigError(f"{flag}: must not be empty")

    def _check_attribution(self) -> None:
        if not self.jobid_formats:
            raise ConfigError("--lustre.jobid-format: at least one format is needed")
        for fmt in self.jobid_formats:
            try:
                tokenize(fmt)
            except ValueError as exc:
                raise ConfigError(f"--lustre.jobid-format: {exc}") from None
        if self.job_grace is not None and self.job_grace < 0:
            raise ConfigError("--slurm.job-grace-period: must not be negative")
        if self.getent_cache_ttl < 0:
            raise ConfigError("--getent.cache-ttl: must not be negative")
        if self.mode not in MODES:
            raise ConfigError(f"--mode: expected direct or join, got {self.mode!r}")
        if not _PROMQL_DURATION.fullmatch(self.info_lookback):
            raise ConfigError(
                "--join.info-lookback: expected a number and a unit s|m|h|d (e.g. 5m), "
                f"got {self.info_lookback!r}"
            )
        if self.max_series < 0:
            raise ConfigError("--metrics.max-series: must be 0 (no budget) or positive")
        if self.counters_max_gap <= 0:
            raise ConfigError("--metrics.counters-max-gap: must be more than 0")
        if not 0 <= self.effective_counters_min_window < self.counters_max_gap:
            raise ConfigError("--metrics.counters-min-window: 0 up to --metrics.counters-max-gap")
        if self.counters and self.mode == JOIN:
            raise ConfigError("--metrics.counters: direct mode only, not with --mode=join")
        if not 0 <= self.top_jobs <= MAX_TOP_JOBS:
            raise ConfigError(
                f"--metrics.top-jobs: must be 0 (off) to {MAX_TOP_JOBS}, got {self.top_jobs}"
            )
