"""``prometheus-cluster-exporter report``: bytes and metadata operations per Slurm account
and user over a period, from the ``--metrics.counters`` series a Prometheus stored, for
chargeback.

The flags, the nine queries through ``sources.promhttp.PrometheusClient`` (the query API
client of the exporter: TLS, basic auth, bearer token files, one deadline per query),
the output (standard output, or ``--output FILE`` written atomically) and the exit codes:
0 done, 1 the server or the output failed or the period has no counters, 2 a bad flag.
Every error is one line on standard error; the server is only ever shown without its
password::

    $ prometheus-cluster-exporter report --promserver=http://prometheus:9090 --last=30d
    Lustre usage report
    Period  2024-05-02 09:12:40 CEST to 2024-06-01 09:12:40 CEST (30d)
    ...
    $ prometheus-cluster-exporter report --promserver=http://prometheus:1 --last=1d
    prometheus-cluster-exporter report: error: cannot query http://prometheus:1: connection
    refused or unreachable (Connection refused)

The models and formats are in ``usage``, ``usageperiod``, ``usagerender`` and
``usagehtml``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import ssl
import sys
import tempfile
import time
from typing import Dict, List, NoReturn, Optional, Tuple

from prometheus_cluster_exporter import usage
from prometheus_cluster_exporter.credentials import read_token
from prometheus_cluster_exporter.errors import SourceError
from prometheus_cluster_exporter.sources.promhttp import PrometheusClient, describe
from prometheus_cluster_exporter.upstream import parse_server_url
from prometheus_cluster_exporter.usagehtml import render_html
from prometheus_cluster_exporter.usageperiod import Period, make_period, utc_iso
from prometheus_cluster_exporter.usagerender import render_csv, render_json, render_text

PROG = "prometheus-cluster-exporter report"
FORMATS = ("text", "csv", "json", "html")
#: The largest answer read (decoded): ample for a hundred thousand users.
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
DEFAULT_TIMEOUT = 120.0


class UsageError(Exception):
    """A bad flag: exit status 2."""


class RunError(Exception):
    """The server, its answers or the output failed: exit status 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see --help)")


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value < 86400:
        raise argparse.ArgumentTypeError(f"expected 0 < seconds < 86400, got {text!r}")
    return value


_FLAGS: Tuple[Tuple[str, str, str], ...] = (
    ("promserver", "URL", "[REQUIRED] Prometheus server that scrapes the exporter, e.g. "
     "http://prometheus:9090 (a user:password@ in it is never shown)"),
    ("from", "DATE", "start: YYYY-MM-DD (local midnight) or YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM] "
     "(no offset: local time)"),
    ("to", "DATE", "end, as --from (default: now)"),
    ("last", "DURATION", "instead of --from: the period ending now, e.g. 30d, 12h, 90m, 2w, 1d12h"),
    ("format", "FORMAT", "text (default, for the terminal, SI units), csv and json (exact "
     "integers) or html (one self-contained page with a bar chart, to mail or print)"),
    ("output", "FILE", "write the report to FILE (replaced atomically) instead of standard output"),
    ("selector", "MATCHERS", "label matchers added to every series, e.g. "
     "'job=\"cluster\",cluster=\"a\"': needed when this Prometheus stores several clusters' "
     "exporters, or an HA pair of exporters that count the same IO (select one of the pair, "
     "e.g. 'instance=\"exporter-a:9846\"', or every byte is counted twice)"),
    ("timeout", "SECONDS", f"deadline of each of the nine queries (default {DEFAULT_TIMEOUT:g})"),
    ("promserver.user", "USER", "basic auth user"),
    ("promserver.password-file", "FILE", "file holding the basic auth password"),
    ("promserver.bearer-token-file", "FILE", "file holding a bearer token"),
    ("promserver.ca-file", "FILE", "CA certificates to verify the server with "
     "(default: the system's)"),
    ("promserver.cert-file", "FILE", "client certificate for mutual TLS"),
    ("promserver.key-file", "FILE", "key of the client certificate"),
)  # fmt: skip


_DESTS = {"from": "start", "to": "end"}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Bytes read and written and metadata operations per Slurm account and "
        "user, outside Slurm jobs per user and unattributed per reason, over a period: the "
        "increase of the exporter's --metrics.counters series (cluster_job_*_total, "
        "cluster_proc_*_total, cluster_unattributed_*_total) stored in Prometheus. Accounts "
        "biggest first, with their share of all bytes. Exit status: 0 done, 1 the server, "
        "its answers or the output failed or there are no counters in the period, 2 a "
        "bad flag.",
        epilog="The numbers are Prometheus's increase() of the counters over the period, "
        "which extrapolates to its ends and takes an exporter restart as a counter reset: "
        "exact for steady IO, close otherwise, not the byte-exact difference of the Lustre "
        "counters. Example: report --promserver=http://prometheus:9090 --from=2024-05-01 "
        "--to=2024-06-01 --selector='job=\"cluster\"' --format=html --output=may.html",
        allow_abbrev=False,
    )
    for name, metavar, text in _FLAGS:
        dest = _DESTS.get(name, name.replace(".", "_").replace("-", "_"))
        options: Dict[str, object] = {"dest": dest}
        options.update(metavar=metavar, help=text.replace("%", "%%"))
        if name == "format":
            options.update(choices=FORMATS, default="text")
        elif name == "timeout":
            options.update(type=_timeout, default=DEFAULT_TIMEOUT)
        parser.add_argument(f"-{name}", f"--{name}", **options)  # type: ignore[arg-type]
    parser.add_argument(
        "-promserver.insecure-skip-verify",
        "--promserver.insecure-skip-verify",
        dest="promserver_insecure",
        action="store_true",
        help="do not verify the server's certificate (testing only)",
    )
    return parser


