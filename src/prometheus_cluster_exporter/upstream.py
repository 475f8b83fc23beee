"""The upstream server's URL (``--promserver``): parsed once, shown only without secrets.

A URL may carry basic-auth credentials (``http://user:p%40ss@prom:9090``). They are
percent-decoded for sending and never shown: every message, log line and page uses
``redact_url``, which removes the user-info part textually, so that even a URL too broken
to parse (a mistyped scheme, a bad port) is shown without its password. IPv6 literals
keep their brackets (``http://[::1]:9090``).

Pure functions, no I/O; imported by the configuration, the HTTP client and the pages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import unquote, urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def redact_url(url: str) -> str:
    """The URL without ``user:password@``, whatever else is wrong with it.

    Everything up to the last ``@`` after ``//`` goes: a password typed with an unencoded
    ``/``, ``?`` or ``#`` is removed too (a base URL has no ``@`` of its own).
    """
    start = url.find("//")
    start = 0 if start < 0 else start + 2
    at = url.rfind("@", start)
    if at < 0:
        return url
    return url[:start] + url[at + 1 :]


@dataclass(frozen=True)
class ServerURL:
    """A parsed ``http(s)://[user:password@]host[:port][/path]``."""

    scheme: str
    host: str  # without brackets
    port: int
    path: str  # without a trailing slash; "" for the root
    explicit_port: bool = True
    username: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" if self.explicit_port else host

    def display(self, path: str = "") -> str:
        """The URL (plus ``path``) as logs and pages show it: never with credentials."""
        return f"{self.scheme}://{self.netloc}{self.path}{path}"


def parse_server_url(url: str) -> ServerURL:
    """Parse and check a server URL; ValueError with a message free of credentials."""
    shown = repr(redact_url(url))
    if "@" in url[url.find("//") + 2 :].partition("@")[2]:
        raise ValueError(
            f"more than one @ in {shown}: write @ / ? # in a user name or password "
            "percent-encoded (%40 %2F %3F %23)"
        )
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ValueError(f"not a valid URL (a bad IPv6 address?): {shown}") from None
    if "@" in parts.path + parts.query + parts.fragment:
        raise ValueError(
            f"@ after the host in {shown}: write / ? # in a user name or password "
            "percent-encoded (%2F %3F %23)"
        )
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"the port is not a number from 1 to 65535 in {shown}") from None
    if parts.scheme not in DEFAULT_PORTS:
        raise ValueError(f"expected an http:// or https:// URL, got {shown}")
    if not parts.hostname:
        raise ValueError(f"no host name in {shown}")
    if port == 0:
        raise ValueError(f"port 0 in {shown}")
    if parts.query or parts.fragment:
        raise ValueError(f"the URL must not have a query or fragment: {shown}")
    return ServerURL(
        scheme=parts.scheme,
        host=parts.hostname,
        port=port if port is not None else DEFAULT_PORTS[parts.scheme],
        path=parts.path.rstrip("/"),
        explicit_port=port is not None,
        username=None if parts.username is None else unquote(parts.username),
        password=None if parts.password is None else unquote(parts.password),
    )
