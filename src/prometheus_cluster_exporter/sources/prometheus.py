"""Lustre jobstats rates from a Prometheus-compatible HTTP API.

Works with Prometheus, Thanos and VictoriaMetrics: only ``GET /api/v1/query`` is used.
The default queries are those of the original exporter, with the rate function, the
window and the metric/label names configurable::

    sum by(jobid)(irate(lustre_job_read_bytes_total[1m]) != 0)
    sum by(jobid)(irate(lustre_job_write_bytes_total[1m]) != 0)
    round(sum by(target,jobid)(irate(lustre_job_stats_total{target=~".*-MDT[0-9a-fA-F]{4}"}[1m]) >= 1))
"""

from __future__ import annotations

import base64
import logging
import math
import os
import re
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import urlsplit, urlunsplit

import urllib3

from prometheus_cluster_exporter import __version__
from prometheus_cluster_exporter.errors import SourceError
from prometheus_cluster_exporter.jsonutil import (
    DecodeError,
    VectorDecoder,
    loads,
    vector_decoder,
)
from prometheus_cluster_exporter.records import JobidRate, Parsed, TargetRate, checked

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
FS_LABEL = "fs"
FS_OF_TARGET = "(.+)-[A-Za-z]{3}[0-9a-fA-F]{4}"
_FS_OF_TARGET = re.compile(FS_OF_TARGET)


@dataclass(frozen=True)
class LustreQueries:
    """The three PromQL expressions, built once at start-up from the configuration."""

    read: str
    write: str
    metadata: str
    jobid_label: str
    target_label: str
    mdt_target_regex: str
    fs_label: bool = False

    @classmethod
    def build(
        cls,
        *,
        rate_function: str = "irate",
        window: str = "1m",
        read_metric: str = "lustre_job_read_bytes_total",
        write_metric: str = "lustre_job_write_bytes_total",
        stats_metric: str = "lustre_job_stats_total",
        jobid_label: str = "jobid",
        target_label: str = "target",
        mdt_target_regex: str = ".*-MDT[0-9a-fA-F]{4}",
        fs_label: bool = False,
    ) -> LustreQueries:
        def throughput(metric: str) -> str:
            inner = f"{rate_function}({metric}[{window}]) != 0"
            if not fs_label:
                return f"sum by({jobid_label})({inner})"
            # The filesystem is the target name without its -OSTxxxx/-MDTxxxx suffix.
            return (
                f'sum by({jobid_label},{FS_LABEL})(label_replace({inner}, "{FS_LABEL}", "$1", '
                f'"{target_label}", "{FS_OF_TARGET}"))'
            )

        escaped = mdt_target_regex.replace("\\", "\\\\")
        matcher = f'{{{target_label}=~"{escaped}"}}'
        metadata = (
            f"round(sum by({target_label},{jobid_label})"
            f"({rate_function}({stats_metric}{matcher}[{window}]) >= 1))"
        )
        return cls(
            read=throughput(read_metric),
            write=throughput(write_metric),
            metadata=metadata,
            jobid_label=jobid_label,
            target_label=target_label,
            mdt_target_regex=mdt_target_regex,
            fs_label=fs_label,
        )


def fsname(target: str) -> str:
    """``scratch-MDT0000`` -> ``scratch``; a target of another form is its own name."""
    match = _FS_OF_TARGET.fullmatch(target)
    return match.group(1) if match else target


