"""``--web.config.file``: TLS and basic auth in the Prometheus exporter-toolkit format.

The same file the Go exporters take::

    tls_server_config:
      cert_file: server.crt
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert   # optional, default NoClientCert
      client_ca_file: ca.crt                         # needed to verify client certs
      min_version: TLS12                             # optional: TLS10 .. TLS13
      max_version: TLS13
    http_server_config:
      headers:                                       # optional extra response headers
        Strict-Transport-Security: max-age=31536000
    basic_auth_users:
      prometheus: $2y$10$...                         # bcrypt hash (htpasswd -nBC 10 "")

The file is read and checked once, at start-up: an invalid file stops the exporter with
one clear message. Settings of the format this exporter does not implement
(``cipher_suites``, inline ``cert``/``key``, ``rate_limit`` ...) are refused rather than
silently ignored.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Set, Tuple

from prometheus_cluster_exporter.config import ConfigError

# Client certificates are always verified against client_ca_file; the unverified kinds
# of the format (RequestClientCert, RequireAnyClientCert) are refused.
_CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
_TLS_KEYS = {
    "cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version",
}  # fmt: skip
_TOP_KEYS = {"tls_server_config", "http_server_config", "basic_auth_users"}
_HTTP_KEYS = {"headers", "http2"}
# A verified password is remembered this long, so bcrypt (deliberately slow) does not run
# on every scrape.
AUTH_CACHE_SECONDS = 300.0
_BCRYPT_MAX = 72  # bcrypt uses the first 72 bytes of a password


class BasicAuth:
    """Checks ``Authorization: Basic`` headers against bcrypt hashes.

    Passwords are compared as Go's bcrypt CompareHashAndPassword (which the Go exporters
    use) does: only their first 72 bytes count, so a longer password is checked, never an
    error. A refusal must not tell whether the user exists: an unknown user is checked
    against a stand-in hash of the highest cost among the configured users, and
    ``verify`` says how long to wait before answering any refusal so that it takes as
    long as one check at that cost, measured at start-up.
    """

    def __init__(
        self, users: Mapping[str, str], clock: Callable[[], float] = time.monotonic
    ) -> None:
        try:
            import bcrypt
        except ImportError:  # pragma: no cover - only in builds without bcrypt
            raise ConfigError(
                "--web.config.file: basic_auth_users needs the bcrypt package"
            ) from None
        self._bcrypt = bcrypt
        self._clock = clock
        self.users = {user: hashed.encode() for user, hashed in users.items()}
        self._verified: Dict[Tuple[str, bytes], float] = {}
        self._lock = threading.Lock()
        cost = max((_cost(hashed) for hashed in self.users.values()), default=10)
        started = clock()
        self._dummy = bcrypt.hashpw(b"stand-in", bcrypt.gensalt(rounds=cost))
        hashing = clock() - started
        started = clock()
        self._checkpw(b"other", self._dummy)
        # The slower of the two runs at start-up, so that a refusal is rarely faster.
        self.failure_floor = max(hashing, clock() - started)

    def verify(self, header: Optional[str]) -> Tuple[bool, float]:
        """Whether the header is accepted, and for a refusal the seconds to wait before
        answering, so that every refusal takes ``failure_floor``."""
        started = self._clock()
        if self.check(header):
            return True, 0.0
        return False, max(0.0, self.failure_floor - (self._clock() - started))

    def cached(self, header: Optional[str]) -> bool:
        """True if this header's password was verified within AUTH_CACHE_SECONDS (cheap:
        no bcrypt); False means ``verify`` must decide."""
        parsed = _credentials(header)
        if parsed is None:
            return False
        user, secret = parsed
        return self._remembered((user, hashlib.sha256(secret).digest()), self._clock())

    def _remembered(self, key: Tuple[str, bytes], now: float) -> bool:
        with self._lock:
            expiry = self._verified.get(key)
        return expiry is not None and expiry > now

    def check(self, header: Optional[str]) -> bool:
        parsed = _credentials(header)
        if parsed is None:
            return False
        user, secret = parsed
        digest = hashlib.sha256(secret).digest()
        now = self._clock()
        if self._remembered((user, digest), now):
            return True
        hashed = self.users.get(user)
        ok = self._checkpw(secret, hashed or self._dummy) and hashed is not None
        if ok:
            with self._lock:
                if len(self._verified) > 1000:
                    self._verified.clear()
                self._verified[(user, digest)] = now + AUTH_CACHE_SECONDS
        return ok

    def _checkpw(self, password: bytes, hashed: bytes) -> bool:
        try:
            return bool(self._bcrypt.checkpw(password[:_BCRYPT_MAX], hashed))
        except ValueError:  # a hash the bcrypt module cannot read
            return False


def _credentials(header: Optional[str]) -> Optional[Tuple[str, bytes]]:
    """(user, password) of an ``Authorization: Basic`` header (scheme in any case)."""
    scheme, _, credentials = (header or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep:
        return None
    return user, password.encode()


def _cost(hashed: bytes) -> int:
    """The cost of a ``$2y$10$...`` hash, within what bcrypt accepts (4-31)."""
    try:
        return min(31, max(4, int(hashed[4:6])))
    except ValueError:
        return 10


@dataclass
class WebConfig:
    ssl_context: Optional[ssl.SSLContext] = None
    basic_auth: Optional[BasicAuth] = None
    headers: Dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        parts = ["TLS" if self.ssl_context else "plain HTTP"]
        if self.basic_auth:
            parts.append(f"basic auth ({len(self.basic_auth.users)} users)")
        return ", ".join(parts)


def _mapping(value: Any, where: str) -> Dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"--web.config.file: {where} must be a mapping")
    return value


def _unknown(keys: Any, allowed: Set[str], where: str) -> None:
    extra = sorted(set(keys) - allowed)
    if extra:
        raise ConfigError(f"--web.config.file: {where}: unsupported setting(s): {', '.join(extra)}")


def load_web_config(path: str) -> WebConfig:
    """Read and validate the file; ConfigError with one clear message if it is unusable."""
    try:
        import yaml
    except ImportError:  # pragma: no cover
        raise ConfigError("--web.config.file needs the PyYAML package") from None
    base = Path(path).parent
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"--web.config.file: cannot read {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(
            f"--web.config.file: {path} is not valid YAML{where}: {problem}"
        ) from None
    top = _mapping(data, "the file")
    _unknown(top, _TOP_KEYS, "top level")

    config = WebConfig()
    tls = _mapping(top.get("tls_server_config"), "tls_server_config")
    if tls:
        _unknown(tls, _TLS_KEYS, "tls_server_config")
        config.ssl_context = _ssl_context(tls, base)
    http = _mapping(top.get("http_server_config"), "http_server_config")
    _unknown(http, _HTTP_KEYS, "http_server_config")
    headers = _mapping(http.get("headers"), "http_server_config.headers")
    config.headers = {str(k): str(v) for k, v in headers.items()}
    users = _mapping(top.get("basic_auth_users"), "basic_auth_users")
    if users:
        for user, hashed in users.items():
            if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
                raise ConfigError(
                    f"--web.config.file: basic_auth_users.{user}: not a bcrypt hash "
                    "(make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n')"
                )
        config.basic_auth = BasicAuth({str(u): h for u, h in users.items()})
    return config


def _file(tls: Mapping[str, Any], key: str, base: Path) -> Optional[str]:
    value = tls.get(key)
    if value is None or value == "":
        return None
    candidate = Path(str(value))
    if not candidate.is_absolute():
        candidate = base / candidate
    if not candidate.is_file():
        raise ConfigError(f"--web.config.file: tls_server_config.{key}: no such file: {candidate}")
    return str(candidate)


def _ssl_context(tls: Mapping[str, Any], base: Path) -> ssl.SSLContext:
    cert, key = _file(tls, "cert_file", base), _file(tls, "key_file", base)
    if not cert or not key:
        raise ConfigError("--web.config.file: tls_server_config needs both cert_file and key_file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"--web.config.file: cannot load cert_file/key_file: {exc}") from None
    for name, attribute in (("min_version", "minimum_version"), ("max_version", "maximum_version")):
        value = tls.get(name)
        if value is not None:
            if value not in _TLS_VERSIONS:
                raise ConfigError(
                    f"--web.config.file: tls_server_config.{name}: expected one of "
                    f"{', '.join(_TLS_VERSIONS)}, got {value!r}"
                )
            setattr(context, attribute, _TLS_VERSIONS[value])
    if "min_version" not in tls:
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    auth_type = tls.get("client_auth_type", "NoClientCert")
    if auth_type not in _CLIENT_AUTH:
        raise ConfigError(
            "--web.config.file: tls_server_config.client_auth_type: expected one of "
            f"{', '.join(_CLIENT_AUTH)}, got {auth_type!r}"
        )
    context.verify_mode = _CLIENT_AUTH[auth_type]
    ca = _file(tls, "client_ca_file", base)
    if auth_type != "NoClientCert" and not ca:
        raise ConfigError(f"--web.config.file: client_auth_type {auth_type} needs client_ca_file")
    if ca:
        try:
            context.load_verify_locations(cafile=ca)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"--web.config.file: cannot load client_ca_file: {exc}") from None
    return context
