"""The HTTP server: landing page at ``/`` and the exposition at ``/metrics``.

Requests are served by a bounded pool of threads, so a burst of scrapes cannot create
unbounded threads; each connection has a socket timeout so an idle client cannot hold a
worker forever.
"""

from __future__ import annotations

import gzip
import html
import logging
import socket
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Callable, Optional, Tuple, Type

from prometheus_cluster_exporter import __version__
from prometheus_cluster_exporter.exposition import CONTENT_TYPE
from prometheus_cluster_exporter.webconfig import WebConfig

log = logging.getLogger(__name__)

HTTP_WORKERS = 8
CONNECTION_TIMEOUT = 30.0


class PooledHTTPServer(HTTPServer):
    """HTTPServer whose requests run on a fixed-size thread pool (IPv4 or IPv6)."""

    allow_reuse_address = True
    # Room for a burst of connections (many Prometheus servers, a dashboard reload)
    # while the fixed pool of workers catches up.
    request_queue_size = 256

    def __init__(
        self,
        address: Tuple[str, int],
        handler: Type[BaseHTTPRequestHandler],
        *,
        workers: int = HTTP_WORKERS,
        web: Optional[WebConfig] = None,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.web = web or WebConfig()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="http")
        super().__init__(address, handler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6 and self.server_address[0] == "::":
            # Dual stack for the "all interfaces" default, as Go's ":9846" does.
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    def process_request(self, request: Any, client_address: Any) -> None:
        self._pool.submit(self._process, request, client_address)

    def _process(self, request: Any, client_address: Any) -> None:
        try:
            if self.web.ssl_context is not None:
                # The handshake runs here, on a worker with a timeout, not in the accept loop.
                request.settimeout(CONNECTION_TIMEOUT)
                request = self.web.ssl_context.wrap_socket(request, server_side=True)
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("error while serving %s", client_address, exc_info=True)

    def server_close(self) -> None:
        super().server_close()
        self._pool.shutdown(wait=False)


class ExporterServer(PooledHTTPServer):
    """The exporter's server: landing page and the metrics page."""

    def __init__(
        self,
        address: Tuple[str, int],
        metrics: Callable[[], bytes],
        *,
        telemetry_path: str = "/metrics",
        landing_page: Optional[Callable[[], str]] = None,
        workers: int = HTTP_WORKERS,
        web: Optional[WebConfig] = None,
    ) -> None:
        self.metrics = metrics
        self.telemetry_path = telemetry_path
        self.landing_page = landing_page or (lambda: default_landing_page(telemetry_path))
        super().__init__(address, _Handler, workers=workers, web=web)


class _Handler(BaseHTTPRequestHandler):
    server: ExporterServer
    timeout = CONNECTION_TIMEOUT
    server_version = f"prometheus-cluster-exporter/{__version__}"
    # One request per connection: an idle keep-alive client must not pin a pool worker.
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        auth = self.server.web.basic_auth
        if auth is not None and not auth.check(self.headers.get("Authorization")):
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="cluster-exporter"')
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", "13")
            self._extra_headers()
            self.end_headers()
            if not getattr(self, "_head_only", False):
                self.wfile.write(b"Unauthorized\n")
            return
        path = self.path.split("?", 1)[0]
        if path == self.server.telemetry_path:
            self._metrics()
        elif path == "/":
            self._send(200, "text/html; charset=utf-8", self.server.landing_page().encode())
        else:
            self._send(404, "text/plain; charset=utf-8", b"Not Found\n")

    def do_HEAD(self) -> None:
        self._head_only = True
        self.do_GET()

    def _metrics(self) -> None:
        # Always the text format 0.0.4, which every Prometheus version reads.
        content_type = CONTENT_TYPE
        body = self.server.metrics()
        gzipped = "gzip" in self.headers.get("Accept-Encoding", "")
        if gzipped:
            body = gzip.compress(body, compresslevel=1)
        self._send(200, content_type, body, gzipped=gzipped)

    def _send(self, status: int, content_type: str, body: bytes, gzipped: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
        self._extra_headers()
        self.end_headers()
        if not getattr(self, "_head_only", False):
            self.wfile.write(body)

    def _extra_headers(self) -> None:
        for name, value in self.server.web.headers.items():
            self.send_header(name, value)

    def log_message(self, format: str, *args: Any) -> None:
        log.log(5, "%s %s", self.address_string(), format % args)


def default_landing_page(telemetry_path: str) -> str:
    path = html.escape(telemetry_path, quote=True)
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Cluster Exporter</title></head>\n'
        "<body><h1>Cluster Exporter</h1>\n"
        f"<p>Version {html.escape(__version__)}</p>\n"
        f'<p><a href="{path}">Metrics</a></p>\n</body></html>\n'
    )
