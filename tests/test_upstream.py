"""The Prometheus client under a slow and hostile upstream: one deadline for the whole
call, a size cap on the decoded answer, credentials that never leak, one evaluation time."""

from __future__ import annotations

import gzip
import time
import zlib
from pathlib import Path
from typing import Callable

import pytest

from prometheus_cluster_exporter.config import Config, ConfigError
from prometheus_cluster_exporter.errors import SourceError
from prometheus_cluster_exporter.sources.prometheus import PrometheusClient
from tests.helpers import JOB_READ, OK, Exporter, FakePrometheus, key

Start = Callable[..., Exporter]
READ_QUERY = "sum by(jobid)(irate(lustre_job_read_bytes_total[1m]) != 0)"
EMPTY = b'{"status":"success","data":{"resultType":"vector","result":[]}}'


@pytest.mark.parametrize("what", ["headers", "body"])
def test_a_trickling_answer_ends_at_the_deadline(
    fake_prometheus: FakePrometheus, what: str
) -> None:
    # One byte every 0.2 s: each read is quick, so only a deadline for the whole call ends
    # it. The headers alone take about 20 s to arrive, the body about 100 s.
    body = fake_prometheus.answers["read"].body
    fake_prometheus.set("read", body if what == "body" else EMPTY, trickle=0.2)
    client = PrometheusClient(fake_prometheus.url)
    started = time.monotonic()
    with pytest.raises(SourceError, match="not complete by the scrape deadline"):
        client.query(READ_QUERY, time.monotonic() + 2, "read query")
    assert time.monotonic() - started < 2 + 3


def test_the_client_sends_one_evaluation_time(fake_prometheus: FakePrometheus) -> None:
    client = PrometheusClient(fake_prometheus.url)
    client.query(READ_QUERY, time.monotonic() + 30, "read query", at=1733090000.5)
    assert fake_prometheus.params[-1]["time"] == "1733090000.500"
    assert fake_prometheus.params[-1]["timeout"].endswith("ms")


def test_the_three_queries_of_a_scrape_share_one_evaluation_time(
    start_exporter: Start, fake_prometheus: FakePrometheus
) -> None:
    exporter = start_exporter()
    before = time.time()
    exporter.scrape()
    after = time.time()
    stamps = {p["time"] for p in fake_prometheus.params}
    assert len(fake_prometheus.params) == 3 and len(stamps) == 1
    assert before - 1 <= float(stamps.pop()) <= after + 1


def test_slow_upstream_never_blocks_a_later_scrape(
    start_exporter: Start, fake_prometheus: FakePrometheus
) -> None:
    # All three queries trickle for two scrapes; the third scrape, after Prometheus is
    # healthy again, must have scrape_ok 1 and the right values.
    bodies = {kind: fake_prometheus.answers[kind].body for kind in ("read", "write", "metadata")}
    exporter = start_exporter("--timeout=5")
    for kind, body in bodies.items():
        fake_prometheus.set(kind, body, trickle=0.2)
    for _ in range(2):
        started = time.monotonic()
        broken = exporter.scrape()
        assert time.monotonic() - started < 5 + 5
        assert broken.value(OK) == 0
    fake_prometheus.load_fixtures()
    healed = exporter.scrape()
    assert healed.value(OK) == 1, exporter.log()
    assert healed.series(JOB_READ)[key(account="physics", user="alice")] == 1572864.0
    assert "not complete by the scrape deadline" in exporter.log()