def redact_url(url: str) -> str:
    """The URL without user:password, for logs and the status page."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _sample_value(sample: Any) -> float:
    value = sample["value"]
    if not isinstance(value, list) or len(value) != 2 or not isinstance(value[1], str):
        raise ValueError("value is not [time, string]")
    number = float(value[1])
    if not math.isfinite(number):
        raise ValueError(f"value is {value[1]}")
    return number


def vector_result(payload: Any, what: str) -> List[Any]:
    """The ``data.result`` list of a successful instant-vector answer, or SourceError."""
    if not isinstance(payload, dict):
        raise SourceError(f"{what}: answer is not a JSON object")
    status = payload.get("status")
    if status != "success":
        error = payload.get("error") or payload.get("errorType") or "no error text"
        raise SourceError(f"{what}: query status {status!r}: {str(error)[:300]}")
    data = payload.get("data")
    if not isinstance(data, dict):
        raise SourceError(f"{what}: answer has no data object")
    if data.get("resultType") != "vector":
        raise SourceError(f"{what}: expected a vector result, got {data.get('resultType')!r}")
    result = data.get("result")
    if not isinstance(result, list):
        raise SourceError(f"{what}: data.result is not a list")
    return result


def parse_jobid_vector(
    payload: Any, jobid_label: str, what: str, fs_label: Optional[str] = None
) -> Parsed[List[JobidRate]]:
    """Turn a ``sum by(jobid)`` answer into JobidRate records; skip malformed samples.

    With ``fs_label`` the answer is ``sum by(jobid, fs)`` and every sample needs both.
    """
    rates: List[JobidRate] = []
    skipped = 0
    for sample in vector_result(payload, what):
        try:
            labels = sample["metric"]
            jobid = labels[jobid_label]
            fs = labels[fs_label] if fs_label else ""
            if not isinstance(jobid, str) or not isinstance(fs, str):
                raise TypeError("label is not a string")
            rates.append(JobidRate(jobid, _sample_value(sample), fs))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            skipped += 1
            log.debug("%s: skipping sample %.200r: %s", what, sample, exc)
    return checked(rates, skipped, what)


def parse_target_vector(
    payload: Any, jobid_label: str, target_label: str, target_regex: str, what: str
) -> Parsed[List[TargetRate]]:
    """Turn a ``sum by(target, jobid)`` answer into TargetRate records (MDT targets only)."""
    keep = re.compile(target_regex).fullmatch
    rates: List[TargetRate] = []
    skipped = 0
    for sample in vector_result(payload, what):
        try:
            labels = sample["metric"]
            jobid, target = labels[jobid_label], labels[target_label]
            if not isinstance(jobid, str) or not isinstance(target, str):
                raise TypeError("label is not a string")
            if not keep(target):
                raise ValueError(f"target {target!r} is not a metadata target")
            rates.append(TargetRate(jobid, _sample_value(sample), target))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            skipped += 1
            log.debug("%s: skipping sample %.200r: %s", what, sample, exc)
    return checked(rates, skipped, what)


class PrometheusClient:
    """Instant queries against ``<server>/api/v1/query`` with a hard deadline.

    One connection pool is shared by all scrapes and threads. The whole request,
    including reading the body, must finish before the deadline; a body larger than
    ``max_response_bytes`` (after decompression) is abandoned.
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
        pool: Optional[urllib3.PoolManager] = None,
    ) -> None:
        self.url = redact_url(server.rstrip("/") + "/api/v1/query")
        self.display_url = self.url
        self.max_response_bytes = max_response_bytes
        headers = {
            "Accept": "application/json",
            "Accept-Encoding": "gzip",
            "User-Agent": f"prometheus-cluster-exporter/{__version__}",
        }
        parts = urlsplit(server)
        if basic_auth is None and parts.username is not None:
            basic_auth = (parts.username, parts.password or "")
        if basic_auth is not None:
            token = base64.b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        self.headers = headers
        self.bearer = _TokenFile(bearer_token_file) if bearer_token_file else None
        if pool is None:
            tls: Dict[str, Any] = {}
            if insecure_skip_verify:
                tls["cert_reqs"] = "CERT_NONE"
                urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            if ca_file:
                tls["ca_certs"] = ca_file
            if cert_file:
                tls["cert_file"] = cert_file
                tls["key_file"] = key_file
            pool = urllib3.PoolManager(maxsize=8, retries=False, **tls)
        self.pool = pool

    def query(self, promql: str, deadline: float, what: str) -> bytes:
        """The raw body of a successful (HTTP 200) answer."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SourceError(f"{what}: no time left before the scrape deadline")
        # Let the server give up too; integer milliseconds parse in Prometheus and VictoriaMetrics.
        fields = {"query": promql, "timeout": f"{max(1, int(remaining * 1000))}ms"}
        headers = self.headers
        if self.bearer is not None:
            headers = {**headers, "Authorization": f"Bearer {self.bearer.read(what)}"}
        try:
            response = self.pool.request(
                "GET",
                self.url,
                fields=fields,
                headers=headers,
                timeout=urllib3.Timeout(connect=remaining, read=remaining),
                preload_content=False,
                redirect=False,
                retries=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise SourceError(f"{what}: {self.display_url}: {_describe(exc)}") from None
        try:
            body = self._read_body(response, deadline, what)
        finally:
            response.release_conn()
        if response.status != 200:
            detail = _error_text(body)
            raise SourceError(f"{what}: {self.display_url} answered HTTP {response.status}{detail}")
        return body

    def _read_body(self, response: Any, deadline: float, what: str) -> bytes:
        chunks: List[bytes] = []
        size = 0
        limit = self.max_response_bytes
        try:
            for chunk in response.stream(_CHUNK, decode_content=True):
                chunks.append(chunk)
                size += len(chunk)
                if limit and size > limit:
                    response.close()
                    raise SourceError(
                        f"{what}: answer exceeds --max-response-bytes={limit}; abandoned"
                    )
                if time.monotonic() > deadline:
                    response.close()
                    raise SourceError(f"{what}: answer not complete by the scrape deadline")
        except urllib3.exceptions.HTTPError as exc:
            raise SourceError(f"{what}: {self.display_url}: {_describe(exc)}") from None
        return b"".join(chunks)


class _TokenFile:
    """A bearer token read from a file, re-read when the file changes (token rotation)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: Optional[Tuple[int, int]] = None
        self._token = ""

    def read(self, what: str) -> str:
        try:
            info = os.stat(self.path)
            stamp = (info.st_mtime_ns, info.st_size)
            if stamp != self._stamp:
                with open(self.path) as handle:
                    self._token = handle.read().strip()
                self._stamp = stamp
        except OSError as exc:
            raise SourceError(
                f"{what}: cannot read the bearer token file: {exc.strerror}"
            ) from None
        return self._token


