"""HTTP/1.x messages of the exporter's server: parsing a request head, building responses,
``Accept-Encoding`` negotiation and making request text safe to log.

Everything here is pure (no sockets, no clock), so the rules can be tested on their own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import Dict, List, Optional, Tuple

from prometheus_cluster_exporter import __version__

SERVER = f"prometheus-cluster-exporter/{__version__}"
# The blank line that ends a request head; bare LF line ends are accepted, as most servers do.
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_VERSION = re.compile(rb"HTTP/1\.[0-9]")
_QVALUE = re.compile(r"(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)")


class RequestError(Exception):
    """A request that cannot be served; ``status`` is the answer to give."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    line: bytes  # the raw request line, for the log
    headers: Dict[str, str]  # lower-case names; repeated fields joined with ", "

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    def header(self, name: str) -> Optional[str]:
        return self.headers.get(name.lower())


def head_end(buffer: bytes | bytearray, searched: int = 0) -> int:
    """Index just past the blank line ending the head in ``buffer``, or -1.

    ``searched`` is how much of the buffer an earlier call already looked at.
    """
    match = _HEAD_END.search(buffer, max(0, searched - 3))
    return match.end() if match else -1


def parse_head(head: bytes) -> Request:
    """The request line and header fields of a complete head (ending in a blank line)."""
    lines = [line[:-1] if line.endswith(b"\r") else line for line in head.split(b"\n")]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise RequestError(400, "empty request")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not parts[1]:
        raise RequestError(400, "malformed request line")
    if not _VERSION.fullmatch(parts[2]):
        status = 505 if parts[2].startswith(b"HTTP/") else 400
        raise RequestError(status, "unsupported protocol version")
    headers: Dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            # Also refuses obsolete line folding (a line starting with white space).
            raise RequestError(400, "malformed header field")
        value = value.strip(b" \t")
        if b"\r" in value or b"\0" in value:
            raise RequestError(400, "control character in a header field")
        key, text = name.decode("ascii").lower(), value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return Request(parts[0].decode("ascii"), parts[1].decode("latin-1"), lines[0], headers)


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: List[Tuple[str, str]] = field(default_factory=list)

    def head(self, extra: Optional[Dict[str, str]] = None) -> bytes:
        """Status line and header fields; the connection is always closed after it."""
        lines = [
            f"HTTP/1.1 {self.status} {_phrase(self.status)}",
            f"Server: {SERVER}",
            f"Date: {formatdate(usegmt=True)}",
            "Connection: close",
            f"Content-Type: {self.content_type}",
            f"Content-Length: {len(self.body)}",
        ]
        lines += [f"{name}: {value}" for name, value in self.headers]
        lines += [f"{name}: {value}" for name, value in (extra or {}).items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def plain(status: int, *headers: Tuple[str, str]) -> Response:
    """A short text answer naming the status, e.g. ``404 Not Found``."""
    return Response(status, f"{_phrase(status)}\n".encode(), headers=list(headers))


def accepts_gzip(header: Optional[str]) -> bool:
    """Whether an ``Accept-Encoding`` value allows gzip (RFC 9110, section 12.5.3).

    Codings are compared case-insensitively; ``x-gzip`` is gzip; ``*`` stands for any
    coding not listed; a q-value of 0 (or one that is not a valid q-value) means "not
    acceptable". Without the header the answer is not compressed.
    """
    if not header:
        return False
    gzip_q: Optional[float] = None
    any_q: Optional[float] = None
    for item in header.split(","):
        coding, *params = (part.strip() for part in item.split(";"))
        coding = coding.lower()
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                value = value.strip()
                q = float(value) if _QVALUE.fullmatch(value) else 0.0
        if coding in ("gzip", "x-gzip"):
            gzip_q = q if gzip_q is None else max(gzip_q, q)
        elif coding == "*":
            any_q = q
    if gzip_q is not None:
        return gzip_q > 0
    return any_q is not None and any_q > 0


def loggable(raw: bytes, limit: int = 512) -> str:
    """Request text for a log line: printable ASCII as is, every other byte (control
    characters, non-ASCII) and the backslash as a backslash escape; cut at ``limit``."""
    text = "".join(
        chr(byte) if 0x20 <= byte < 0x7F and byte != 0x5C else f"\\x{byte:02x}"
        for byte in raw[:limit]
    )
    return text + ("..." if len(raw) > limit else "")
