"""Command line: flags compatible with the Go exporter, plus new dotted flags.

Every flag is accepted as ``-flag value``, ``-flag=value``, ``--flag value`` and
``--flag=value``, as Go's flag package does, so existing systemd options files keep
working unchanged.
"""

from __future__ import annotations

import argparse
import logging
import platform
import shutil
import signal
import sys
import threading
from typing import Any, Callable, List, NoReturn, Optional, Sequence

from prometheus_client import GCCollector, PlatformCollector, ProcessCollector, generate_latest
from prometheus_client.registry import CollectorRegistry

from prometheus_cluster_exporter import __version__
from prometheus_cluster_exporter.collector import ClusterCollector, gc_paused
from prometheus_cluster_exporter.config import (
    DEFAULT_GETENT_CACHE_TTL,
    DEFAULT_MAX_COMMAND_OUTPUT_BYTES,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_PORT,
    DEFAULT_TIMEOUT,
    DEFAULT_TIMERANGE,
    JOB_GRACE_MARGIN,
    LOG_LEVELS,
    Config,
    ConfigError,
    parse_duration,
    parse_listen_address,
)
from prometheus_cluster_exporter.exposition import RowFamily, render
from prometheus_cluster_exporter.http import ExporterServer
from prometheus_cluster_exporter.jobid import DEFAULT_FORMATS, JobidGrammar
from prometheus_cluster_exporter.metrics import BUILD_INFO, TIMEOUT_SECONDS
from prometheus_cluster_exporter.status import render_status_page
from prometheus_cluster_exporter.webconfig import WebConfig

log = logging.getLogger("prometheus_cluster_exporter")

TRACE = 5
PROG = "prometheus-cluster-exporter"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: error: {message} (see --help)\n")