def _describe(exc: Exception) -> str:
    # NewConnectionError subclasses ConnectTimeoutError: test it first.
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return f"connection refused or unreachable ({exc.__cause__ or exc})"
    if isinstance(exc, urllib3.exceptions.SSLError):
        return f"TLS error ({exc.args[0] if exc.args else exc})"
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return "read timed out"
    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
        return "connect timed out"
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        return _describe(exc.reason)
    if isinstance(exc, urllib3.exceptions.ProtocolError):
        return f"connection broken ({exc.args[0] if exc.args else exc})"
    return f"{type(exc).__name__}: {exc}"


def _error_text(body: bytes) -> str:
    try:
        payload = loads(body)
        if isinstance(payload, dict) and payload.get("error"):
            return f": {str(payload['error'])[:300]}"
    except DecodeError:
        pass
    text = body[:200].decode("utf-8", "replace").strip()
    return f": {text}" if text else ""


def decode_json(body: bytes, what: str) -> Any:
    try:
        return loads(body)
    except DecodeError as exc:
        raise SourceError(f"{what}: answer is not valid JSON ({len(body)} bytes): {exc}") from None


_new = tuple.__new__


def fast_jobid_rates(
    samples: List[Any], decoder: VectorDecoder, with_fs: bool, what: str
) -> Parsed[List[JobidRate]]:
    """JobidRate records from typed samples (labels: jobid, or jobid and fs)."""
    rates: List[JobidRate] = []
    skipped = 0
    labels_of = decoder.labels_of
    for sample in samples:
        try:
            value = float(sample.value[1])
        except ValueError:
            value = math.nan
        if value - value != 0:  # NaN, infinities, garbage
            skipped += 1
            log.debug("%s: skipping sample with value %r", what, sample.value[1])
            continue
        # tuple.__new__ builds the record without NamedTuple's Python-level __new__.
        if with_fs:
            jobid, fs = labels_of(sample.metric)
            rates.append(_new(JobidRate, (jobid, value, fs)))
        else:
            rates.append(_new(JobidRate, (labels_of(sample.metric), value, "")))
    return checked(rates, skipped, what)


def fast_target_rates(
    samples: List[Any], decoder: VectorDecoder, target_regex: str, what: str
) -> Parsed[List[TargetRate]]:
    """TargetRate records from typed samples (labels: jobid and target)."""
    keep = re.compile(target_regex).fullmatch
    allowed: Dict[str, bool] = {}
    rates: List[TargetRate] = []
    skipped = 0
    labels_of = decoder.labels_of
    for sample in samples:
        jobid, target = labels_of(sample.metric)
        ok = allowed.get(target)
        if ok is None:
            ok = allowed[target] = keep(target) is not None
        try:
            value = float(sample.value[1])
        except ValueError:
            value = math.nan
        if not ok or value - value != 0:
            skipped += 1
            log.debug("%s: skipping sample %r %r", what, target, sample.value[1])
            continue
        rates.append(_new(TargetRate, (jobid, value, target)))
    return checked(rates, skipped, what)


class PrometheusLustreSource:
    """The LustreSource of a real cluster: three instant queries.

    Well-formed answers take the typed fast path; anything else goes through the
    tolerant parsers, which skip malformed samples one by one.
    """

    def __init__(self, client: PrometheusClient, queries: LustreQueries) -> None:
        self.client = client
        self.queries = queries
        q = queries
        self._jobid_decoder = vector_decoder(
            (q.jobid_label, FS_LABEL) if q.fs_label else (q.jobid_label,)
        )
        self._target_decoder = vector_decoder((q.jobid_label, q.target_label))

    def _throughput(self, promql: str, deadline: float, what: str) -> Parsed[List[JobidRate]]:
        body = self.client.query(promql, deadline, what)
        decoder = self._jobid_decoder
        samples = decoder.decode(body) if decoder is not None else None
        if decoder is not None and samples is not None:
            return fast_jobid_rates(samples, decoder, self.queries.fs_label, what)
        fs_label = FS_LABEL if self.queries.fs_label else None
        return parse_jobid_vector(decode_json(body, what), self.queries.jobid_label, what, fs_label)

    def read_rates(self, deadline: float) -> Parsed[List[JobidRate]]:
        return self._throughput(self.queries.read, deadline, "read query")

    def write_rates(self, deadline: float) -> Parsed[List[JobidRate]]:
        return self._throughput(self.queries.write, deadline, "write query")

    def metadata_rates(self, deadline: float) -> Parsed[List[TargetRate]]:
        q = self.queries
        what = "metadata query"
        body = self.client.query(q.metadata, deadline, what)
        decoder = self._target_decoder
        samples = decoder.decode(body) if decoder is not None else None
        if decoder is not None and samples is not None:
            return fast_target_rates(samples, decoder, q.mdt_target_regex, what)
        return parse_target_vector(
            decode_json(body, what), q.jobid_label, q.target_label, q.mdt_target_regex, what
        )


__all__: Tuple[str, ...] = (
    "LustreQueries",
    "PrometheusClient",
    "PrometheusLustreSource",
    "fsname",
    "parse_jobid_vector",
    "parse_target_vector",
    "redact_url",
)
