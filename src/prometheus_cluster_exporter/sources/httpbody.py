"""The body of an HTTP answer: decompressed in bounded steps, never past a size cap.

gzip and deflate are decoded with ``zlib`` using ``max_length``, so however well an answer
compresses (a 1 MB gzip body can decode to 1 GB) no more than the cap plus one step is
ever held. An encoding the exporter did not ask for is an error.
"""

from __future__ import annotations

import http.client
import zlib
from typing import Any, List

from prometheus_cluster_exporter.errors import SourceError
from prometheus_cluster_exporter.jsonutil import DecodeError, loads

_CHUNK = 1 << 20


def _decoder(response: http.client.HTTPResponse, what: str) -> Any:
    encoding = (response.getheader("Content-Encoding") or "identity").strip().lower()
    if encoding in ("identity", ""):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    raise SourceError(f"{what}: answer has Content-Encoding {encoding[:40]!r}, not gzip")


def read_body(
    response: http.client.HTTPResponse, limit: int, what: str, truncate: bool = False
) -> bytes:
    """The decoded body; never more than ``limit`` decoded bytes are held (0: no limit)."""
    decoder = _decoder(response, what)
    chunks: List[bytes] = []
    size = 0
    step = min(limit + 1, _CHUNK) if limit else _CHUNK

    def add(data: bytes) -> bool:
        nonlocal size
        chunks.append(data)
        size += len(data)
        return bool(limit) and size > limit

    finished = False
    while not finished:
        raw = response.read1(_CHUNK)
        if not raw:
            finished = True
            raw = decoder.flush() if decoder is not None else b""
            if decoder is not None and add(raw):
                break
            continue
        if decoder is None:
            if add(raw):
                break
            continue
        over = False
        while raw and not over:
            over = add(decoder.decompress(raw, step))
            raw = decoder.unconsumed_tail
        if over:
            break
    else:
        return b"".join(chunks)
    if truncate:
        return b"".join(chunks)[:limit]
    raise SourceError(f"{what}: answer exceeds --max-response-bytes={limit}; abandoned")


def error_text(body: bytes) -> str:
    try:
        payload = loads(body)
        if isinstance(payload, dict) and payload.get("error"):
            return f": {str(payload['error'])[:300]}"
    except DecodeError:
        pass
    text = body[:200].decode("utf-8", "replace").strip()
    return f": {text}" if text else ""
