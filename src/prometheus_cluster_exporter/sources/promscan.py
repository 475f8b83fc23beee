"""A scanner for instant-vector answers in the exact shape Prometheus writes them.

Prometheus (and VictoriaMetrics) write an instant vector compactly, label names sorted,
every sample evaluated at the same instant::

    {"status":"success","data":{"resultType":"vector","result":[
    {"metric":{"jobid":"4242","target":"scratch-MDT0000"},"value":[1733090000.123,"12"]},...]}}

Between two label values (and between the last one and the value) there is always the
same text, so the answer, taken in pieces as it is decompressed, is cut at sample
boundaries and each slice is taken apart with a few string replaces and one split, all
in C: no Python object per sample survives a slice. The jobids are kept packed
(``records.Packed``), the values in an array. A slice is only accepted when no quote or
backslash is left over and every sample ends exactly where a separator was found; any
other shape (escapes, other labels, extra whitespace, a second timestamp) makes
``scan_pieces`` return None, and the caller decodes the answer with the general parsers
instead, which accept every valid answer and skip malformed samples one by one."""

from __future__ import annotations

import math
import sys
from array import array
from typing import Iterable, List, Optional, Sequence

from prometheus_cluster_exporter.jsonutil import DecodeError, loads
from prometheus_cluster_exporter.pacing import check_deadline
from prometheus_cluster_exporter.records import Packed

#: Bytes of a whole answer taken apart at a time (``scan_vector``).
SLICE = 1 << 20
#: Where the samples must have begun, and the most held without a whole sample: past
#: these, the answer is not in the shape (a sample is never megabytes long) and goes to
#: the general parsers, which the size cap bounds.
MAX_HEAD = 1 << 16
MAX_HELD = 1 << 23
#: What the separators are replaced with, and what joins the ids of a slice: neither may
#: be in an answer taken apart (JSON writes control characters escaped).
_MARK, _JOIN = b"\x01", b"\x00"
_RESULT = b'"result":['
_END = b'"]}'


class Columns:
    """What a scan yields: the first label's values packed (``records.Packed``), a list
    for each other label (in the order asked for; few distinct values, one object each)
    and the values."""

    def __init__(self, width: int) -> None:
        self.ids = Packed()
        self.labels: List[List[str]] = [[] for _ in range(width - 1)]
        self.values = array("d")


class _Shape:
    """The separators of one answer, from its first sample."""

    def __init__(self, names: Sequence[str], instant: bytes) -> None:
        order = sorted(range(len(names)), key=names.__getitem__)
        quoted = [f'"{names[i]}":"'.encode() for i in order]
        self.head = b'{"metric":{' + quoted[0]
        #: Between two samples.
        self.cut = _END + b"," + self.head
        self.next = self.cut.decode()
        self.tail = '"},"value":[' + instant.decode("ascii", "replace") + ',"'
        self.mids = ['",' + q.decode() for q in quoted[1:]]
        #: Where each asked-for label's field sits in a sample's fields.
        self.fields = [order.index(i) for i in range(len(names))]
        self.width = len(names) + 1

    def take(self, piece: bytes, into: Columns) -> bool:
        """Add the samples of ``piece`` (whole samples, head to end) to ``into``; False
        if it is not exactly in this shape."""
        if not piece.startswith(self.head) or not piece.endswith(_END):
            return False
        if piece.find(_MARK) >= 0 or piece.find(_JOIN) >= 0:
            return False
        try:
            text = piece[len(self.head) : -len(_END)].decode()
        except UnicodeDecodeError:
            return False
        # Every separator becomes one mark, and the one between samples two: each sample
        # is then its label values and its value, and an empty field after it.
        text = text.replace(self.next, "\x01\x01").replace(self.tail, "\x01")
        for mid in self.mids:
            text = text.replace(mid, "\x01")
        if text.find('"') >= 0 or text.find("\\") >= 0:
            return False
        fields = text.split("\x01")
        width = self.width + 1
        if (len(fields) + 1) % width or any(fields[width - 1 :: width]):
            return False
        try:
            values = list(map(float, fields[width - 2 :: width]))
        except ValueError:
            return False
        into.ids.extend(fields[self.fields[0] :: width])
        for column, i in zip(into.labels, self.fields[1:]):
            column.extend(map(sys.intern, fields[i::width]))
        into.values.extend(values)
        return True


def _envelope_ok(head: bytes, tail: bytes) -> bool:
    """The answer around the samples: a successful vector (warnings and stats allowed)."""
    try:
        payload = loads(head + tail)
    except DecodeError:
        return False
    if not isinstance(payload, dict) or payload.get("status") != "success":
        return False
    data = payload.get("data")
    return (
        isinstance(data, dict) and data.get("resultType") == "vector" and data.get("result") == []
    )


def scan_vector(
    body: bytes, names: Sequence[str], deadline: float = math.inf, what: str = "answer"
) -> Optional[Columns]:
    """``scan_pieces`` of a whole answer."""
    pieces = (body[i : i + SLICE] for i in range(0, len(body), SLICE))
    return scan_pieces(pieces, names, deadline, what)


def scan_pieces(
    pieces: Iterable[bytes], names: Sequence[str], deadline: float = math.inf, what: str = "answer"
) -> Optional[Columns]:
    """The samples of an answer, given in pieces of any size, whose every sample has
    exactly the labels ``names``; None if the answer is not in the exact shape (see the
    module docstring). Only the piece at hand and an unfinished sample are held. Late (a
    SourceError) once the deadline has passed."""
    stream = iter(pieces)
    buf = b""
    while buf.find(_RESULT) < 0:
        piece = next(stream, None)
        if piece is None or len(buf) > MAX_HEAD:
            return None
        buf += piece
    start = buf.find(_RESULT) + len(_RESULT)
    head, buf = buf[:start], buf[start:]
    columns = Columns(len(names))
    shape: Optional[_Shape] = None
    while True:
        check_deadline(deadline, what)
        if shape is None and buf[:1] == b"]":  # no samples at all
            return columns if _envelope_ok(head, buf + b"".join(stream)) else None
        shape = shape or _first_shape(buf, names)
        if shape is not None:
            stop = buf.find(_END + b"]")
            if stop >= 0:
                stop += len(_END)
                if not shape.take(buf[:stop], columns):
                    return None
                return columns if _envelope_ok(head, buf[stop:] + b"".join(stream)) else None
            cut = buf.rfind(shape.cut)
            if cut > 0:
                if not shape.take(buf[: cut + len(_END)], columns):
                    return None
                buf = buf[cut + len(_END) + 1 :]
        piece = next(stream, None)
        if piece is None or len(buf) > MAX_HELD:
            return None
        buf += piece


def _first_shape(buf: bytes, names: Sequence[str]) -> Optional[_Shape]:
    """The shape of the answer, once its first sample's instant has arrived."""
    first = buf.find(b'"value":[')
    comma = buf.find(b",", first) if first >= 0 else -1
    return _Shape(names, buf[first + 9 : comma]) if comma >= 0 else None