def _flag(parser: Any, name: str, **kwargs: Any) -> None:
    parser.add_argument(f"-{name}", f"--{name}", **kwargs)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Prometheus exporter for Lustre IO throughput and metadata operations "
        "per Slurm account/user and per process name/user/group.",
        allow_abbrev=False,
    )
    g = p.add_argument_group("flags of the original exporter")
    _flag(
        g,
        "promserver",
        metavar="URL",
        help="[REQUIRED unless --demo] Prometheus server to query, e.g. http://prometheus-server:9090",
    )
    _flag(
        g,
        "port",
        type=int,
        default=None,
        metavar="PORT",
        help=f"port to listen on for HTTP requests (default {DEFAULT_PORT})",
    )
    _flag(
        g,
        "timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="deadline in seconds for every external call of a scrape: each Prometheus "
        f"query, squeue and getent (default {DEFAULT_TIMEOUT:g})",
    )
    _flag(
        g,
        "timerange",
        default=DEFAULT_TIMERANGE,
        metavar="RANGE",
        help="range of the rate function: 1-3 digits and a unit s, m, h or d "
        f"(default {DEFAULT_TIMERANGE})",
    )
    _flag(
        g,
        "log",
        default="INFO",
        metavar="LEVEL",
        type=str.upper,
        help=f"log level: {', '.join(LOG_LEVELS)} (default INFO)",
    )
    _flag(g, "version", action="store_true", help="print the version and exit")

    w = p.add_argument_group("web")
    _flag(
        w,
        "web.listen-address",
        dest="listen_address",
        metavar="[HOST]:PORT",
        help="address to listen on, e.g. 127.0.0.1:9846 (overrides --port; default :9846)",
    )
    _flag(
        w,
        "web.telemetry-path",
        dest="telemetry_path",
        default="/metrics",
        metavar="PATH",
        help="path of the metrics (default /metrics)",
    )

    _flag(
        w,
        "web.config.file",
        dest="web_config_file",
        metavar="FILE",
        help="TLS and basic auth, in the exporter-toolkit web configuration format",
    )

    u = p.add_argument_group("upstream (Prometheus, Thanos, VictoriaMetrics) access")
    _flag(
        u,
        "promserver.user",
        dest="promserver_user",
        metavar="USER",
        help="basic auth user for the query API",
    )
    _flag(
        u,
        "promserver.password-file",
        dest="promserver_password_file",
        metavar="FILE",
        help="file holding the basic auth password",
    )
    _flag(
        u,
        "promserver.bearer-token-file",
        dest="promserver_bearer_token_file",
        metavar="FILE",
        help="file holding a bearer token (re-read when it changes)",
    )
    _flag(
        u,
        "promserver.ca-file",
        dest="promserver_ca_file",
        metavar="FILE",
        help="CA certificates to verify the server with (default: the system's)",
    )
    _flag(
        u,
        "promserver.cert-file",
        dest="promserver_cert_file",
        metavar="FILE",
        help="client certificate for mutual TLS",
    )
    _flag(
        u,
        "promserver.key-file",
        dest="promserver_key_file",
        metavar="FILE",
        help="key of the client certificate",
    )
    _flag(
        u,
        "promserver.insecure-skip-verify",
        dest="promserver_insecure",
        action="store_true",
        help="do not verify the server's certificate (testing only)",
    )

    q = p.add_argument_group("queries")
    _flag(
        q,
        "query.rate-function",
        dest="rate_function",
        default="irate",
        choices=("irate", "rate"),
        help="PromQL rate function (default irate, as the original)",
    )
    _flag(
        q,
        "lustre.read-metric",
        dest="read_metric",
        default="lustre_job_read_bytes_total",
        metavar="NAME",
        help="read bytes counter (default lustre_job_read_bytes_total)",
    )
    _flag(
        q,
        "lustre.write-metric",
        dest="write_metric",
        default="lustre_job_write_bytes_total",
        metavar="NAME",
        help="write bytes counter (default lustre_job_write_bytes_total)",
    )
    _flag(
        q,
        "lustre.stats-metric",
        dest="stats_metric",
        default="lustre_job_stats_total",
        metavar="NAME",
        help="metadata operations counter (default lustre_job_stats_total)",
    )
    _flag(
        q,
        "lustre.jobid-label",
        dest="jobid_label",
        default="jobid",
        metavar="LABEL",
        help="label holding the Lustre jobid (default jobid)",
    )
    _flag(
        q,
        "lustre.target-label",
        dest="target_label",
        default="target",
        metavar="LABEL",
        help="label holding the Lustre target (default target)",
    )
    _flag(
        q,
        "lustre.mdt-target-regex",
        dest="mdt_target_regex",
        default=".*-MDT[0-9a-fA-F]{4}",
        metavar="REGEX",
        help="targets counted as metadata targets (fully anchored; default .*-MDT[0-9a-fA-F]{4})",
    )
    _flag(
        q,
        "max-response-bytes",
        dest="max_response_bytes",
        type=int,
        default=DEFAULT_MAX_RESPONSE_BYTES,
        metavar="BYTES",
        help="abandon a query answer larger than this, 0 for no limit "
        f"(default {DEFAULT_MAX_RESPONSE_BYTES})",
    )

    a = p.add_argument_group("attribution")
    _flag(a, "lustre.jobid-format", dest="jobid_formats", action="append", metavar="FORMAT",
          help="a jobid form in Lustre jobid_name codes (%%e %%u %%g %%j %%h %%H %%p); repeat "
          "for several, tried in order (default: %%j then %%e.%%u)")  # fmt: skip
    _flag(a, "slurm.job-grace-period", dest="job_grace", metavar="DURATION",
          help="keep attributing a job this long after squeue last listed it "
          f"(default: the --timerange window plus {JOB_GRACE_MARGIN:g}s)")  # fmt: skip
    _flag(
        a,
        "slurm.sacct",
        dest="sacct",
        action="store_true",
        help="look up job ids unknown to squeue with sacct (needs slurmdbd accounting)",
    )
    _flag(a, "getent.cache-ttl", dest="getent_cache_ttl", metavar="DURATION",
          default=f"{DEFAULT_GETENT_CACHE_TTL:g}s",
          help="reuse the passwd/group enumeration and keyed lookups this long; 0 to "
          f"enumerate on every scrape (default {DEFAULT_GETENT_CACHE_TTL:g}s)")  # fmt: skip
    _flag(a, "metrics.fs-label", dest="fs_label", action="store_true",
          help="add an fs label (the Lustre filesystem name) to the job, process and "
          "unattributed metrics")  # fmt: skip

    s = p.add_argument_group("commands")
    _flag(
        s,
        "slurm.squeue-path",
        dest="squeue_path",
        default="squeue",
        metavar="PATH",
        help="squeue executable (default: squeue on PATH)",
    )
    _flag(
        s,
        "getent.path",
        dest="getent_path",
        default="getent",
        metavar="PATH",
        help="getent executable (default: getent on PATH)",
    )
    _flag(
        s,
        "slurm.squeue-json",
        dest="squeue_json",
        action="store_true",
        help="run squeue --json instead of the text format (lists recently ended jobs too)",
    )
    _flag(
        s,
        "slurm.sacct-path",
        dest="sacct_path",
        default="sacct",
        metavar="PATH",
        help="sacct executable (default: sacct on PATH)",
    )
    _flag(
        s,
        "max-command-output-bytes",
        dest="max_command_output_bytes",
        type=int,
        default=DEFAULT_MAX_COMMAND_OUTPUT_BYTES,
        metavar="BYTES",
        help="kill squeue, getent or sacct once it has printed more than this, 0 for no "
        f"limit (default {DEFAULT_MAX_COMMAND_OUTPUT_BYTES})",
    )

    d = p.add_argument_group("other")
    _flag(d, "once", action="store_true",
          help="collect once, print the metrics to standard output and exit (status 0 "
          "only if scrape_ok is 1); for debugging and the node_exporter textfile collector")  # fmt: skip
    _flag(d, "check-config", dest="check_config", action="store_true",
          help="check the flags and files (and that the commands exist), then exit")  # fmt: skip
    _flag(
        d,
        "demo",
        action="store_true",
        help="serve a built-in synthetic cluster; no Prometheus or Slurm needed",
    )
    return p


