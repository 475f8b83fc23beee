"""HTTP GET against the Prometheus query API with one hard deadline for the whole call.

A socket timeout limits each read, not the call: a server that sends its headers or body
a byte at a time would keep a query running for minutes. Here a watchdog shuts the
call's sockets down when the scrape deadline passes, which ends any read, write, connect
or TLS handshake blocked on them at once; name resolution runs on a helper thread that
is abandoned at the deadline. So a query never outlives the deadline, and nothing it
leaves behind can block a later scrape.

The answer is decompressed in bounded steps (``httpbody``), so ``max_response_bytes``
limits the decoded size however well the body compresses.

Standard library only (http.client, ssl, zlib): the single-file build needs nothing else.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import ipaddress
import logging
import socket
import ssl
import threading
import time
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import urlencode

from prometheus_cluster_exporter import __version__
from prometheus_cluster_exporter.credentials import TokenFile, basic_auth_header
from prometheus_cluster_exporter.errors import SourceError
from prometheus_cluster_exporter.sources.httpbody import Body, error_body, error_text, receive
from prometheus_cluster_exporter.upstream import ServerURL, parse_server_url

log = logging.getLogger(__name__)

# At most this much of a non-200 answer is read, for its error text.
_ERROR_BODY_BYTES = 64 * 1024
# Clock differences up to this many seconds are within the Date header's resolution and
# the answer's transit time: not corrected.
CLOCK_SLACK = 2.0


class Watchdog:
    """Shuts down the sockets of one call when its deadline passes.

    ``disarm()`` must be called before the sockets are closed, so that a socket is never
    shut down after its descriptor was closed (and perhaps reused).
    """

    def __init__(self, deadline: float) -> None:
        self.fired = False
        self._sockets: List[socket.socket] = []
        self._lock = threading.Lock()
        self._done = False
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock`` down at the deadline; TimeoutError if it has already passed."""
        with self._lock:
            if self.fired:
                raise TimeoutError("the scrape deadline passed")
            self._sockets.append(sock)

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            for sock in self._sockets:
                _shut(sock)

    def disarm(self) -> None:
        self._timer.cancel()
        with self._lock:
            self._done = True


def _shut(sock: socket.socket) -> None:
    # The plain socket's shutdown, also for an SSLSocket: it acts on the descriptor and
    # leaves the TLS object alone, so a read blocked in another thread ends with EOF.
    # OSError: not connected yet, or already closed.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _resolve(host: str, port: int, deadline: float) -> List[Tuple[Any, ...]]:
    """getaddrinfo, abandoned (not waited for) at the deadline."""
    try:
        ipaddress.ip_address(host)
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except ValueError:
        pass
    result: Dict[str, Any] = {}

    def run() -> None:
        try:
            result["addresses"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            result["error"] = exc

    thread = threading.Thread(target=run, name="resolve", daemon=True)
    thread.start()
    thread.join(max(0.0, deadline - time.monotonic()))
    if thread.is_alive():
        raise TimeoutError(f"resolving {host} did not finish by the deadline")
    if "error" in result:
        raise result["error"]
    addresses: List[Tuple[Any, ...]] = result["addresses"]
    return addresses


class _Connection(http.client.HTTPConnection):
    """One connection whose sockets (plain and TLS) are handed to a watchdog."""

    def __init__(
        self, server: ServerURL, deadline: float, watchdog: Watchdog, tls: Optional[ssl.SSLContext]
    ) -> None:
        super().__init__(server.host, server.port, timeout=None)
        self._deadline = deadline
        self._watchdog = watchdog
        self._tls = tls
        # Sockets of failed connection attempts: closed in close(), after the watchdog
        # is disarmed, never while it may still shut them down.
        self._failed: List[socket.socket] = []

    def connect(self) -> None:
        error: Optional[OSError] = None
        for family, kind, proto, _, address in _resolve(self.host, self.port, self._deadline):
            sock = socket.socket(family, kind, proto)
            try:
                self._watchdog.watch(sock)
            except TimeoutError:
                sock.close()
                raise
            # A backstop only: the watchdog ends the call at the deadline.
            sock.settimeout(max(0.001, self._deadline - time.monotonic()) + 1.0)
            try:
                sock.connect(address)
            except OSError as exc:
                self._failed.append(sock)
                error = exc
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock = sock
            if self._tls is not None:
                tls_sock = self._tls.wrap_socket(
                    sock, server_hostname=self.host, do_handshake_on_connect=False
                )
                self.sock = tls_sock  # closed by close() even if the handshake fails
                self._watchdog.watch(tls_sock)
                tls_sock.do_handshake()
            return
        raise error or OSError(f"no address for {self.host}")

    def close(self) -> None:
        super().close()
        for sock in self._failed:
            sock.close()
        self._failed.clear()


def tls_context(
    ca_file: Optional[str],
    insecure_skip_verify: bool,
    cert_file: Optional[str],
    key_file: Optional[str],
) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)
    if insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    return context


