"""Connections of the exporter's HTTP server, all handled by one asyncio event loop.

A connection carries one request: after an optional TLS handshake (under its own
deadline) the request line and header fields must arrive within a deadline for the whole
head and within a size bound; the answer is then computed by the server and written under
a write deadline, and the connection is closed. The number of open connections is
bounded: when it is reached, the oldest connection that has not sent a complete request
yet is closed to make room, so a real scrape always gets in.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from typing import Any, Awaitable, Dict, Optional, Protocol, Tuple, cast

from prometheus_cluster_exporter.httpmsg import (
    Request,
    RequestError,
    Response,
    head_end,
    loggable,
    parse_head,
    plain,
)
from prometheus_cluster_exporter.logs import TRACE

log = logging.getLogger("prometheus_cluster_exporter.http")


@dataclass(frozen=True)
class Limits:
    """What one client may take of the server (seconds, bytes, counts)."""

    max_connections: int = 512
    handshake_timeout: float = 10.0  # TLS handshake, from accept
    header_timeout: float = 10.0  # request line and header fields, in total, after TLS
    max_header_bytes: int = 16 * 1024
    write_timeout: float = 30.0  # the whole answer, from its first byte
    max_waiting: int = 256  # complete requests waiting for a worker; more get 503


class Site(Protocol):
    """What a connection needs from its server."""

    limits: Limits
    ssl_context: Optional[ssl.SSLContext]
    extra_headers: Dict[str, str]
    connections: Connections

    def serve(self, request: Request) -> Awaitable[Response]: ...


class Connections:
    """The open connections, oldest first, at most ``limit`` of them."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: Dict[Connection, None] = {}

    def __len__(self) -> int:
        return len(self._open)

    def admit(self, new: Connection) -> bool:
        """Register ``new``; when full, first close the oldest connection still waiting
        for its request. False (``new`` is not admitted) if every one has a request."""
        if len(self._open) >= self.limit:
            victim = next((c for c in self._open if not c.has_request), None)
            if victim is None:
                return False
            log.log(TRACE, "%s closed to make room for a new connection", victim.peer)
            victim.abort()
        self._open[new] = None
        return True

    def discard(self, connection: Connection) -> None:
        self._open.pop(connection, None)

    def abort_all(self) -> None:
        for connection in list(self._open):
            connection.abort()


