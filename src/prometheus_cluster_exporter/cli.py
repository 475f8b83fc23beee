"""Command line entry point: parse the flags, then serve, collect once or check.

``main`` -> ``flags.parse_args`` (mode and Config) -> ``wiring`` (sources, collector,
page) -> ``http.ExporterServer``. This module keeps the process concerns: logging, the
listening socket, signals and shutdown.
"""

from __future__ import annotations

import dataclasses
import logging
import shlex
import signal
import sys
import threading
from typing import List, Optional

from prometheus_cluster_exporter import __version__
from prometheus_cluster_exporter.config import Config, ConfigError
from prometheus_cluster_exporter.flags import CHECK, ONCE, PROG, parse_args, rules_flags
from prometheus_cluster_exporter.guard import GuardedCollector
from prometheus_cluster_exporter.http import ExporterServer
from prometheus_cluster_exporter.joinrules import render_rules
from prometheus_cluster_exporter.logs import setup_logging
from prometheus_cluster_exporter.memory import limit_malloc_arenas
from prometheus_cluster_exporter.status import config_summary, render_status_page
from prometheus_cluster_exporter.webconfig import WebConfig
from prometheus_cluster_exporter.wiring import (
    MetricsPage,
    Sources,
    build_collector,
    build_sources,
    check_sources,
    join_plan,
)

log = logging.getLogger("prometheus_cluster_exporter")


def reload(config: Config, server: ExporterServer) -> None:
    """SIGHUP: re-read the web config file; say what else is re-read, and what is not."""
    if not config.web_config_file:
        log.info(
            "Received SIGHUP: no web config file to re-read (the bearer token file is "
            "re-read when it changes; other settings need a restart)"
        )
        return
    from prometheus_cluster_exporter.webconfig import load_web_config

    try:
        server.reload_web(load_web_config(config.web_config_file))
    except ValueError as exc:  # ConfigError, or TLS switched on or off
        log.error("Received SIGHUP: keeping the web config in use: %s", exc)
        return
    log.info("Received SIGHUP: re-read %s; flags need a restart", config.web_config_file)


def once(collector: GuardedCollector) -> int:
    """--once: one collect to standard output; 0 only if scrape_ok is 1."""
    sys.stdout.buffer.write(MetricsPage(collector, process_metrics=False)())
    sys.stdout.flush()
    collector.close()
    return 0 if collector.last is not None and collector.last.ok else 1


def listen(config: Config, page: MetricsPage, web: Optional[WebConfig] = None) -> ExporterServer:
    """Bind the configured address; "all interfaces" is dual-stack where IPv6 exists."""
    hosts = [config.listen_host] if config.listen_host else ["::", "0.0.0.0"]  # noqa: S104
    error: Optional[OSError] = None
    for host in hosts:
        try:
            return ExporterServer(
                (host, config.port),
                page,
                metrics_gzip=page.gzip,
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
    if args[:1] == ["rules"]:
        return print_rules(args[1:])
    if args[:1] == ["report"]:
        from prometheus_cluster_exporter import usagecli

        return usagecli.main(args[1:])
    invocation = parse_args(args)
    mode, config = invocation.mode, invocation.config
    arenas_limited = limit_malloc_arenas()  # before any thread starts
    setup_logging(config.log_level, config.log_format)
    log.debug("malloc arenas limited to one: %s", arenas_limited)
    web = None
    if config.web_config_file:
        from prometheus_cluster_exporter.webconfig import load_web_config

        try:
            web = load_web_config(config.web_config_file)
        except ConfigError as exc:
            print(f"{PROG}: error: {exc}", file=sys.stderr)
            return 2
    sources = build_sources(config, demo=mode.demo)
    if mode.action == CHECK:
        return check(config, sources)
    collector = build_collector(config, sources)
    if mode.action == ONCE:
        return once(collector)
    return serve(config, sources, collector, web)


def print_rules(args: List[str]) -> int:
    """``rules [flags]``: join mode's recording rules for these flags, on standard output.
    The header repeats the settings the rules depend on, never the other flags (the
    server's URL may hold a password)."""
    config = parse_args(args, rules=True).config
    shown = " ".join(shlex.quote(flag) for flag in rules_flags(config))
    header = (
        f"Recording rules of {PROG} --mode=join (version {__version__}), printed by",
        f"  {PROG} rules {shown}".rstrip().replace("\n", "\\n"),
        "They record cluster_job_*, cluster_proc_* and cluster_unattributed_* under the",
        "names and labels of direct mode, from the Lustre series and the exporter's",
        "cluster_job_info and cluster_user_info: load them where both are stored",
        "(Prometheus rule_files, Thanos Ruler, Mimir's ruler, vmalert -rule).",
        "",
    )
    sys.stdout.write(render_rules(join_plan(config), header))
    return 0


def check(config: Config, sources: Sources) -> int:
    """--check-config: the commands exist, the query API answers, the collector can be
    built."""
    problems = check_sources(sources, config.timeout)
    for problem in problems:
        print(f"{PROG}: error: {problem}", file=sys.stderr)
    if problems:
        return 2
    build_collector(config, sources).close()
    print(f"{PROG}: configuration OK")
    return 0


def serve(
    config: Config, sources: Sources, collector: GuardedCollector, web: Optional[WebConfig]
) -> int:
    """Serve the metrics and the status page until SIGTERM or SIGINT."""
    try:
        server = listen(config, MetricsPage(collector), web)
    except OSError as exc:
        where = f"{config.listen_host or '*'}:{config.port}"
        print(f"{PROG}: error: cannot listen on {where}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    wake = threading.Event()
    signals: List[int] = []

    def _signal(signum: int, _frame: object) -> None:
        signals.append(signum)
        wake.set()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _signal)
    host, port = str(server.server_address[0]), server.server_address[1]
    shown = f"[{host}]" if ":" in str(host) else host
    log.info("Exporter %s started, querying %s", __version__, sources.description)
    scheme = "https" if web is not None and web.ssl_context is not None else "http"
    listening = f"{scheme}://{shown}:{port}{config.telemetry_path}"
    # The demo shows the operations families (and metadata by operation) whatever the flags say.
    shown_config = (
        dataclasses.replace(config, operations=True, metadata_by_operation=True)
        if sources.demo
        else config
    )
    summary = config_summary(shown_config, sources.description, listening)
    server.landing_page = lambda: render_status_page(collector.last, summary, config.telemetry_path)
    log.info("Listening on %s", listening)
    if web is not None:
        log.info("Web access: %s", web.describe())
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    while True:
        wake.wait()
        wake.clear()
        received = [signals.pop(0) for _ in range(len(signals))]
        stops = [signum for signum in received if signum != signal.SIGHUP]
        if stops:
            log.info("Received %s, shutting down", signal.Signals(stops[0]).name)
            break
        reload(config, server)
    # Closes the listening socket and every connection; page calls still running are
    # waited for at most a couple of seconds (they run on daemon threads). Then the
    # commands a collect still runs are stopped: a hung squeue must not outlive us.
    server.shutdown()
    server.server_close()
    collector.close()
    killed = sources.close()
    if killed:
        log.info("Killed %d command(s) still running", killed)
    log.info("Exporter finished")
    return 0
