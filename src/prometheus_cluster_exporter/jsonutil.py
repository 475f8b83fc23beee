"""JSON decoding: orjson when installed (several times faster on large query answers),
the standard library otherwise (e.g. in the single-file build)."""

from __future__ import annotations

from typing import Any, Callable, Tuple, Type

try:
    import orjson

    loads: Callable[[bytes], Any] = orjson.loads
    DecodeError: Tuple[Type[Exception], ...] = (orjson.JSONDecodeError, ValueError)
    BACKEND = "orjson"
except ImportError:  # pragma: no cover - exercised only where orjson is unavailable
    import json

    loads = json.loads
    DecodeError = (ValueError, UnicodeDecodeError)
    BACKEND = "json"
