"""JSON decoding: msgspec when installed, the standard library otherwise (e.g. in the
single-file build).

msgspec pays twice on large query answers: generic decoding is faster than the standard
library's, and a well-formed instant-vector answer can be decoded straight into small
typed objects (``VectorDecoder``) instead of a dict per sample and per label set, which
is where most of the time and memory of a 100,000-sample answer went.
"""

from __future__ import annotations

import json
from operator import attrgetter
from typing import Any, Callable, List, Optional, Sequence, Tuple, Type

msgspec: Any
try:
    import msgspec
except ImportError:  # pragma: no cover - exercised only where msgspec is unavailable
    msgspec = None

if msgspec is not None:
    loads: Callable[[bytes], Any] = msgspec.json.decode
    DecodeError: Tuple[Type[Exception], ...] = (msgspec.DecodeError, UnicodeDecodeError)
else:  # pragma: no cover
    loads = json.loads
    DecodeError = (ValueError, UnicodeDecodeError)


class VectorDecoder:
    """Typed decoding of a well-formed Prometheus instant-vector answer.

    ``decode(body)`` returns the samples (objects with ``.metric`` and ``.value``, the
    labels readable with ``labels_of``) or None when the answer is not a successful
    vector with every sample carrying all of ``labels`` as strings and a
    ``[time, "value"]`` pair. The caller then falls back to the tolerant per-sample
    parser, which skips what is malformed and reports why.
    """

    def __init__(self, labels: Sequence[str]) -> None:
        if msgspec is None:
            raise RuntimeError("msgspec is not installed")
        metric = msgspec.defstruct("Metric", [(label, str) for label in labels])
        sample = msgspec.defstruct("Sample", [("metric", metric), ("value", Tuple[float, str])])
        data = msgspec.defstruct("Data", [("resultType", str), ("result", List[sample])])  # type: ignore[valid-type]
        answer = msgspec.defstruct("Answer", [("status", str), ("data", data)])
        self._decoder = msgspec.json.Decoder(answer)
        self.labels_of: Callable[[Any], Any] = attrgetter(*labels)

    def decode(self, body: bytes) -> Optional[List[Any]]:
        try:
            answer: Any = self._decoder.decode(body)
        except msgspec.DecodeError:
            return None
        if answer.status != "success" or answer.data.resultType != "vector":
            return None
        return list(answer.data.result)


def vector_decoder(labels: Sequence[str]) -> Optional[VectorDecoder]:
    """A VectorDecoder, or None where msgspec is missing or a label name cannot be a
    field name (the tolerant parser then does all the work)."""
    if msgspec is None:
        return None
    try:
        return VectorDecoder(labels)
    except (TypeError, ValueError):
        return None
