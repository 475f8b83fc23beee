"""Log formats: text, logfmt and JSON, with UTC timestamps that carry their offset."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
from typing import Iterator

import pytest

from prometheus_cluster_exporter.logs import setup_logging, utc_timestamp

UTC = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def logged(fmt: str, message: str, *args: object) -> str:
    stream = io.StringIO()
    setup_logging("INFO", fmt, stream)
    logging.getLogger("prometheus_cluster_exporter.collector").warning(message, *args)
    logging.getLogger("prometheus_cluster_exporter.collector").debug("not shown")
    return stream.getvalue()


def test_utc_timestamp() -> None:
    assert utc_timestamp(0.5) == "1970-01-01T00:00:00.500+00:00"
    assert utc_timestamp(1733090000.123456) == "2024-12-01T21:53:20.123+00:00"


def test_text(restore_logging: None) -> None:
    line = logged("text", "source %s failed", "squeue")
    assert re.fullmatch(
        UTC + r" WARNING prometheus_cluster_exporter\.collector: source squeue failed\n", line
    )


def test_logfmt_quotes_what_needs_quoting(restore_logging: None) -> None:
    line = logged("logfmt", 'jobid %s: "odd" = x\nnext', "'a b'")
    assert re.fullmatch(UTC.join(["time=", " level=WARN logger=collector msg=(.*)\n"]), line)
    msg = line.split(" msg=", 1)[1].rstrip("\n")
    assert json.loads(msg) == "jobid 'a b': \"odd\" = x\nnext"
    assert logged("logfmt", "plain").endswith(" msg=plain\n")


def test_json_lines(restore_logging: None) -> None:
    line = logged("json", "source %s failed: %s", "sacct", 'ünïcode "quoted"')
    record = json.loads(line)
    assert record["level"] == "WARN" and record["logger"] == "collector"
    assert record["msg"] == 'source sacct failed: ünïcode "quoted"'
    assert re.fullmatch(UTC, record["time"])


def test_the_exporter_logs_json_when_asked() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "prometheus_cluster_exporter", "--demo", "--once",
         "--log.format=json", "--log.level=warn"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    lines = result.stderr.splitlines()
    assert lines, "the demo warns about ids nobody can be named for"
    records = [json.loads(line) for line in lines]
    assert {r["level"] for r in records} <= {"WARN", "ERROR"}
    assert any("not attributed" in r["msg"] for r in records)