class Connection(asyncio.Protocol):
    """One client connection: reads one request, answers it, closes."""

    def __init__(self, site: Site) -> None:
        self._site = site
        self._limits = site.limits
        self._loop = asyncio.get_running_loop()
        self._raw: Optional[asyncio.Transport] = None  # the TCP connection
        self._transport: Optional[asyncio.WriteTransport] = None  # TCP or TLS over it
        self._buffer = bytearray()
        self._timer: Optional[asyncio.TimerHandle] = None
        self._task: Optional[asyncio.Task[Any]] = None
        self._unsent: Optional[Tuple[Response, bytes, bool]] = None  # before TLS is ready
        self.has_request = False  # a complete head was read (or refused): not evictable
        self.closed = False
        self.peer = "-"

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._raw = tcp = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if isinstance(peer, tuple) and peer else "-"
        if not self._site.connections.admit(self):
            log.log(TRACE, "%s refused: every connection has a request in progress", self.peer)
            self.closed = True
            tcp.abort()
            return
        if self._site.ssl_context is not None:
            # start_tls() runs before any data is read: reading starts in this same loop
            # iteration, its first data is dispatched in the next one, after the task's
            # first step (which pauses reading and hands the transport to TLS). The
            # request may then arrive with the end of the handshake, before start_tls()
            # returns the TLS transport: it is read, and its answer waits for that.
            self._task = self._loop.create_task(self._handshake(self._site.ssl_context))
        else:
            self._start_reading(tcp)

    def data_received(self, data: bytes) -> None:
        if self.closed or self.has_request:
            return  # anything after the head (a body, pipelined requests) is ignored
        searched = len(self._buffer)
        self._buffer += data
        end = head_end(self._buffer, searched)
        if end < 0 and len(self._buffer) <= self._limits.max_header_bytes:
            return
        if end < 0 or end > self._limits.max_header_bytes:
            self._refuse(431, "request head too large")
            return
        try:
            request = parse_head(bytes(self._buffer[:end]))
        except RequestError as exc:
            self._refuse(exc.status, str(exc))
            return
        self.has_request = True
        self._cancel_timer()
        self._buffer = bytearray()
        self._task = self._loop.create_task(self._answer(request))

    def eof_received(self) -> bool:
        # A client may half-close after its request and still read the answer (not over
        # TLS, where the transport closes on EOF in any case).
        return self.has_request and self._site.ssl_context is None

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self._close_state()

    # -- phases --------------------------------------------------------------------------

    async def _handshake(self, context: ssl.SSLContext) -> None:
        assert self._raw is not None  # noqa: S101
        try:
            transport = await self._loop.start_tls(
                self._raw,
                self,
                context,
                server_side=True,
                ssl_handshake_timeout=self._limits.handshake_timeout,
            )
        except asyncio.CancelledError:
            self.abort()
            raise
        except Exception as exc:  # any failure ends this connection only
            log.log(TRACE, "%s TLS handshake failed: %s", self.peer, exc)
            self.abort()
            return
        if transport is None or self.closed:  # closed during the handshake
            self.abort()
            return
        self._start_reading(transport)

    def _start_reading(self, transport: asyncio.WriteTransport) -> None:
        self._transport = transport
        if self._unsent is not None:
            self._write(*self._unsent)
        elif not self.has_request:
            self._timer = self._loop.call_later(self._limits.header_timeout, self._head_timeout)

    def _head_timeout(self) -> None:
        self._timer = None
        if self.closed or self.has_request:
            return
        if self._buffer:
            self._refuse(408, "request head not complete in time")
        else:
            log.log(TRACE, "%s closed: no request in time", self.peer)
            self.abort()

    async def _answer(self, request: Request) -> None:
        try:
            response = await self._site.serve(request)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("error while answering %s", self.peer)
            response = plain(500)
        self._write(response, request.line, head_only=request.method == "HEAD")

    def _refuse(self, status: int, reason: str) -> None:
        self.has_request = True
        self._cancel_timer()
        line = bytes(self._buffer.split(b"\n", 1)[0])
        self._buffer = bytearray()
        log.log(TRACE, "%s refused (%s)", self.peer, reason)
        self._write(plain(status), line, head_only=False)

    def _write(self, response: Response, line: bytes, head_only: bool) -> None:
        if self.closed:
            return
        if self._transport is None:
            self._unsent = (response, line, head_only)
            return
        self._unsent = None
        log.log(TRACE, '%s "%s" %d %d', self.peer, loggable(line.rstrip(b"\r")),
                response.status, len(response.body))  # fmt: skip
        self._cancel_timer()
        self._transport.write(response.head(self._site.extra_headers))
        if response.body and not head_only:
            self._transport.write(response.body)
        self._transport.close()  # once everything is written
        self._timer = self._loop.call_later(self._limits.write_timeout, self._write_timeout)

    def _write_timeout(self) -> None:
        self._timer = None
        if not self.closed:
            log.log(TRACE, "%s closed: the answer was not read in time", self.peer)
            self.abort()

    # -- closing -------------------------------------------------------------------------

    def abort(self) -> None:
        """Close now, discarding anything not yet sent."""
        raw = self._raw
        self._close_state()
        if raw is not None:
            raw.abort()

    def _close_state(self) -> None:
        self.closed = True
        self._cancel_timer()
        self._site.connections.discard(self)
        task, self._task = self._task, None
        if task is not None and not task.done() and task is not _current_task():
            task.cancel()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _current_task() -> Optional[asyncio.Task[Any]]:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None