def _readable(flag: str, path: Optional[str]) -> None:
    if path is not None and not os.access(path, os.R_OK):
        raise UsageError(f"--{flag}: cannot read {path}")


def build_client(options: argparse.Namespace) -> PrometheusClient:
    """The query API client of the flags; UsageError for what is wrong with them."""
    if not options.promserver:
        raise UsageError("--promserver is required (see --help)")
    if options.promserver_password_file and not options.promserver_user:
        raise UsageError("--promserver.password-file needs --promserver.user")
    if bool(options.promserver_cert_file) != bool(options.promserver_key_file):
        raise UsageError("--promserver.cert-file and --promserver.key-file go together")
    for flag in ("password-file", "bearer-token-file", "ca-file", "cert-file", "key-file"):
        _readable(f"promserver.{flag}", getattr(options, f"promserver_{flag.replace('-', '_')}"))
    try:
        server = parse_server_url(options.promserver)
    except ValueError as exc:
        raise UsageError(f"--promserver: {exc}") from None
    basic: Optional[Tuple[str, str]] = None
    if options.promserver_user:
        basic = (options.promserver_user, _password(options.promserver_password_file))
    if options.promserver_bearer_token_file:
        if basic is not None or server.username is not None:
            raise UsageError("--promserver.bearer-token-file and basic auth exclude each other")
        try:
            read_token(options.promserver_bearer_token_file)
        except ValueError as exc:
            raise UsageError(f"--promserver.bearer-token-file: {exc}") from None
    try:
        return PrometheusClient(
            options.promserver,
            max_response_bytes=MAX_RESPONSE_BYTES,
            basic_auth=basic,
            bearer_token_file=options.promserver_bearer_token_file,
            ca_file=options.promserver_ca_file,
            insecure_skip_verify=options.promserver_insecure,
            cert_file=options.promserver_cert_file,
            key_file=options.promserver_key_file,
        )
    except (ssl.SSLError, OSError) as exc:
        raise UsageError(f"the TLS files cannot be used: {describe(exc)}") from None


def _password(path: Optional[str]) -> str:
    if not path:
        return ""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--promserver.password-file: cannot read {path}: {exc}") from None


def _why(exc: SourceError, what: str, client: PrometheusClient) -> str:
    """The reason in the client's message, without the query's name and the API path."""
    text = str(exc)
    for prefix in (f"{what}: ", client.display_url):
        if text.startswith(prefix):
            text = text[len(prefix) :].lstrip(": ")
    return text.replace("the scrape deadline", "the deadline (--timeout)")


def fetch(client: PrometheusClient, period: Period, selector: str, timeout: float) -> usage.Report:
    """The nine queries, one after the other, each evaluated at the period's end."""
    server = client.server.display()
    answers: Dict[Tuple[str, str], usage.Answer] = {}
    for query in usage.queries(period.seconds, selector):
        what = f"{query.kind} {query.field}"
        # The client shifts the instant by the server's clock offset; the period is the
        # server's, so the instant sent is the period's end exactly.
        at = period.end - client.clock_offset
        try:
            body = client.query(query.promql, time.monotonic() + timeout, what, at=at)
            answers[(query.kind, query.field)] = usage.parse_answer(body, query.labels)
        except SourceError as exc:
            raise RunError(f"cannot query {server}: {_why(exc, what, client)}") from None
        except usage.AnswerError as exc:
            raise RunError(f"cannot query {server}: {what}: {exc}") from None
    report = usage.build_report(period, server, selector, answers)
    if report.series == 0:
        span = f"{utc_iso(period.start)} to {utc_iso(period.end)}"
        raise RunError(
            f"no counters for {span} in {server}: is the exporter run with "
            "--metrics.counters and scraped by this Prometheus?"
        )
    return report


def render(report: usage.Report, form: str) -> str:
    if form == "csv":
        return render_csv(report)
    if form == "json":
        return render_json(report)
    if form == "html":
        return render_html(report)
    return render_text(report)


def write_atomically(path: str, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``:
    a reader sees the old file or the whole new one, never a part."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        mode = os.stat(path).st_mode & 0o7777
    except OSError:
        mask = os.umask(0o22)
        os.umask(mask)
        mode = 0o666 & ~mask
    fd, temporary = tempfile.mkstemp(
        prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory
    )
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def run(argv: List[str], now: float) -> str:
    """The report the flags ask for, rendered; UsageError or RunError."""
    options = build_parser().parse_args(argv)
    try:
        period = make_period(options.start, options.end, options.last, now)
        selector = usage.check_selector(options.selector or "")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    client = build_client(options)
    report = fetch(client, period, selector, options.timeout)
    text = render(report, options.format)
    if options.output:
        try:
            write_atomically(options.output, text.encode("utf-8"))
        except OSError as exc:
            raise RunError(f"cannot write {options.output}: {exc.strerror or exc}") from None
        return ""
    return text


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    # The query client logs for the exporter's scrapes (a skewed server clock shifts
    # their instant; here the period's end is sent as it is): not for this command.
    logging.getLogger("prometheus_cluster_exporter").addHandler(logging.NullHandler())
    try:
        text = run(args, time.time())
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except RunError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    if text:
        sys.stdout.flush()
        out = getattr(sys.stdout, "buffer", None)
        if out is None:  # a replaced standard output
            sys.stdout.write(text)
        else:
            out.write(text.encode("utf-8"))
        sys.stdout.flush()
    return 0
