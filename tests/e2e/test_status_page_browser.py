"""The status page in a real browser: headless Chromium renders it, and both the DOM it
built and its screenshot are checked."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e import components as c
from tests.e2e import pngpixels

pytestmark = pytest.mark.e2e
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
]  # fmt: skip


def png_facts(data: bytes) -> tuple[int, int, int]:
    """(width, height, distinct byte values in the image data) of a PNG."""
    width, height, _, raw = pngpixels.image_data(data)
    return width, height, len(set(raw))


def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        c.unavailable("chromium is not installed (Debian package chromium)")
    return subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={tmp / 'profile'}", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_status_page_in_headless_chromium(tmp_path: Path) -> None:
    proc = c.Process(
        [*c.exporter_command(), "--demo", "--web.listen-address=127.0.0.1:0"],
        tmp_path / "demo.log",
    )
    try:
        url = proc.wait_for_log(r"Listening on (http://127\.0\.0\.1:\d+)").group(1)
        c.http_get(url + "/metrics", timeout=30)  # one scrape, so the page has data
        dom = chromium(tmp_path, "--dump-dom", url + "/")
        shot = tmp_path / "status.png"
        taken = chromium(tmp_path, "--window-size=1200,1100", f"--screenshot={shot}", url + "/")
    finally:
        proc.stop()
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert "<h1>Cluster Exporter</h1>" in html
    assert 'href="/metrics"' in html
    assert "Top 10 consumers" in html
    assert html.count("<tr>") >= 10 + 6 + 8  # consumers, sources, configuration
    assert 'scrape_ok <span class="ok">1</span>' in html
    assert "built-in demo cluster" in html
    assert taken.returncode == 0 and shot.exists(), taken.stderr[-2000:]
    width, height, distinct = png_facts(shot.read_bytes())
    assert (width, height) == (1200, 1100)
    assert distinct > 40, "the screenshot looks blank"
