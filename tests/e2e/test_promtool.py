"""promtool (from the prometheus package) lints the exporter's exposition."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e import components as c

pytestmark = pytest.mark.e2e


def test_demo_exposition_passes_promtool(tmp_path: Path) -> None:
    if shutil.which("promtool") is None:
        c.unavailable("promtool is not installed (Debian package prometheus)")
    proc = c.Process(
        [*c.exporter_command(), "--demo", "--web.listen-address=127.0.0.1:0"],
        tmp_path / "demo.log",
    )
    try:
        url = proc.wait_for_log(r"Listening on (http://127\.0\.0\.1:\d+)").group(1)
        text = c.http_get(url + "/metrics", timeout=30)
    finally:
        proc.stop()
    assert b"cluster_job_read_throughput_bytes{" in text
    # The demo shows every opt-in family: the top jobs, operations, metadata by operation.
    assert b"cluster_top_job_read_throughput_bytes{" in text
    assert b"cluster_job_write_operations{" in text and b'operation="open"' in text
    result = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, timeout=30, check=False
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()