def parse_config(argv: Optional[Sequence[str]] = None) -> Config:
    """Parse flags into a validated Config; exits with status 2 and one message on error."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        print(f"{PROG} {__version__}")
        raise SystemExit(0)
    try:
        host, port = "", DEFAULT_PORT
        if args.listen_address is not None:
            host, port = parse_listen_address(args.listen_address)
        elif args.port is not None:
            port = args.port
        return Config(
            promserver=args.promserver,
            listen_host=host,
            port=port,
            timeout=args.timeout,
            timerange=args.timerange,
            log_level=args.log,
            rate_function=args.rate_function,
            read_metric=args.read_metric,
            write_metric=args.write_metric,
            stats_metric=args.stats_metric,
            jobid_label=args.jobid_label,
            target_label=args.target_label,
            mdt_target_regex=args.mdt_target_regex,
            squeue_path=args.squeue_path,
            getent_path=args.getent_path,
            max_response_bytes=args.max_response_bytes,
            max_command_output_bytes=args.max_command_output_bytes,
            telemetry_path=args.telemetry_path,
            demo=args.demo,
            once=args.once,
            check_config=args.check_config,
            jobid_formats=tuple(args.jobid_formats or DEFAULT_FORMATS),
            squeue_json=args.squeue_json,
            sacct=args.sacct,
            sacct_path=args.sacct_path,
            job_grace=(
                None
                if args.job_grace is None
                else parse_duration(args.job_grace, "--slurm.job-grace-period")
            ),
            getent_cache_ttl=parse_duration(args.getent_cache_ttl, "--getent.cache-ttl"),
            fs_label=args.fs_label,
            web_config_file=args.web_config_file,
            promserver_user=args.promserver_user,
            promserver_password_file=args.promserver_password_file,
            promserver_bearer_token_file=args.promserver_bearer_token_file,
            promserver_ca_file=args.promserver_ca_file,
            promserver_cert_file=args.promserver_cert_file,
            promserver_key_file=args.promserver_key_file,
            promserver_insecure=args.promserver_insecure,
        )
    except ConfigError as exc:
        parser.error(str(exc))


def setup_logging(level: str) -> None:
    logging.addLevelName(TRACE, "TRACE")
    logging.basicConfig(
        level=TRACE if level == "TRACE" else getattr(logging, level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def build_collector(config: Config) -> ClusterCollector:
    """Wire the sources named by the configuration into a collector."""
    from prometheus_cluster_exporter.sources import IdentitySource, JobLookup, JobSource
    from prometheus_cluster_exporter.sources import LustreSource as _Lustre
    from prometheus_cluster_exporter.sources.identity import CachedIdentities

    lustre: _Lustre
    jobs: JobSource
    identities: IdentitySource
    job_lookup: Optional[JobLookup] = None
    if config.demo:
        from prometheus_cluster_exporter.sources.demo import demo_sources

        lustre, jobs, identities = demo_sources()
    else:
        from prometheus_cluster_exporter.sources.identity import GetentSource
        from prometheus_cluster_exporter.sources.prometheus import (
            LustreQueries,
            PrometheusClient,
            PrometheusLustreSource,
        )
        from prometheus_cluster_exporter.sources.slurm import (
            CachedJobLookup,
            SacctSource,
            SqueueSource,
        )

        queries = LustreQueries.build(
            rate_function=config.rate_function,
            window=config.timerange,
            read_metric=config.read_metric,
            write_metric=config.write_metric,
            stats_metric=config.stats_metric,
            jobid_label=config.jobid_label,
            target_label=config.target_label,
            mdt_target_regex=config.mdt_target_regex,
            fs_label=config.fs_label,
        )
        client = PrometheusClient(
            config.promserver or "",
            max_response_bytes=config.max_response_bytes,
            basic_auth=(
                (config.promserver_user, config.promserver_password())
                if config.promserver_user
                else None
            ),
            bearer_token_file=config.promserver_bearer_token_file,
            ca_file=config.promserver_ca_file,
            insecure_skip_verify=config.promserver_insecure,
            cert_file=config.promserver_cert_file,
            key_file=config.promserver_key_file,
        )
        lustre = PrometheusLustreSource(client, queries)
        cap = config.max_command_output_bytes
        jobs = SqueueSource(config.squeue_path, json=config.squeue_json, max_output=cap)
        identities = GetentSource(config.getent_path, max_output=cap)
        if config.sacct:
            job_lookup = CachedJobLookup(SacctSource(config.sacct_path, max_output=cap))
    return ClusterCollector(
        lustre,
        jobs,
        CachedIdentities(identities, ttl=config.getent_cache_ttl),
        timeout=config.timeout,
        grammar=JobidGrammar(config.jobid_formats),
        job_lookup=job_lookup,
        job_grace=config.effective_job_grace,
        fs_label=config.fs_label,
    )


BUILD = RowFamily(BUILD_INFO, [((__version__, platform.python_version()), 1.0)])


def metrics_page(collector: ClusterCollector, process_metrics: bool = True) -> Callable[[], bytes]:
    """The body of /metrics: the cluster metrics (fast renderer), the build info, the
    configured timeout and the exporter's own process_*/python_* metrics."""
    constant = [BUILD, RowFamily(TIMEOUT_SECONDS, [((), collector.timeout)])]
    own = CollectorRegistry(auto_describe=False)
    if process_metrics:
        ProcessCollector(registry=own)
        PlatformCollector(registry=own)
        GCCollector(registry=own)

    def page() -> bytes:
        # The pause spans collect and render and ends once the families are freed, so the
        # collection that follows does not walk the whole scrape's data.
        with gc_paused():
            body = render([*collector.scrape(), *constant])
        return body + generate_latest(own)

    return page


