"""Log output as the Prometheus exporters write it: to standard error, in one of three
formats, with UTC timestamps that carry their offset.

``--log.format=text`` (the default)::

    2026-12-02T01:27:55.123+00:00 WARNING prometheus_cluster_exporter.collector: source squeue failed: ...

``--log.format=logfmt``::

    time=2026-12-02T01:27:55.123+00:00 level=WARN logger=collector msg="source squeue failed: ..."

``--log.format=json``::

    {"time":"2026-12-02T01:27:55.123+00:00","level":"WARN","logger":"collector","msg":"source squeue failed: ..."}

Imports nothing of the exporter's.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Dict, Optional, TextIO

TRACE = 5
FORMATS = ("text", "logfmt", "json")
#: Level names as Go's log/slog (and so the Prometheus exporters) write them.
_GO_LEVELS: Dict[int, str] = {
    TRACE: "DEBUG",
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARN",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "ERROR",
}
_PREFIX = "prometheus_cluster_exporter."


def utc_timestamp(created: float) -> str:
    """``2026-12-02T01:27:55.123+00:00``: RFC 3339, UTC, milliseconds."""
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}+00:00"


def _message(record: logging.LogRecord) -> str:
    message = record.getMessage()
    if record.exc_info:
        message = f"{message}\n{logging.Formatter().formatException(record.exc_info)}"
    return message


def _logger(record: logging.LogRecord) -> str:
    name = record.name
    return name[len(_PREFIX) :] if name.startswith(_PREFIX) else name


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return (
            f"{utc_timestamp(record.created)} {record.levelname} {record.name}: {_message(record)}"
        )


def _logfmt_value(value: str) -> str:
    if value and not any(c in value for c in ' "=\\') and value.isprintable():
        return value
    return json.dumps(value, ensure_ascii=False)


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = _GO_LEVELS.get(record.levelno, record.levelname)
        return (
            f"time={utc_timestamp(record.created)} level={level} "
            f"logger={_logfmt_value(_logger(record))} msg={_logfmt_value(_message(record))}"
        )


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "time": utc_timestamp(record.created),
                "level": _GO_LEVELS.get(record.levelno, record.levelname),
                "logger": _logger(record),
                "msg": _message(record),
            },
            ensure_ascii=False,
        )


_FORMATTERS = {"text": TextFormatter, "logfmt": LogfmtFormatter, "json": JsonFormatter}


def setup_logging(level: str, fmt: str = "text", stream: Optional[TextIO] = None) -> None:
    """Log at ``level`` (ERROR ... TRACE) in ``fmt`` to ``stream`` (standard error)."""
    logging.addLevelName(TRACE, "TRACE")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_FORMATTERS[fmt]())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(TRACE if level == "TRACE" else getattr(logging, level))
