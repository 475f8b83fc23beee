"""The HTTP server: landing page at ``/`` and the exposition at ``/metrics``.

One asyncio event loop, on the thread that calls ``serve_forever()``, accepts every
connection and does the TLS handshakes, request reading and answer writing
(``httpconn``), so slow, idle or hostile clients cost a little memory and never a
thread. Only the page functions, which block (a collect can take seconds), run on a small
fixed pool of daemon threads, with a bound on the requests waiting for one (past it the
answer is 503 at once). When the process runs out of file descriptors, asyncio stops
accepting and retries a second later instead of spinning.
"""

from __future__ import annotations

import asyncio
import errno
import gzip
import html
import logging
import socket
import threading
import time
from typing import Any, Callable, Dict, Optional, Tuple

from prometheus_cluster_exporter import __version__
from prometheus_cluster_exporter.exposition import CONTENT_TYPE
from prometheus_cluster_exporter.httpconn import Connection, Connections, Limits
from prometheus_cluster_exporter.httpmsg import Request, Response, accepts_gzip, plain
from prometheus_cluster_exporter.webconfig import WebConfig
from prometheus_cluster_exporter.workers import WorkerPool

__all__ = ["ExporterServer", "Limits", "default_landing_page"]

log = logging.getLogger(__name__)

HTTP_WORKERS = 8
# bcrypt checks of passwords not verified recently: their own threads and queue.
AUTH_WORKERS = 2
AUTH_WAITING = 16
LISTEN_BACKLOG = 256
SHUTDOWN_GRACE = 2.0  # how long shutdown() waits for page calls in progress
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