class PrometheusClient:
    """Instant queries against ``<server>/api/v1/query``, each within one deadline.

    A new connection per query: a scrape makes three, and nothing is kept between
    scrapes that a broken or slow server could have left in a bad state.
    """

    def __init__(
        self,
        server: str,
        *,
        max_response_bytes: int = 0,
        basic_auth: Optional[Tuple[str, str]] = None,
        bearer_token_file: Optional[str] = None,
        ca_file: Optional[str] = None,
        insecure_skip_verify: bool = False,
        cert_file: Optional[str] = None,
        key_file: Optional[str] = None,
    ) -> None:
        self.server = parse_server_url(server)
        self.path = self.server.path + "/api/v1/query"
        self.display_url = self.server.display("/api/v1/query")
        self.max_response_bytes = max_response_bytes
        self.headers = {
            "Accept": "application/json",
            "Accept-Encoding": "gzip",
            "User-Agent": f"prometheus-cluster-exporter/{__version__}",
            "Connection": "close",
        }
        if basic_auth is None and self.server.username is not None:
            basic_auth = (self.server.username, self.server.password or "")
        if basic_auth is not None:
            self.headers["Authorization"] = basic_auth_header(*basic_auth)
        self.bearer = TokenFile(bearer_token_file) if bearer_token_file else None
        self.clock_offset = 0.0
        self.tls: Optional[ssl.SSLContext] = None
        if self.server.scheme == "https":
            self.tls = tls_context(ca_file, insecure_skip_verify, cert_file, key_file)

    def query(self, promql: str, deadline: float, what: str, at: Optional[float] = None) -> bytes:
        """The decoded body of a successful (HTTP 200) answer, evaluated at ``at``."""
        return self.query_body(promql, deadline, what, at).whole()

    def query_body(
        self, promql: str, deadline: float, what: str, at: Optional[float] = None
    ) -> Body:
        """The body of a successful (HTTP 200) answer as received, to be decoded piece by
        piece (``Body.pieces``)."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SourceError(f"{what}: no time left before the scrape deadline")
        # Let the server give up too; integer milliseconds parse in Prometheus and VictoriaMetrics.
        fields = {"query": promql, "timeout": f"{max(1, int(remaining * 1000))}ms"}
        if at is not None:
            fields["time"] = f"{at + self.clock_offset:.3f}"
        headers = self.headers
        if self.bearer is not None:
            headers = {**headers, "Authorization": f"Bearer {self.bearer.read(what)}"}
        watchdog = Watchdog(deadline)
        connection = _Connection(self.server, deadline, watchdog, self.tls)
        response: Optional[http.client.HTTPResponse] = None
        try:
            connection.request("GET", f"{self.path}?{urlencode(fields)}", headers=headers)
            response = connection.getresponse()
            self._note_clock(response)
            if response.status != 200:
                text = error_text(error_body(response, _ERROR_BODY_BYTES, what))
                raise SourceError(
                    f"{what}: {self.display_url} answered HTTP {response.status}{text}"
                )
            body = receive(response, self.max_response_bytes, what)
            # A shut-down socket reads as the end of the answer: it is complete only if the
            # deadline did not pass and every byte the headers announced arrived.
            if watchdog.fired:
                raise SourceError(f"{what}: answer not complete by the scrape deadline")
            if response.length:
                raise SourceError(
                    f"{what}: {self.display_url}: connection closed {response.length} bytes "
                    "before the end of the answer"
                )
            return body
        except SourceError:
            raise
        except Exception as exc:
            if watchdog.fired:
                raise SourceError(f"{what}: answer not complete by the scrape deadline") from None
            raise SourceError(f"{what}: {self.display_url}: {describe(exc)}") from None
        finally:
            watchdog.disarm()
            if response is not None:
                response.close()
            connection.close()

    def _note_clock(self, response: http.client.HTTPResponse) -> None:
        """Keep the server's clock offset from its Date header (1 s resolution).

        Queries are evaluated at an instant of the exporter's clock; where the server's
        clock differs by more than CLOCK_SLACK, the instant sent is shifted by the
        difference, so a skewed host cannot make rates vanish.
        """
        date = response.getheader("Date")
        if not date:
            return
        try:
            server = email.utils.parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return
        offset = server - time.time()
        if abs(offset) <= CLOCK_SLACK:
            offset = 0.0
        if abs(offset - self.clock_offset) > CLOCK_SLACK and offset:
            log.warning(
                "%s: the server's clock differs from this host's by %.0fs; queries are "
                "evaluated at the server's time (run NTP on both)",
                self.display_url,
                offset,
            )
        self.clock_offset = offset


def describe(exc: BaseException) -> str:
    """An operator's description of a failed call, never quoting headers or secrets."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS error (certificate verify failed: {exc.verify_message})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error ({exc.reason or type(exc).__name__})"
    if isinstance(exc, (ConnectionRefusedError, socket.gaierror)):
        return f"connection refused or unreachable ({exc.strerror or exc})"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return exc.args[0] if exc.args and isinstance(exc.args[0], str) else "timed out"
    if isinstance(exc, http.client.HTTPException):
        return f"connection broken ({type(exc).__name__})"
    if isinstance(exc, OSError):
        return f"connection failed ({exc.strerror or type(exc).__name__})"
    # Anything else (e.g. a ValueError about a header) may quote what was sent.
    return f"request failed ({type(exc).__name__})"