def _bomb(megabytes: int) -> bytes:
    """A gzip body of ~1 MB per GB that decodes to ``megabytes`` MB of spaces."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b" " * (1 << 20)
    parts = [compressor.compress(b'{"status":"success","data":{"resultType":"vector","result":[')]
    parts.extend(compressor.compress(block) for _ in range(megabytes))
    parts.append(compressor.compress(b"]}}") + compressor.flush())
    return b"".join(parts)


def test_a_gzip_bomb_is_cut_at_the_decoded_cap(fake_prometheus: FakePrometheus) -> None:
    bomb = _bomb(200)
    assert len(bomb) < 1_000_000
    fake_prometheus.set("read", bomb, headers={"Content-Encoding": "gzip"})
    client = PrometheusClient(fake_prometheus.url, max_response_bytes=10_000_000)
    with pytest.raises(SourceError, match="exceeds --max-response-bytes=10000000"):
        client.query(READ_QUERY, time.monotonic() + 60, "read query")


def test_gzip_answers_are_decoded(fake_prometheus: FakePrometheus) -> None:
    body = fake_prometheus.answers["read"].body
    fake_prometheus.set("read", gzip.compress(body), headers={"Content-Encoding": "gzip"})
    client = PrometheusClient(fake_prometheus.url, max_response_bytes=len(body))
    assert client.query(READ_QUERY, time.monotonic() + 30, "read query") == body


def test_an_unasked_content_encoding_fails_cleanly(fake_prometheus: FakePrometheus) -> None:
    fake_prometheus.set("read", b"\x00\x01", headers={"Content-Encoding": "br"})
    with pytest.raises(SourceError, match="Content-Encoding 'br'"):
        PrometheusClient(fake_prometheus.url).query(READ_QUERY, time.monotonic() + 30, "read query")


# -- credentials -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "token"),
    [("abc.DEF-123\n", "abc.DEF-123"), ("abc\r\n", "abc"), ("abc", "abc")],
)
def test_exactly_one_trailing_newline_is_stripped(text: str, token: str) -> None:
    from prometheus_cluster_exporter.credentials import clean_token

    assert clean_token(text) == token


@pytest.mark.parametrize(
    "text", ["abc\nsecond-line\n", "abc\n\n", "ab c\n", "abc\x07\n", "\n", "", "ab\tc"]
)
def test_bad_tokens_are_refused_without_showing_them(text: str) -> None:
    from prometheus_cluster_exporter.credentials import clean_token

    with pytest.raises(ValueError) as info:
        clean_token(text)
    assert "abc" not in str(info.value) and "second" not in str(info.value)


def test_two_line_token_file_refused_at_start_up(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cr3t-token\nsecond-line\n")
    with pytest.raises(ConfigError) as info:
        Config(promserver="http://prom:9090", promserver_bearer_token_file=str(token))
    assert "--promserver.bearer-token-file" in str(info.value)
    assert "s3cr3t" not in str(info.value) and "second-line" not in str(info.value)


def test_rotated_bad_token_never_reaches_log_page_or_metrics(
    start_exporter: Start, fake_prometheus: FakePrometheus, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("good-token\n")
    exporter = start_exporter(f"--promserver.bearer-token-file={token}")
    assert exporter.scrape().value(OK) == 1
    assert fake_prometheus.headers[-1]["Authorization"] == "Bearer good-token"
    token.write_text("leaked-s3cr3t\nline-two\n")
    broken = exporter.scrape()
    assert broken.value(OK) == 0
    _, page = exporter.get("/")
    _, metrics = exporter.get("/metrics")
    for text in (exporter.log(), page, metrics):
        assert "leaked-s3cr3t" not in text and "line-two" not in text
    assert "bearer token file" in exporter.log()


# -- the server URL --------------------------------------------------------------------


def test_percent_encoded_credentials_are_sent_decoded(
    start_exporter: Start, fake_prometheus: FakePrometheus
) -> None:
    host = fake_prometheus.url.split("//", 1)[1]
    exporter = start_exporter(f"--promserver=http://al%40ce:p%3Ass%2Fw0rd@{host}", promserver=False)
    assert exporter.scrape().value(OK) == 1
    import base64

    sent = fake_prometheus.headers[-1]["Authorization"]
    assert base64.b64decode(sent.split()[1]).decode() == "al@ce:p:ss/w0rd"
    assert "p%3Ass" not in exporter.log() and "p:ss" not in exporter.log()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://u:p@[::1]:9090", "http://[::1]:9090"),
        (
            "https://u:secret@prom.example:9090/x",
            "https://prom.example:9090/x",
        ),
        ("htp://u:secret@prom:9090", "htp://prom:9090"),
        ("http://u:secret@prom:70000", "http://prom:70000"),
        ("http://prom:9090", "http://prom:9090"),
        ("http://u:se@cret@prom/", "http://prom/"),
        ("http://admin:s3/cr3t@prom:9090", "http://prom:9090"),
        ("http://admin:s3#cr?3t@prom:9090/", "http://prom:9090/"),
    ],
)
def test_redaction_keeps_the_rest_of_the_url(url: str, shown: str) -> None:
    from prometheus_cluster_exporter.upstream import redact_url

    assert redact_url(url) == shown


def test_ipv6_literal_keeps_its_brackets() -> None:
    from prometheus_cluster_exporter.upstream import parse_server_url

    server = parse_server_url("http://u:p@[::1]:9090/prom/")
    assert (server.host, server.port, server.path) == ("::1", 9090, "/prom")
    assert server.display("/api/v1/query") == "http://[::1]:9090/prom/api/v1/query"
    assert (server.username, server.password) == ("u", "p")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("htp://user:hunter2@prom:9090", "expected an http:// or https:// URL"),
        ("http://user:hunter2@prom:70000", "the port is not a number from 1 to 65535"),
        ("http://user:hunter2@:9090", "no host name"),
        ("http://user:hunter2@[::1:9090", "not a valid URL"),
        ("http://user:hunter2#x@prom:9090", "@ after the host"),
        ("http://user:1234/hunter2@prom:9090", "@ after the host"),
        ("http://user:hun?ter2@prom:9090", "@ after the host"),
        ("http://user:hunter2@x@prom:9090", "more than one @"),
    ],
)
def test_bad_urls_exit_2_with_one_line_and_no_password(url: str, message: str) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "prometheus_cluster_exporter", f"--promserver={url}", "--once"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert message in result.stderr
    assert "hunter2" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_an_answer_cut_short_is_not_taken_for_a_whole_one() -> None:
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + EMPTY)
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        client = PrometheusClient(f"http://127.0.0.1:{listener.getsockname()[1]}")
        with pytest.raises(
            SourceError, match=r"connection closed 9[0-9][0-9] bytes before the end"
        ):
            client.query(READ_QUERY, time.monotonic() + 30, "read query")
    finally:
        thread.join(10)
        listener.close()


def test_a_skewed_server_clock_shifts_the_evaluation_time() -> None:
    import email.utils
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    requests: list[bytes] = []

    def serve() -> None:
        for _ in range(2):
            conn, _ = listener.accept()
            requests.append(conn.recv(65536))
            date = email.utils.formatdate(time.time() + 3600, usegmt=True)
            conn.sendall(
                f"HTTP/1.1 200 OK\r\nDate: {date}\r\nContent-Length: {len(EMPTY)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + EMPTY
            )
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        client = PrometheusClient(f"http://127.0.0.1:{listener.getsockname()[1]}")
        for _ in range(2):
            client.query(READ_QUERY, time.monotonic() + 30, "read query", at=1_000_000.0)
    finally:
        thread.join(10)
        listener.close()
    sent = [float(r.split(b"time=")[1].split(b"&")[0].split(b" ")[0]) for r in requests]
    assert sent[0] == 1_000_000.0  # the offset is learnt from the first answer
    assert 1_003_590 < sent[1] < 1_003_610


def test_an_error_answer_gives_its_message_and_only_the_start_of_it(
    fake_prometheus: FakePrometheus,
) -> None:
    message = b'{"status":"error","errorType":"bad_data","error":"parse error at char 7"}'
    fake_prometheus.set(
        "read", gzip.compress(message), status=400, headers={"Content-Encoding": "gzip"}
    )
    client = PrometheusClient(fake_prometheus.url)
    with pytest.raises(SourceError, match="answered HTTP 400: parse error at char 7"):
        client.query(READ_QUERY, time.monotonic() + 30, "read query")
    # 100 MB of error page that compresses to 100 KB: only its start is read and shown.
    fake_prometheus.set(
        "read", gzip.compress(b"x" * 100_000_000), status=502, headers={"Content-Encoding": "gzip"}
    )
    with pytest.raises(SourceError) as failed:
        client.query(READ_QUERY, time.monotonic() + 30, "read query")
    assert "answered HTTP 502: xxx" in str(failed.value) and len(str(failed.value)) < 400
