"""A scanner for instant-vector answers in the exact shape Prometheus writes them.

Prometheus (and VictoriaMetrics) write an instant vector compactly, label names sorted,
every sample evaluated at the same instant::

    {"status":"success","data":{"resultType":"vector","result":[
    {"metric":{"jobid":"4242","target":"scratch-MDT0000"},"value":[1733090000.123,"12"]},...]}}

Between two label values (and between the last one and the value) there is always the
same text, so the answer is cut into slices of about a megabyte at sample boundaries and
each slice is taken apart with a few byte-string replaces and one split, all in C: no
Python object per sample but the strings and floats that are kept, one column per label
and one for the values. A slice is only accepted when every separator was found in the
expected order (checked on the slice's marker bytes) and no quote or backslash is left
over: any other shape (escapes, other labels, extra whitespace, a second timestamp)
makes ``scan_vector`` return None, and the caller decodes the answer with the general
parsers instead, which accept every valid answer and skip malformed samples one by one.
"""

from __future__ import annotations

import math
from array import array
from typing import List, Optional, Sequence

from prometheus_cluster_exporter.jsonutil import DecodeError, loads
from prometheus_cluster_exporter.pacing import check_deadline

#: Bytes of answer taken apart at a time.
SLICE = 1 << 20
_NEXT, _TAIL, _MID = b"\x01", b"\x02", b"\x03"
_MARKERS = _NEXT + _TAIL + _MID
_NOT_MARKERS = bytes(b for b in range(256) if b not in _MARKERS)
_ONE_MARKER = {2: 1, 3: 1}
_RESULT = b'"result":['
_END = b'"]}'


class Columns:
    """What a scan yields: one list per label (in the order asked for) and the values."""

    def __init__(self, width: int) -> None:
        self.labels: List[List[str]] = [[] for _ in range(width)]
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
        self.pattern = _MID * len(self.mids) + _TAIL

    def take(self, piece: bytes, into: Columns) -> bool:
        """Add the samples of ``piece`` (whole samples, head to end) to ``into``; False
        if it is not exactly in this shape."""
        if not piece.startswith(self.head) or not piece.endswith(_END):
            return False
        if piece.find(_NEXT) >= 0 or piece.find(_TAIL) >= 0 or piece.find(_MID) >= 0:
            return False
        try:
            text = piece[len(self.head) : -len(_END)].decode()
        except UnicodeDecodeError:
            return False
        text = text.replace(self.next, "\x01").replace(self.tail, "\x02")
        for mid in self.mids:
            text = text.replace(mid, "\x03")
        if text.find('"') >= 0 or text.find("\\") >= 0:
            return False
        count = text.count("\x02")
        markers = text.encode("utf-8", "surrogatepass").translate(None, _NOT_MARKERS)
        if markers != (self.pattern + _NEXT) * (count - 1) + self.pattern:
            return False
        fields = text.translate(_ONE_MARKER).split("\x01")
        width = self.width
        try:
            values = list(map(float, fields[width - 1 :: width]))
        except ValueError:
            return False
        for column, i in zip(into.labels, self.fields):
            column.extend(fields[i::width])
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
    """The samples of an answer whose every sample has exactly the labels ``names``;
    None if the answer is not in the exact shape (see the module docstring). Late (a
    SourceError) once the deadline has passed."""
    start = body.find(_RESULT)
    if start < 0:
        return None
    start += len(_RESULT)
    columns = Columns(len(names))
    if body[start : start + 1] == b"]":
        return columns if _envelope_ok(body[:start], body[start:]) else None
    stop = body.find(_END + b"]", start)
    first = body.find(b'"value":[', start, stop)
    if stop < 0 or first < 0:
        return None
    stop += len(_END)
    instant = body[first + 9 : body.find(b",", first, stop)]
    if not _envelope_ok(body[:start], body[stop:]):
        return None
    shape = _Shape(names, instant)
    pos = start
    while pos < stop:
        check_deadline(deadline, what)
        cut = body.find(shape.cut, pos + SLICE, stop)
        end = stop if cut < 0 else cut + len(_END)
        if not shape.take(body[pos:end], columns):
            return None
        pos = end + 1
    return columns