def check_commands(config: Config) -> List[str]:
    """Problems with the commands the configuration names (for --check-config)."""
    if config.demo:
        return []
    commands = [("--slurm.squeue-path", config.squeue_path), ("--getent.path", config.getent_path)]
    if config.sacct:
        commands.append(("--slurm.sacct-path", config.sacct_path))
    return [
        f"{flag}: {path} not found or not executable"
        for flag, path in commands
        if shutil.which(path) is None
    ]


def once(collector: ClusterCollector) -> int:
    """--once: one collect to standard output; 0 only if scrape_ok is 1."""
    sys.stdout.buffer.write(metrics_page(collector, process_metrics=False)())
    sys.stdout.flush()
    collector.close()
    return 0 if collector.last is not None and collector.last.ok else 1


def listen(
    config: Config, page: Callable[[], bytes], web: Optional[WebConfig] = None
) -> ExporterServer:
    """Bind the configured address; "all interfaces" is dual-stack where IPv6 exists."""
    hosts = [config.listen_host] if config.listen_host else ["::", "0.0.0.0"]  # noqa: S104
    error: Optional[OSError] = None
    for host in hosts:
        try:
            return ExporterServer(
                (host, config.port),
                page,
                telemetry_path=config.telemetry_path,
                web=web,
            )
        except OSError as exc:
            error = exc
    assert error is not None  # noqa: S101
    raise error


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["simulate"]:
        from prometheus_cluster_exporter import simulate

        return simulate.main(args[1:])
    config = parse_config(args)
    setup_logging(config.log_level)
    web = None
    if config.web_config_file:
        from prometheus_cluster_exporter.webconfig import load_web_config

        try:
            web = load_web_config(config.web_config_file)
        except ConfigError as exc:
            print(f"{PROG}: error: {exc}", file=sys.stderr)
            return 2
    if config.check_config:
        problems = check_commands(config)
        for problem in problems:
            print(f"{PROG}: error: {problem}", file=sys.stderr)
        if problems:
            return 2
        build_collector(config).close()
        print(f"{PROG}: configuration OK")
        return 0
    collector = build_collector(config)
    if config.once:
        return once(collector)
    page = metrics_page(collector)
    try:
        server = listen(config, page, web)
    except OSError as exc:
        where = f"{config.listen_host or '*'}:{config.port}"
        print(f"{PROG}: error: cannot listen on {where}: {exc.strerror or exc}", file=sys.stderr)
        return 1

    stop = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        log.info("Received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    host, port = str(server.server_address[0]), server.server_address[1]
    shown = f"[{host}]" if ":" in str(host) else host
    source = "demo cluster" if config.demo else f"Prometheus at {_redacted(config.promserver)}"
    log.info("Exporter %s started, querying %s", __version__, source)
    scheme = "https" if web is not None and web.ssl_context is not None else "http"
    listening = f"{scheme}://{shown}:{port}{config.telemetry_path}"
    server.landing_page = lambda: render_status_page(
        config, collector, config.telemetry_path, listening
    )
    log.info("Listening on %s", listening)
    if web is not None:
        log.info("Web access: %s", web.describe())

    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    stop.wait()
    # Closes the listening socket and every connection; page calls still running are
    # waited for at most a couple of seconds (they run on daemon threads).
    _shut_down(server, collector)
    log.info("Exporter finished")
    return 0


def _shut_down(server: ExporterServer, collector: ClusterCollector) -> None:
    """Stop serving, then stop the commands a collect still runs (a hung squeue must not
    outlive the exporter)."""
    from prometheus_cluster_exporter.sources.command import kill_running

    server.shutdown()
    server.server_close()
    collector.close()
    killed = kill_running()
    if killed:
        log.info("Killed %d command(s) still running", killed)


def _redacted(url: Optional[str]) -> str:
    from prometheus_cluster_exporter.upstream import redact_url

    return redact_url(url or "")
