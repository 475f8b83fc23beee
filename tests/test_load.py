"""The load and soak check of bench/load.py at a reduced size (full figures: docs/load.md).

It checks counts, not speed: every scrape of a burst answered while one collect runs,
only one collect, bounded threads, and no RSS growth, thread, socket or child piling up
over a soak.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "load.py"


def test_reduced_load_and_soak() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--burst", "100", "--slow", "3", "--soak", "500"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "answered          100/100" in result.stdout
    assert "collects run      1" in result.stdout
    assert result.stdout.rstrip().endswith("result: ok")


def test_scale_benchmark_smoke() -> None:
    """bench/scale.py at a small size: it runs end to end and every scrape is ok."""
    bench = BENCH.parent / "scale.py"
    result = subprocess.run(
        [sys.executable, str(bench), "--jobids", "2000", "--scrapes", "3", "--warmup", "1"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "jobids   2,000" in result.stdout and "scrape_ok 1" in result.stdout
