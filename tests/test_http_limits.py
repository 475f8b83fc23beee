"""The HTTP server under slow, idle and hostile clients: deadlines, size and count limits,
503 past the waiting-request bound, prompt SIGTERM, no busy loop at the fd limit; and the
protocol details: Accept-Encoding q-values, HEAD, escaped TRACE logs, auth padding.

Durations asserted here are deadlines with wide margins (the server's deadline is 10 s
where a bound of 20-25 s is asserted), never speed.
"""

from __future__ import annotations

import gzip
import os
import resource
import select
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest
import yaml

from prometheus_cluster_exporter.http import ExporterServer
from prometheus_cluster_exporter.webconfig import WebConfig
from tests.helpers import Exporter, FakeCluster, exporter_env, pid_alive, socket_count
from tests.tlsutil import make_pki

Start = Callable[..., Exporter]


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


def connect(port: int, count: int) -> List[socket.socket]:
    return [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(count)]


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server closed (or reset) the connection; drains what it sent."""
    try:
        while select.select([sock], [], [], 0)[0]:
            if not sock.recv(65536):
                return True
    except OSError:
        return True
    return False


def wait_all_closed(socks: List[socket.socket], within: float) -> List[socket.socket]:
    """The sockets the server has still not closed after ``within`` seconds."""
    end = time.monotonic() + within
    open_ = list(socks)
    while open_ and time.monotonic() < end:
        open_ = [s for s in open_ if not closed_by_server(s)]
        time.sleep(0.2)
    return open_


def exchange(port: int, raw: bytes, timeout: float = 20.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def parse(response: bytes) -> Tuple[int, Dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def scrape_within(url: str, seconds: float, context: Optional[ssl.SSLContext] = None) -> str:
    with urllib.request.urlopen(url + "/metrics", timeout=seconds, context=context) as response:
        assert response.status == 200
        return str(response.read().decode())


@contextmanager
def serving(metrics: Callable[[], bytes], **kwargs: Any) -> Iterator[ExporterServer]:
    """The server in this process, on a thread; stopped in teardown."""
    server = ExporterServer(("127.0.0.1", 0), metrics, **kwargs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        closer = threading.Thread(target=lambda: (server.shutdown(), server.server_close()))
        closer.daemon = True
        closer.start()
        closer.join(10)


# -- slow, idle and hostile clients against the real exporter ------------------------------


def test_idle_connections_neither_delay_a_scrape_nor_stay_open(start_exporter: Start) -> None:
    exporter = start_exporter("--demo", promserver=False)
    idle = connect(port_of(exporter.url), 30)  # a fixed pool of 8 would need 4 x 30 s
    try:
        assert "cluster_exporter_scrape_ok 1" in scrape_within(exporter.url, 20)
        assert wait_all_closed(idle, within=25) == []  # the 10 s request deadline
    finally:
        for sock in idle:
            sock.close()


def test_slow_drip_clients_are_cut_off_at_the_request_deadline(start_exporter: Start) -> None:
    exporter = start_exporter("--demo", promserver=False)
    drips = connect(port_of(exporter.url), 8)
    request = b"GET /metrics HTTP/1.1\r\nX-Slow: " + b"a" * 100
    started = time.monotonic()
    try:
        assert "cluster_exporter_scrape_ok" in scrape_within(exporter.url, 20)
        open_ = list(drips)
        while open_ and time.monotonic() - started < 30:  # one byte a second: each read is quick
            index = int(time.monotonic() - started)
            for sock in open_:
                with suppress(OSError):
                    sock.send(request[index : index + 1])
            open_ = [s for s in open_ if not closed_by_server(s)]
            time.sleep(1)
        assert open_ == [], "a client sending a byte a second kept its connection for 30 s"
    finally:
        for sock in drips:
            sock.close()


def test_half_open_tls_clients_do_not_delay_an_https_scrape(
    start_exporter: Start, tmp_path: Path
) -> None:
    pki = make_pki(tmp_path / "pki")
    web = tmp_path / "web.yml"
    tls = {"cert_file": str(pki.server_cert), "key_file": str(pki.server_key)}
    web.write_text(yaml.safe_dump({"tls_server_config": tls}))
    exporter = start_exporter("--demo", f"--web.config.file={web}", promserver=False)
    silent = connect(port_of(exporter.url), 24)  # never start the handshake
    try:
        context = ssl.create_default_context(cafile=str(pki.ca))
        context.verify_flags &= ~ssl.VERIFY_X509_STRICT  # the test CA is minimal
        assert "cluster_exporter_scrape_ok" in scrape_within(exporter.url, 20, context)
        assert wait_all_closed(silent, within=25) == []  # the 10 s handshake deadline
    finally:
        for sock in silent:
            sock.close()


def test_open_connections_are_bounded_and_a_scrape_still_gets_in(start_exporter: Start) -> None:
    raise_fd_limit(2000)
    exporter = start_exporter("--demo", promserver=False)
    idle = connect(port_of(exporter.url), 600)
    try:
        time.sleep(1.0)
        assert "cluster_exporter_scrape_ok" in scrape_within(exporter.url, 20)
        # 512 connections at most (plus the listening socket and the loop's own pair).
        assert socket_count(exporter.proc.pid) <= 512 + 4
        assert sum(closed_by_server(s) for s in idle) >= 600 - 512
    finally:
        for sock in idle:
            sock.close()


def test_oversized_request_headers_are_refused(start_exporter: Start) -> None:
    exporter = start_exporter("--demo", promserver=False)
    port = port_of(exporter.url)
    one_line = b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"
    many = b"GET /metrics HTTP/1.1\r\n" + b"".join(
        b"X-%d: %s\r\n" % (i, b"b" * 90) for i in range(200)
    )
    for raw in (one_line, many + b"\r\n", many):  # the last never ends its headers
        status, _, _ = parse(exchange(port, raw))
        assert status == 431  # Request Header Fields Too Large


def test_sigterm_with_clients_connected_exits_promptly(start_exporter: Start) -> None:
    exporter = start_exporter("--demo", promserver=False)
    port = port_of(exporter.url)
    idle = connect(port, 3)
    idle[0].sendall(b"GET /metrics HTTP/1.1\r\n")  # half a request
    try:
        time.sleep(0.5)
        exporter.proc.send_signal(signal.SIGTERM)
        assert exporter.proc.wait(timeout=10) == 0
        assert "Exporter finished" in exporter.log()
    finally:
        for sock in idle:
            sock.close()


def test_sigterm_during_a_slow_collect_exits_promptly(
    start_exporter: Start, fake_cluster: FakeCluster
) -> None:
    fake_cluster.set("squeue", "sleep", "40")
    exporter = start_exporter("--timeout=60")

    def scrape() -> None:
        with suppress(OSError):  # the exporter leaves without answering
            exporter.get("/metrics", timeout=60)

    threading.Thread(target=scrape, daemon=True).start()
    end = time.monotonic() + 20
    while not fake_cluster.pids("squeue") and time.monotonic() < end:
        time.sleep(0.05)
    assert fake_cluster.pids("squeue"), "the collect did not start"
    pids = fake_cluster.pids("squeue")
    try:
        exporter.proc.send_signal(signal.SIGTERM)
        assert exporter.proc.wait(timeout=10) == 0
        # The hung squeue (and its child) does not outlive the exporter.
        end = time.monotonic() + 10
        while any(pid_alive(pid) for pid in pids) and time.monotonic() < end:
            time.sleep(0.05)
        assert not any(pid_alive(pid) for pid in pids), "squeue outlived the exporter"
    finally:
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_no_busy_loop_at_the_file_descriptor_limit(tmp_path: Path) -> None:
    wrapper = tmp_path / "limited.py"
    wrapper.write_text(
        "import resource, sys\n"
        "hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))\n"
        "from prometheus_cluster_exporter.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    cluster = FakeCluster(tmp_path / "cluster")
    log = tmp_path / "exporter.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(wrapper), "--demo", "--web.listen-address=127.0.0.1:0"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=exporter_env(cluster.root),
        )  # fmt: skip
    clients: List[socket.socket] = []
    try:
        end = time.monotonic() + 20
        while "Listening on" not in log.read_text() and time.monotonic() < end:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.05)
        port = int(log.read_text().split("Listening on http://127.0.0.1:")[1].split("/")[0])
        clients = connect(port, 100)  # more than the exporter has descriptors for
        time.sleep(1.0)
        assert len(os.listdir(f"/proc/{proc.pid}/fd")) >= 60  # at the limit
        before = cpu_seconds(proc.pid)
        time.sleep(3.0)
        assert cpu_seconds(proc.pid) - before < 0.5, "the accept loop spins at the fd limit"
        assert "cannot accept connections (Too many open files)" in log.read_text()
        for sock in clients:
            sock.close()
        assert "cluster_exporter_scrape_ok" in scrape_within(f"http://127.0.0.1:{port}", 20)
    finally:
        for sock in clients:
            sock.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the server in-process: queue bound, write deadline, protocol details ------------------


def test_requests_past_the_waiting_bound_get_503_at_once() -> None:
    release = threading.Event()

    def blocked() -> bytes:
        release.wait(60)
        return b"ok 1\n"

    raise_fd_limit(2000)
    with serving(blocked, workers=2) as server:
        port = server.server_address[1]
        socks = connect(port, 2 + 256 + 4)  # 2 running, 256 waiting, 4 too many
        try:
            for sock in socks:
                sock.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
            answered: List[bytes] = []
            end = time.monotonic() + 15
            while len(answered) < 4 and time.monotonic() < end:
                for sock in select.select(socks, [], [], 0.2)[0]:
                    answered.append(sock.recv(65536))
                    socks.remove(sock)
                    sock.close()
            assert [parse(r)[0] for r in answered] == [503] * 4
            release.set()
            assert all(parse(exchange_rest(s))[0] == 200 for s in socks)
        finally:
            release.set()
            for sock in socks:
                sock.close()


def exchange_rest(sock: socket.socket) -> bytes:
    sock.settimeout(20)
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def non_reader(port: int, path: str) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\n\r\n".encode())
    return sock


def test_clients_that_do_not_read_pin_no_worker() -> None:
    big = b"x" * (8 << 20)  # far more than the socket buffers hold
    with serving(lambda: big, landing_page=lambda: "small") as server:
        port = server.server_address[1]
        stuck = [non_reader(port, "/metrics") for _ in range(8)]
        try:
            time.sleep(1.0)
            status, _, body = parse(exchange(port, b"GET / HTTP/1.1\r\n\r\n", timeout=10))
            assert (status, body) == (200, b"small")
        finally:
            for sock in stuck:
                sock.close()


def test_write_deadline_closes_a_client_that_does_not_read() -> None:
    from prometheus_cluster_exporter.http import Limits

    big = b"x" * (8 << 20)
    with serving(lambda: big, limits=Limits(write_timeout=1.0)) as server:
        sock = non_reader(server.server_address[1], "/metrics")
        try:
            end = time.monotonic() + 15
            while server.open_connections != 1 and time.monotonic() < end:
                time.sleep(0.05)
            assert server.open_connections == 1
            while server.open_connections and time.monotonic() < end:
                time.sleep(0.05)
            assert server.open_connections == 0
        finally:
            sock.close()


@pytest.mark.parametrize(
    ("accept", "gzipped"),
    [
        ("gzip", True), ("GZip", True), ("deflate, gzip;q=0.5", True), ("x-gzip", True),
        ("*", True), ("br;q=1, *;q=0.1", True), ("gzip ; q=1.0", True),
        ("gzip;q=0", False), ("gzip; q=0.000", False), ("*;q=0", False), ("gzip;q=0, *", False),
        ("identity", False), ("br, deflate", False), ("", False), (None, False),
        ("gzip;q=nonsense", False), ("gzipped", False),
    ],
)  # fmt: skip
def test_accept_encoding_q_values(accept: Optional[str], gzipped: bool) -> None:
    body = b"metric 1\n" * 100
    with serving(lambda: body) as server:
        header = "" if accept is None else f"Accept-Encoding: {accept}\r\n"
        raw = f"GET /metrics HTTP/1.1\r\n{header}\r\n".encode()
        status, headers, payload = parse(exchange(server.server_address[1], raw))
    assert status == 200
    assert (headers.get("content-encoding") == "gzip") is gzipped
    assert (gzip.decompress(payload) if gzipped else payload) == body


def test_head_404_and_extra_headers() -> None:
    web = WebConfig(headers={"X-Frame-Options": "deny"})
    with serving(lambda: b"m 1\n", web=web, telemetry_path="/metrix") as server:
        port = server.server_address[1]
        status, headers, body = parse(exchange(port, b"HEAD /metrix HTTP/1.1\r\n\r\n"))
        assert (status, body, headers["content-length"]) == (200, b"", "4")
        assert headers["x-frame-options"] == "deny"
        assert headers["content-type"].startswith("text/plain; version=0.0.4")
        keep_alive = b"GET /metrix?x=1 HTTP/1.1\r\nConnection: keep-alive\r\n\r\n"
        status, headers, body = parse(exchange(port, keep_alive))  # reads until closed
        assert (status, body, headers["connection"]) == (200, b"m 1\n", "close")
        status, headers, _ = parse(exchange(port, b"GET /metrics HTTP/1.1\r\n\r\n"))
        assert status == 404 and headers["x-frame-options"] == "deny"
        status, _, body = parse(exchange(port, b"GET / HTTP/1.1\r\n\r\n"))
        assert status == 200 and b'href="/metrix"' in body


def test_request_lines_are_escaped_in_the_trace_log(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(5, logger="prometheus_cluster_exporter"), serving(lambda: b"") as server:
        exchange(server.server_address[1], b"GET /\x1b[2J\x07\x7f\xff HTTP/1.1\r\n\r\n")
        time.sleep(0.2)
    messages = [r.getMessage() for r in caplog.records if r.levelno == 5]
    assert any(r"/\x1b[2J\x07\x7f\xff" in m for m in messages), messages
    assert not any(c in m for m in messages for c in "\x1b\x07\x7f\xff")


class _SlowRefusal:
    """A basic-auth stand-in: refuses user "bad" asking for a 3 s pad, accepts anyone else."""

    def __init__(self) -> None:
        self.users = {"good": b"", "bad": b""}

    def verify(self, header: Optional[str]) -> Tuple[bool, float]:
        return ("YmFk" not in (header or "")), 3.0  # base64 of "bad"

    def check(self, header: Optional[str]) -> bool:
        return self.verify(header)[0]

    def cached(self, header: Optional[str]) -> bool:
        return False


def test_refusals_are_padded_without_holding_a_worker() -> None:
    web = WebConfig(basic_auth=_SlowRefusal())  # type: ignore[arg-type]
    with serving(lambda: b"m 1\n", web=web, workers=1) as server:
        port = server.server_address[1]
        refused: List[Tuple[float, bytes]] = []
        started = time.monotonic()
        bad = b"GET /metrics HTTP/1.1\r\nAuthorization: Basic YmFkOng=\r\n\r\n"

        def refused_request() -> None:
            response = exchange(port, bad)
            refused.append((time.monotonic(), response))

        worker = threading.Thread(target=refused_request, daemon=True)
        worker.start()
        time.sleep(0.5)
        good = b"GET /metrics HTTP/1.1\r\nAuthorization: Basic Z29vZDp4\r\n\r\n"
        assert parse(exchange(port, good))[0] == 200
        good_done = time.monotonic()
        worker.join(20)
    finish, response = refused[0]
    status, headers, _ = parse(response)
    assert status == 401 and headers["www-authenticate"] == 'Basic realm="cluster-exporter"'
    assert finish - started >= 3.0  # the pad was applied ...
    assert good_done < finish  # ... while the only worker served someone else


def test_request_arriving_with_the_end_of_the_tls_handshake(tmp_path: Path) -> None:
    """The client's last handshake message and its request in one segment: the request is
    read by the server as soon as the handshake completes, not lost."""
    pki = make_pki(tmp_path / "pki")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    client = ssl.create_default_context(cafile=str(pki.ca))
    client.verify_flags &= ~ssl.VERIFY_X509_STRICT
    with serving(lambda: b"m 1\n", web=WebConfig(ssl_context=server_context)) as server:
        answer = one_segment_tls_request(server.server_address[1], client)
    assert parse(answer)[0] == 200


def one_segment_tls_request(port: int, client: ssl.SSLContext) -> bytes:
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with socket.create_connection(("127.0.0.1", port), 10) as sock:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall(outgoing.read())
                incoming.write(sock.recv(65536))
        tls.write(b"GET /metrics HTTP/1.1\r\n\r\n")
        sock.sendall(outgoing.read())  # the client's Finished and the request together
        answer = b""
        while chunk := sock.recv(65536):
            incoming.write(chunk)
            try:
                while data := tls.read(65536):
                    answer += data
            except ssl.SSLWantReadError:
                continue
            except ssl.SSLZeroReturnError:
                pass
            break  # the server's close_notify: all was sent
        return answer


def test_wrong_passwords_never_take_the_page_workers() -> None:
    import base64

    import bcrypt

    from prometheus_cluster_exporter.http import Limits
    from prometheus_cluster_exporter.webconfig import BasicAuth

    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=14)).decode()
    web = WebConfig(basic_auth=BasicAuth({"prom": hashed}))

    def header(password: str) -> bytes:
        token = base64.b64encode(f"prom:{password}".encode()).decode()
        return f"GET /metrics HTTP/1.1\r\nAuthorization: Basic {token}\r\n\r\n".encode()

    limits = Limits(max_waiting=2)
    with serving(lambda: b"ok\n", workers=2, web=web, limits=limits) as server:
        port = server.server_address[1]
        first = connect(port, 1)[0]
        first.sendall(header("right"))  # verified once: remembered for minutes
        assert parse(exchange_rest(first))[0] == 200
        first.close()
        # Each wrong password costs a bcrypt check of about a second: eight of them would
        # fill two page workers and their two places in the queue.
        flood = connect(port, 8)
        try:
            for sock in flood:
                sock.sendall(header("wrong"))
            time.sleep(0.2)
            scrape = connect(port, 1)[0]
            scrape.sendall(header("right"))
            status, _, body = parse(exchange_rest(scrape))
            scrape.close()
            assert (status, body) == (200, b"ok\n")
        finally:
            for sock in flood:
                sock.close()