class ExporterServer:
    """The exporter's server: landing page and metrics page, on IPv4 or IPv6.

    The socket is bound by the constructor (an OSError tells the address is unusable);
    ``serve_forever()`` serves until ``shutdown()`` is called from another thread, which
    closes the listening socket, aborts every connection and waits at most
    ``SHUTDOWN_GRACE`` seconds for page calls in progress; ``server_close()`` frees the rest.
    """

    def __init__(
        self,
        address: Tuple[str, int],
        metrics: Callable[[], bytes],
        metrics_gzip: Optional[Callable[[], bytes]] = None,
        *,
        telemetry_path: str = "/metrics",
        landing_page: Optional[Callable[[], str]] = None,
        workers: int = HTTP_WORKERS,
        web: Optional[WebConfig] = None,
        limits: Optional[Limits] = None,
    ) -> None:
        self.metrics = metrics
        self.metrics_gzip = metrics_gzip
        self.telemetry_path = telemetry_path
        self.landing_page = landing_page or (lambda: default_landing_page(telemetry_path))
        self.web = web or WebConfig()
        self.limits = limits or Limits()
        self.ssl_context = self.web.ssl_context
        self.extra_headers: Dict[str, str] = dict(self.web.headers)
        self.connections = Connections(self.limits.max_connections)
        self.socket = _bind(address)
        self.server_address: Tuple[Any, ...] = self.socket.getsockname()
        self._loop = asyncio.new_event_loop()
        self._loop.set_exception_handler(self._loop_error)
        self._pool = WorkerPool(workers, self.limits.max_waiting, name="http")
        # bcrypt runs apart from the pages: wrong passwords cannot take the page workers.
        self._auth_pool = WorkerPool(AUTH_WORKERS, AUTH_WAITING, name="auth")
        self._stop_requested = threading.Event()
        self._serving = threading.Event()
        self._stopped = threading.Event()
        self._wake: Optional[asyncio.Event] = None

    def reload_web(self, web: WebConfig) -> None:
        """Use another web config (TLS certificates, basic auth users, headers) from the
        next connection on. TLS cannot be switched on or off: ValueError."""
        if (web.ssl_context is None) != (self.ssl_context is None):
            raise ValueError("switching TLS on or off needs a restart")
        self.web = web
        self.ssl_context = web.ssl_context
        self.extra_headers = dict(web.headers)

    @property
    def open_connections(self) -> int:
        return len(self.connections)

    # -- life cycle -----------------------------------------------------------------------

    def serve_forever(self) -> None:
        self._serving.set()
        try:
            self._loop.run_until_complete(self._run())
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop serve_forever() and wait until it has returned."""
        self._stop_requested.set()
        try:
            self._loop.call_soon_threadsafe(self._wake_up)
        except RuntimeError:  # the loop is already closed
            return
        if self._serving.is_set():
            self._stopped.wait(SHUTDOWN_GRACE + 5.0)

    def server_close(self) -> None:
        self.socket.close()
        self._pool.shutdown()
        self._auth_pool.shutdown()
        if not self._loop.is_running() and not self._loop.is_closed():
            self._loop.close()

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: Dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in _OUT_OF_RESOURCES:
            # asyncio stops accepting and retries a second later, instead of spinning.
            _warn_rarely("cannot accept connections (%s); retrying every second", exc.strerror)
        elif isinstance(exc, OSError) or self._stop_requested.is_set():
            # A client's connection failing; or, while stopping, e.g. an accept retry
            # finding the listening socket closed.
            log.debug("%s: %s", context.get("message"), exc)
        else:
            loop.default_exception_handler(context)

    def _wake_up(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _run(self) -> None:
        self._wake = asyncio.Event()
        if self._stop_requested.is_set():
            return
        server = await self._loop.create_server(
            lambda: Connection(self), sock=self.socket, backlog=LISTEN_BACKLOG
        )
        if not self._stop_requested.is_set():
            await self._wake.wait()
        server.close()
        self.connections.abort_all()
        end = time.monotonic() + SHUTDOWN_GRACE
        while self._pool.pending and time.monotonic() < end:
            await asyncio.sleep(0.05)
        tasks = asyncio.all_tasks() - {asyncio.current_task()}
        for task in tasks:
            task.cancel()
        if tasks:  # let them, and the transports they close, finish
            await asyncio.wait(tasks, timeout=1.0)

    # -- requests -------------------------------------------------------------------------

    async def serve(self, request: Request) -> Response:
        """The answer to a complete request (called by the connection, in the loop)."""
        if request.method not in ("GET", "HEAD"):
            return plain(501, ("Allow", "GET, HEAD"))
        refusal = await self._authorize(request)
        if refusal is not None:
            return refusal
        future = self._pool.submit(lambda: self._respond(request))
        if future is None:
            _warn_rarely("all HTTP workers busy and %d requests waiting: answering 503",
                         self.limits.max_waiting)  # fmt: skip
            return plain(503, ("Retry-After", "1"))
        return await asyncio.wrap_future(future)

    async def _authorize(self, request: Request) -> Optional[Response]:
        """None if the request may go on, else the answer to send (401 or 503).

        A password verified in the last minutes is recognised here, in the loop; only an
        unknown one costs a bcrypt check, on the auth workers.
        """
        auth = self.web.basic_auth
        if auth is None:
            return None
        header = request.header("Authorization")
        if auth.cached(header):
            return None
        future = self._auth_pool.submit(lambda: auth.verify(header))
        if future is None:
            _warn_rarely("%d basic-auth checks waiting: answering 503", AUTH_WAITING)
            return plain(503, ("Retry-After", "1"))
        accepted, pad = await asyncio.wrap_future(future)
        if accepted:
            return None
        if pad > 0:
            await asyncio.sleep(pad)  # refusals of basic auth all take the same time
        return plain(401, ("WWW-Authenticate", 'Basic realm="cluster-exporter"'))

    def _respond(self, request: Request) -> Response:
        """On a worker thread: the answer."""
        if request.path == self.telemetry_path:
            # Always the text format 0.0.4, which every Prometheus version reads.
            if not accepts_gzip(request.header("Accept-Encoding")):
                return Response(200, self.metrics(), CONTENT_TYPE)
            if self.metrics_gzip is not None:
                compressed = self.metrics_gzip()
            else:
                compressed = gzip.compress(self.metrics(), compresslevel=1)
            return Response(200, compressed, CONTENT_TYPE, [("Content-Encoding", "gzip")])
        if request.path == "/":
            return Response(200, self.landing_page().encode(), "text/html; charset=utf-8")
        return plain(404)


def _bind(address: Tuple[str, int]) -> socket.socket:
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and address[0] == "::":
            # Dual stack for the "all interfaces" default, as Go's ":9846" does.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


_last_warned: Dict[str, float] = {}


def _warn_rarely(message: str, *args: Any) -> None:
    """A warning at most once a minute: under attack the same one would flood the log."""
    now = time.monotonic()
    if message not in _last_warned or now - _last_warned[message] >= 60.0:
        _last_warned[message] = now
        log.warning(message, *args)


def default_landing_page(telemetry_path: str) -> str:
    path = html.escape(telemetry_path, quote=True)
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Cluster Exporter</title></head>\n'
        "<body><h1>Cluster Exporter</h1>\n"
        f"<p>Version {html.escape(__version__)}</p>\n"
        f'<p><a href="{path}">Metrics</a></p>\n</body></html>\n'
    )
