"""The body of an HTTP answer: decompressed in bounded steps, never past a size cap.

gzip and deflate are decoded with ``zlib`` using ``max_length``, so however well an answer
compresses (a 1 MB gzip body can decode to 1 GB) no more than the cap plus one step is
ever held. An encoding the exporter did not ask for is an error.

``Body`` keeps an answer as it arrived (compressed, when the server compressed it) and
decodes it piece by piece on demand: a scanner can take a 100 MB answer apart a
megabyte at a time without the decoded answer ever being held whole.
"""

from __future__ import annotations

import http.client
import threading
import zlib
from queue import Full, Queue
from typing import Any, Iterator, List, Tuple

from prometheus_cluster_exporter.errors import SourceError
from prometheus_cluster_exporter.jsonutil import DecodeError, loads

_CHUNK = 1 << 20


def _encoding(response: http.client.HTTPResponse) -> str:
    return (response.getheader("Content-Encoding") or "identity").strip().lower()


def _decoder(encoding: str, what: str) -> Any:
    if encoding in ("identity", ""):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    raise SourceError(f"{what}: answer has Content-Encoding {encoding[:40]!r}, not gzip")


#: Compressed answers of more received pieces than this are decompressed on a thread of
#: their own, a few pieces ahead of the reader: zlib lets go of the interpreter while it
#: works, so decompressing overlaps with taking the answer apart.
AHEAD_FROM = 4
_DONE, _FAILED = object(), object()


def ahead(items: Iterator[bytes], depth: int = 4) -> Iterator[bytes]:
    """``items``, made on a daemon thread at most ``depth`` ahead of the reader; an
    exception there is raised here. When the reader stops early the thread stops too."""
    queue: Queue[Tuple[object, Any]] = Queue(depth)
    stop = threading.Event()

    def put(entry: Tuple[object, Any]) -> bool:
        while not stop.is_set():
            try:
                queue.put(entry, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((None, item)):
                    return
            put((_DONE, None))
        except BaseException as exc:
            put((_FAILED, exc))

    threading.Thread(target=produce, name="decompress", daemon=True).start()
    try:
        while True:
            kind, item = queue.get()
            if kind is _DONE:
                return
            if kind is _FAILED:
                raise item
            yield item
    finally:
        stop.set()


class Body:
    """An answer's body as received, in pieces, and its decoding (``pieces``, ``whole``)."""

    def __init__(self, raw: List[bytes], encoding: str, limit: int, what: str) -> None:
        self.raw = raw
        self.encoding = encoding
        self.limit = limit
        self.what = what

    def pieces(self) -> Iterator[bytes]:
        """The decoded body, a step at a time; SourceError once it exceeds the cap."""
        decoder = _decoder(self.encoding, self.what)
        limit = self.limit
        step = min(limit + 1, _CHUNK) if limit else _CHUNK
        size = 0
        decoded = self._decoded(decoder, step)
        if decoder is not None and len(self.raw) > AHEAD_FROM:
            decoded = ahead(decoded)
        for data in decoded:
            size += len(data)
            if limit and size > limit:
                raise SourceError(
                    f"{self.what}: answer exceeds --max-response-bytes={limit}; abandoned"
                )
            if data:
                yield data

    def _decoded(self, decoder: Any, step: int) -> Iterator[bytes]:
        if decoder is None:
            yield from self.raw
            return
        try:
            for received in self.raw:
                tail = received
                while tail:
                    yield decoder.decompress(tail, step)
                    tail = decoder.unconsumed_tail
            yield decoder.flush()
        except zlib.error as exc:
            raise SourceError(f"{self.what}: answer does not decompress: {exc}") from None

    def whole(self) -> bytes:
        return b"".join(self.pieces())


def receive(response: http.client.HTTPResponse, limit: int, what: str) -> Body:
    """The body as it arrives; only checks the encoding and that the received bytes stay
    within ``limit`` (0: no limit): decoded, they can only be more."""
    encoding = _encoding(response)
    _decoder(encoding, what)
    chunks: List[bytes] = []
    size = 0
    while True:
        raw = response.read1(_CHUNK)
        if not raw:
            return Body(chunks, encoding, limit, what)
        chunks.append(raw)
        size += len(raw)
        if limit and size > limit:
            raise SourceError(f"{what}: answer exceeds --max-response-bytes={limit}; abandoned")


def error_body(response: http.client.HTTPResponse, limit: int, what: str) -> bytes:
    """At most ``limit`` bytes of an error answer, decoded: enough for its message."""
    out = b""
    for data in Body([response.read(limit)], _encoding(response), 0, what).pieces():
        out += data
        if len(out) >= limit:
            break
    return out[:limit]


def error_text(body: bytes) -> str:
    try:
        payload = loads(body)
        if isinstance(payload, dict) and payload.get("error"):
            return f": {str(payload['error'])[:300]}"
    except DecodeError:
        pass
    text = body[:200].decode("utf-8", "replace").strip()
    return f": {text}" if text else ""
